"""Real databases for the reports tests: every database test runs on SQLite and on
PostgreSQL (127.0.0.1:5432, started by `make test`). PostgreSQL being down fails the tests;
it never skips them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from nacl.public import PrivateKey
from psycopg import sql
from sqlalchemy import Engine

from reports.config import Settings
from reports.db import make_engine, upgrade
from reports.keys import Keys, init_keyring, load_keys, load_private_key

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin(statement: sql.Composed) -> None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as connection:
            connection.execute(statement)
    except psycopg.OperationalError as error:
        raise RuntimeError(f"PostgreSQL is not answering on 127.0.0.1:5432 (run `make postgres`): {error}") from error


@contextmanager
def temporary_postgres_database() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards; yields its URL."""
    name = f"hotline_test_{secrets.token_hex(6)}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'reports.db'}"
    else:
        with temporary_postgres_database() as url:
            yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The database migrated to the latest schema (Alembic, as in production)."""
    upgrade(database_url)
    made = make_engine(database_url)
    try:
        yield made
    finally:
        made.dispose()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """A fresh keyring made by the keys module."""
    directory = tmp_path / "keys"
    init_keyring(directory)
    return directory


def settings_for(database_url: str, keys_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: its database also serves as the tracker store."""
    values: dict[str, Any] = {"database_url": database_url, "keys_dir": keys_dir, "tracker_url": database_url}
    values.update(overrides)
    return Settings(**values)


@dataclass(frozen=True)
class Keyring:
    directory: Path
    keys: Keys
    private_key: PrivateKey


@pytest.fixture
def keyring(keys_dir: Path) -> Keyring:
    settings = settings_for("sqlite://", keys_dir)
    return Keyring(keys_dir, load_keys(settings), load_private_key(settings))
