"""Each app-image process of deploy/cluster.yml starts as a container would start it: from a
copy of what deploy/app.Dockerfile puts in the image (nothing else of the repository), with
only its cluster.yml settings in the environment and only its cluster.yml keyring files. So
cluster.yml's `keys` and `settings` are enough to run each one (the gateway without
reports.key, the jobs without any keyring), the image holds what the processes read, and
each process with a cluster.yml `metrics_port` serves its metrics when given one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from hotline.paths import ROOT
from scripts.check_deploy import KEYS_DIR_VARIABLE, load_cluster
from scripts.stack import free_port
from tests.test_deploy import DEPLOY, copied_paths

STARTUP_SECONDS = 60.0
Starter = Callable[..., subprocess.Popen[bytes]]  # (name, port, without="", metrics_port=0) -> the process
# Beyond cluster.yml (whose gateway keeps the default prefix): this machine's one Redis is
# shared by suites running at once, so each run keeps its keys apart.
REDIS_PREFIX = f"test-deploy-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="module", autouse=True)
def redis_keys_removed() -> Iterator[None]:
    """What the gateways of this run left in Redis goes with the run."""
    yield
    client = redis.Redis.from_url(local_values(Path("/nonexistent"))["HOTLINE_REDIS_URL"])
    for key in client.scan_iter(match=f"{REDIS_PREFIX}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/app of the app image: the paths app.Dockerfile copies, nothing else."""
    app = tmp_path_factory.mktemp("image") / "app"
    for path in copied_paths(DEPLOY / "app.Dockerfile"):
        source, target = ROOT / path, app / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    return app


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full keyring (`make keys` and the console key), from which each process gets its files."""
    keys = tmp_path_factory.mktemp("keyring")
    subprocess.run([sys.executable, "-m", "reports.keys", "init", "--dir", str(keys)], check=True, cwd=ROOT)
    code = f"from pathlib import Path; from console.keys import load_console_key; load_console_key(Path({str(keys)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return keys


def local_values(tmp: Path) -> dict[str, str]:
    """A value for every setting cluster.yml names, on this machine (no mail, no channels)."""
    database = f"sqlite:///{tmp / 'reports.db'}"
    return {
        "HOTLINE_DATABASE_URL": database,
        "HOTLINE_TRACKER_URL": f"sqlite:///{tmp / 'tracker.db'}",
        "HOTLINE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "HOTLINE_ACTION_URL": "http://127.0.0.1:9/webhook",
        "HOTLINE_ACTIONS_HOST": "127.0.0.1",
        "HOTLINE_CONSOLE_URL": "http://127.0.0.1:9/console",
        "HOTLINE_PUBLIC_URL": "http://127.0.0.1:9",
        "HOTLINE_RASA_URLS": "http://127.0.0.1:9",
        "HOTLINE_GATEWAY_HOST": "127.0.0.1",
        "HOTLINE_GATEWAY_URL": "http://127.0.0.1:9",
        "HOTLINE_CONSOLE_HOST": "127.0.0.1",
        "HOTLINE_METRICS_HOST": "127.0.0.1",  # 0.0.0.0 in a container; loopback on this machine
    }


def process_environment(
    name: str, image: Path, keys: Path | None, tmp: Path, port: int, metrics_port: int = 0
) -> dict[str, str]:
    entry = load_cluster()["processes"][name]
    values = {**local_values(tmp), "HOTLINE_GATEWAY_PORT": str(port), "HOTLINE_CONSOLE_PORT": str(port)}
    values["HOTLINE_METRICS_PORT"] = str(metrics_port) if metrics_port else ""
    env = {variable: values.get(variable, "") for variable in entry["settings"]}  # unset: empty, as compose does
    if "HOTLINE_REDIS_URL" in env:
        env["HOTLINE_REDIS_PREFIX"] = REDIS_PREFIX
    if keys is not None:
        env[KEYS_DIR_VARIABLE] = str(keys)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "PYTHONPATH": str(image)}
    return {**base, "PYTHONDONTWRITEBYTECODE": "1", "PTB_TIMEDELTA": "true", **env}


def own_keyring(name: str, keyring: Path, tmp: Path, without: str = "") -> Path:
    """The process's keyring: exactly cluster.yml's files (less `without`), read-only."""
    keys = tmp / f"{name}-keys"
    keys.mkdir(mode=0o700)
    for file in set(load_cluster()["processes"][name]["keys"]) - {without}:
        shutil.copyfile(keyring / file, keys / file)
        (keys / file).chmod(0o400)
    keys.chmod(0o500)
    return keys


@pytest.fixture
def migrated(image: Path, tmp_path: Path) -> Path:
    """The reports database migrated by the `migrate` task's command, from the image."""
    task = load_cluster()["tasks"]["migrate"]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(image), **local_values(tmp_path)}
    command = [sys.executable, *task["command"][1:]]
    subprocess.run(command, cwd=image, env=env, check=True, capture_output=True, timeout=120)
    return tmp_path


def command_for(name: str) -> list[str]:
    command: list[str] = load_cluster()["processes"][name]["command"]
    return [sys.executable, *command[1:]]


@pytest.fixture
def started(image: Path, keyring: Path, migrated: Path) -> Iterator[Starter]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, port: int, without: str = "", metrics_port: int = 0) -> subprocess.Popen[bytes]:
        keys = own_keyring(name, keyring, migrated, without)
        command = command_for(name)
        if name == "actions":
            command[command.index("--port") + 1] = str(port)
        log = open(migrated / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        process = subprocess.Popen(
            command,
            cwd=image,
            env=process_environment(name, image, keys, migrated, port, metrics_port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)  # polling while the server starts
    pytest.fail(f"no answer at {url} after {STARTUP_SECONDS:.0f}s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.parametrize("name", ["actions", "gateway", "console"])
def test_process_runs_with_only_its_settings_and_keys(name: str, started: Starter, migrated: Path) -> None:
    entry = load_cluster()["processes"][name]
    port, metrics_port = free_port(), free_port()
    while metrics_port == port:
        metrics_port = free_port()
    process = started(name, port, metrics_port=metrics_port)
    response = wait_healthy(process, f"http://127.0.0.1:{port}{entry['health']}", migrated / f"{name}.log")
    assert response.status_code == 200
    assert "metrics_port" in entry  # each of these three is scraped in the cluster
    scrape = wait_healthy(process, f"http://127.0.0.1:{metrics_port}/metrics", migrated / f"{name}.log")
    assert scrape.status_code == 200
    assert f"hotline_{name}_" in scrape.text
    public = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert f"hotline_{name}_" not in public.text  # never on the public port


def test_the_gateway_does_not_start_without_a_key_cluster_yml_gives_it(started: Starter, migrated: Path) -> None:
    """The check above can fail: the gateway with one of its files missing stops at start."""
    process = started("gateway", free_port(), without="gateway.key")
    assert process.wait(timeout=STARTUP_SECONDS) != 0
    assert "gateway.key" in (migrated / "gateway.log").read_text(errors="replace")


def test_the_jobs_purge_without_any_keyring(image: Path, migrated: Path) -> None:
    env = process_environment("jobs", image, None, migrated, 0)
    result = subprocess.run(
        [sys.executable, "-m", "reports.jobs", "purge"], cwd=image, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "deleted:" in result.stdout
    assert not (image / "keys").exists()
