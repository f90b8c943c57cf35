"""`make run` stopped as a process manager stops it (SIGTERM): the Rasa server, the action
server and the gateway stop with it, none is left running. The real `python -m scripts.run`
on ports from the OS, with its own databases, keys and logs."""

from __future__ import annotations

import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scripts.stack import ROOT, free_port, sqlite_url

pytestmark = pytest.mark.rasa
READY_TIMEOUT_SECONDS = 240.0
READERS: dict[int, threading.Thread] = {}  # the thread reading each run's output, joined before closing it


def descendants(pid: int) -> dict[int, str]:
    """Every process below pid (from /proc), with its start time (so a reused pid is not taken for it)."""
    parents: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
        started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = started[child]
            todo.append(child)
    return found


def alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output, line by line, read by a thread (readline would block the test)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    READERS[process.pid] = reader
    reader.start()
    return lines


def wait_for(lines: queue.Queue[str], text: str, timeout: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout:.0f} s: {''.join(seen)}")


@dataclass
class Run:
    process: subprocess.Popen[str]
    log_dir: Path
    servers: dict[int, str] = field(default_factory=dict)  # what it started, once ready


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    """`python -m scripts.run` in the background, its terminal chat waiting on a pipe; what it
    started is killed afterwards whatever happened (only that: by pid and start time)."""
    log_dir = tmp_path / "logs"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "HOTLINE_DATABASE_URL": sqlite_url(tmp_path / "hotline.db"),
        "HOTLINE_TRACKER_URL": sqlite_url(tmp_path / "rasa.db"),
        "HOTLINE_KEYS_DIR": str(tmp_path / "keys"),
    }
    ports = [str(free_port()) for _ in range(4)]
    command = [sys.executable, "-m", "scripts.run", "--log-dir", str(log_dir)]
    command += ["--rasa-port", ports[0], "--actions-port", ports[1], "--gateway-port", ports[2]]
    command += ["--console-port", ports[3]]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    started = Run(process, log_dir)
    try:
        yield started
    finally:
        started.servers.update(descendants(process.pid))
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        reader = READERS.pop(process.pid, None)
        if reader is not None:
            reader.join(timeout=30)  # the process is gone: its output ends
        for pipe in (process.stdin, process.stdout):  # closed here, not by the garbage collector
            if pipe is not None:
                pipe.close()
        for pid, start in started.servers.items():
            if alive(pid, start):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_every_server_of_make_run(run: Run, tmp_path: Path) -> None:
    process, log_dir = run.process, run.log_dir
    lines = lines_of(process)
    wait_for(lines, "==> Ready", READY_TIMEOUT_SECONDS)
    servers = descendants(process.pid)
    run.servers.update(servers)
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in servers}
    assert any(b"actions.serve" in c for c in commands.values()) and any(
        b"channels.app" in c for c in commands.values()
    )
    assert any(b"console.app" in c for c in commands.values()), commands
    assert any(b"rasa_plugins.serve" in c and b"--enable-api" in c for c in commands.values()), commands

    process.send_signal(signal.SIGTERM)

    code = process.wait(timeout=60)
    assert [commands[pid] for pid, start in servers.items() if alive(pid, start)] == []
    assert code == 0
    wait_for(lines, "==> Stopped.", 10)
    # What the stack wrote is for its user only.
    for path in (log_dir, log_dir / "rasa.log", log_dir / "gateway.log", tmp_path / "rasa.db", tmp_path / "hotline.db"):
        assert stat.S_IMODE(path.stat().st_mode) in (0o600, 0o700), path
