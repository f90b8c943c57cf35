"""`make cluster`: the hotline as a busy line runs it, on one machine (deploy/cluster.yml).

PostgreSQL (127.0.0.1:5432) holds the reports and Rasa's tracker store in two databases this
command creates; Redis (127.0.0.1:6379) holds Rasa's conversation locks and what the
gateways share; two Rasa replicas, two action servers and two gateways run behind HAProxy
(Debian's package): the public frontend spreads webhooks over the gateways with no
stickiness, an internal one spreads Rasa's action calls over the action servers. The console
and the background jobs run beside them. Same code as `make run`; only settings differ.

Before starting anything it checks what a misconfigured cluster gets wrong (PostgreSQL and
Redis answering, HAProxy installed, the keyring) and, once the Rasa replicas are up, that
they all loaded the same model; it stops with a clear message otherwise.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import redis
import yaml
from psycopg import sql

from scripts.stack import (
    MODEL,
    ROOT,
    RasaAccess,
    action_server_command,
    ensure_port_free,
    free_port,
    gateway_environment,
    gateway_keyring,
    prepare_keys_and_database,
    private_directory,
    process_environment,
    rasa_server_command,
    spawn,
    stop_processes,
    wait_for_health,
)

TOPOLOGY = ROOT / "deploy" / "cluster.yml"
CLUSTER_ENDPOINTS = ROOT / "deploy" / "rasa" / "endpoints.yml"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
HAPROXY = Path("/usr/sbin/haproxy")
STARTUP_TIMEOUT_SECONDS = 300.0  # two Rasa replicas load their models on 2 cores
LOCK_LIFETIME_SECONDS = "30"  # a Rasa ticket outlives the longest turn; a killed replica's lapses
METRICS_ROLES = ("actions", "gateway", "console")  # Rasa 3.6 and the jobs serve no metrics
DEFAULT_METRICS_PORT = 9101
# `make cluster`'s ports; tests and the load test take free ones from the OS.
DEFAULT_PORTS = {
    "loadbalancer": 8080,
    "actions-lb": 5050,
    "rasa-1": 5005,
    "rasa-2": 5006,
    "actions-1": 5055,
    "actions-2": 5056,
    "gateway-1": 8001,
    "gateway-2": 8002,
    "console": 8100,
}


class ClusterError(RuntimeError):
    """A cluster that cannot start as configured: the message says what to fix."""


@lru_cache(maxsize=1)
def topology() -> dict[str, dict[str, object]]:
    """The processes of deploy/cluster.yml (replicas, ports, settings, keys)."""
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    processes: dict[str, dict[str, object]] = data["processes"]
    return processes


ROLES = ("actions", "rasa", "gateway", "console", "jobs")


def replicas(role: str, scale: dict[str, int] | None = None) -> int:
    """How many of a role run: deploy/cluster.yml's count unless `scale` says otherwise."""
    if scale and role in scale:
        return scale[role]
    return int(str(topology()[role].get("replicas", 1)))


def process_names(scale: dict[str, int] | None = None) -> list[str]:
    """Every process the cluster runs, in start order: actions-1, actions-2, rasa-1, ..."""
    names = []
    for role in ROLES:
        count = replicas(role, scale)
        names += [role] if role == "console" and count else [f"{role}-{i}" for i in range(1, count + 1)]
    return names


@dataclass
class Cluster(RasaAccess):
    """A running cluster: what the tests and the load test need to talk to it and to break it."""

    ports: dict[str, int]
    log_dir: Path
    keys_dir: Path
    gateway_keys_dir: Path
    database_url: str  # the reports (SQLAlchemy URL)
    tracker_url: str  # Rasa's tracker store
    redis_url: str
    redis_prefix: str
    metrics_ports: dict[str, int] = field(default_factory=dict)  # each process's internal Prometheus port
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    haproxy: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def gateway_url(self) -> str:
        """The public door: HAProxy's frontend (what Twilio and Telegram call)."""
        return self.url("loadbalancer")

    @property
    def rasa_urls(self) -> list[str]:
        return [self.url(name) for name in self.ports if name.startswith("rasa-")]

    @property
    def rasa_url(self) -> str:
        return self.rasa_urls[0]

    @property
    def console_url(self) -> str:
        return f"{self.url('console')}/console"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stop one process as a crash (SIGKILL) or a shutdown (SIGTERM) would, and wait."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def start(self, name: str) -> None:
        """Start one process (again, after `kill`: its log goes on) with its command and settings."""
        command, env = self.commands[name]
        self.processes[name] = spawn(name, command, env, self.log_dir, append=name in self.processes)

    def wait_ready(self, names: list[str], timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        wait_until_ready(self, names, timeout)


# -- preflight: what a misconfigured cluster gets wrong -----------------------------------


def check_postgres(admin_url: str) -> None:
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5):
            pass
    except psycopg.OperationalError as error:
        raise ClusterError(f"PostgreSQL does not answer at {_safe(admin_url)} (make postgres): {error}") from None


def check_redis(url: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as error:
        raise ClusterError(f"Redis does not answer at {_safe(url)} (HOTLINE_REDIS_URL): {error}") from None


def check_haproxy() -> None:
    if not HAPROXY.exists():
        raise ClusterError(f"HAProxy is not installed at {HAPROXY} (make haproxy, or apt install haproxy)")


def check_same_model(cluster: Cluster) -> None:
    """Every Rasa replica must answer with the same model: two models would answer one
    conversation two ways, depending on the replica."""
    models = {}
    with httpx.Client(timeout=5.0) as client:
        for url in cluster.rasa_urls:
            status = client.get(f"{url}/status", params=cluster.rasa_params).json()
            models[url] = status.get("model_id")
    if len({repr(model) for model in models.values()}) > 1:
        raise ClusterError(f"the Rasa replicas loaded different models: {sorted(models)}; train once, share the file")


def _safe(url: str) -> str:
    """A URL for a message: never its password."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def create_databases(admin_url: str, names: list[str]) -> None:
    """Create the cluster's databases when missing (never drops one)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_databases(admin_url: str, names: list[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        for name in names:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- HAProxy ------------------------------------------------------------------------------


def haproxy_config(cluster: Cluster) -> str:
    """Round robin, no stickiness: any gateway serves any message. A gateway or action
    server that refuses connections is retried on another at once (`retries`, `redispatch`)
    and taken out after two failed health checks, back after one good one."""
    gateways = [n for n in cluster.ports if n.startswith("gateway-")]
    actions = [n for n in cluster.ports if n.startswith("actions-") and n != "actions-lb"]

    def backend(name: str, servers: list[str]) -> str:
        lines = [
            f"backend {name}",
            "    balance roundrobin",
            "    option httpchk GET /health",
            "    http-check expect status 200",
            "    default-server inter 500ms fall 2 rise 1",
        ]
        lines += [f"    server {s} 127.0.0.1:{cluster.ports[s]} check" for s in servers]
        return "\n".join(lines)

    return "\n".join(
        [
            "global",
            "    maxconn 4096",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    retries 3",
            "    option redispatch",
            "frontend public",
            f"    bind 127.0.0.1:{cluster.ports['loadbalancer']}",
            "    default_backend gateways",
            "frontend actions",
            f"    bind 127.0.0.1:{cluster.ports['actions-lb']}",
            "    default_backend actions",
            backend("gateways", gateways),
            backend("actions", actions),
            "",
        ]
    )


def start_haproxy(cluster: Cluster) -> subprocess.Popen[bytes]:
    config = cluster.log_dir / "haproxy.cfg"
    config.write_text(haproxy_config(cluster), encoding="utf-8")
    checked = subprocess.run([str(HAPROXY), "-c", "-q", "-f", str(config)], capture_output=True, text=True)
    if checked.returncode != 0:
        raise ClusterError(f"HAProxy refused its configuration: {checked.stderr.strip()}")
    command = [str(HAPROXY), "-db", "-f", str(config)]
    cluster.commands["haproxy"] = (command, dict(os.environ))
    return spawn("haproxy", command, dict(os.environ), cluster.log_dir)


# -- the processes ------------------------------------------------------------------------


def base_environment(cluster: Cluster, extra_env: dict[str, str]) -> dict[str, str]:
    """`make run`'s settings (scripts/stack.py) with the cluster's values, Redis and the
    Rasa ticket lock's lifetime."""
    env = process_environment(
        cluster.url("actions-lb"),
        cluster.rasa_urls,
        cluster.gateway_url,  # HAProxy's public door: what Twilio signs
        cluster.console_url,
        cluster.tracker_url,
        cluster.database_url,
        cluster.keys_dir,
    )
    env.update(
        HOTLINE_REDIS_URL=cluster.redis_url,
        HOTLINE_REDIS_PREFIX=cluster.redis_prefix,
        TICKET_LOCK_LIFETIME=LOCK_LIFETIME_SECONDS,
    )
    env.update(extra_env)
    return env


def process_command(cluster: Cluster, name: str, env: dict[str, str], model: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one process, as deploy/cluster.yml names it: its own
    metrics port, when it serves metrics."""
    role = name.split("-")[0]
    port = cluster.ports.get(name, 0)
    env = {key: value for key, value in env.items() if key != "HOTLINE_METRICS_PORT"}
    if name in cluster.metrics_ports:
        env["HOTLINE_METRICS_PORT"] = str(cluster.metrics_ports[name])
    if role == "rasa":
        return rasa_server_command(port, model, CLUSTER_ENDPOINTS), env
    if role == "actions":
        return action_server_command(port), env
    if role == "gateway":
        gateway_env = {**gateway_environment(cluster.gateway_keys_dir, env), "HOTLINE_GATEWAY_PORT": str(port)}
        return [sys.executable, "-m", "channels.app"], gateway_env
    if role == "console":
        return [sys.executable, "-m", "console.app"], env
    if role == "jobs":
        return [sys.executable, "-m", "reports.jobs", "run"], env
    raise ClusterError(f"no process called {name}")


def health_url(cluster: Cluster, name: str) -> str | None:
    role = name.split("-")[0]
    if role == "rasa":
        return f"{cluster.url(name)}/status?token={cluster.rasa_token}"
    if role in ("actions", "gateway"):
        return f"{cluster.url(name)}/health"
    if role == "console":
        return f"{cluster.console_url}/health"
    return None  # jobs and HAProxy: running is enough


def wait_until_ready(cluster: Cluster, names: list[str], timeout: float) -> None:
    checks = {name: health_url(cluster, name) for name in names}
    try:
        wait_for_health(cluster.processes, checks, cluster.log_dir, timeout)
    except (RuntimeError, TimeoutError) as error:
        raise ClusterError(str(error)) from None


def stop_cluster(cluster: Cluster) -> None:
    stop_processes([*cluster.processes.values(), *([cluster.haproxy] if cluster.haproxy else [])], grace_seconds=15)


def assign_ports(free: bool, names: list[str]) -> dict[str, int]:
    """`make cluster`'s fixed ports, or free ones from the OS (tests, the load test)."""
    names = ["loadbalancer", "actions-lb", *[n for n in names if not n.startswith("jobs")]]
    if free:
        return {name: free_port() for name in names}
    ports = {name: DEFAULT_PORTS[name] for name in names}
    for port in ports.values():
        ensure_port_free(port)
    return ports


@contextmanager
def running_cluster(
    log_dir: Path,
    *,
    free_ports: bool = True,
    database: str | None = None,
    keys_dir: Path | None = None,
    admin_url: str = POSTGRES_ADMIN_URL,
    redis_url: str = REDIS_URL,
    model: Path = MODEL,
    extra_env: dict[str, str] | None = None,
    drop_after: bool = False,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    scale: dict[str, int] | None = None,
) -> Iterator[Cluster]:
    """Start the cluster of deploy/cluster.yml; stop it when the block ends. `database` names
    the PostgreSQL databases (<name> for reports, <name>_tracker for Rasa), a fresh one by
    default; `drop_after` drops them at the end (tests); `scale` changes replica counts
    (the benchmark's one-of-each cluster)."""
    names = process_names(scale)
    check_postgres(admin_url)
    check_redis(redis_url)
    check_haproxy()
    name = database or f"hotline_cluster_{secrets.token_hex(4)}"
    private_directory(log_dir)
    host = urlsplit(admin_url)
    base = f"postgresql+psycopg://{host.username or 'postgres'}@{host.hostname}:{host.port or 5432}"
    cluster = Cluster(
        ports=assign_ports(free_ports, names),
        log_dir=log_dir,
        keys_dir=keys_dir or Path(os.environ.get("HOTLINE_KEYS_DIR") or ROOT / "keys"),
        gateway_keys_dir=log_dir / "gateway-keys",
        database_url=f"{base}/{name}",
        tracker_url=f"postgresql://{host.username or 'postgres'}@{host.hostname}:{host.port or 5432}/{name}_tracker",
        redis_url=redis_url,
        redis_prefix=f"{name}:",
    )
    cluster.metrics_ports = {
        process: free_port() if free_ports else DEFAULT_METRICS_PORT + index
        for index, process in enumerate(n for n in names if n.split("-")[0] in METRICS_ROLES)
    }
    create_databases(admin_url, [name, f"{name}_tracker"])
    prepare_keys_and_database(cluster.keys_dir, cluster.database_url)
    gateway_keyring(cluster.keys_dir, cluster.gateway_keys_dir)
    env = base_environment(cluster, extra_env or {})
    try:
        cluster.haproxy = start_haproxy(cluster)
        for process in names:
            cluster.commands[process] = process_command(cluster, process, env, model)
            cluster.start(process)
        cluster.wait_ready(names, timeout)
        check_same_model(cluster)
        yield cluster
    finally:
        stop_cluster(cluster)
        if drop_after:
            drop_databases(admin_url, [name, f"{name}_tracker"])


def print_cluster(cluster: Cluster) -> None:
    print("==> Cluster ready (deploy/cluster.yml)")
    print(f"    Public door (HAProxy)      {cluster.gateway_url}   config: {cluster.log_dir / 'haproxy.cfg'}")
    print(f"    Actions (HAProxy, internal) {cluster.url('actions-lb')}   (Rasa's action endpoint)")
    for name, port in cluster.ports.items():
        if name not in ("loadbalancer", "actions-lb"):
            print(f"    {name:<26} http://127.0.0.1:{port}   logs: {cluster.log_dir / name}.log")
    print(f"    Staff console              {cluster.console_url}")
    metrics = "  ".join(f"{name}:{port}" for name, port in cluster.metrics_ports.items())
    print(f"    Prometheus metrics         127.0.0.1 {metrics}")
    print(f"    Reports (PostgreSQL)       {cluster.database_url}")
    print(f"    Conversations (PostgreSQL) {cluster.tracker_url}")
    print(f"    Locks and shared state     {cluster.redis_url} (prefix {cluster.redis_prefix})")
    print("    Ctrl-C stops everything.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "cluster")
    parser.add_argument("--database", default="hotline_cluster", help="PostgreSQL database name (and <name>_tracker)")
    parser.add_argument("--redis-url", default=os.environ.get("HOTLINE_REDIS_URL") or REDIS_URL)
    parser.add_argument("--free-ports", action="store_true", help="take free ports instead of the fixed ones")
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # a log file sees each line as it is printed
    os.umask(0o077)
    print("==> Starting the cluster: 2 Rasa replicas, 2 action servers, 2 gateways, HAProxy, console, jobs (1-3 min)")
    stopping = False

    def leave(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, leave)
    try:
        with running_cluster(
            args.log_dir, free_ports=args.free_ports, database=args.database, redis_url=args.redis_url
        ) as cluster:
            print_cluster(cluster)
            signal.pause()
    except ClusterError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    print("==> Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
