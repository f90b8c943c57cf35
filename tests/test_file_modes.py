"""Databases and logs are readable by their owner only: the reports database and the
tracker store's SQLite files (with their WAL files), the stack's log directory and logs,
and whatever the processes the stack spawns create."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from reports.db import make_engine, private_sqlite_file, upgrade
from scripts import stack


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask (022): what made the files world-readable."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def test_a_new_sqlite_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "hotline.db"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
            files = sorted(tmp_path.iterdir())
            assert path in files and len(files) == 3, files  # the database, -wal and -shm, while open
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        engine.dispose()


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "rasa.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    private_sqlite_file(f"sqlite:///{path}")
    assert mode(path) == 0o600
    private_sqlite_file("sqlite://")  # in memory: nothing to do
    private_sqlite_file("postgresql://postgres@127.0.0.1/x")  # not a file: nothing to do


def test_the_stack_logs_and_what_its_processes_create_are_private(tmp_path: Path) -> None:
    log_dir = tmp_path / "build" / "logs"
    stack.private_directory(log_dir)
    made = tmp_path / "made-by-a-child"
    command = [sys.executable, "-c", f"open({str(made)!r}, 'w').write('x'); print('hola')"]
    process = stack.spawn("child", command, dict(os.environ), log_dir)
    assert process.wait(timeout=60) == 0
    assert mode(log_dir) == 0o700
    assert (log_dir / "child.log").read_text() == "hola\n" and mode(log_dir / "child.log") == 0o600
    assert mode(made) == 0o600  # the child runs with umask 077
