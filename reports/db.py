"""Engines, the one transaction wrapper, and migrations.

Engines are made by whoever runs (action server, jobs, tests), never at import time.
SQLite serves a laptop and the tests; PostgreSQL (psycopg 3) serves production.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from hotline.db_connect import retry_connections
from reports.config import ROOT, load_settings
from reports.models import Base

ALEMBIC_INI = ROOT / "alembic.ini"
MIGRATIONS = ROOT / "reports" / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """`postgresql://` (and `postgres://`) mean psycopg 3, the driver installed here."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def private_sqlite_file(url: str) -> None:
    """A SQLite database file readable by its owner only, created so before SQLite opens it
    (SQLite gives its -wal and -shm files the same mode); an existing one is narrowed."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    if parsed.database.startswith("file:") or parsed.query.get("mode") == "memory":
        return
    path = parsed.database
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings this project relies on for each database."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        private_sqlite_file(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    retry_connections(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """WAL so readers do not block the writer; foreign keys on (ON DELETE CASCADE); and every
    transaction begins IMMEDIATE, taking the write lock up front: a deferred transaction that
    reads and then writes can fail at once with "database is locked" under concurrency."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """The single unit of work (GlobaLeaks @transact): commit on success, roll back on error.
    Objects stay readable after commit (expire_on_commit=False)."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration with paths that do not depend on the working directory."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at url to the latest schema."""
    command.upgrade(alembic_config(url), "head")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.db", description="Reports database schema.")
    parser.add_argument("command", choices=["upgrade"], help="upgrade: apply every migration (HOTLINE_DATABASE_URL)")
    parser.parse_args(argv)
    upgrade(load_settings().database_url)
    print("database schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's filter: only our tables. In production Rasa's tracker store (`events`) may
    share the database, and autogenerate must never propose to drop it."""
    return not (type_ == "table" and reflected and compare_to is None and name not in Base.metadata.tables)
