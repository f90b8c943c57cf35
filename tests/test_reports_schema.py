"""The schema as Alembic builds it matches the models, on SQLite and PostgreSQL, and the
engine settings the code relies on are in force."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import StatementError

from hotline.paths import ROOT
from reports.db import alembic_config, include_object, make_engine, normalize_url, transaction, upgrade
from reports.models import Base, FollowUpAttempt


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables


def test_rasa_tracker_table_in_the_same_database_is_left_alone(engine: Engine) -> None:
    """Production may keep Rasa's tracker store (`events`) in the reports database."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), data TEXT)"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object})
        assert compare_metadata(context, Base.metadata) == []
        unfiltered = MigrationContext.configure(connection, opts={"compare_type": True})
        assert any(diff[0] == "remove_table" for diff in compare_metadata(unfiltered, Base.metadata))


def test_foreign_keys_cascade_and_follow_the_naming_convention(engine: Engine) -> None:
    inspector = inspect(engine)
    for table in ("report_additions", "status_changes", "tipster_messages", "notifications"):
        (foreign_key,) = inspector.get_foreign_keys(table)
        assert foreign_key["referred_table"] == "reports"
        assert foreign_key["options"].get("ondelete") == "CASCADE"
        if engine.dialect.name == "postgresql":  # SQLite does not keep constraint names
            assert foreign_key["name"] == f"fk_{table}_report_id_reports"
    assert {u["name"] for u in inspector.get_unique_constraints("reports")} == {"uq_reports_lookup_hash"}


def test_downgrade_to_nothing_and_back(database_url: str, engine: Engine) -> None:
    command.downgrade(alembic_config(database_url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(database_url)
    assert "reports" in inspect(engine).get_table_names()


def test_times_are_stored_and_read_as_aware_utc(engine: Engine) -> None:
    local = datetime(2026, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=-6)))
    with transaction(engine) as session:
        session.add(FollowUpAttempt(sender_ref="r" * 64, attempted_at=local))
    with transaction(engine) as session:
        stored = session.query(FollowUpAttempt).one().attempted_at
    assert stored == local and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    with pytest.raises(StatementError, match="naive"), transaction(engine) as session:
        session.add(FollowUpAttempt(sender_ref="r" * 64, attempted_at=datetime(2026, 3, 1)))
        session.flush()
    assert datetime.now(UTC) > stored


def test_sqlite_engine_has_wal_busy_timeout_and_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()


def test_postgresql_urls_use_psycopg_3() -> None:
    assert normalize_url("postgresql://u:p%40ss@db/hotline") == "postgresql+psycopg://u:p%40ss@db/hotline"
    assert normalize_url("postgres://u@db/hotline").startswith("postgresql+psycopg://")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_upgrade_command_line_reads_the_environment(database_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLINE_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "reports.db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    engine = make_engine(database_url)
    try:
        assert "reports" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
