"""Private PostgreSQL and Redis servers for the load and fault test: real servers on free
ports in a temporary directory, which the test may restart without touching the machine's
own (other suites use those at the same time)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from scripts.stack import free_port

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT_SECONDS = 30.0


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PrivatePostgres:
    data_dir: Path
    port: int
    log: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        command = [str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log), "-o", options]
        subprocess.run(_as_postgres([*command, *args]), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._ctl("-w", "start")
        wait_for_postgres(self.admin_url)

    def restart(self) -> None:
        """What a failover or a restart for an upgrade does: every connection is cut."""
        self._ctl("-w", "-m", "fast", "restart")
        wait_for_postgres(self.admin_url)

    def stop(self) -> None:
        self._ctl("-w", "-m", "immediate", "stop")


def wait_for_postgres(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # polling a server that is starting, with a deadline


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb a fresh cluster (trust auth, loopback only) in a new temporary directory (the
    postgres user must be able to reach it), run it until the block ends, then remove it."""
    work = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    work.chmod(0o711)  # others may pass through to the data directory, not list this one
    data, log = work / "pgdata", work / "postgres.log"
    data.mkdir(mode=0o700)
    log.touch(mode=0o600)
    if os.geteuid() == 0:
        for path in (data, log):
            shutil.chown(path, "postgres")
    initdb = [str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    try:
        subprocess.run(_as_postgres([*initdb, "--no-sync"]), check=True, capture_output=True, timeout=120)
        server = PrivatePostgres(data, free_port(), log)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # polling a server that is starting, with a deadline
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """A crash and a restart: Redis keeps nothing on disk here, so everything is gone."""
        self.stop()
        self.start()


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
