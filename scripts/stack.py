"""Start and stop the local hotline: the Rasa server (its own Python 3.10 environment), the
action server and the channel gateway (this environment), with their keys and databases ready (keyring
created if missing, reports database migrated). Used by `make run`, the end-to-end tests
and the benchmarks, so all three run the same thing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reports.db import private_sqlite_file

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = ROOT / "models" / "hotline.tar.gz"
STARTUP_TIMEOUT_SECONDS = 180.0
PRIVATE_UMASK = 0o077  # what the stack's processes create (databases, logs): for their user only


@dataclass
class Stack:
    rasa_url: str
    actions_url: str
    gateway_url: str
    log_dir: Path
    tracker_url: str  # SQLAlchemy URL of Rasa's tracker store
    database_url: str  # SQLAlchemy URL of the reports database
    keys_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def webhook(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"


# What `rasa train`, `rasa data validate` and `rasa test` read, as the Makefile passes it.
RASA_PROJECT_ARGS = ["--domain", "build/domain", "--data", "nlu_data", "bot", "build/data", "--config", "config.yml"]


def rasa_environment() -> dict[str, str]:
    """The environment every Rasa command runs in: no telemetry, our plugins importable."""
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def prepare_keys_and_database(keys_dir: Path, database_url: str) -> None:
    """Create the keyring if missing (never overwrites) and migrate the reports database."""
    for command in (["reports.keys", "init", "--dir", str(keys_dir)], ["reports.db", "upgrade"]):
        subprocess.run(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env={**os.environ, "HOTLINE_DATABASE_URL": database_url, "HOTLINE_KEYS_DIR": str(keys_dir)},
            check=True,
            stdout=subprocess.DEVNULL,
        )


def action_server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "-p", str(port)]


def _environment(stack: Stack) -> dict[str, str]:
    env = rasa_environment()
    env.update(
        SANIC_HOST="127.0.0.1",
        HOTLINE_ACTION_URL=f"{stack.actions_url}/webhook",
        HOTLINE_TRACKER_URL=stack.tracker_url,
        HOTLINE_TRACKER_KEY=(stack.keys_dir / "tracker.key").read_text().strip(),
        HOTLINE_DATABASE_URL=stack.database_url,
        HOTLINE_KEYS_DIR=str(stack.keys_dir),
        HOTLINE_RASA_URLS=stack.rasa_url,
        HOTLINE_GATEWAY_PORT=stack.gateway_url.rsplit(":", 1)[1],
        PTB_TIMEDELTA="true",  # python-telegram-bot 22: durations as timedelta, without a deprecation warning
    )
    env.setdefault("HOTLINE_PUBLIC_URL", stack.gateway_url)
    env.setdefault("HOTLINE_CONSOLE_INSECURE_COOKIES", "1")  # plain http on 127.0.0.1; production sets https
    return env


def free_port() -> int:
    """A port the OS has just handed out as free: tests take these, never fixed ones, so
    two suites can run on one machine at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_port_free(port: int) -> None:
    """A server left over from an earlier run would answer in place of the new one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is already in use (a hotline still running?)")


def private_directory(path: Path) -> None:
    """A directory only its owner can enter (logs may hold what the servers print)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def spawn(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """The process in its own session, its output in a private log, creating private files."""
    path = log_dir / f"{name}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a log from an earlier run may be world-readable
    with open(fd, "wb") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,
        )


def _wait_until_ready(stack: Stack, timeout: float) -> None:
    """Ready when the action server answers and the Rasa server has loaded the model."""
    deadline = time.monotonic() + timeout
    checks = {
        "actions": f"{stack.actions_url}/health",
        "rasa": f"{stack.rasa_url}/status",
        "gateway": f"{stack.gateway_url}/health",
    }
    with httpx.Client(timeout=2.0) as client:
        while checks:
            for name, url in list(checks.items()):
                process = stack.processes[name]
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {stack.log_dir / name}.log")
                try:
                    response = client.get(url)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200 and (name != "rasa" or response.json().get("model_file")):
                    del checks[name]
            if checks and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {sorted(checks)}")
            if checks:
                time.sleep(0.25)  # polling interval while servers start, not a race cover


def stop(stack: Stack) -> None:
    """SIGTERM each process group, then SIGKILL what is left after 10 seconds."""
    for process in stack.processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in stack.processes.values():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_stack(
    log_dir: Path,
    rasa_port: int = 5005,
    actions_port: int = 5055,
    gateway_port: int = 8000,
    tracker_url: str | None = None,
    database_url: str | None = None,
    keys_dir: Path | None = None,
    model: Path = MODEL,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    endpoints: Path = ROOT / "endpoints.yml",
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Run both servers on 127.0.0.1 until the block ends (or fails). Databases default
    to the environment's HOTLINE_TRACKER_URL / HOTLINE_DATABASE_URL, else SQLite files."""
    private_directory(log_dir)
    stack = Stack(
        rasa_url=f"http://127.0.0.1:{rasa_port}",
        actions_url=f"http://127.0.0.1:{actions_port}",
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        log_dir=log_dir,
        tracker_url=tracker_url or os.environ.get("HOTLINE_TRACKER_URL") or sqlite_url(ROOT / "rasa.db"),
        database_url=database_url or os.environ.get("HOTLINE_DATABASE_URL") or sqlite_url(ROOT / "hotline.db"),
        keys_dir=keys_dir or Path(os.environ.get("HOTLINE_KEYS_DIR") or ROOT / "keys"),
    )
    for port in (rasa_port, actions_port, gateway_port):
        ensure_port_free(port)
    prepare_keys_and_database(stack.keys_dir, stack.database_url)
    private_sqlite_file(stack.tracker_url)  # Rasa would create it world-readable
    env = {**_environment(stack), **(extra_env or {})}
    try:
        stack.processes["actions"] = spawn("actions", action_server_command(actions_port), env, log_dir)
        stack.processes["gateway"] = spawn("gateway", [sys.executable, "-m", "channels.app"], env, log_dir)
        stack.processes["rasa"] = spawn(
            "rasa",
            [
                str(RASA),
                "run",
                "--enable-api",
                "-i",
                "127.0.0.1",
                "-p",
                str(rasa_port),
                "-m",
                str(model),
                "--endpoints",
                str(endpoints),
                "--credentials",
                "credentials.yml",
            ],
            env,
            log_dir,
        )
        _wait_until_ready(stack, timeout)
        yield stack
    finally:
        stop(stack)
