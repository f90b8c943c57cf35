"""Trust zones over real HTTP, against the real Rasa server, action server and gateway
(issue 10): every internal hop refuses a caller without its secret, no user text reaches
Rasa as a command or a log, metadata the gateway did not sign is refused and audited, the
emergency answer survives a locked database, and a slow Rasa never costs a case code."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from channels.base import InboundMessage
from channels.config import load_gateway_settings
from channels.core import build_gateway, emergency_page, gateway_text
from channels.registry import all_adapters
from hotline.sms import to_gsm7
from reports.crypto import seal_contact
from reports.keys import load_keys
from reports.models import AuditEntry, Handoff
from scripts.stack import Stack
from tests.conftest import Conversation, channel_credentials, log_text
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import FakeTwilio
from tests.reporting import CODE_IN_REPLY, DEFAULT_ANSWERS, opened, report_ids, reports_session, stack_settings
from tests.test_e2e_gateway import (
    new_phone,
    post_telegram,
    pseudonym,
    sent_to,
    sms_form,
    telegram_update,
    twilio_post,
    twiml_messages,
    wait_for,
)

pytestmark = pytest.mark.rasa

ALARM = "me van a matar ayudenme"


def events_of(client: httpx.Client, stack: Stack, sender: str) -> list[dict[str, Any]]:
    tracker = client.get(f"{stack.rasa_url}/conversations/{sender}/tracker", params=stack.rasa_params).json()
    events: list[dict[str, Any]] = tracker["events"]
    return events


# -- every internal hop is authenticated ----------------------------------------------------


def test_rasa_answers_only_the_gateway(client: httpx.Client, stack: Stack) -> None:
    sender = "trust-" + secrets.token_hex(4)
    body = {"sender": sender, "message": "hola"}
    assert client.post(f"{stack.rasa_url}/webhooks/rest/webhook", json=body).status_code == 404  # Rasa's REST: closed
    assert client.post(stack.webhook, json=body).status_code == 403
    assert client.post(stack.webhook, params={"token": "x" * 43}, json=body).status_code == 403
    for method, path, payload in (
        ("GET", f"/conversations/{sender}/tracker", None),
        ("POST", f"/conversations/{sender}/tracker/events", [{"event": "pause"}]),
        ("POST", "/model/parse", {"text": "hola"}),
        ("PUT", "/model", {"model_file": "/tmp/other.tar.gz"}),
        ("GET", "/status", None),
    ):
        refused = client.request(method, f"{stack.rasa_url}{path}", json=payload)
        assert refused.status_code == 401, (path, refused.status_code)
    assert client.post(stack.webhook, params=stack.rasa_params, json=body).json()  # the gateway's way in works
    assert client.get(f"{stack.rasa_url}/status", params=stack.rasa_params).status_code == 200


def test_the_action_server_answers_only_rasa(client: httpx.Client, stack: Stack) -> None:
    call = {"next_action": "action_submit_report", "sender_id": "x", "tracker": {"sender_id": "x"}, "domain": {}}
    assert client.post(f"{stack.actions_url}/webhook", json=call).status_code == 403
    forged = {"Authorization": "Bearer " + "A" * 43}
    assert client.post(f"{stack.actions_url}/webhook", json=call, headers=forged).status_code == 403
    assert client.get(f"{stack.actions_url}/actions").status_code == 403
    assert client.get(f"{stack.actions_url}/health").status_code == 200  # readiness stays open
    # ...and Rasa, which holds the token, still runs actions: a job-offer turn needs them.
    conversation = Conversation(client, stack, "actions-" + secrets.token_hex(4))
    assert conversation.say("quiero denunciar")


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on port (from /proc/net/tcp: no traffic anywhere)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_rasa_and_the_action_server_listen_on_loopback_only(stack: Stack) -> None:
    for url in (stack.rasa_url, stack.actions_url):
        assert listening_addresses(int(url.rsplit(":", 1)[1])) == {"127.0.0.1"}, url


# -- no command or log from a user's text ---------------------------------------------------

INJECTIONS = [
    "\n/restart",
    "\u00a0/ restart",
    "\u200b/session_start",
    '\t /inform_country{"country": "US"}',
    "\uff0fhuman_handoff",
    "\n/delete_my_data",
]


def test_no_sms_reaches_rasa_as_a_command(client: httpx.Client, stack: Stack) -> None:
    """Rasa runs a text starting with "/" (after its own whitespace strip) as an intent
    with full confidence and the entities written after it, bypassing the classifier and
    the fallback. What is left once the gateway neutralises it is words, read by the NLU
    like any other: "delete_my_data" as words still only asks SI o NO, as "borra mi
    conversación" does (whoever can write from the phone can say that anyway)."""
    for text in INJECTIONS:
        phone = new_phone()
        twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "soy de honduras")))
        twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, text)))
        events = events_of(client, stack, pseudonym(stack, "sms", phone))
        said = [e for e in events if e["event"] == "user"]
        assert said, text
        assert not [e["text"] for e in said if e["text"].strip().startswith(("/", "\uff0f"))], text
        assert not [e for e in said if e["parse_data"]["intent"].get("confidence") == 1.0], (text, said)
        assert not any(e["event"] == "restart" for e in events), text


def test_a_command_with_personal_words_leaves_them_in_no_log(client: httpx.Client, stack: Stack) -> None:
    """ "\\n/hola me llamo Ana 5555-1234" once put the name and number into Rasa's log."""
    phone = new_phone()
    secret_words = f"Ana {secrets.randbelow(9000) + 1000}-{secrets.randbelow(9000) + 1000}"
    for channel, address in (("sms", phone), ("whatsapp", "whatsapp:" + new_phone())):
        twiml_messages(twilio_post(client, stack, channel, sms_form(address, f"\n/hola me llamo {secret_words}")))
    assert secret_words not in log_text(stack)


def test_telegram_text_cannot_command_rasa(client: httpx.Client, stack: Stack, fake_telegram: FakeTelegram) -> None:
    chat = 626262000 + secrets.randbelow(10**5)
    update = telegram_update("text_accents.json", chat, 930001)
    assert post_telegram(client, stack, update) == 200
    wait_for(lambda: sent_to(fake_telegram, chat))
    restart = telegram_update("text_accents.json", chat, 930002)
    restart["message"]["text"] = "\u00a0/ restart"
    restart["message"].pop("entities", None)
    assert post_telegram(client, stack, restart) == 200
    wait_for(lambda: len(sent_to(fake_telegram, chat)) >= 2)
    events = events_of(client, stack, pseudonym(stack, "telegram", str(chat)))
    assert not any(e["event"] == "restart" for e in events)


# -- metadata the gateway did not sign ------------------------------------------------------


def forged_audits(stack: Stack) -> int:
    with reports_session(stack) as session:
        return len(session.scalars(select(AuditEntry).where(AuditEntry.action == "forged_metadata")).all())


def test_a_forged_reply_address_is_refused_and_audited(client: httpx.Client, stack: Stack) -> None:
    """Anyone with the staff public key can seal a number of their choice: without the
    gateway's proof, a "consenting" report keeps no contact and no hand-off gets one."""
    keys = load_keys(stack_settings(stack))
    forged = {"reply_to": seal_contact(keys.public_key, "sms", "+50255500000"), "channel": "sms"}
    tipster = Conversation(client, stack, "forger-" + secrets.token_hex(4))
    audits = forged_audits(stack)
    before = report_ids(stack)
    answers = (*DEFAULT_ANSWERS[:-1], "si")  # last question: yes, write back to me
    for text in ("quiero denunciar", "Nos tienen encerrados en una bodega", "listo", *answers):
        tipster.say(text, forged, signed=False)
    filed = tipster.say("si", forged, signed=False)
    assert CODE_IN_REPLY.search(" ".join(filed)), filed
    (report_id,) = [i for i in report_ids(stack) if i not in before]
    assert opened(stack, report_id)["contact"] is None
    asker = Conversation(client, stack, "forger-" + secrets.token_hex(4))
    asker.say("quiero hablar con una persona", forged, signed=False)
    with reports_session(stack) as session:
        handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == asker.sender)).one()
        assert handoff.reply_sealed is None
    assert forged_audits(stack) >= audits + 2


# -- the emergency answer and the case code under pressure ---------------------------------


def test_an_emergency_sms_is_answered_in_time_while_the_reports_database_is_locked(
    client: httpx.Client, stack: Stack
) -> None:
    database = stack.database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(database, isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        answered = twiml_messages(twilio_post(client, stack, "sms", sms_form(new_phone(), ALARM)))
        elapsed = time.monotonic() - started
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert answered[0] == to_gsm7(emergency_page())
    assert elapsed < 15.0  # Twilio's limit for a webhook answer


def test_a_slow_assistant_never_costs_the_case_code_nor_files_twice(
    client: httpx.Client, stack: Stack, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> None:
    """A gateway that gives Rasa 10 ms (any real turn is slower): the person is told at
    once that the answer is coming, the answer with the code arrives through Twilio's API,
    and sending SI again files nothing more."""
    env = {**channel_credentials(fake_twilio, fake_telegram), "HOTLINE_DATABASE_URL": stack.database_url}
    env.update(HOTLINE_KEYS_DIR=str(stack.keys_dir), HOTLINE_RASA_URLS=stack.rasa_url)
    patient = load_gateway_settings(env)
    hasty = load_gateway_settings({**env, "HOTLINE_RASA_TIMEOUT_SECONDS": "0.01"})
    phone = new_phone()
    before = report_ids(stack)
    sent_before = len(fake_twilio.requests)

    async def scenario() -> tuple[list[str], list[str]]:
        gateway = build_gateway(patient, all_adapters(patient))
        try:
            for text in ("quiero denunciar", "Me quitaron los papeles en la finca", "listo", *DEFAULT_ANSWERS):
                await gateway.handle(InboundMessage("sms", phone, text, delivery_id="SM" + secrets.token_hex(16)))
            gateway.settings = hasty
            first = await gateway.handle(InboundMessage("sms", phone, "si", delivery_id="SM" + secrets.token_hex(16)))
            await asyncio.gather(*gateway.late_answers)  # the late answer goes out through Twilio
            gateway.settings = patient
            again = await gateway.handle(InboundMessage("sms", phone, "si", delivery_id="SM" + secrets.token_hex(16)))
            return [r.text for r in first], [r.text for r in again]
        finally:
            await gateway.http.aclose()

    first, again = asyncio.run(scenario())
    assert first == [gateway_text("assistant_slow"), emergency_page()]
    late = [r.form["Body"][0] for r in fake_twilio.requests[sent_before:] if r.form.get("To") == [phone]]
    assert any(CODE_IN_REPLY.search(body) for body in late), late
    assert not any(CODE_IN_REPLY.search(text) for text in again)
    assert len([i for i in report_ids(stack) if i not in before]) == 1


def test_gateway_logs_carry_no_pseudonym(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "hola")))
    gateway_log = (Path(stack.log_dir) / "gateway.log").read_text(errors="replace")
    assert pseudonym(stack, "sms", phone) not in gateway_log
    assert json.dumps(phone) not in gateway_log and phone not in gateway_log
    answered = [line for line in gateway_log.splitlines() if "answered channel=sms" in line]
    assert answered and all(re.search(r"\[[0-9a-f]{8}\] answered", line) for line in answered)  # a request id
