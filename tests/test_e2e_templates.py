"""WhatsApp templates end to end: a person on WhatsApp (signed Twilio webhooks) and staff in
the console (its own process) writing to them through the gateway's relay, with Twilio's
Messages and Content APIs as a strict local fake. The 24-hour window is moved by setting
the person's last message back in the database (an explicit time, no sleeping); the rest
runs on the real clock of the real processes. Real Rasa, action server, gateway and console
over HTTP; one test drives the console in Debian's Chromium (Playwright)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, func, select, update

from channels.core import gateway_content, gateway_text
from console import auth
from console.labels import console_labels
from reports.db import make_engine, transaction
from reports.models import AuditEntry, HandoffMessage, HeldMessage, LastInbound, Report, utcnow
from scripts.stack import Stack
from tests.anonymity import scan
from tests.browser import chromium, enrol_totp, new_page, shot
from tests.fake_twilio import TEMPLATE_SID, FakeTwilio
from tests.test_console_web import PASSWORD
from tests.test_e2e_gateway import new_phone, pseudonym, twilio_post, twiml_messages, wait_for
from tests.test_e2e_handoff import CONSENTING_REPORT, Staff, waiting_handoff

pytestmark = pytest.mark.rasa

HOTLINE_WHATSAPP = "whatsapp:+14155238886"


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


@pytest.fixture
def sign_in(stack: Stack, engine: Engine) -> Iterator[Callable[[str], Staff]]:
    made: list[Staff] = []

    def make(username: str) -> Staff:
        made.append(Staff(stack, engine, username, "agent"))
        return made[-1]

    yield make
    for staff in made:
        staff.http.close()


@pytest.fixture
def staff_page() -> Iterator[Page]:
    """A page of Debian's headless Chromium; the console never opens a dialog on it."""
    dialogs: list[str] = []
    with chromium() as launched, new_page(launched, dialogs) as opened:
        yield opened
    assert dialogs == []


@pytest.fixture
def strict(fake_twilio: FakeTwilio) -> Iterator[FakeTwilio]:
    """The stack's fake Twilio, checked for calls its API would not answer after the test."""
    before = len(fake_twilio.unexpected)
    yield fake_twilio
    assert fake_twilio.unexpected[before:] == []


def new_address() -> str:
    return "whatsapp:" + new_phone()


def wa_form(address: str, text: str) -> dict[str, str]:
    return {"From": address, "To": HOTLINE_WHATSAPP, "Body": text, "MessageSid": "SM" + secrets.token_hex(16)}


def writes(client: httpx.Client, stack: Stack, address: str, text: str) -> list[str]:
    return twiml_messages(twilio_post(client, stack, "whatsapp", wa_form(address, text)))


def silent_for(engine: Engine, stack: Stack, address: str, hours: float) -> None:
    """The person's last message, `hours` ago: the time the gateway measures the window from."""
    conversation = pseudonym(stack, "whatsapp", address)
    with transaction(engine) as session:
        moved = session.execute(
            update(LastInbound)
            .where(LastInbound.pseudonym == conversation)
            .values(at=utcnow() - timedelta(hours=hours))
        )
        assert getattr(moved, "rowcount", 0) == 1, "the gateway noted no message from this person"


def texts_to(fake: FakeTwilio, address: str) -> list[str]:
    return [r.form["Body"][0] for r in fake.requests if r.form.get("To") == [address] and "Body" in r.form]


def held(engine: Engine, stack: Stack, address: str) -> int:
    conversation = pseudonym(stack, "whatsapp", address)
    with transaction(engine) as session:
        count = session.scalar(
            select(func.count()).select_from(HeldMessage).where(HeldMessage.pseudonym == conversation)
        )
        return int(count or 0)


def audit(engine: Engine, actor: str) -> list[tuple[str, str | None]]:
    with transaction(engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.actor == actor).order_by(AuditEntry.id))
        return [(e.action, e.detail) for e in entries]


def take_over(client: httpx.Client, stack: Stack, engine: Engine, staff: Staff, address: str) -> int:
    """The person asks for a human on WhatsApp and `staff` takes the conversation."""
    writes(client, stack, address, "quiero hablar con una persona")
    handoff = waiting_handoff(engine, pseudonym(stack, "whatsapp", address))
    assert handoff.channel == "whatsapp"
    assert staff.post(f"/conversaciones/{handoff.id}/atender").status_code == 303
    hints = console_labels()["handoff"]["write_hints"]
    page = staff.http.get(f"/conversaciones/{handoff.id}").text
    assert hints["whatsapp"] in page and hints["sms"] not in page  # the hint is the channel's
    return handoff.id


def test_contact_back_after_24_hours_goes_as_the_template_and_waits_for_the_answer(
    client: httpx.Client, stack: Stack, engine: Engine, strict: FakeTwilio, sign_in: Callable[[str], Staff]
) -> None:
    address = new_address()
    for text in CONSENTING_REPORT:
        writes(client, stack, address, text)
    with transaction(engine) as session:
        report_id = session.scalars(
            select(Report.id).where(Report.contact_consent.is_(True)).order_by(Report.created_at.desc())
        ).first()
    assert report_id is not None
    silent_for(engine, stack, address, 25)
    staff = sign_in("valeria")

    first = staff.post(f"/casos/{report_id}/contactar", contact_text="Recibimos tu denuncia. ¿Podemos llamarte?")
    assert first.status_code == 200, first.text
    assert "aviso neutro" in first.text and "le llegará cuando responda" in first.text
    assert strict.templates_sent(address) == [TEMPLATE_SID]
    assert texts_to(strict, address)[-1:] != ["Recibimos tu denuncia. ¿Podemos llamarte?"]  # not on the phone yet
    template = [r for r in strict.requests if r.form.get("To") == [address] and "ContentSid" in r.form][-1]
    assert "Body" not in template.form and template.form["From"] == [HOTLINE_WHATSAPP]

    second = staff.post(f"/casos/{report_id}/contactar", contact_text="Seguimos aquí.")
    assert second.status_code == 200 and "todavía no respondió" in second.text
    assert strict.templates_sent(address) == [TEMPLATE_SID] and held(engine, stack, address) == 2

    writes(client, stack, address, "hola, ¿quién es?")  # the window opens: both go, in order
    wait_for(lambda: texts_to(strict, address)[-2:] == ["Recibimos tu denuncia. ¿Podemos llamarte?", "Seguimos aquí."])
    assert held(engine, stack, address) == 0

    third = staff.post(f"/casos/{report_id}/contactar", contact_text="Gracias por responder.")
    assert third.status_code == 200 and "Mensaje enviado a su teléfono" in third.text
    assert texts_to(strict, address)[-1] == "Gracias por responder."
    assert strict.templates_sent(address) == [TEMPLATE_SID]
    assert [d for a, d in audit(engine, "valeria") if a == "tipster_contacted"] == [
        "plantilla",
        "pendiente de respuesta",
        "sesión abierta",
    ]
    number = address.removeprefix("whatsapp:")
    assert scan(stack, [number, number.lstrip("+"), number[-8:], "Podemos llamarte"]) == []


def test_a_template_twilio_does_not_know_is_refused_and_audited_then_the_path_shows(
    client: httpx.Client, stack: Stack, engine: Engine, strict: FakeTwilio, sign_in: Callable[[str], Staff]
) -> None:
    address = new_address()
    staff = sign_in("ximena")
    handoff_id = take_over(client, stack, engine, staff, address)
    assert texts_to(strict, address) == [gateway_text("handoff_started")]  # within the window: as written
    silent_for(engine, stack, address, 30)

    removed = strict.templates.pop(TEMPLATE_SID)  # deleted at Twilio: the Content API answers 404
    try:
        refused = staff.post(f"/conversaciones/{handoff_id}/enviar", text="¿Sigues ahí?")
    finally:
        strict.templates[TEMPLATE_SID] = removed
    assert refused.status_code == 502
    assert "no existe en Twilio" in refused.text and "template_unknown" in refused.text
    assert "¿Sigues ahí?" in refused.text  # the draft stays in the box
    assert strict.templates_sent(address) == [] and held(engine, stack, address) == 0
    assert ("handoff_message_failed", "template_unknown") in audit(engine, "ximena")

    sent = staff.post(f"/conversaciones/{handoff_id}/enviar", text="¿Sigues ahí?")
    assert sent.status_code == 303 and sent.headers["location"].endswith("hecho=sent_template")
    assert strict.templates_sent(address) == [TEMPLATE_SID]
    shown = staff.http.get(f"/conversaciones/{handoff_id}/mensajes").text
    assert "plantilla" in shown and "¿Sigues ahí?" in shown
    with transaction(engine) as session:
        paths = list(session.scalars(select(HandoffMessage.path).where(HandoffMessage.handoff_id == handoff_id)))
    assert paths == ["template"]

    writes(client, stack, address, "sí, aquí estoy")
    wait_for(lambda: texts_to(strict, address)[-1] == "¿Sigues ahí?")
    assert staff.post(f"/conversaciones/{handoff_id}/devolver").status_code == 303


def test_twilio_answering_63016_switches_to_the_template(
    client: httpx.Client, stack: Stack, engine: Engine, strict: FakeTwilio, sign_in: Callable[[str], Staff]
) -> None:
    address = new_address()
    staff = sign_in("yolanda")
    handoff_id = take_over(client, stack, engine, staff, address)
    strict.window_closed.add(address)  # Twilio says the window closed, whatever our clock says
    try:
        sent = staff.post(f"/conversaciones/{handoff_id}/enviar", text="¿Cómo estás?")
    finally:
        strict.window_closed.discard(address)
    assert sent.status_code == 303 and sent.headers["location"].endswith("hecho=sent_template")
    assert [r.form.get("Body") for r in strict.requests if r.form.get("To") == [address]][-2:] == [
        ["¿Cómo estás?"],  # tried as written, refused with 63016
        None,  # then the template
    ]
    assert held(engine, stack, address) == 1
    assert staff.post(f"/conversaciones/{handoff_id}/devolver").status_code == 303


def test_the_console_shows_the_path_of_each_staff_message_in_the_browser(
    staff_page: Page, client: httpx.Client, stack: Stack, engine: Engine, strict: FakeTwilio
) -> None:
    page = staff_page
    address = new_address()
    writes(client, stack, address, "quiero hablar con una persona")
    auth.create_account(engine, "zoe", "agent", PASSWORD, utcnow(), created_by=None)
    enrol_totp(page, stack.console_url, "zoe", PASSWORD, datetime.now(UTC))
    handoff = waiting_handoff(engine, pseudonym(stack, "whatsapp", address))
    page.goto(f"{stack.console_url}/conversaciones/{handoff.id}")
    page.click("text=Atender esta conversación")
    expect(page.locator(".message")).to_contain_text("Conversación atendida")

    page.fill("textarea[name=text]", "Hola, te escribe Zoe.")
    page.click("main >> text=Enviar")
    expect(page.locator(".message")).to_contain_text("sesión abierta")
    expect(page.locator("#messages .path-session")).to_have_text("sesión abierta")

    silent_for(engine, stack, address, 26)
    page.fill("textarea[name=text]", "¿Sigues ahí?")
    page.click("main >> text=Enviar")
    expect(page.locator(".message")).to_contain_text("plantilla aprobada")
    expect(page.locator("#messages .path-template")).to_have_text("plantilla")
    page.fill("textarea[name=text]", "Te esperamos.")
    page.click("main >> text=Enviar")
    expect(page.locator("#messages .path-held")).to_have_text("pendiente de respuesta")
    shot(page, "stack-handoff-whatsapp-paths")
    assert strict.templates_sent(address) == [TEMPLATE_SID]
    assert gateway_content()["whatsapp_template"] not in page.content()  # staff see the path, not a body
    page.click("text=Devolver al asistente")
    expect(page.locator(".message")).to_contain_text("devuelta al asistente")
