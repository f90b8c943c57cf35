"""What the action server connects to, created on first use (never at import time):
settings from the environment, the reports database engine, and the public keys."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine

from reports.config import Settings, load_settings
from reports.db import make_engine
from reports.keys import Keys, load_edge_key, load_keys


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


@lru_cache(maxsize=1)
def engine() -> Engine:
    return make_engine(settings().database_url)


@lru_cache(maxsize=1)
def keys() -> Keys:
    """Only the public key and the salts: the private key never reaches this process."""
    return load_keys(settings())


@lru_cache(maxsize=1)
def edge_key() -> bytes:
    """The key that checks the gateway's proof on message metadata (hotline.edge)."""
    return load_edge_key(settings())
