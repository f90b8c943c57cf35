"""WhatsApp's 24-hour window (channels/core.py, channels/twilio.py): a staff message within 24
hours of the person's last message goes as written; after that it is held (sealed) and the
approved template of the settings tells the person a message waits, and their next message
releases it; Twilio's own 63016 takes the same path; a template Twilio does not know, that
WhatsApp did not approve or that shows a sensitive word is refused. SMS and Telegram are
unchanged. Real databases (SQLite and PostgreSQL), Twilio's and Telegram's APIs as real
local fakes, and a test clock for the window (no sleeping)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from twilio.base.exceptions import TwilioRestException

from channels.app import check_templates
from channels.base import ContactStopped, DiscreetWords, InboundMessage, OutsideWindow, Reply, TemplateRefused
from channels.config import GatewaySettings
from channels.core import PATH_DIRECT, PATH_HELD, PATH_SESSION, PATH_TEMPLATE, Gateway, gateway_content
from channels.telegram import TelegramChannel
from channels.twilio import WHATSAPP, TwilioChannel, _send_error, twilio_channels
from hotline.discreet import sensitive_words_in
from hotline.sms import to_gsm7
from reports.db import transaction
from reports.keys import load_gateway_key, load_keys
from reports.models import HeldMessage, LastInbound
from tests.db_fixtures import settings_for
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, TEMPLATE_SID, FakeTwilio, running_fake_twilio

PERSON = "+50255501234"
WA_PERSON = "whatsapp:" + PERSON
HOTLINE = "+50222220000"
TELEGRAM_TOKEN = "123456789:TEST-token-for-the-templates-test"
STAFF_TEXT = "Hola, soy Ana del equipo. ¿Puedes escribirnos cuando estés a salvo?"
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The gateway's clock, moved by the test."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as running:
        running.add_template(TEMPLATE_SID, gateway_content()["whatsapp_template"])
        yield running
        assert running.unexpected == []  # strict: no call Twilio's API would not answer


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(TELEGRAM_TOKEN) as server:
        yield server


def settings(fake: FakeTwilio, database_url: str, keys_dir: Path, **changes: object) -> GatewaySettings:
    base = GatewaySettings(
        public_url="https://hotline.example.org",
        rasa_urls=("http://127.0.0.1:9",),  # nothing listens: Rasa is down, the gateway still notes the time
        database_url=database_url,
        keys_dir=keys_dir,
        rasa_timeout_seconds=2.0,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=HOTLINE,
        twilio_whatsapp_from="whatsapp:" + HOTLINE,
        twilio_api_url=fake.url,
        twilio_content_api_url=fake.url,
        twilio_whatsapp_template_sid=TEMPLATE_SID,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def make_gateway(engine: Engine, chosen: GatewaySettings, clock: Clock, **adapters: object) -> Gateway:
    keyring = settings_for(chosen.database_url, chosen.keys_dir)
    return Gateway(
        settings=chosen,
        engine=engine,
        keys=load_keys(keyring),
        gateway_key=load_gateway_key(keyring),
        http=httpx.AsyncClient(),
        adapters={**twilio_channels(chosen), **adapters},  # type: ignore[dict-item]
        clock=clock,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(engine: Engine, database_url: str, keys_dir: Path, fake: FakeTwilio, clock: Clock) -> Iterator[Gateway]:
    made = make_gateway(engine, settings(fake, database_url, keys_dir), clock)
    yield made
    asyncio.run(made.http.aclose())


def writes(gateway: Gateway, text: str, sid: str, address: str = WA_PERSON) -> None:
    """The person writes on WhatsApp; the released held messages (a task) are awaited too."""

    async def run() -> None:
        await gateway.handle(InboundMessage(WHATSAPP, address, text, delivery_id=sid))
        await asyncio.gather(*gateway.late_answers)

    asyncio.run(run())


def staff_sends(gateway: Gateway, text: str, channel: str = WHATSAPP, address: str = WA_PERSON) -> str:
    return asyncio.run(gateway.send_to(channel, address, [Reply(text)], from_staff=True))


def bodies(fake: FakeTwilio, to: str = WA_PERSON) -> list[str]:
    return [
        r.form["Body"][0] for r in fake.requests if r.method == "POST" and "Body" in r.form and r.form["To"] == [to]
    ]


def content_calls(fake: FakeTwilio) -> list[str]:
    return [r.path for r in fake.requests if r.method == "GET" and r.path.startswith("/v1/Content/")]


def held_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).select_from(HeldMessage)) or 0)


def test_within_24_hours_a_staff_message_goes_as_written(gateway: Gateway, fake: FakeTwilio, clock: Clock) -> None:
    writes(gateway, "hola", "SMa1")
    clock.now = START + timedelta(hours=23, minutes=59)
    assert staff_sends(gateway, STAFF_TEXT) == PATH_SESSION
    assert bodies(fake) == [STAFF_TEXT]
    assert fake.templates_sent(WA_PERSON) == [] and content_calls(fake) == []


def test_after_24_hours_the_template_goes_and_the_text_waits_for_the_answer(
    gateway: Gateway, engine: Engine, fake: FakeTwilio, clock: Clock
) -> None:
    writes(gateway, "hola", "SMb1")
    clock.now = START + timedelta(hours=24)
    assert staff_sends(gateway, STAFF_TEXT) == PATH_TEMPLATE
    assert fake.templates_sent(WA_PERSON) == [TEMPLATE_SID]
    assert bodies(fake) == []  # the staff text is not on the phone yet
    assert content_calls(fake) == [f"/v1/Content/{TEMPLATE_SID}", f"/v1/Content/{TEMPLATE_SID}/ApprovalRequests"]
    template = next(r for r in fake.requests if "ContentSid" in r.form)
    assert "Body" not in template.form and "ContentVariables" not in template.form  # nothing of the person
    assert template.basic_auth == (ACCOUNT_SID, AUTH_TOKEN)

    clock.now += timedelta(hours=3)
    assert staff_sends(gateway, "Seguimos aquí.") == PATH_HELD  # one template until the person answers
    assert fake.templates_sent(WA_PERSON) == [TEMPLATE_SID]
    with transaction(engine) as session:
        sealed = list(session.scalars(select(HeldMessage.sealed)))
    assert len(sealed) == 2 and all(b"equipo" not in s and PERSON.encode() not in s for s in sealed)

    clock.now += timedelta(days=2)
    writes(gateway, "ok, dime", "SMb2")  # the window opens again: the held messages go, in order
    assert bodies(fake) == [STAFF_TEXT, "Seguimos aquí."]
    assert held_count(engine) == 0
    assert staff_sends(gateway, "Gracias por responder.") == PATH_SESSION
    assert fake.templates_sent(WA_PERSON) == [TEMPLATE_SID]


def test_twilio_saying_63016_takes_the_template_path(gateway: Gateway, engine: Engine, fake: FakeTwilio) -> None:
    writes(gateway, "hola", "SMc1")
    fake.window_closed.add(WA_PERSON)  # Twilio counts the window otherwise (a clock apart, a lost message)
    assert staff_sends(gateway, STAFF_TEXT) == PATH_TEMPLATE
    refused = [r for r in fake.requests if r.form.get("Body") == [STAFF_TEXT]]
    assert len(refused) == 1  # tried once as written, refused with 63016
    assert fake.templates_sent(WA_PERSON) == [TEMPLATE_SID] and held_count(engine) == 1


def test_a_person_never_heard_from_gets_the_template(gateway: Gateway, fake: FakeTwilio) -> None:
    assert staff_sends(gateway, STAFF_TEXT) == PATH_TEMPLATE
    assert fake.templates_sent(WA_PERSON) == [TEMPLATE_SID] and bodies(fake) == []


@pytest.mark.parametrize(
    ("template", "code", "calls"),
    [
        ("HX" + "0f" * 16, "template_unknown", 1),  # Twilio's Content API answers 404
        ("HX-not-a-content-sid", "template_unknown", 0),  # not even asked
        ("pending", "template_unapproved", 2),
        ("rejected", "template_unapproved", 2),
        ("sensitive", "template_not_discreet", 1),
        (None, "template_missing", 0),
    ],
)
def test_a_template_that_cannot_be_used_is_refused_and_nothing_is_kept(
    engine: Engine,
    database_url: str,
    keys_dir: Path,
    fake: FakeTwilio,
    clock: Clock,
    template: str | None,
    code: str,
    calls: int,
) -> None:
    sid = template
    if template in ("pending", "rejected"):
        sid = "HX" + "1e" * 16
        fake.add_template(sid, gateway_content()["whatsapp_template"], status=template)
    elif template == "sensitive":
        sid = "HX" + "2d" * 16
        fake.add_template(sid, "Tienes un mensaje de la línea contra la trata sobre tu denuncia.")
    gateway = make_gateway(engine, settings(fake, database_url, keys_dir, twilio_whatsapp_template_sid=sid), clock)
    try:
        with pytest.raises(TemplateRefused) as refused:
            staff_sends(gateway, STAFF_TEXT)
    finally:
        asyncio.run(gateway.http.aclose())
    assert refused.value.code == code
    assert len(content_calls(fake)) == calls
    assert [r for r in fake.requests if r.method == "POST"] == []  # nothing sent
    assert held_count(engine) == 0  # the staff text stays with the console (its draft), not here


def test_a_template_send_refused_by_twilio_keeps_nothing(gateway: Gateway, engine: Engine, fake: FakeTwilio) -> None:
    fake.answer = "blocked"  # the person blocked the line
    with pytest.raises(ContactStopped):
        staff_sends(gateway, STAFF_TEXT)
    assert held_count(engine) == 0 and fake.templates_sent(WA_PERSON) == [TEMPLATE_SID]
    with pytest.raises(ContactStopped):  # and the person counts as opted out
        staff_sends(gateway, STAFF_TEXT)


def test_discreet_mode_refuses_before_any_template(gateway: Gateway, engine: Engine, fake: FakeTwilio) -> None:
    pseudonym = gateway.pseudonym(WHATSAPP, WA_PERSON)
    gateway.store.set_discreet(pseudonym, True)
    with pytest.raises(DiscreetWords):
        staff_sends(gateway, "Sobre tu denuncia de trata")
    assert fake.requests == [] and held_count(engine) == 0


def test_only_the_time_is_stored_and_erasure_forgets_it(gateway: Gateway, engine: Engine, clock: Clock) -> None:
    writes(gateway, "hola", "SMd1")
    clock.now += timedelta(days=2)
    assert staff_sends(gateway, STAFF_TEXT) == PATH_TEMPLATE
    pseudonym = gateway.pseudonym(WHATSAPP, WA_PERSON)
    with transaction(engine) as session:
        rows = [(r.pseudonym, r.at) for r in session.scalars(select(LastInbound))]
    assert rows == [(pseudonym, START)] and "55501234" not in pseudonym
    gateway.store.forget_window(pseudonym)
    assert gateway.store.last_inbound(pseudonym) is None and held_count(engine) == 0


def test_held_messages_a_failed_send_puts_back(
    gateway: Gateway, engine: Engine, fake: FakeTwilio, clock: Clock
) -> None:
    clock.now += timedelta(days=2)
    assert staff_sends(gateway, STAFF_TEXT) == PATH_TEMPLATE
    fake.answer = "server_error"
    writes(gateway, "hola", "SMe1")
    assert held_count(engine) == 1  # Twilio failed: still held for the next message
    fake.answer = "ok"
    writes(gateway, "hola otra vez", "SMe2")
    assert bodies(fake)[-1] == STAFF_TEXT and held_count(engine) == 0


def test_sms_and_telegram_are_unchanged(
    engine: Engine, database_url: str, keys_dir: Path, fake: FakeTwilio, telegram: FakeTelegram, clock: Clock
) -> None:
    chosen = settings(fake, database_url, keys_dir, telegram_bot_token=TELEGRAM_TOKEN, telegram_api_url=telegram.url)
    gateway = make_gateway(engine, chosen, clock, telegram=TelegramChannel(chosen))
    try:
        clock.now += timedelta(days=30)  # nobody wrote, ever: no window on these channels
        assert staff_sends(gateway, STAFF_TEXT, "sms", PERSON) == PATH_DIRECT
        assert staff_sends(gateway, STAFF_TEXT, "telegram", "123456789") == PATH_DIRECT
        asyncio.run(gateway.handle(InboundMessage("sms", PERSON, "hola", delivery_id="SMf1")))
    finally:
        asyncio.run(gateway.http.aclose())
    assert bodies(fake, PERSON) == [to_gsm7(STAFF_TEXT)]  # as before: folded to GSM-7, no template
    assert [c.params.get("text") for c in telegram.calls if c.method == "sendMessage"] == [STAFF_TEXT]
    assert content_calls(fake) == [] and fake.templates_sent(PERSON) == []
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(LastInbound)) == 0  # SMS notes no time


def test_twilio_maps_63016_and_an_invalid_content_sid(fake: FakeTwilio, database_url: str, keys_dir: Path) -> None:
    channel = TwilioChannel(WHATSAPP, settings(fake, database_url, keys_dir))
    fake.window_closed.add(WA_PERSON)
    with pytest.raises(OutsideWindow):
        asyncio.run(channel.send(WA_PERSON, [Reply("hola")]))
    invalid = _send_error(TwilioRestException(400, "/Messages.json", "The ContentSid is Invalid", code=21655), PERSON)
    assert isinstance(invalid, TemplateRefused) and invalid.code == "template_unknown"
    assert channel.session_window == timedelta(hours=24)
    assert TwilioChannel("sms", settings(fake, database_url, keys_dir)).session_window is None


def test_the_fake_is_strict(fake: FakeTwilio) -> None:
    response = httpx.get(f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert response.status_code == 404 and len(fake.unexpected) == 1
    anonymous = httpx.get(f"{fake.url}/v1/Content/{TEMPLATE_SID}")
    assert anonymous.status_code == 404 and len(fake.unexpected) == 2  # the Content API needs the account
    fake.unexpected.clear()


def test_the_suggested_template_is_discreet() -> None:
    wording = gateway_content()["whatsapp_template"]
    assert wording and sensitive_words_in(wording) == [] and "{" not in wording
    assert json.dumps(wording)  # a plain string, as the Content API's twilio/text body


def test_the_gateway_checks_the_template_at_start(
    engine: Engine,
    database_url: str,
    keys_dir: Path,
    fake: FakeTwilio,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="channels.app")
    for sid in (TEMPLATE_SID, "HX" + "0f" * 16):
        gateway = make_gateway(engine, settings(fake, database_url, keys_dir, twilio_whatsapp_template_sid=sid), clock)
        try:
            asyncio.run(check_templates(gateway))
        finally:
            asyncio.run(gateway.http.aclose())
    assert "template checked channel=whatsapp" in caplog.text
    assert "template unusable channel=whatsapp: template_unknown" in caplog.text
    assert "channel=sms" not in caplog.text  # SMS has no templates
    assert [r for r in fake.requests if r.method == "POST"] == []
