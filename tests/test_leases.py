"""Jobs exactly once across replicas (reports/leases.py) on a real PostgreSQL: two runners of
one job, one runs and the other skips; a killed holder's lease is freed; `python -m
reports.jobs run` skips a job another runner holds and stops on SIGTERM; and two gateways
draining the same kept messages through a real Rasa answer each one once."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from channels.app import one_round
from channels.base import InboundMessage
from channels.config import load_gateway_settings
from channels.core import Gateway, build_gateway, gateway_text
from reports.db import make_engine, upgrade
from reports.jobs import PURGE_JOB
from reports.keys import init_keyring
from reports.leases import Lease, held
from reports.models import PendingMessage
from scripts.stack import ROOT, Stack
from tests.conftest import channel_credentials
from tests.db_fixtures import temporary_postgres_database
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import FakeTwilio


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with temporary_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def engines(postgres_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines: two replicas' connection pools."""
    pair = (make_engine(postgres_url), make_engine(postgres_url))
    yield pair
    for engine in pair:
        engine.dispose()


def job_name() -> str:
    return f"test-job-{secrets.token_hex(4)}"


def wait_until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling an observable condition, with a deadline


def test_two_runners_of_one_job_one_runs_the_other_skips(engines: tuple[Engine, Engine]) -> None:
    job = job_name()
    inside, finish = threading.Event(), threading.Event()
    ran: list[str] = []

    def runner() -> None:
        with held(engines[0], job) as mine:
            if mine:
                ran.append("first")
                inside.set()
                finish.wait(15)

    thread = threading.Thread(target=runner)
    thread.start()
    try:
        assert inside.wait(15)
        with held(engines[1], job) as mine:
            assert not mine  # skipped: the first runner holds it
        with held(engines[1], job_name()) as other:
            assert other  # another job's lease is free
    finally:
        finish.set()
        thread.join(15)
    with held(engines[1], job) as mine:
        assert mine  # given back when the first runner finished
    assert ran == ["first"]


def test_a_killed_holders_lease_is_released(postgres_url: str, engines: tuple[Engine, Engine]) -> None:
    job = job_name()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from reports.db import make_engine\n"
            "from reports.leases import Lease\n"
            f"assert Lease(make_engine({postgres_url!r}), {job!r}).acquire()\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert not Lease(engines[0], job).acquire()
        holder.kill()
        holder.wait(15)
        lease = Lease(engines[0], job)
        wait_until(lease.acquire)  # PostgreSQL frees it with the dead runner's connection
        lease.release()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()  # waits, and closes its pipe


def test_on_sqlite_the_lease_is_this_processs(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        first, second = Lease(engine, "purge"), Lease(engine, "purge")
        assert first.acquire() and not second.acquire()
        first.release()
        assert second.acquire()
        second.release()
    finally:
        engine.dispose()


def test_the_jobs_loop_skips_a_held_lease_and_stops_on_sigterm(
    postgres_url: str, engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    init_keyring(tmp_path / "keys")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOTLINE_DATABASE_URL": postgres_url,
        "HOTLINE_TRACKER_URL": postgres_url,
        "HOTLINE_KEYS_DIR": str(tmp_path / "keys"),
    }
    command = [sys.executable, "-m", "reports.jobs", "run"]
    with held(engines[0], PURGE_JOB) as mine:
        assert mine
        loop = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert loop.stdout is not None
            lines = [loop.stdout.readline().strip() for _ in range(4)]
            assert lines[1] == "purge: skipped, another runner holds the lease"
            assert lines[2] == "notifications: 0 sent, 0 failed"
            assert lines[3].startswith("on call: 0 paged")
            loop.send_signal(signal.SIGTERM)
            assert loop.wait(15) == 0
            assert loop.stdout.read().strip() == "jobs: stopped"
        finally:
            if loop.poll() is None:
                loop.kill()
            loop.communicate()  # waits, and closes its pipe
    once = subprocess.run(
        [sys.executable, "-m", "reports.jobs", "purge"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert once.returncode == 0 and once.stdout.startswith("deleted: 0 closed reports"), once.stderr


# -- two gateways, one set of kept messages, a real Rasa --------------------------------


def new_phone() -> str:
    return f"+5025{secrets.randbelow(10**7):07d}"


def pending(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(PendingMessage)).scalar_one())


def gateways_with_kept_messages(
    stack: Stack, postgres_url: str, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram, count: int
) -> tuple[Gateway, Gateway, list[str]]:
    """Two gateways on one PostgreSQL; `count` messages kept while Rasa was down, then Rasa
    (the stack's) is back for both."""
    env = {**channel_credentials(fake_twilio, fake_telegram), "HOTLINE_DATABASE_URL": postgres_url}
    env.update(HOTLINE_KEYS_DIR=str(stack.keys_dir), HOTLINE_RASA_URLS="http://127.0.0.1:9")
    down = load_gateway_settings(env)
    a, b = build_gateway(down), build_gateway(down)
    phones = [new_phone() for _ in range(count)]
    for phone in phones:
        inbound = InboundMessage("sms", phone, "que es la trata", delivery_id="SM" + secrets.token_hex(16))
        answer = asyncio.run(a.handle(inbound))
        assert answer[0].text == gateway_text("assistant_unavailable")
    back = dataclasses.replace(down, rasa_urls=(stack.rasa_url,))
    a.settings = b.settings = back
    return a, b, phones


def late_answers(fake_twilio: FakeTwilio, phone: str) -> int:
    return sum(1 for r in fake_twilio.requests if r.form.get("To") == [phone])


@pytest.mark.rasa
def test_two_gateways_draining_the_same_kept_messages_answer_each_once(
    stack: Stack, postgres_url: str, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> None:
    """Both drain at once, without a lease (as when one was lost): each message is claimed
    by one of them (FOR UPDATE SKIP LOCKED), so each person gets one late answer."""
    a, b, phones = gateways_with_kept_messages(stack, postgres_url, fake_twilio, fake_telegram, 4)

    async def both() -> list[int]:
        try:
            return list(await asyncio.gather(a.drain_pending(), b.drain_pending()))
        finally:
            await asyncio.gather(a.http.aclose(), b.http.aclose())

    try:
        answered = asyncio.run(both())
        assert sum(answered) == len(phones)
        assert [late_answers(fake_twilio, phone) for phone in phones] == [1] * len(phones)
        assert pending(a.engine) == 0
    finally:
        a.engine.dispose()
        b.engine.dispose()


@pytest.mark.rasa
def test_two_gateways_background_rounds_take_turns(
    stack: Stack, postgres_url: str, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> None:
    """The gateways' background work at the same moment: the drain runs under its lease."""
    a, b, phones = gateways_with_kept_messages(stack, postgres_url, fake_twilio, fake_telegram, 2)

    async def both() -> None:
        try:
            await asyncio.gather(one_round(a, purge=True), one_round(b, purge=True))
        finally:
            await asyncio.gather(a.http.aclose(), b.http.aclose())

    try:
        asyncio.run(both())
        assert [late_answers(fake_twilio, phone) for phone in phones] == [1] * len(phones)
        assert pending(a.engine) == 0
    finally:
        a.engine.dispose()
        b.engine.dispose()
