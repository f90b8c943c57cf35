"""Start and stop the local hotline: the Rasa server (its own Python 3.10 environment), the
action server, the channel gateway and the staff console (this environment), with their keys
and databases ready (keyring created if missing, reports database migrated). The gateway gets
a copy of the keyring without the staff private key: only the console opens reports. Used by
`make run`, the end-to-end tests and the benchmarks, so all three run the same thing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hotline.edge import read_token
from reports.db import private_sqlite_file
from reports.keys import EDGE_FILE, GATEWAY_FILE, PUBLIC_FILE, RASA_TOKEN_FILE, RELAY_FILE, SALT_FILE, SENDER_FILE

ROOT = Path(__file__).resolve().parent.parent
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
MODEL = ROOT / "models" / "hotline.tar.gz"
STARTUP_TIMEOUT_SECONDS = 180.0
# What the internet-facing gateway may hold: never reports.key (nor the console's or Rasa's keys).
GATEWAY_KEY_FILES = (PUBLIC_FILE, SALT_FILE, SENDER_FILE, GATEWAY_FILE, EDGE_FILE, RELAY_FILE, RASA_TOKEN_FILE)
# Environment overrides of secrets the gateway must not hold.
NOT_FOR_THE_GATEWAY = ("HOTLINE_REPORTS_PRIVATE_KEY", "HOTLINE_CONSOLE_KEY", "HOTLINE_CONSOLE_SECRET")
PRIVATE_UMASK = 0o077  # what the stack's processes create (databases, logs): for their user only


class RasaAccess:
    """What a client of the Rasa servers needs from the keyring (the stack and the cluster)."""

    keys_dir: Path

    @property
    def rasa_token(self) -> str:
        return read_token(self.keys_dir, "rasa.token", "HOTLINE_RASA_TOKEN")

    @property
    def rasa_params(self) -> dict[str, str]:
        """What a call to Rasa's HTTP API or the gateway webhook must carry."""
        return {"token": self.rasa_token}


@dataclass
class Stack(RasaAccess):
    rasa_url: str
    actions_url: str
    gateway_url: str
    console_url: str  # the staff console's pages (http://host:port/console)
    log_dir: Path
    tracker_url: str  # SQLAlchemy URL of Rasa's tracker store
    database_url: str  # SQLAlchemy URL of the reports database
    keys_dir: Path
    gateway_keys_dir: Path  # the gateway's keyring: keys_dir without the private key
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    metrics_urls: dict[str, str] = field(default_factory=dict)  # process name -> its /metrics (when asked for)

    @property
    def webhook(self) -> str:
        """The gateway's door into Rasa (rasa_plugins/gateway_channel.py): needs `rasa_params`."""
        return f"{self.rasa_url}/webhooks/gateway/webhook"


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


def gateway_keyring(keys_dir: Path, target: Path) -> Path:
    """A fresh copy of what the gateway may hold (GATEWAY_KEY_FILES) in `target`."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True, mode=0o700)
    for name in GATEWAY_KEY_FILES:
        if (keys_dir / name).exists():
            shutil.copyfile(keys_dir / name, target / name)
            os.chmod(target / name, 0o600)
    return target


def action_server_command(port: int) -> list[str]:
    """rasa-sdk behind the actions token, on loopback (actions/serve.py)."""
    return [sys.executable, "-m", "actions.serve", "--port", str(port)]


def rasa_server_command(port: int, model: Path, endpoints: Path) -> list[str]:
    """`rasa run` with its token from the keyring, not the command line (rasa_plugins/serve.py)."""
    return [
        str(RASA_PYTHON),
        "-m",
        "rasa_plugins.serve",
        "--enable-api",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        str(model),
        "--endpoints",
        str(endpoints),
        "--credentials",
        "credentials.yml",
    ]


def process_environment(
    actions_url: str,
    rasa_urls: list[str],
    gateway_url: str,
    console_url: str,
    tracker_url: str,
    database_url: str,
    keys_dir: Path,
) -> dict[str, str]:
    """The settings every process of a local line reads (`make run`'s stack and `make
    cluster` differ only in these values and in what they add)."""
    env = rasa_environment()
    env.update(
        SANIC_HOST="127.0.0.1",
        HOTLINE_ACTION_URL=f"{actions_url}/webhook",
        HOTLINE_TRACKER_URL=tracker_url,
        HOTLINE_DATABASE_URL=database_url,
        HOTLINE_KEYS_DIR=str(keys_dir),
        HOTLINE_RASA_URLS=",".join(rasa_urls),
        HOTLINE_GATEWAY_URL=gateway_url,
        HOTLINE_CONSOLE_PORT=_port(console_url),
        HOTLINE_CONSOLE_URL=console_url,
        PTB_TIMEDELTA="true",  # python-telegram-bot 22: durations as timedelta, without a deprecation warning
    )
    env.setdefault("HOTLINE_PUBLIC_URL", gateway_url)  # what Twilio signs
    env.setdefault("HOTLINE_CONSOLE_INSECURE_COOKIES", "1")  # plain http on 127.0.0.1; production sets https
    return env


def _environment(stack: Stack) -> dict[str, str]:
    env = process_environment(
        stack.actions_url,
        [stack.rasa_url],
        stack.gateway_url,
        stack.console_url,
        stack.tracker_url,
        stack.database_url,
        stack.keys_dir,
    )
    env["HOTLINE_GATEWAY_PORT"] = _port(stack.gateway_url)
    env["HOTLINE_MODE"] = "development"  # the phone simulator: `make run` and the test stack only
    return env


def _port(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]


def with_metrics_port(env: dict[str, str], name: str, metrics_ports: Mapping[str, int]) -> dict[str, str]:
    """The process's own HOTLINE_METRICS_PORT when one was asked for, else none: one value
    shared by every process would make all but the first fail to start."""
    kept = {key: value for key, value in env.items() if key != "HOTLINE_METRICS_PORT"}
    return {**kept, "HOTLINE_METRICS_PORT": str(metrics_ports[name])} if name in metrics_ports else kept


def gateway_environment(gateway_keys_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """The gateway's environment: its own keyring, and no override of a secret it must not hold."""
    kept = {name: value for name, value in env.items() if name not in NOT_FOR_THE_GATEWAY}
    return {**kept, "HOTLINE_KEYS_DIR": str(gateway_keys_dir)}


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


def spawn(
    name: str, command: list[str], env: dict[str, str], log_dir: Path, append: bool = False
) -> subprocess.Popen[bytes]:
    """The process in its own session, its output in a private log (`append`: after what an
    earlier run of it wrote, for a restart), creating private files."""
    path = log_dir / f"{name}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o600)
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
    """Ready when the action server, the gateway and the console answer and the Rasa server
    has loaded the model."""
    checks = {
        "actions": f"{stack.actions_url}/health",
        "rasa": f"{stack.rasa_url}/status?token={stack.rasa_token}",
        "gateway": f"{stack.gateway_url}/health",
        "console": f"{stack.console_url}/health",
    }
    wait_for_health(stack.processes, checks, stack.log_dir, timeout)


def wait_for_health(
    processes: Mapping[str, subprocess.Popen[bytes]], checks: Mapping[str, str | None], log_dir: Path, timeout: float
) -> None:
    """Wait until each named process answers 200 on its URL (a Rasa server, "rasa...", also
    with its model loaded; None: running is enough). RuntimeError when one exits,
    TimeoutError when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    waiting = dict(checks)
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for name, url in list(waiting.items()):
                process = processes[name]
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}; see {log_dir / name}.log")
                if url is None:
                    del waiting[name]
                    continue
                try:
                    response = client.get(url)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200 and (not name.startswith("rasa") or response.json().get("model_file")):
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {sorted(waiting)}")
            if waiting:
                time.sleep(0.25)  # polling interval while servers start, not a race cover


def stop(stack: Stack) -> None:
    stop_processes(stack.processes.values(), grace_seconds=10)


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], grace_seconds: float) -> None:
    """SIGTERM each process group, then SIGKILL what is left after `grace_seconds`."""
    running = list(processes)
    for process in running:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_stack(
    log_dir: Path,
    rasa_port: int = 5005,
    actions_port: int = 5055,
    gateway_port: int = 8000,
    console_port: int = 8100,
    tracker_url: str | None = None,
    database_url: str | None = None,
    keys_dir: Path | None = None,
    model: Path = MODEL,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    endpoints: Path = ROOT / "endpoints.yml",
    extra_env: dict[str, str] | None = None,
    metrics_ports: Mapping[str, int] | None = None,
) -> Iterator[Stack]:
    """Run the four processes on 127.0.0.1 until the block ends (or fails). Databases default
    to the environment's HOTLINE_TRACKER_URL / HOTLINE_DATABASE_URL, else SQLite files. The
    gateway's keyring is made beside the logs (log_dir/../gateway-keys). `metrics_ports`
    ({"gateway": port, "actions": ..., "console": ...}) serves those processes' metrics;
    without it none are served (`make run`)."""
    private_directory(log_dir)
    stack = Stack(
        rasa_url=f"http://127.0.0.1:{rasa_port}",
        actions_url=f"http://127.0.0.1:{actions_port}",
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        console_url=f"http://127.0.0.1:{console_port}/console",
        log_dir=log_dir,
        tracker_url=tracker_url or os.environ.get("HOTLINE_TRACKER_URL") or sqlite_url(ROOT / "rasa.db"),
        database_url=database_url or os.environ.get("HOTLINE_DATABASE_URL") or sqlite_url(ROOT / "hotline.db"),
        keys_dir=keys_dir or Path(os.environ.get("HOTLINE_KEYS_DIR") or ROOT / "keys"),
        gateway_keys_dir=log_dir.parent / "gateway-keys",
    )
    metrics_ports = dict(metrics_ports or {})
    stack.metrics_urls = {name: f"http://127.0.0.1:{port}/metrics" for name, port in metrics_ports.items()}
    for port in (rasa_port, actions_port, gateway_port, console_port, *metrics_ports.values()):
        ensure_port_free(port)
    prepare_keys_and_database(stack.keys_dir, stack.database_url)
    gateway_keyring(stack.keys_dir, stack.gateway_keys_dir)
    private_sqlite_file(stack.tracker_url)  # Rasa would create it world-readable
    env = {**_environment(stack), **(extra_env or {})}
    try:
        actions_env = with_metrics_port(env, "actions", metrics_ports)
        stack.processes["actions"] = spawn("actions", action_server_command(actions_port), actions_env, log_dir)
        gateway_env = with_metrics_port(gateway_environment(stack.gateway_keys_dir, env), "gateway", metrics_ports)
        stack.processes["gateway"] = spawn("gateway", [sys.executable, "-m", "channels.app"], gateway_env, log_dir)
        console_env = with_metrics_port(env, "console", metrics_ports)
        stack.processes["console"] = spawn("console", [sys.executable, "-m", "console.app"], console_env, log_dir)
        rasa_env = with_metrics_port(env, "rasa", metrics_ports)  # Rasa 3.6 serves none: never one set
        stack.processes["rasa"] = spawn("rasa", rasa_server_command(rasa_port, model, endpoints), rasa_env, log_dir)
        _wait_until_ready(stack, timeout)
        yield stack
    finally:
        stop(stack)
