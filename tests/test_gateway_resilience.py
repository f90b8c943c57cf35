"""The gateway's promises under pressure, on real databases (SQLite and PostgreSQL), with
Rasa down (a closed port, nothing faked): an emergency is answered whatever is slow or
down, no user text reaches Rasa as a command, a flood of alarming words costs one SMS a
minute, a replayed delivery is never answered again, and the edge's proof on metadata."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from channels.base import InboundMessage, Reply
from channels.config import GatewaySettings
from channels.core import Gateway, discreet_reply, emergency_page, gateway_text, safe_text
from channels.telegram import command_text
from hotline.discreet import sensitive_words_in
from hotline.edge import ForgedMetadata, sign_metadata, verify_metadata
from hotline.text import neutralise_command
from reports.db import make_engine, transaction
from reports.keys import load_gateway_key, load_keys
from reports.models import Delivery, utcnow
from tests.db_fixtures import settings_for

CLOSED_PORT_URL = "http://127.0.0.1:9"
PHONE = "+50255598765"
ALARM = "me van a matar ayudenme"
TWILIO_WEBHOOK_LIMIT_SECONDS = 15.0  # Twilio drops a webhook answer that takes longer


def make_gateway(engine: Engine, database_url: str, keys_dir: Path, **settings: object) -> Gateway:
    reports_settings = settings_for(database_url, keys_dir)
    base = GatewaySettings(
        public_url="https://hotline.example.org",
        rasa_urls=(CLOSED_PORT_URL,),
        database_url=database_url,
        keys_dir=keys_dir,
        rasa_timeout_seconds=2.0,
        messages_per_minute=3,
    )
    return Gateway(
        settings=dataclasses.replace(base, **settings),  # type: ignore[arg-type]
        engine=engine,
        keys=load_keys(reports_settings),
        gateway_key=load_gateway_key(reports_settings),
        http=httpx.AsyncClient(),
        adapters={},
    )


@pytest.fixture
def gateway(engine: Engine, database_url: str, keys_dir: Path) -> Iterator[Gateway]:
    made = make_gateway(engine, database_url, keys_dir)
    yield made
    asyncio.run(made.http.aclose())


def sms(text: str, delivery_id: str, address: str = PHONE) -> InboundMessage:
    return InboundMessage("sms", address, text, delivery_id=delivery_id)


def texts(gateway: Gateway, message: InboundMessage) -> list[str]:
    return [reply.text for reply in asyncio.run(gateway.handle(message))]


# -- no command reaches Rasa ----------------------------------------------------------------

INJECTIONS = [
    "/restart",
    "\n/delete_my_data",
    "\n/hola me llamo Ana 5555-1234",
    "\u00a0/ restart",  # no-break space (Telegram's own stripping missed it)
    "\u200b/restart",  # zero-width space
    "\ufeff/restart",  # byte order mark
    "\u2003\u2029/restart",  # em space, paragraph separator
    "\t\r\n //restart",
    "\u200e/emergency{}",  # left-to-right mark
    "\uff0frestart",  # full-width solidus
    " / / /affirm",
]


@pytest.mark.parametrize("text", INJECTIONS, ids=range(len(INJECTIONS)))
def test_no_text_reaches_rasa_as_an_intent_command(text: str) -> None:
    for neutral in (safe_text(text), command_text(text)[0]):
        visible = "".join(ch for ch in neutral if ch.isprintable() and not ch.isspace())
        assert not neutral.strip().startswith("/"), repr(neutral)  # what Rasa's UserMessage sees
        assert not visible.startswith(("/", "\uff0f")), repr(neutral)


@pytest.mark.parametrize("text", ["hola /restart", "1/2 de la gente", "es 50/50", "¿y/o?", ""])
def test_a_slash_inside_the_text_is_left_alone(text: str) -> None:
    assert neutralise_command(text) == text


# -- the emergency answer depends on nothing slow --------------------------------------------


def unknown_mode(texts: list[str]) -> list[str]:
    """What goes out when the discreet mode cannot be read: the neutral twins (the same
    numbers: tests/test_discreet.py), never a word a watched phone must not show."""
    neutral = [discreet_reply(Reply(text)).text for text in texts]
    assert all(sensitive_words_in(text) == [] for text in neutral)
    return neutral


def test_an_emergency_is_answered_in_time_while_the_database_is_locked(tmp_path: Path, keys_dir: Path) -> None:
    """An exclusive lock held on the SQLite reports database (a long migration, a backup):
    the duplicate check cannot write, and the person still gets the emergency numbers well
    within Twilio's limit (before: nothing for the 30 s of SQLite's busy timeout)."""
    database_url = f"sqlite:///{tmp_path / 'locked.db'}"
    engine = make_engine(database_url)
    from reports.db import upgrade

    upgrade(database_url)
    gateway = make_gateway(engine, database_url, keys_dir, answer_budget_seconds=3.0)
    lock = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")

    async def answer(message: InboundMessage) -> tuple[list[str], float]:
        started = time.monotonic()  # inside the loop: as the running server answers the webhook
        replies = await gateway.handle(message)
        return [reply.text for reply in replies], time.monotonic() - started

    async def both() -> tuple[tuple[list[str], float], tuple[list[str], float]]:
        answers = await answer(sms(ALARM, "SM-locked-1")), await answer(sms("hola", "SM-locked-2"))
        lock.execute("ROLLBACK")  # the threads still waiting on the database may finish now
        return answers

    try:
        (replies, elapsed), (ordinary, _) = asyncio.run(both())
    finally:
        lock.close()
        asyncio.run(gateway.http.aclose())
        engine.dispose()
    # The discreet mode cannot be read either: the neutral texts, with every number.
    assert replies == unknown_mode([emergency_page(), gateway_text("assistant_slow")])
    assert elapsed < TWILIO_WEBHOOK_LIMIT_SECONDS
    assert ordinary == unknown_mode([gateway_text("assistant_slow"), emergency_page()])


def test_a_stopped_postgresql_still_gives_the_emergency_numbers(keys_dir: Path) -> None:
    """Nothing listens where the database should be: an answer, never an error page."""
    database_url = "postgresql+psycopg://hotline@127.0.0.1:9/hotline"
    engine = make_engine(database_url)
    gateway = make_gateway(engine, database_url, keys_dir)
    try:
        alarm = texts(gateway, sms(ALARM, "SM-pg-down-1"))
        ordinary = texts(gateway, sms("que es la trata", "SM-pg-down-2"))
    finally:
        asyncio.run(gateway.http.aclose())
        engine.dispose()
    assert alarm == unknown_mode([emergency_page(), gateway_text("assistant_failed")])
    assert ordinary == unknown_mode([gateway_text("assistant_failed"), emergency_page()])


def test_an_emergency_comes_first_when_rasa_is_down(gateway: Gateway) -> None:
    assert texts(gateway, sms(ALARM, "SM-first")) == [emergency_page(), gateway_text("assistant_unavailable")]


def test_an_opted_out_person_in_danger_still_gets_the_numbers(gateway: Gateway) -> None:
    assert texts(gateway, sms("BAJA", "SM-out-1")) == [gateway_text("opted_out")]
    assert texts(gateway, sms("hola", "SM-out-2")) == []
    assert texts(gateway, sms(ALARM, "SM-out-3")) == [emergency_page()]


# -- floods --------------------------------------------------------------------------------


def test_a_flood_of_alarming_words_costs_one_emergency_sms_a_minute(gateway: Gateway) -> None:
    """3 messages a minute pass (each answered, with the numbers first); the next 17 get
    the emergency page once, then nothing: each would cost an SMS."""
    answers = [texts(gateway, sms(f"{ALARM} {n}", f"SM-flood-{n}")) for n in range(20)]
    passed, held = answers[:3], answers[3:]
    assert all(a[0] == emergency_page() for a in passed)
    assert held[0] == [emergency_page()]
    assert all(a == [] for a in held[1:])
    assert sum(a.count(emergency_page()) for a in answers) == 4


def test_the_flood_notice_goes_once_a_minute(gateway: Gateway) -> None:
    answers = [texts(gateway, sms(f"hola {n}", f"SM-notice-{n}")) for n in range(8)]
    assert [a == [gateway_text("rate_limited")] for a in answers[3:]] == [True, False, False, False, False]
    assert all(a == [] for a in answers[4:])


# -- replayed deliveries ----------------------------------------------------------------------


def test_a_delivery_replayed_after_a_month_is_not_answered_again(gateway: Gateway, engine: Engine) -> None:
    """Twilio's signature carries no time: a captured webhook stays valid. Its MessageSid
    is remembered long enough that a replay weeks later gets nothing (it once got the
    follow-up of a case code back, in the HTTP answer, to whoever replayed it)."""
    assert texts(gateway, sms("hola", "SM-replayed"))
    with transaction(engine) as session:
        for delivery in session.query(Delivery).all():
            delivery.received_at = utcnow() - timedelta(days=30)
    gateway.purge()
    assert texts(gateway, sms("hola", "SM-replayed")) == []


# -- the edge's proof on message metadata ----------------------------------------------------

KEY = b"k" * 32


def test_metadata_signed_by_the_edge_is_trusted() -> None:
    signed = sign_metadata(KEY, "sender-1", "sms", "sealed-address", now=1000)
    assert verify_metadata(KEY, "sender-1", signed, now=1010) == {"channel": "sms", "reply_to": "sealed-address"}
    assert verify_metadata(KEY, "sender-1", {}, now=1010) == {}
    assert verify_metadata(KEY, "sender-1", None, now=1010) == {}


@pytest.mark.parametrize(
    "change",
    [
        {"reply_to": "an-address-the-attacker-made"},
        {"channel": "whatsapp"},
        {"edge_proof": "0" * 64},
        {"edge_proof": ""},
        {"edge_issued": "1001"},
        {"edge_issued": "soon"},
    ],
)
def test_metadata_changed_or_made_elsewhere_is_refused(change: dict[str, str]) -> None:
    signed = {**sign_metadata(KEY, "sender-1", "sms", "sealed-address", now=1000), **change}
    with pytest.raises(ForgedMetadata):
        verify_metadata(KEY, "sender-1", signed, now=1010)


def test_metadata_for_another_sender_stale_or_unsigned_is_refused() -> None:
    signed = sign_metadata(KEY, "sender-1", "sms", "sealed-address", now=1000)
    for sender, key, now in (("sender-2", KEY, 1010), ("sender-1", KEY, 1000 + 3600), ("sender-1", b"", 1010)):
        with pytest.raises(ForgedMetadata):
            verify_metadata(key, sender, signed, now=now)
    with pytest.raises(ForgedMetadata):
        verify_metadata(KEY, "sender-1", {"reply_to": "sealed-address", "channel": "sms"}, now=1010)
