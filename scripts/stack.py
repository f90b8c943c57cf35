"""Start and stop the local hotline: the Rasa server (its own Python 3.10 environment) and
the action server (this environment). Used by `make run`, the end-to-end tests and the
benchmarks, so all three run the same thing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = ROOT / "models" / "hotline.tar.gz"
STARTUP_TIMEOUT_SECONDS = 180.0


@dataclass
class Stack:
    rasa_url: str
    actions_url: str
    log_dir: Path
    tracker_db: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def webhook(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"


# What `rasa train`, `rasa data validate` and `rasa test` read, as the Makefile passes it.
RASA_PROJECT_ARGS = ["--domain", "build/domain", "--data", "nlu_data", "bot", "build/data", "--config", "config.yml"]


def rasa_environment() -> dict[str, str]:
    """The environment every Rasa command runs in: no telemetry, our plugins importable."""
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _environment(actions_url: str, tracker_db: Path) -> dict[str, str]:
    env = rasa_environment()
    env.update(
        SANIC_HOST="127.0.0.1",
        HOTLINE_ACTION_URL=f"{actions_url}/webhook",
        HOTLINE_TRACKER_DIALECT=env.get("HOTLINE_TRACKER_DIALECT", "sqlite"),
        HOTLINE_TRACKER_DB=env.get("HOTLINE_TRACKER_DB", str(tracker_db)),
    )
    return env


def _spawn(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    with open(log_dir / f"{name}.log", "wb") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_until_ready(stack: Stack, timeout: float) -> None:
    """Ready when the action server answers and the Rasa server has loaded the model."""
    deadline = time.monotonic() + timeout
    checks = {"actions": f"{stack.actions_url}/health", "rasa": f"{stack.rasa_url}/status"}
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
    tracker_db: Path | None = None,
    model: Path = MODEL,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    endpoints: Path = ROOT / "endpoints.yml",
) -> Iterator[Stack]:
    """Run both servers on 127.0.0.1 until the block ends (or fails)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        rasa_url=f"http://127.0.0.1:{rasa_port}",
        actions_url=f"http://127.0.0.1:{actions_port}",
        log_dir=log_dir,
        tracker_db=tracker_db or (ROOT / "rasa.db"),
    )
    env = _environment(stack.actions_url, stack.tracker_db)
    try:
        stack.processes["actions"] = _spawn(
            "actions", [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "-p", str(actions_port)], env, log_dir
        )
        stack.processes["rasa"] = _spawn(
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
