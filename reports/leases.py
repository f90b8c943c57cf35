"""Leases: a job runs in one process at a time, however many replicas run it.

On PostgreSQL a lease is a session-level advisory lock (`pg_try_advisory_lock` on a number
hashed from the job's name) taken on a connection of its own and held while the job runs:
a second runner does not wait, it skips; a runner that dies loses its connection, and
PostgreSQL releases the lock with it. On SQLite (one process by construction) a lock in
this process's memory does the same job.

A lease is a schedule, not a guarantee: a connection lost in the middle of a job frees the
lease while the job goes on. Work that must happen once (answering a kept message) also
claims its rows (channels/state.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine, text

T = TypeVar("T")

_LOCAL: dict[tuple[str, str], threading.Lock] = {}  # (database, job) -> its lock, SQLite
_LOCAL_GUARD = threading.Lock()


def lock_number(job: str) -> int:
    """The advisory lock's key: a signed 64-bit number from the job's name."""
    return int.from_bytes(hashlib.sha256(f"hotline-lease:{job}".encode()).digest()[:8], "big", signed=True)


class Lease:
    """One job's lease on one database; `acquire` does not wait."""

    def __init__(self, engine: Engine, job: str) -> None:
        self.engine, self.job = engine, job
        self._connection: Connection | None = None
        self._local: threading.Lock | None = None

    @property
    def on_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def acquire(self) -> bool:
        """True when this runner now holds the lease; False when another one does."""
        if not self.on_postgresql:
            return self._acquire_local()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            number = {"n": lock_number(self.job)}
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:n)"), number).scalar())
        except BaseException:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def _acquire_local(self) -> bool:
        with _LOCAL_GUARD:
            lock = _LOCAL.setdefault((str(self.engine.url), self.job), threading.Lock())
        if not lock.acquire(blocking=False):
            return False
        self._local = lock
        return True

    def release(self) -> None:
        """Give the lease back (a connection that cannot unlock is dropped: that frees it too)."""
        lock, self._local = self._local, None
        if lock is not None:
            lock.release()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.execute(text("SELECT pg_advisory_unlock(:n)"), {"n": lock_number(self.job)})
            except Exception:
                connection.invalidate()  # closes the session: PostgreSQL releases its locks
            finally:
                connection.close()


@contextmanager
def held(engine: Engine, job: str) -> Iterator[bool]:
    """`with held(engine, "purge") as mine:` run the job only when `mine` is True."""
    lease = Lease(engine, job)
    mine = lease.acquire()
    try:
        yield mine
    finally:
        if mine:
            lease.release()


async def run_leased(engine: Engine, job: str, work: Callable[[], Awaitable[T]]) -> T | None:
    """From the event loop: run `work` under the job's lease; None when another runner has it."""
    lease = Lease(engine, job)
    if not await asyncio.to_thread(lease.acquire):
        return None
    try:
        return await work()
    finally:
        await asyncio.to_thread(lease.release)
