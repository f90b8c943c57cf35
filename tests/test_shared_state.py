"""Two gateways behind a load balancer without stickiness share their state through a real
Redis (channels/shared.py), on a real PostgreSQL: the flood guard counts a sender's messages
whichever gateway gets them, a relay call cannot be replayed to the other gateway, a
delivery sent to both is answered once, the simulator's outbox is one. Redis stopped or
hung: messages are still answered (emergencies first, in time), the relay refuses (503),
nothing escapes; Redis back: shared again. Rasa is down here (a closed port)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from channels.app import create_app
from channels.base import InboundMessage, Reply
from channels.config import GatewaySettings
from channels.core import Gateway, emergency_page, gateway_text
from channels.relay import NONCE_HEADER, PREFIX, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from channels.shared import RETRY_AFTER_SECONDS, SharedUnavailable
from channels.simulator import SimulatorChannel
from reports.db import make_engine, upgrade
from reports.keys import init_keyring, load_gateway_key, load_keys, load_relay_key
from scripts.stack import free_port
from tests.db_fixtures import settings_for, temporary_postgres_database

REDIS_URL = "redis://127.0.0.1:6379/0"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # Rasa "down": nothing listens there
ALARM = "me van a matar ayudenme"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with temporary_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def keyring_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("shared") / "keys"
    init_keyring(directory)
    return directory


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test alone (parallel suites share the machine's Redis)."""
    chosen = f"hotline-test-{secrets.token_hex(6)}:"
    yield chosen
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{chosen}*"):
        client.delete(key)
    client.close()


def new_phone() -> str:
    return f"+5025{secrets.randbelow(10**7):07d}"


def make_gateway(url: str, keys_dir: Path, redis_url: str, prefix: str) -> Gateway:
    """One gateway process's worth: its own engine, HTTP pool and simulator."""
    reports_settings = settings_for(url, keys_dir)
    settings = GatewaySettings(
        public_url="https://hotline.example.org",
        rasa_urls=(CLOSED_PORT_URL,),
        database_url=url,
        keys_dir=keys_dir,
        rasa_timeout_seconds=2.0,
        messages_per_minute=20,
        redis_url=redis_url,
        redis_prefix=prefix,
    )
    return Gateway(
        settings=settings,
        engine=make_engine(url),
        keys=load_keys(reports_settings),
        gateway_key=load_gateway_key(reports_settings),
        http=httpx.AsyncClient(),
        adapters={"simulator": SimulatorChannel()},
    )


@contextmanager
def two_gateways(url: str, keys_dir: Path, redis_url: str, prefix: str) -> Iterator[tuple[Gateway, Gateway]]:
    pair = (make_gateway(url, keys_dir, redis_url, prefix), make_gateway(url, keys_dir, redis_url, prefix))
    try:
        yield pair
    finally:
        for gateway in pair:
            gateway.close_shared()
            gateway.engine.dispose()


@contextmanager
def serve(gateway: Gateway) -> Iterator[str]:
    """The gateway's app over real HTTP (uvicorn in a thread, its lifespan on); the app
    owns the gateway and closes it. Yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn accepts: no start-up polling
    server = uvicorn.Server(uvicorn.Config(create_app(gateway=gateway), ws="none", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        gateway.engine.dispose()


def post(base: str, call: tuple[str, bytes, dict[str, str]]) -> httpx.Response:
    path, body, headers = call
    return httpx.post(base + path, content=body, headers=headers, timeout=10)


def sms(text: str, address: str, delivery_id: str | None = None) -> InboundMessage:
    return InboundMessage("sms", address, text, delivery_id=delivery_id or "SM" + secrets.token_hex(16))


def texts(gateway: Gateway, message: InboundMessage) -> list[str]:
    return [reply.text for reply in asyncio.run(gateway.handle(message))]


def relay_call(key: bytes, name: str, payload: dict[str, object]) -> tuple[str, bytes, dict[str, str]]:
    """A relay call as the console signs it: path, body, headers."""
    path, body = f"{PREFIX}/{name}", json.dumps(payload).encode()
    timestamp, nonce = str(int(time.time())), secrets.token_urlsafe(24)
    headers = {
        "content-type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(key, "POST", path, timestamp, nonce, body),
    }
    return path, body, headers


def staff_message(keys_dir: Path, address: str) -> tuple[str, bytes, dict[str, str]]:
    key = load_relay_key(settings_for("sqlite://", keys_dir))
    replies = [{"text": "Hola, soy del equipo", "options": []}]
    return relay_call(key, "send", {"channel": "simulator", "address": address, "replies": replies})


def redis_contents(url: str, prefix: str) -> bytes:
    """Every key under the prefix and every value in it, as a dump would show them."""
    client = redis.Redis.from_url(url)
    parts: list[object] = []
    for key in client.scan_iter(f"{prefix}*"):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"zset":
            parts.extend(client.zrange(key, 0, -1))
        elif kind == b"list":
            parts.extend(client.lrange(key, 0, -1))
    client.close()
    return b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)


def test_a_senders_21st_message_in_a_minute_is_held_back_whichever_gateway_gets_it(
    postgres_url: str, keyring_dir: Path, prefix: str
) -> None:
    phone = new_phone()
    with two_gateways(postgres_url, keyring_dir, REDIS_URL, prefix) as (a, b):
        answers = [texts((a, b)[n % 2], sms(f"hola {n}", phone)) for n in range(22)]
        pseudonym = a.pseudonym("sms", phone)
    assert all(answer[0] == gateway_text("assistant_unavailable") for answer in answers[:20])
    assert answers[20] == [gateway_text("rate_limited")]  # the 21st, on gateway a
    assert answers[21] == []  # the notice went out once a minute, from either gateway
    dump = redis_contents(REDIS_URL, prefix)
    assert dump and pseudonym.encode() not in dump and phone.encode() not in dump and b"hola" not in dump


def test_a_relay_call_accepted_by_one_gateway_is_refused_by_the_other(
    postgres_url: str, keyring_dir: Path, prefix: str
) -> None:
    address = f"sms:{new_phone()}"
    call = staff_message(keyring_dir, address)
    with (
        serve(make_gateway(postgres_url, keyring_dir, REDIS_URL, prefix)) as gateway_a,
        serve(make_gateway(postgres_url, keyring_dir, REDIS_URL, prefix)) as gateway_b,
    ):
        assert post(gateway_a, call).json() == {"sent": True, "path": "direct"}  # SMS: no reply window
        assert post(gateway_b, call).status_code == 403  # a replay, refused by the other gateway
        # The simulator page polls whichever gateway: the staff message sent through a is
        # waiting at b, under the one token both gateways share.
        token = httpx.get(f"{gateway_a}/simulator").text.split('name="simulator-token" content="')[1].split('"')[0]
        look, phone = address.split(":")
        outbox = httpx.get(
            f"{gateway_b}/simulator/outbox", params={"look": look, "phone": phone}, headers={"X-Simulator-Token": token}
        )
        assert outbox.json()["replies"][0]["text"] == "Hola, soy del equipo"
    dump = redis_contents(REDIS_URL, prefix)
    nonce = call[2][NONCE_HEADER].encode()
    assert dump and address.encode() not in dump and b"equipo" not in dump and nonce not in dump


def test_a_delivery_sent_to_both_gateways_is_answered_once(postgres_url: str, keyring_dir: Path, prefix: str) -> None:
    phone, delivery_id = new_phone(), "SM" + secrets.token_hex(16)
    message = sms("hola, quiero informacion", phone, delivery_id)

    async def to_both(a: Gateway, b: Gateway) -> list[list[Reply]]:
        return list(await asyncio.gather(a.handle(message), b.handle(message)))

    with two_gateways(postgres_url, keyring_dir, REDIS_URL, prefix) as (a, b):
        answers = asyncio.run(to_both(a, b))
        again = texts(b, message)
    assert sorted(len(answer) for answer in answers) == [0, 2]  # one answered, one dropped
    assert again == []
    dump = redis_contents(REDIS_URL, prefix)
    assert f"{prefix}delivery:".encode() in dump and delivery_id.encode() not in dump


# -- Redis down, hung, back --------------------------------------------------------------


@contextmanager
def own_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test alone (it will be stopped and started again)."""
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)  # polling a condition, with a deadline
        client.close()
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGCONT)
            server.kill()
        server.wait()


def wait_until_shared(gateway: Gateway) -> None:
    """Poll (deadline) until the gateway's shared state answers again."""
    deadline = time.monotonic() + 10 + RETRY_AFTER_SECONDS
    while True:
        try:
            gateway.shared.first_mark(f"probe:{secrets.token_hex(4)}", 1.0)
            return
        except SharedUnavailable:
            assert time.monotonic() < deadline, "the shared state did not come back"
            time.sleep(0.05)  # polling a condition, with a deadline


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "channels.shared"]


def test_redis_stopped_messages_answered_relay_refused_then_shared_again(
    postgres_url: str, keyring_dir: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    phone, address = new_phone(), f"sms:{new_phone()}"
    with own_redis(port) as server, two_gateways(postgres_url, keyring_dir, url, prefix) as (a, b):
        assert texts(a, sms("hola", phone))[0] == gateway_text("assistant_unavailable")
        server.kill()
        server.wait()
        # Down: every message answered (the flood guard lets them pass), an emergency first.
        for n in range(6):
            assert texts((a, b)[n % 2], sms(f"hola {n}", phone))[0] == gateway_text("assistant_unavailable")
        started = time.monotonic()
        assert texts(b, sms(ALARM, phone))[0] == emergency_page()
        assert time.monotonic() - started < 2.0
        simulator = a.adapters["simulator"]
        assert isinstance(simulator, SimulatorChannel)
        with pytest.raises(SharedUnavailable):  # the outbox route answers 503
            simulator.take_outbox(address)
        down_lines = [line for line in outage_lines(caplog) if "unavailable" in line]
        assert len(down_lines) == 2  # once per gateway (a, b), not once per message
        with serve(make_gateway(postgres_url, keyring_dir, url, prefix)) as gateway_c:
            assert post(gateway_c, staff_message(keyring_dir, address)).status_code == 503  # fail closed

        with own_redis(port):
            wait_until_shared(a)
            wait_until_shared(b)
            fresh = new_phone()
            answers = [texts((a, b)[n % 2], sms(f"otra vez {n}", fresh)) for n in range(21)]
            assert answers[20] == [gateway_text("rate_limited")]  # counted across both again
            call = staff_message(keyring_dir, address)
            with serve(make_gateway(postgres_url, keyring_dir, url, prefix)) as gateway_c:
                assert post(gateway_c, call).status_code == 200
            with serve(make_gateway(postgres_url, keyring_dir, url, prefix)) as gateway_d:
                assert post(gateway_d, call).status_code == 403
    lines = outage_lines(caplog)
    assert len([line for line in lines if "answers again" in line]) == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert phone not in logged and a.pseudonym("sms", phone) not in logged and "hola" not in logged


def test_a_hung_redis_costs_an_emergency_at_most_its_timeout(postgres_url: str, keyring_dir: Path, prefix: str) -> None:
    """Redis accepts connections but never answers (SIGSTOP): the emergency numbers still
    come first, within the Redis timeout (0.5 s) plus the rest of the pipeline."""
    port = free_port()
    phone = new_phone()
    with (
        own_redis(port) as server,
        two_gateways(postgres_url, keyring_dir, f"redis://127.0.0.1:{port}/0", prefix) as (
            a,
            _,
        ),
    ):
        assert texts(a, sms("hola", phone))[0] == gateway_text("assistant_unavailable")  # connected
        server.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        answer = texts(a, sms(ALARM, phone))
        elapsed = time.monotonic() - started
        server.send_signal(signal.SIGCONT)
    assert answer[0] == emergency_page()
    assert elapsed < 0.5 + 1.0


def test_without_redis_each_gateway_keeps_its_own_state(postgres_url: str, keyring_dir: Path) -> None:
    """The default (`make run`, one gateway): no Redis, the state in this process's memory."""
    phone = new_phone()
    with two_gateways(postgres_url, keyring_dir, "", "unused:") as (a, b):
        assert not a.shared.distributed
        answers = [texts(a, sms(f"hola {n}", phone)) for n in range(21)]
        assert answers[20] == [gateway_text("rate_limited")]
        assert texts(b, sms("hola", phone))[0] == gateway_text("assistant_unavailable")


def test_the_redis_window_moves_as_the_memory_one(prefix: str) -> None:
    """The same rule in both backends: at most N hits in the last 60 s, per name."""
    from channels.shared import MemoryState, RedisState

    shared = RedisState(REDIS_URL, b"k" * 32, prefix)
    try:
        for state in (MemoryState(), shared):
            assert state.hit("flood:s", 2, 60.0, now=1000.0) and state.hit("flood:s", 2, 60.0, now=1001.0)
            assert not state.hit("flood:s", 2, 60.0, now=1002.0)
            assert state.hit("flood:s", 2, 60.0, now=1061.5)
            assert state.hit("flood:other", 2, 60.0, now=1002.0)
            assert state.first_mark("notice:x", 60.0) and not state.first_mark("notice:x", 60.0)
            state.push("outbox:p", [b"uno", b"dos", b"tres"], 2, 60.0)
            assert state.take("outbox:p") == [b"dos", b"tres"] and state.take("outbox:p") == []
            assert state.first_value("simulator:token", b"a") == state.first_value("simulator:token", b"b") == b"a"
    finally:
        shared.close()


def test_the_redis_settings_are_read_once_and_never_shown() -> None:
    from channels.config import load_gateway_settings

    settings = load_gateway_settings(
        {"HOTLINE_REDIS_URL": "redis://:s3cret@127.0.0.1:6379/2", "HOTLINE_REDIS_PREFIX": "staging:"}
    )
    assert settings.redis_url == "redis://:s3cret@127.0.0.1:6379/2" and settings.redis_prefix == "staging:"
    assert settings.redis_timeout_seconds == 0.5 and "s3cret" not in repr(settings)
    assert load_gateway_settings({}).redis_url is None  # `make run`: this process's memory
