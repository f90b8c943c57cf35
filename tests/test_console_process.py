"""Trust zones of the gateway and the console, over real HTTP against the real processes:
the internet-facing gateway runs with a keyring that has no staff private key and still takes
messages and files a report whose contact is sealed; only the console's own process opens
reports; the gateway no longer serves /console; and the gateway's internal relay refuses every
call that is not signed with the relay key, fresh and new (403, nothing done, no body logged)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from channels.base import ConfigError, Reply
from channels.relay import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from console.relay import GatewayRelay, RasaUnavailable, RelayUnavailable
from reports import crypto
from reports.config import load_settings
from reports.db import transaction
from reports.keys import PRIVATE_FILE, PUBLIC_FILE, load_private_key
from reports.models import Report
from scripts.stack import GATEWAY_KEY_FILES, Stack, free_port, spawn
from tests.conftest import log_text
from tests.fake_twilio import FakeTwilio
from tests.test_e2e_gateway import new_phone, pseudonym, sms_form, twilio_post, twiml_messages, wait_for
from tests.test_e2e_handoff import Staff, engine, sent_to, sign_in, tracker  # noqa: F401  (fixtures)

pytestmark = pytest.mark.rasa

REPORT_STEPS = [
    "quiero denunciar",
    "en un taller de costura encierran a las trabajadoras de noche",
    "listo",
    "guatemala",
    "cerca de escuintla",
    "esta semana",
    "como 6",
    "no",
    "2",
    "no",
    "si",  # may staff contact you: yes
    "si",
]


def environment_of(pid: int) -> dict[str, str]:
    """A running process's environment, as the kernel shows it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {name.decode(): value.decode(errors="replace") for name, value in pairs}


def relay_key(stack: Stack) -> bytes:
    return base64.b64decode((stack.keys_dir / "relay.key").read_text().strip())


def signed(
    stack: Stack,
    name: str,
    payload: Mapping[str, object],
    key: bytes | None = None,
    age: float = 0,
    sign_as: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a relay call as the console signs it; `key`, `age` and `sign_as`
    (another path) forge it."""
    body = json.dumps(payload).encode()
    timestamp, nonce = str(int(time.time() - age)), secrets.token_urlsafe(24)
    path = sign_as or f"/internal/relay/{name}"
    headers = {
        "content-type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(key or relay_key(stack), "POST", path, timestamp, nonce, body),
    }
    return headers, body


def relay_post(client: httpx.Client, stack: Stack, name: str, headers: dict[str, str], body: bytes) -> int:
    return client.post(f"{stack.gateway_url}/internal/relay/{name}", content=body, headers=headers).status_code


def signed_call(
    client: httpx.Client,
    stack: Stack,
    name: str,
    payload: Mapping[str, object],
    key: bytes | None = None,
    age: float = 0,
    sign_as: str | None = None,
) -> int:
    """One relay call; the status code of the gateway's answer."""
    return relay_post(client, stack, name, *signed(stack, name, payload, key, age, sign_as))


def test_the_gateway_holds_no_private_key_yet_files_reports_the_console_opens(
    client: httpx.Client,
    stack: Stack,
    engine: Engine,  # noqa: F811
    fake_twilio: FakeTwilio,
    sign_in: Callable[..., Staff],  # noqa: F811
) -> None:
    gateway_env = environment_of(stack.processes["gateway"].pid)
    assert gateway_env["HOTLINE_KEYS_DIR"] == str(stack.gateway_keys_dir)
    assert "HOTLINE_REPORTS_PRIVATE_KEY" not in gateway_env
    held = sorted(os.listdir(stack.gateway_keys_dir))
    assert PUBLIC_FILE in held and not any(name.startswith(PRIVATE_FILE) for name in held)
    assert set(held) <= set(GATEWAY_KEY_FILES) and "console.key" not in held
    console_env = environment_of(stack.processes["console"].pid)
    assert console_env["HOTLINE_KEYS_DIR"] == str(stack.keys_dir) and (stack.keys_dir / PRIVATE_FILE).exists()

    phone = new_phone()
    for text in REPORT_STEPS:
        twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, text)))
    with transaction(engine) as session:
        report = session.scalars(select(Report).order_by(Report.created_at.desc())).first()
        assert report is not None and report.contact_consent and report.contact_sealed is not None
        report_id, sealed = report.id, report.contact_sealed
    assert phone.encode() not in sealed and phone.lstrip("+").encode() not in sealed
    private = load_private_key(load_settings({"HOTLINE_KEYS_DIR": str(stack.keys_dir)}))
    assert crypto.open_contact(private, sealed) == ("sms", phone)  # sealed to the staff key

    staff = sign_in("elena")
    page = staff.http.get(f"/casos/{report_id}")
    assert page.status_code == 200 and "encierran a las trabajadoras de noche" in page.text  # opened here
    assert f"sms: {phone}" in page.text  # the consenting tipster's contact, opened with the private key
    before = len(sent_to(fake_twilio, phone))
    sent = staff.post(f"/casos/{report_id}/contactar", contact_text="Gracias, le escribimos desde la línea.")
    assert sent.status_code == 200 and "Mensaje enviado" in sent.text, sent.text
    wait_for(lambda: len(sent_to(fake_twilio, phone)) == before + 1)  # through the gateway's relay


def test_the_gateway_no_longer_serves_the_console(client: httpx.Client, stack: Stack) -> None:
    for path in ("/console", "/console/", "/console/login", "/console/health", "/console/casos"):
        assert client.get(f"{stack.gateway_url}{path}").status_code == 404, path
    assert client.post(f"{stack.gateway_url}/console/login", data={"username": "x"}).status_code == 404
    console_root = stack.console_url.removesuffix("/console")
    assert client.get(f"{stack.console_url}/login").status_code == 200
    assert client.get(f"{stack.console_url}/health").json() == {"status": "ok"}
    assert client.get(f"{console_root}/").headers["location"] == "/console/"
    assert client.get(f"{console_root}/webhooks/twilio/sms").status_code == 404  # and the console takes no webhooks


def test_relay_calls_not_signed_fresh_and_new_are_refused_and_do_nothing(
    client: httpx.Client, stack: Stack, fake_twilio: FakeTwilio
) -> None:
    phone = new_phone()
    conversation = pseudonym(stack, "sms", phone)
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "hola")))
    secret_text = "texto del personal que nunca va a un log"
    send = {"channel": "sms", "address": phone, "replies": [{"text": secret_text, "options": []}]}
    pause = {"conversation": conversation}
    other_key = secrets.token_bytes(32)

    for name, payload in (("send", send), ("pause", pause), ("history", {"conversation": conversation})):
        assert client.post(f"{stack.gateway_url}/internal/relay/{name}", json=payload).status_code == 403  # unsigned
        assert signed_call(client, stack, name, payload, key=other_key) == 403
        assert signed_call(client, stack, name, payload, age=61) == 403  # stale
        assert signed_call(client, stack, name, payload, age=-61) == 403  # from the future
        assert signed_call(client, stack, name, payload, sign_as="/internal/relay/resume") == 403  # another route's
        headers, body = signed(stack, name, payload)
        assert relay_post(client, stack, name, headers, body + b" ") == 403  # the body changed after signing
        assert relay_post(client, stack, name, {**headers, NONCE_HEADER: "x" * 32}, body) == 403  # another nonce
        assert relay_post(client, stack, name, {**headers, TIMESTAMP_HEADER: "9" * 5000}, body) == 403
    assert tracker(client, stack, conversation)["paused"] is False
    assert sent_to(fake_twilio, phone) == []

    headers, body = signed(stack, "pause", pause)
    assert relay_post(client, stack, "pause", headers, body) == 200  # the console's own call works
    assert tracker(client, stack, conversation)["paused"] is True
    assert signed_call(client, stack, "resume", pause) == 200
    assert tracker(client, stack, conversation)["paused"] is False
    assert relay_post(client, stack, "pause", headers, body) == 403  # the same call again: a replay
    assert tracker(client, stack, conversation)["paused"] is False

    headers, body = signed(stack, "history", pause)
    history = client.post(f"{stack.gateway_url}/internal/relay/history", content=body, headers=headers)
    assert history.status_code == 200 and [True, "hola"] in history.json()["messages"]
    assert signed_call(client, stack, "send", send) == 200
    wait_for(lambda: len(sent_to(fake_twilio, phone)) == 1)
    assert secret_text not in log_text(stack) and phone not in log_text(stack)


def test_the_console_relay_client_maps_the_gateways_answers(stack: Stack) -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as http:
            good = GatewayRelay(stack.gateway_url, relay_key(stack), http)
            with pytest.raises(ConfigError):  # the gateway's SendError, with its code, on the console's side
                await good.send_to("carrier-pigeon", "+50255550000", [Reply("hola")])
            forged = GatewayRelay(stack.gateway_url, secrets.token_bytes(32), http)
            with pytest.raises(RelayUnavailable):
                await forged.pause(secrets.token_hex(16))
            with pytest.raises(RelayUnavailable):
                await forged.send_to("sms", "+50255550000", [Reply("hola")])
            assert await forged.history(secrets.token_hex(16)) == []
            with pytest.raises(RelayUnavailable):  # not a pseudonym: the gateway answers 400
                await good.pause("../../status")
            nowhere = GatewayRelay(f"http://127.0.0.1:{free_port()}", relay_key(stack), http)
            with pytest.raises(RelayUnavailable):
                await nowhere.resume(secrets.token_hex(16))

    asyncio.run(run())


@pytest.fixture
def gateway_without_rasa(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A second gateway process with the stack's keyring and database, whose Rasa is down."""
    port = free_port()
    env = {
        **os.environ,
        "HOTLINE_KEYS_DIR": str(stack.gateway_keys_dir),
        "HOTLINE_DATABASE_URL": stack.database_url,
        "HOTLINE_RASA_URLS": f"http://127.0.0.1:{free_port()}",
        "HOTLINE_GATEWAY_PORT": str(port),
        "HOTLINE_RASA_TIMEOUT_SECONDS": "2",
    }
    process = spawn("gateway-no-rasa", [sys.executable, "-m", "channels.app"], env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as client:
        while True:
            assert process.poll() is None, (tmp_path / "gateway-no-rasa.log").read_text()
            try:
                if client.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the second gateway did not start"
            time.sleep(0.2)  # polling a starting server, with a deadline
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_rasa_down_behind_the_gateway_is_told_apart_from_the_gateway_down(
    stack: Stack, gateway_without_rasa: str
) -> None:
    async def run() -> None:
        async with httpx.AsyncClient() as http:
            relay = GatewayRelay(gateway_without_rasa, relay_key(stack), http)
            conversation = secrets.token_hex(16)
            with pytest.raises(RasaUnavailable):
                await relay.pause(conversation)
            with pytest.raises(RasaUnavailable):
                await relay.resume(conversation)
            assert await relay.history(conversation) == []

    asyncio.run(run())
