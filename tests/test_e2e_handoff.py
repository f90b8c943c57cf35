"""Live hand-off end to end: a person on SMS (signed Twilio webhooks) asks for a human; a
staff member signs in to the console (its own process, the only one with the private key),
takes the conversation (the console asks the gateway's signed relay to pause Rasa with its own
event), they write to each other through the channel (Twilio's API is a local fake), and the
staff member hands it back (Rasa resumes). Real Rasa, action server, gateway and console
processes over HTTP; SQLite."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import Engine, select

from channels.config import load_gateway_settings
from channels.core import build_gateway, emergency_page, gateway_text
from console import auth, keys
from console.labels import console_labels
from hotline.sms import to_gsm7
from reports.db import make_engine, transaction
from reports.models import AuditEntry, Handoff, HandoffMessage, Report, StaffAccount, utcnow
from scripts.stack import Stack
from tests.anonymity import scan
from tests.conftest import channel_credentials
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import FakeTwilio
from tests.test_e2e_gateway import new_phone, pseudonym, sms_form, twilio_post, twiml_messages, wait_for

pytestmark = pytest.mark.rasa

PASSWORD = "una contraseña bastante larga"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


class Staff:
    """A staff member signed in to the console's own process (password + TOTP)."""

    def __init__(self, stack: Stack, engine: Engine, username: str, role: str) -> None:
        key = keys.load_console_key(stack.keys_dir, {})
        account = auth.create_account(engine, username, role, PASSWORD, utcnow(), created_by=None)
        self.secret = auth.start_enrolment(engine, account.id, key)
        with transaction(engine) as session:
            stored = session.get(StaffAccount, account.id)
            assert stored is not None
            stored.totp_confirmed = True
        self.username = username
        self.http = httpx.Client(base_url=stack.console_url, timeout=30, follow_redirects=False)
        login = self.http.post("/login", data={"csrf": self.csrf("/login"), "username": username, "password": PASSWORD})
        assert login.headers["location"] == "/console/login/totp"
        code = pyotp.TOTP(self.secret).now()
        done = self.http.post("/login/totp", data={"csrf": self.csrf("/login/totp"), "code": code})
        assert done.status_code == 303 and done.headers["location"] == "/console/", done.text

    def csrf(self, path: str) -> str:
        match = CSRF.search(self.http.get(path).text)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf("/"), **data})


@pytest.fixture
def sign_in(stack: Stack, engine: Engine) -> Iterator[Callable[..., Staff]]:
    """Signs staff members in; their HTTP clients are closed after the test."""
    made: list[Staff] = []

    def make(username: str, role: str = "agent") -> Staff:
        made.append(Staff(stack, engine, username, role))
        return made[-1]

    yield make
    for staff in made:
        staff.http.close()


# A report filed over the channel by a tipster who lets staff write back (the last "si").
CONSENTING_REPORT = (
    "quiero denunciar",
    "en una finca obligan a trabajar a varias personas sin pago",
    "listo",
    "guatemala",
    "cerca de escuintla",
    "esta semana",
    "como 6",
    "no",
    "2",
    "no",
    "si",
    "si",
)


def waiting_handoff(engine: Engine, conversation: str) -> Handoff:
    with transaction(engine) as session:
        found = session.scalar(select(Handoff).where(Handoff.conversation_id == conversation))
        assert found is not None, "no hand-off requested"
        session.expunge(found)
        return found


def tracker(client: httpx.Client, stack: Stack, conversation: str) -> dict[str, object]:
    answer = client.get(f"{stack.rasa_url}/conversations/{conversation}/tracker", params=stack.rasa_params)
    assert answer.status_code == 200
    data: dict[str, object] = answer.json()
    return data


def sent_to(fake: FakeTwilio, phone: str) -> list[str]:
    return [r.form["Body"][0] for r in fake.requests if r.method == "POST" and r.form.get("To") == [phone]]


def audited(engine: Engine, actor: str) -> list[str]:
    with transaction(engine) as session:
        return [e.action for e in session.scalars(select(AuditEntry).where(AuditEntry.actor == actor))]


def test_a_person_asks_for_a_human_is_taken_over_and_handed_back(
    client: httpx.Client, stack: Stack, engine: Engine, fake_twilio: FakeTwilio, sign_in: Callable[..., Staff]
) -> None:
    phone = new_phone()
    conversation = pseudonym(stack, "sms", phone)
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "hola")))
    asked = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "quiero hablar con una persona")))
    assert any("persona del equipo" in m for m in asked), asked
    handoff = waiting_handoff(engine, conversation)
    assert (handoff.state, handoff.reason, handoff.channel) == ("waiting", "asked", "sms")
    assert handoff.reply_sealed is not None and phone.encode() not in handoff.reply_sealed

    staff = sign_in("lucia")
    listing = staff.http.get("/conversaciones")
    assert listing.status_code == 200 and f"/conversaciones/{handoff.id}" in listing.text
    page = staff.http.get(f"/conversaciones/{handoff.id}")
    assert "quiero hablar con una persona" in page.text  # what was said before, from Rasa's tracker
    assert phone not in page.text

    taken = staff.post(f"/conversaciones/{handoff.id}/atender")
    assert taken.status_code == 303, taken.text
    assert tracker(client, stack, conversation)["paused"] is True
    hints = console_labels()["handoff"]["write_hints"]
    page = staff.http.get(f"/conversaciones/{handoff.id}")
    assert hints["sms"] in page.text and hints["whatsapp"] not in page.text  # the hint is the channel's
    assert sent_to(fake_twilio, phone) == [to_gsm7(gateway_text("handoff_started"))]  # the person is told

    silent = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "ya no tengo saldo casi")))
    assert silent == []  # the bot is paused: only the staff member answers now
    alarm = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "me tienen encerrada, ayuda")))
    assert alarm == [to_gsm7(emergency_page())]  # but an emergency still gets the numbers at once
    fragment = staff.http.get(f"/conversaciones/{handoff.id}/mensajes")
    assert fragment.status_code == 200
    assert "me tienen encerrada, ayuda" in fragment.text and "posible emergencia" in fragment.text

    sent = staff.post(f"/conversaciones/{handoff.id}/enviar", text="¿Estás a salvo ahora? <b>responde</b>")
    assert sent.status_code == 303, sent.text
    assert sent_to(fake_twilio, phone)[-1].startswith("¿Estas a salvo ahora?")  # SMS folded to GSM-7
    shown = staff.http.get(f"/conversaciones/{handoff.id}/mensajes").text
    assert "&lt;b&gt;responde&lt;/b&gt;" in shown and "<b>responde" not in shown

    returned = staff.post(f"/conversaciones/{handoff.id}/devolver")
    assert returned.status_code == 303, returned.text
    assert tracker(client, stack, conversation)["paused"] is False
    assert len(sent_to(fake_twilio, phone)) == 3  # taken notice, the staff message, the hand-back notice
    menu = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "menu")))
    assert menu and "\n9 " in menu[0]  # the bot answers again

    with transaction(engine) as session:
        closed = session.get(Handoff, handoff.id)
        assert closed is not None and (closed.state, closed.close_reason) == ("closed", "returned")
        assert closed.reply_sealed is None  # the address is not kept after the hand-off
        bodies = [m.sealed_body for m in session.scalars(select(HandoffMessage))]
        assert bodies and all(b"encerrada" not in b and b"salvo" not in b for b in bodies)  # sealed
    # Nobody past the gateway saw the number, and the hand-off's words are not in clear anywhere
    # (the tracker store and the hand-off messages are encrypted, logs carry no text).
    assert scan(stack, [phone, phone.lstrip("+"), phone[-8:], "me tienen encerrada", "salvo ahora"]) == []
    assert [a for a in audited(engine, "lucia") if a.startswith("handoff")] == [
        "handoff_viewed",
        "handoff_taken",
        "handoff_viewed",  # the page again, with the box to write in
        "handoff_message",
        "handoff_returned",
    ]


def test_two_fallbacks_put_the_conversation_on_the_list(client: httpx.Client, stack: Stack, engine: Engine) -> None:
    phone = new_phone()
    said = [twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, t))) for t in ("zxqv wplk", "zxqv wplk")]
    assert said[1][0].startswith("Sigo sin entender"), said
    handoff = waiting_handoff(engine, pseudonym(stack, "sms", phone))
    assert (handoff.state, handoff.reason) == ("waiting", "fallback")


def test_an_agent_cannot_write_in_a_conversation_another_holds(
    client: httpx.Client, stack: Stack, engine: Engine, fake_twilio: FakeTwilio, sign_in: Callable[..., Staff]
) -> None:
    phone = new_phone()
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "necesito hablar con alguien de verdad")))
    handoff = waiting_handoff(engine, pseudonym(stack, "sms", phone))
    holder, other = sign_in("marta"), sign_in("pablo")
    assert holder.post(f"/conversaciones/{handoff.id}/atender").status_code == 303
    before = len(sent_to(fake_twilio, phone))
    assert other.post(f"/conversaciones/{handoff.id}/atender").status_code == 403  # not theirs to see
    assert other.post(f"/conversaciones/{handoff.id}/enviar", text="hola").status_code == 403
    assert other.post(f"/conversaciones/{handoff.id}/devolver").status_code == 403
    assert other.http.get(f"/conversaciones/{handoff.id}").status_code == 403
    assert len(sent_to(fake_twilio, phone)) == before
    assert "forbidden" in audited(engine, "pablo")
    no_csrf = holder.http.post(f"/conversaciones/{handoff.id}/enviar", data={"text": "hola"})
    assert no_csrf.status_code == 403 and len(sent_to(fake_twilio, phone)) == before
    too_long = holder.post(f"/conversaciones/{handoff.id}/enviar", text="a" * 2000)
    assert too_long.status_code == 400 and "a" * 2000 in too_long.text  # kept in the box, nothing sent
    assert holder.post(f"/conversaciones/{handoff.id}/enviar", text="   ").status_code == 400
    assert holder.http.get("/conversaciones/999999").status_code == 404
    assert holder.post("/conversaciones/999999/atender").status_code == 404
    assert len(sent_to(fake_twilio, phone)) == before
    assert holder.post(f"/conversaciones/{handoff.id}/devolver").status_code == 303


def test_a_silent_person_is_handed_back_and_told_at_the_next_message(
    client: httpx.Client,
    stack: Stack,
    engine: Engine,
    fake_twilio: FakeTwilio,
    fake_telegram: FakeTelegram,
    sign_in: Callable[..., Staff],
) -> None:
    phone = new_phone()
    conversation = pseudonym(stack, "sms", phone)
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "quiero hablar con una persona")))
    handoff = waiting_handoff(engine, conversation)
    staff = sign_in("irene")
    assert staff.post(f"/conversaciones/{handoff.id}/atender").status_code == 303
    with transaction(engine) as session:  # the person's last message, an hour ago
        held = session.get(Handoff, handoff.id)
        assert held is not None
        held.last_inbound_at = utcnow() - timedelta(hours=1)

    settings = load_gateway_settings(
        {
            "HOTLINE_DATABASE_URL": stack.database_url,
            "HOTLINE_KEYS_DIR": str(stack.gateway_keys_dir),
            "HOTLINE_RASA_URLS": stack.rasa_url,
            **channel_credentials(fake_twilio, fake_telegram),
        }
    )

    async def sweep() -> int:
        gateway = build_gateway(settings)
        try:
            return await gateway.sweep_handoffs()
        finally:
            await gateway.http.aclose()

    assert asyncio.run(sweep()) >= 1
    assert tracker(client, stack, conversation)["paused"] is False
    answer = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "menu")))
    assert answer[0].startswith("Como no recibimos mensajes tuyos"), answer
    assert any("\n9 " in m for m in answer[1:])
    again = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "menu")))
    assert not again[0].startswith("Como no recibimos")  # told once


def test_contact_back_reaches_a_consenting_tipster_through_their_channel(
    client: httpx.Client, stack: Stack, engine: Engine, fake_twilio: FakeTwilio, sign_in: Callable[..., Staff]
) -> None:
    phone = new_phone()
    for text in CONSENTING_REPORT:
        twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, text)))
    with transaction(engine) as session:
        report = session.scalars(select(Report).where(Report.contact_consent.is_(True))).all()[-1]
        report_id = report.id
    staff = sign_in("tomas")
    page = staff.http.get(f"/casos/{report_id}")
    assert "/contactar" in page.text
    before = len(sent_to(fake_twilio, phone))
    sent = staff.post(f"/casos/{report_id}/contactar", contact_text="Recibimos tu mensaje. Gracias.")
    assert sent.status_code == 200 and "Mensaje enviado" in sent.text, sent.text
    wait_for(lambda: len(sent_to(fake_twilio, phone)) == before + 1)
    assert sent_to(fake_twilio, phone)[-1] == "Recibimos tu mensaje. Gracias."
    assert "tipster_contacted" in audited(engine, "tomas")
    assert staff.post(f"/casos/{report_id}/contactar", contact_text="").status_code == 400


def test_a_long_hand_off_is_never_answered_by_the_bot(client: httpx.Client, stack: Stack) -> None:
    """While paused, the person's messages pile up in Rasa's tracker (a paused conversation is
    never at rest, so the store does not cut it); the bot answers none of them."""
    sender = "long-" + new_phone().lstrip("+")
    token = stack.rasa_params
    assert client.post(stack.webhook, params=token, json={"sender": sender, "message": "hola"}).json()
    events = f"{stack.rasa_url}/conversations/{sender}/tracker/events"
    paused = client.post(events, params=token, json=[{"event": "pause"}])
    assert paused.status_code == 200
    answers = [
        client.post(stack.webhook, params=token, json={"sender": sender, "message": f"mensaje {n}"}) for n in range(110)
    ]
    assert all(a.status_code == 200 and a.json() == [] for a in answers)
    assert tracker(client, stack, sender)["paused"] is True
