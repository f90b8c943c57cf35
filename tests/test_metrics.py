"""Operators can see the line: each process's Prometheus metrics on its own internal port,
over real HTTP against the real stack, and `/ready` naming the dependency that is down.

The stack (tests/conftest.py) serves the gateway's, the action server's and the console's
metrics on ports of their own. A message through the gateway moves the counters, a report
filed through it moves the action server's, and nothing in any scrape names a person: no
number, no pseudonym, no word they wrote."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from actions.metrics import read_outbox
from channels.metrics import read_state
from reports.db import transaction
from reports.metrics import MetricsAddress, metrics_address
from reports.models import Notification
from reports.notify import MAX_ATTEMPTS
from scripts.stack import ROOT, Stack, free_port, prepare_keys_and_database, spawn, sqlite_url
from tests.db_fixtures import Keyring
from tests.test_console_process import REPORT_STEPS
from tests.test_e2e_gateway import new_phone, pseudonym, sms_form, twilio_post, twiml_messages
from tests.test_e2e_trust import listening_addresses
from tests.test_gateway_resilience import ALARM, make_gateway, sms
from tests.test_reports_notify import file_urgent

READY_BOUND_SECONDS = 2.0  # each check has 0.8 s: the answer comes well inside this
Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: httpx.Client, url: str) -> tuple[str, Sample]:
    """The scrape's text and its samples by (name, sorted labels)."""
    response = client.get(url)
    assert response.status_code == 200, response.text
    samples: Sample = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Sample, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Sample, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def label_values(text: str) -> list[str]:
    return [
        value for family in text_string_to_metric_families(text) for s in family.samples for value in s.labels.values()
    ]


def assert_names_nobody(text: str, phone: str, words: str, pseudonyms: list[str]) -> None:
    """No number, pseudonym or written word anywhere in a scrape, and no label value that
    looks like one (32 hex characters, a run of digits)."""
    digits = phone.lstrip("+")
    written = [word for word in words.split() if len(word) >= 6]  # short ones are in metric names too
    for secret in (phone, digits, digits[-7:], *pseudonyms, *written):
        assert secret not in text, f"{secret!r} appears in a scrape"
    for label in label_values(text):
        assert not re.fullmatch(r"[0-9a-f]{32}", label), label
        assert not re.search(r"\d{6,}", label), label


# -- the real stack ------------------------------------------------------------------------


@pytest.mark.rasa
def test_a_message_moves_the_gateway_counters_and_names_nobody(client: httpx.Client, stack: Stack) -> None:
    url = stack.metrics_urls["gateway"]
    _, before = scrape(client, url)
    phone, words = new_phone(), f"hola zapateria{secrets.token_hex(3)} ventanal"
    assert twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, words)))
    danger_phone = new_phone()
    assert twiml_messages(twilio_post(client, stack, "sms", sms_form(danger_phone, "me quieren matar")))
    forged = twilio_post(client, stack, "sms", sms_form(new_phone(), "hola"), sign="invalid")
    assert forged.status_code == 403
    text, after = scrape(client, url)

    assert value(after, "hotline_gateway_messages_in_total", channel="sms") - value(
        before, "hotline_gateway_messages_in_total", channel="sms"
    ) == pytest.approx(2)
    out = ("hotline_gateway_messages_out_total", {"channel": "sms", "via": "webhook"})
    assert value(after, out[0], **out[1]) - value(before, out[0], **out[1]) >= 3  # an answer each, and the numbers
    emergencies = total(after, "hotline_gateway_emergency_answers_total", channel="sms") - total(
        before, "hotline_gateway_emergency_answers_total", channel="sms"
    )
    assert emergencies == pytest.approx(1)
    rejected = ("hotline_gateway_webhook_rejections_total", {"channel": "sms", "status": "403"})
    assert value(after, rejected[0], **rejected[1]) - value(before, rejected[0], **rejected[1]) == pytest.approx(1)
    calls = ("hotline_gateway_rasa_seconds_count", {"call": "message", "outcome": "ok"})
    assert value(after, calls[0], **calls[1]) - value(before, calls[0], **calls[1]) >= 2
    assert ("hotline_gateway_held_messages", ()) in after
    assert ("hotline_gateway_open_handoffs", (("state", "waiting"),)) in after
    people = [pseudonym(stack, "sms", phone), pseudonym(stack, "sms", danger_phone)]
    assert_names_nobody(text, phone, words, people)
    assert_names_nobody(text, danger_phone, "quieren matar", people)


@pytest.mark.rasa
def test_a_report_filed_moves_the_action_server_counters(client: httpx.Client, stack: Stack) -> None:
    url = stack.metrics_urls["actions"]
    _, before = scrape(client, url)
    phone = new_phone()
    for step in REPORT_STEPS:
        twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, step)))
    text, after = scrape(client, url)

    filed = total(after, "hotline_actions_reports_filed_total") - total(before, "hotline_actions_reports_filed_total")
    assert filed == pytest.approx(1)
    runs = ("hotline_actions_runs_total", {"action": "action_submit_report", "outcome": "ok"})
    assert value(after, runs[0], **runs[1]) - value(before, runs[0], **runs[1]) == pytest.approx(1)
    assert total(after, "hotline_actions_seconds_count", action="validate_report_form") > 0
    assert ("hotline_alert_outbox_notifications", (("state", "pending"),)) in after
    assert ("hotline_alert_outbox_oldest_seconds", ()) in after
    assert_names_nobody(text, phone, " ".join(REPORT_STEPS[1:2] + REPORT_STEPS[4:5]), [pseudonym(stack, "sms", phone)])


@pytest.mark.rasa
def test_a_failed_login_is_counted_without_its_name(client: httpx.Client, stack: Stack) -> None:
    url = stack.metrics_urls["console"]
    _, before = scrape(client, url)
    username = f"nadie{secrets.token_hex(4)}"
    with httpx.Client(timeout=30.0) as browser:
        page = browser.get(f"{stack.console_url}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        answer = browser.post(
            f"{stack.console_url}/login", data={"csrf": csrf.group(1), "username": username, "password": "x" * 12}
        )
    assert answer.status_code == 401
    text, after = scrape(client, url)
    failed = ("hotline_console_logins_total", {"outcome": "failed"})
    assert value(after, failed[0], **failed[1]) - value(before, failed[0], **failed[1]) == pytest.approx(1)
    assert username not in text


@pytest.mark.rasa
def test_every_process_is_ready_and_serves_metrics_off_its_public_port(client: httpx.Client, stack: Stack) -> None:
    for url, expected in (
        (f"{stack.gateway_url}/ready", {"database": "ok", "rasa": "ok"}),
        (f"{stack.actions_url}/ready", {"database": "ok"}),
        (f"{stack.console_url}/ready", {"database": "ok", "gateway": "ok"}),
    ):
        answer = client.get(url)
        assert (answer.status_code, answer.json()) == (200, expected), url
    assert client.get(f"{stack.gateway_url}/metrics").status_code == 404
    assert client.get(f"{stack.console_url}/metrics").status_code == 404
    for name, url in stack.metrics_urls.items():
        assert client.get(url).status_code == 200, name
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        assert listening_addresses(port) == {"127.0.0.1"}, name  # loopback unless HOTLINE_METRICS_HOST says


# -- one process with a dependency down --------------------------------------------------------


def environment(keys: Path, database_url: str, **more: str) -> dict[str, str]:
    """A process's environment: this one's, less any hotline or channel setting, plus these."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "TWILIO_", "TELEGRAM_"))}
    return {
        **kept,
        "PYTHONPATH": str(ROOT),
        "HOTLINE_KEYS_DIR": str(keys),
        "HOTLINE_DATABASE_URL": database_url,
        **more,
    }


@contextmanager
def running(work: Path, name: str, command: list[str], env: dict[str, str], health: str) -> Iterator[Path]:
    """One of our processes alone (`python -m ...`), until it answers `health`; yields its log."""
    log_dir = work / f"logs-{name}-{secrets.token_hex(3)}"
    log_dir.mkdir(mode=0o700)
    process = spawn(name, command, env, log_dir)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2.0) as client:
            while not answers(client, health):
                assert process.poll() is None, (log_dir / f"{name}.log").read_text()
                assert time.monotonic() < deadline, f"{name} did not start"
                time.sleep(0.1)  # polling a starting server, with a deadline
        yield log_dir / f"{name}.log"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def gateway(work: Path, keys: Path, database_url: str, rasa_url: str, **more: str) -> Iterator[tuple[str, Path]]:
    port = free_port()
    env = environment(keys, database_url, HOTLINE_RASA_URLS=rasa_url, HOTLINE_GATEWAY_PORT=str(port), **more)
    url = f"http://127.0.0.1:{port}"
    with running(work, "gateway", [sys.executable, "-m", "channels.app"], env, f"{url}/health") as log:
        yield url, log


def timed_ready(url: str) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    with httpx.Client(timeout=10.0) as client:
        answer = client.get(url)
    return answer.status_code, answer.json(), time.monotonic() - started


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A keyring, with a migrated SQLite reports database beside it (tmp_path/reports.db)."""
    prepare_keys_and_database(tmp_path / "keys", sqlite_url(tmp_path / "reports.db"))
    return tmp_path / "keys"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes connections and never answers: a hung dependency."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def missing_postgres_database() -> str:
    return f"postgresql://postgres@127.0.0.1:5432/hotline_missing_{secrets.token_hex(6)}"


def test_the_gateway_names_rasa_when_its_port_is_closed_and_redis_when_it_answers(tmp_path: Path, keys: Path) -> None:
    redis_url = f"redis://127.0.0.1:6379/{secrets.randbelow(16)}"
    database = sqlite_url(tmp_path / "reports.db")
    with gateway(tmp_path, keys, database, f"http://127.0.0.1:{free_port()}", HOTLINE_REDIS_URL=redis_url) as (url, _):
        status, body, took = timed_ready(f"{url}/ready")
    assert (status, body) == (503, {"database": "ok", "rasa": "down", "redis": "ok"})
    assert took < READY_BOUND_SECONDS


def test_the_gateway_answers_within_a_second_when_rasa_hangs(tmp_path: Path, keys: Path, silent_port: int) -> None:
    rasa_urls = f"http://127.0.0.1:{silent_port},http://127.0.0.1:{free_port()}"
    with gateway(tmp_path, keys, sqlite_url(tmp_path / "reports.db"), rasa_urls) as (url, _):
        for _ in range(2):  # the second while the first's hung call may still be open
            status, body, took = timed_ready(f"{url}/ready")
            assert (status, body) == (503, {"database": "ok", "rasa-1": "down", "rasa-2": "down"})
            assert took < READY_BOUND_SECONDS


def test_the_gateway_names_the_database_and_never_a_url(tmp_path: Path, keys: Path, silent_port: int) -> None:
    password = f"pw{secrets.token_hex(8)}"
    redis_url = f"redis://:{password}@127.0.0.1:{silent_port}/0"
    database = missing_postgres_database()
    with gateway(tmp_path, keys, database, f"http://127.0.0.1:{free_port()}", HOTLINE_REDIS_URL=redis_url) as (
        url,
        log,
    ):
        with httpx.Client(timeout=10.0) as client:
            answer = client.get(f"{url}/ready")
            status, body, took = timed_ready(f"{url}/ready")
        assert (status, body) == (503, {"database": "down", "rasa": "down", "redis": "down"})
        assert took < READY_BOUND_SECONDS
        for secret in (password, "127.0.0.1", "hotline_missing", "postgres"):
            assert secret not in answer.text
        assert password not in log.read_text(errors="replace")


def test_the_action_server_names_the_database(tmp_path: Path, keys: Path) -> None:
    port = free_port()
    env = environment(keys, missing_postgres_database())
    url = f"http://127.0.0.1:{port}"
    with running(
        tmp_path, "actions", [sys.executable, "-m", "actions.serve", "--port", str(port)], env, f"{url}/health"
    ):
        status, body, took = timed_ready(f"{url}/ready")
    assert (status, body) == (503, {"database": "down"})
    assert took < READY_BOUND_SECONDS


def test_the_console_names_the_database_and_the_gateway(tmp_path: Path, keys: Path) -> None:
    port = free_port()
    env = environment(
        keys,
        missing_postgres_database(),
        HOTLINE_CONSOLE_PORT=str(port),
        HOTLINE_GATEWAY_URL=f"http://127.0.0.1:{free_port()}",
    )
    url = f"http://127.0.0.1:{port}/console"
    with running(tmp_path, "console", [sys.executable, "-m", "console.app"], env, f"{url}/health"):
        status, body, took = timed_ready(f"{url}/ready")
    assert (status, body) == (503, {"database": "down", "gateway": "down"})
    assert took < READY_BOUND_SECONDS


def test_metrics_are_served_on_their_own_loopback_port_only_when_asked(tmp_path: Path, keys: Path) -> None:
    metrics_port = free_port()
    database = sqlite_url(tmp_path / "reports.db")
    rasa = f"http://127.0.0.1:{free_port()}"
    with (
        gateway(tmp_path, keys, database, rasa, HOTLINE_METRICS_PORT=str(metrics_port)) as (url, _),
        httpx.Client() as client,
    ):
        text, samples = scrape(client, f"http://127.0.0.1:{metrics_port}/metrics")
        assert value(samples, "hotline_gateway_held_messages") == 0
        assert client.get(f"{url}/metrics").status_code == 404
    assert "hotline_gateway_messages_in_total" in text
    assert metrics_address({}) is None
    assert metrics_address({"HOTLINE_METRICS_PORT": "9101"}) == MetricsAddress("127.0.0.1", 9101)
    with pytest.raises(ValueError, match="HOTLINE_METRICS_PORT"):
        metrics_address({"HOTLINE_METRICS_PORT": "metrics"})


# -- in one process: the gateway's counters with Rasa down, gauges from the database -------------


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_rasa_down_counts_the_fallbacks_and_the_messages_held(
    engine: Engine, database_url: str, keys_dir: Path
) -> None:
    """Rasa on a closed port: an alarm gets the numbers as a fallback, an ordinary message a
    fallback only; both are held; a flooded alarm gets the numbers from the lexicon."""
    gateway = make_gateway(engine, database_url, keys_dir, messages_per_minute=2)
    watched = {
        "fallback": ("hotline_gateway_emergency_answers_total", {"channel": "sms", "how": "fallback"}),
        "lexicon": ("hotline_gateway_emergency_answers_total", {"channel": "sms", "how": "lexicon"}),
        "unavailable": ("hotline_gateway_fallback_answers_total", {"channel": "sms", "reason": "unavailable"}),
        "flood": ("hotline_gateway_held_back_total", {"channel": "sms", "reason": "flood"}),
    }
    before = {key: counted(name, **labels) for key, (name, labels) in watched.items()}

    async def talk() -> None:
        try:
            await gateway.handle(sms(ALARM, "SM-m-1"))
            await gateway.handle(sms("hola", "SM-m-2"))
            await gateway.handle(sms(ALARM, "SM-m-3"))  # over 2 a minute: held back
        finally:
            await gateway.http.aclose()

    asyncio.run(talk())
    moved = {key: counted(name, **labels) - before[key] for key, (name, labels) in watched.items()}
    assert moved == {"fallback": 1, "lexicon": 1, "unavailable": 2, "flood": 1}
    families = read_state(engine)
    samples = {(family.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}
    assert samples[("hotline_gateway_held_messages", ())] == 2
    assert samples[("hotline_gateway_held_oldest_seconds", ())] >= 0
    assert samples[("hotline_gateway_open_handoffs", (("state", "live"),))] == 0


# -- gauges read from the database -------------------------------------------------------------


def test_the_outbox_gauges_count_what_is_still_to_send(engine: Engine, keyring: Keyring) -> None:
    file_urgent(engine, keyring, ("email", "telegram"))
    with transaction(engine) as session:
        stuck = session.scalars(select(Notification).order_by(Notification.id)).first()
        assert stuck is not None
        stuck.status, stuck.attempts = "failed", MAX_ATTEMPTS
    samples = {
        (family.name, tuple(sorted(s.labels.items()))): s.value
        for family in read_outbox(engine)
        for s in family.samples
    }
    assert samples[("hotline_alert_outbox_notifications", (("state", "pending"),))] == 1
    assert samples[("hotline_alert_outbox_notifications", (("state", "given_up"),))] == 1
    assert samples[("hotline_alert_outbox_notifications", (("state", "failed"),))] == 0
    assert samples[("hotline_alert_outbox_oldest_seconds", ())] > 0  # filed at a fixed date in the past
