"""The gateway's shared core (channels/core.py) on real databases (SQLite and PostgreSQL):
pseudonyms, duplicates, opt-out, flood guard, media, and what happens when Rasa is down
(here: a closed port, nothing faked)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from nacl.secret import SecretBox
from sqlalchemy import Engine, func, select

from channels.base import InboundMessage, Media
from channels.core import FloodGuard, Gateway, emergency_page, gateway_text, kept_inbound, safe_text
from channels.rasa_client import replies_from_rasa
from channels.state import PendingRow
from hotline.content import load_facts
from reports.db import transaction
from tests.db_fixtures import settings_for
from tests.test_gateway_resilience import make_gateway

CLOSED_PORT_URL = "http://127.0.0.1:9"  # nothing listens there: Rasa is "down"
PHONE = "+50255512345"


@pytest.fixture
def gateway(engine: Engine, database_url: str, keys_dir: Path) -> Iterator[Gateway]:
    made = make_gateway(engine, database_url, keys_dir)
    yield made
    asyncio.run(made.http.aclose())


def sms(text: str, delivery_id: str, address: str = PHONE, **extra: object) -> InboundMessage:
    return InboundMessage("sms", address, text, delivery_id=delivery_id, **extra)  # type: ignore[arg-type]


def handle(gateway: Gateway, message: InboundMessage) -> list[str]:
    return [reply.text for reply in asyncio.run(gateway.handle(message))]


def pending_count(engine: Engine) -> int:
    from reports.models import PendingMessage

    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(PendingMessage)).scalar_one())


def test_rasa_down_gives_emergency_numbers_at_once_and_keeps_the_message(gateway: Gateway, engine: Engine) -> None:
    replies = handle(gateway, sms("hola, necesito ayuda con mis papeles", "SM1"))
    assert replies == [gateway_text("assistant_unavailable"), emergency_page()]
    police = load_facts()["gt.police"].value
    assert police and police in replies[1]  # Guatemala's 110 among the region's numbers
    assert pending_count(engine) == 1


def test_a_kept_message_is_sealed_with_the_gateway_key(gateway: Gateway, engine: Engine) -> None:
    from reports.models import PendingMessage

    inbound = sms("me quitaron el pasaporte en la finca", "SM2")
    handle(gateway, inbound)
    with engine.connect() as connection:
        sealed = connection.execute(select(PendingMessage.sealed)).scalar_one()
        pseudonym = str(connection.execute(select(PendingMessage.pseudonym)).scalar_one())
    assert b"pasaporte" not in sealed and PHONE.encode() not in sealed and PHONE[1:] not in pseudonym
    opened = json.loads(SecretBox(gateway.gateway_key).decrypt(sealed))
    # the id it went to Rasa under: sent again under it, Rasa cannot take it twice (test_e2e_resend.py)
    assert opened == {"address": PHONE, "text": inbound.text, "message_id": inbound.rasa_message_id}
    assert re.fullmatch(r"[0-9a-f]{32}", inbound.rasa_message_id)


def test_a_kept_message_goes_again_under_its_first_id_and_an_older_one_as_new() -> None:
    row = PendingRow(7, "p" * 32, "sms", b"")
    again = kept_inbound(row, {"address": PHONE, "text": "hola", "message_id": "a" * 32})
    assert (again.rasa_message_id, again.sent_before, again.delivery_id) == ("a" * 32, True, "p-7")
    older = kept_inbound(row, {"address": PHONE, "text": "hola"})  # kept before messages had ids
    assert older.sent_before is False and re.fullmatch(r"[0-9a-f]{32}", older.rasa_message_id)
    assert older.rasa_message_id != kept_inbound(row, {"address": PHONE, "text": "hola"}).rasa_message_id


def test_the_same_delivery_twice_is_processed_once(gateway: Gateway, engine: Engine) -> None:
    assert handle(gateway, sms("hola", "SM-dup"))
    assert handle(gateway, sms("hola", "SM-dup")) == []
    assert pending_count(engine) == 1
    assert handle(gateway, InboundMessage("whatsapp", "whatsapp:" + PHONE, "hola", delivery_id="SM-dup"))  # per channel


def test_opt_out_stops_every_answer_until_opt_in(gateway: Gateway, engine: Engine) -> None:
    assert handle(gateway, sms("BAJA", "SM-o1")) == [gateway_text("opted_out")]
    assert handle(gateway, sms("hola", "SM-o2")) == []
    assert pending_count(engine) == 0  # nothing kept for an opted-out sender
    assert handle(gateway, sms("Alta", "SM-o3")) == [gateway_text("opted_in")]
    assert handle(gateway, sms("hola", "SM-o4"))[0] == gateway_text("assistant_unavailable")


def test_floods_are_slowed_but_an_emergency_always_passes(gateway: Gateway) -> None:
    for n in range(3):
        handle(gateway, sms(f"mensaje {n}", f"SM-f{n}"))
    assert handle(gateway, sms("otro mensaje", "SM-f3")) == [gateway_text("rate_limited")]
    emergency = handle(gateway, sms("auxilio me tienen encerrada", "SM-f4"))
    assert gateway_text("rate_limited") not in emergency and emergency_page() in emergency


def test_media_without_text_gets_a_polite_answer_and_is_not_kept(gateway: Gateway, engine: Engine) -> None:
    photo = sms("", "SM-m1", media=(Media("https://api.twilio.com/x/Media/ME1", "image/jpeg"),))
    assert handle(gateway, photo) == [gateway_text("media_received")]
    assert pending_count(engine) == 0


def test_pseudonyms_are_stable_per_channel_and_keyed(gateway: Gateway) -> None:
    first = gateway.pseudonym("sms", PHONE)
    assert first == gateway.pseudonym("sms", PHONE) and len(first) == 32
    assert first != gateway.pseudonym("whatsapp", PHONE)
    other = Gateway(gateway.settings, gateway.engine, gateway.keys, b"k" * 32, gateway.http, {})
    assert other.pseudonym("sms", PHONE) != first
    assert "55512345" not in first


def test_one_sender_always_goes_to_the_same_rasa(gateway: Gateway) -> None:
    settings = dataclasses.replace(gateway.settings, rasa_urls=("a", "b", "c"))
    spread = Gateway(settings, gateway.engine, gateway.keys, gateway.gateway_key, gateway.http, {})
    senders = [spread.pseudonym("sms", f"+502555{n:05d}") for n in range(60)]
    assert all(spread.rasa_url(s) == spread.rasa_url(s) for s in senders)
    assert {spread.rasa_url(s) for s in senders} == {"a", "b", "c"}


def test_safe_text_never_passes_an_intent_command() -> None:
    assert safe_text("/restart") == "restart"
    assert safe_text("  /emergency{}") == "emergency{}"
    assert safe_text("hola\x00") == "hola"
    assert safe_text("1/2 de la gente") == "1/2 de la gente"


def test_menu_options_are_read_from_the_reply_text() -> None:
    (reply,) = replies_from_rasa([{"text": "Responde con un número:\n1 Tus derechos\n2 Trata y tráfico\nFin"}])
    assert reply.options == (("1", "Tus derechos"), ("2", "Trata y tráfico"))
    (plain,) = replies_from_rasa([{"text": "Hola"}, {"image": "x"}])
    assert plain.options == ()


def test_flood_guard_window_moves() -> None:
    guard = FloodGuard(per_minute=2)
    assert guard.allows("s", now=0.0) and guard.allows("s", now=1.0)
    assert not guard.allows("s", now=2.0)
    assert guard.allows("s", now=61.5)
    assert guard.allows("other", now=2.0)


def test_a_rasa_that_takes_the_message_but_hangs_is_not_sent_it_twice(gateway: Gateway, engine: Engine) -> None:
    """A peer that accepts the connection and never answers (a hung Rasa): the person is
    told at once, with the emergency numbers; the message is not kept for a second try,
    since Rasa may still act on it."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        settings = dataclasses.replace(
            gateway.settings, rasa_urls=(f"http://127.0.0.1:{hung.getsockname()[1]}",), rasa_timeout_seconds=0.5
        )
        slow = Gateway(settings, gateway.engine, gateway.keys, gateway.gateway_key, gateway.http, {})
        assert handle(slow, sms("que es la trata", "SM-slow")) == [gateway_text("assistant_slow"), emergency_page()]
    assert pending_count(engine) == 0


# -- live hand-off ------------------------------------------------------------------------


def hold(gateway: Gateway, engine: Engine, address: str = PHONE) -> int:
    """A live hand-off for this sender, taken by a staff member (as the console does)."""
    from reports import handoffs
    from reports.models import StaffAccount, utcnow

    with transaction(engine) as session:
        staff = StaffAccount(username=f"s{address[-4:]}", password_hash="x", role="agent", created_at=utcnow())
        session.add(staff)
        session.flush()
        handoff = handoffs.request_handoff(session, gateway.pseudonym("sms", address), "sms", "asked", None, utcnow())
        handoffs.take(session, handoff.id, staff.id, utcnow())
        return handoff.id


def test_in_a_live_hand_off_rasa_down_changes_nothing_for_the_person(gateway: Gateway, engine: Engine) -> None:
    from reports.crypto import unseal_text
    from reports.keys import load_private_key
    from reports.models import HandoffMessage

    hold(gateway, engine)
    assert handle(gateway, sms("ya llegue a la terminal", "h0")) == []  # no "technical problem" answer
    assert handle(gateway, sms("me estan pegando, auxilio", "h1")) == [emergency_page()]  # first, in any state
    assert pending_count(engine) == 0  # the staff member has it: nothing kept for the assistant
    with transaction(engine) as session:
        kept = session.scalars(select(HandoffMessage)).all()
        assert [m.danger for m in kept] == [False, True]
        private = load_private_key(settings_for(gateway.settings.database_url, gateway.settings.keys_dir))
        assert unseal_text(private, kept[1].sealed_body) == "me estan pegando, auxilio"


def test_pause_resume_and_the_idle_sweep_with_rasa_down(gateway: Gateway, engine: Engine) -> None:
    from channels.rasa_client import RasaUnavailable
    from reports.models import Handoff, utcnow

    handoff_id = hold(gateway, engine)
    with pytest.raises(RasaUnavailable):
        asyncio.run(gateway.pause(gateway.pseudonym("sms", PHONE)))
    with transaction(engine) as session:
        handoff = session.get(Handoff, handoff_id)
        assert handoff is not None
        handoff.last_inbound_at = utcnow() - timedelta(hours=2)
    assert asyncio.run(gateway.sweep_handoffs()) == 0  # Rasa cannot resume: the hand-off stays live
    with transaction(engine) as session:
        assert session.get(Handoff, handoff_id).state == "live"  # type: ignore[union-attr]


def test_send_to_goes_through_the_channel_and_never_to_an_opted_out_person(gateway: Gateway) -> None:
    from channels.base import ConfigError, ContactStopped, Reply
    from channels.simulator import SimulatorChannel

    simulator = SimulatorChannel()
    with_simulator = dataclasses.replace(gateway, adapters={"simulator": simulator})
    asyncio.run(with_simulator.send_to("simulator", "sms:+50255501111", [Reply("Hola, soy del equipo")]))
    assert [r.text for r in simulator.take_outbox("sms:+50255501111")] == ["Hola, soy del equipo"]
    assert simulator.take_outbox("sms:+50255501111") == []  # taken once
    asyncio.run(with_simulator._set_opt_out(with_simulator.pseudonym("simulator", "sms:+50255502222"), True))
    with pytest.raises(ContactStopped):
        asyncio.run(with_simulator.send_to("simulator", "sms:+50255502222", [Reply("hola")]))
    assert simulator.take_outbox("sms:+50255502222") == []
    with pytest.raises(ConfigError):
        asyncio.run(with_simulator.send_to("fax", "123", [Reply("hola")]))


def test_what_the_gateway_says_fits_two_sms() -> None:
    from channels.core import gateway_content
    from hotline.sms import sms_segments, to_gsm7

    for key, text in gateway_content()["texts"].items():
        assert sms_segments(to_gsm7(str(text))) <= 2, key
