"""The staff console in a real browser: Playwright for Python drives Debian's headless
Chromium (`make chromium`; no browser is downloaded) against the console the real gateway
serves, with the real Rasa and action servers behind it (Twilio is a local fake). A staff
member enrols the second factor, works a report end to end, and takes over a live
conversation from an SMS sender. Screenshots go to build/screenshots/ for a person to look."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from sqlalchemy import Engine, select

from console import auth
from reports.db import make_engine, transaction
from reports.models import AuditEntry, Report, utcnow
from scripts.stack import ROOT, Stack
from tests.fake_twilio import FakeTwilio
from tests.test_e2e_gateway import new_phone, sms_form, twilio_post, twiml_messages
from tests.test_e2e_handoff import sent_to

pytestmark = pytest.mark.rasa

PASSWORD = "una contraseña larga para el navegador"
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    dialogs: list[Dialog] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog)
        dialog.dismiss()

    opened.on("dialog", seen)
    yield opened
    context.close()
    assert dialogs == []  # no script of a report or message ever ran


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(SHOTS / f"{name}.png")), full_page=True)


def enrol_and_log_in(page: Page, stack: Stack, username: str) -> None:
    """First login in production mode: password, then the TOTP enrolment page's secret."""
    page.goto(f"{stack.gateway_url}/console/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Dar de alta el segundo factor")
    secret = page.locator("code.secret").last.inner_text().strip()
    page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.click("main button[type=submit]")
    expect(page.locator(".error")).to_contain_text("no es válido")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("main button[type=submit]")
    expect(page.locator("header nav")).to_contain_text(f"Cerrar sesión ({username})")


def file_by_sms(client: httpx.Client, stack: Stack, phone: str, what: str) -> None:
    for text in (
        "quiero denunciar",
        what,
        "listo",
        "guatemala",
        "escuintla",
        "hoy",
        "como 4",
        "no",
        "2",
        "si",
        "no",
        "si",
    ):
        twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, text)))


def audited(engine: Engine, actor: str) -> list[str]:
    with transaction(engine) as session:
        return [e.action for e in session.scalars(select(AuditEntry).where(AuditEntry.actor == actor))]


def test_a_report_worked_end_to_end_in_the_browser(
    page: Page, stack: Stack, engine: Engine, client: httpx.Client
) -> None:
    auth.create_account(engine, "rosa", "agent", PASSWORD, utcnow(), created_by=None)
    file_by_sms(client, stack, new_phone(), "<script>alert(1)</script><img src=x onerror=alert(2)> en una finca")
    with transaction(engine) as session:
        report_id = session.scalars(select(Report.id).order_by(Report.created_at.desc())).first()
    assert report_id is not None

    enrol_and_log_in(page, stack, "rosa")
    page.click("header >> text=Bandeja")
    row = page.locator(f"a[href$='/casos/{report_id}']")
    expect(row).to_have_count(1)
    shot(page, "queue")
    row.click()
    expect(page.locator(".text").first).to_contain_text("<script>alert(1)</script>")  # shown as text
    shot(page, "report")

    page.fill("textarea[name=note]", "Llamar a la fiscalía el lunes <b>sin falta</b>")
    page.click("text=Guardar nota")
    expect(page.locator(".message")).to_be_visible()
    expect(page.locator("main")).to_contain_text("<b>sin falta</b>")

    page.locator("input[name=institution]").first.check()
    page.click("text=Derivar (estado: referido)")
    expect(page.locator(".facts").first).to_contain_text("referido")

    page.select_option("select[name=status]", "closed")
    page.click("text=Cambiar estado")
    expect(page.locator(".facts").first).to_contain_text("cerrado")

    actions = audited(engine, "rosa")
    for action in ("login", "report_viewed", "note_added", "report_referred", "status_changed"):
        assert action in actions, (action, actions)

    page.set_viewport_size({"width": 375, "height": 740})  # a phone: nothing wider than the screen
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "report-phone")
    page.goto(f"{stack.gateway_url}/console/admin/accounts")
    expect(page.locator("h1")).to_have_text("Acceso no permitido")  # an agent is no admin


def test_a_live_conversation_taken_over_in_the_browser(
    page: Page, stack: Stack, engine: Engine, client: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    auth.create_account(engine, "sara", "agent", PASSWORD, utcnow(), created_by=None)
    phone = new_phone()
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "quiero hablar con una persona")))

    enrol_and_log_in(page, stack, "sara")
    page.click("header >> text=Conversaciones")
    page.locator("text=Abrir").last.click()
    page.click("text=Atender esta conversación")
    expect(page.locator(".message")).to_contain_text("Conversación atendida")
    assert len(sent_to(fake_twilio, phone)) == 1  # the person was told a person writes now

    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "me quitaron el pasaporte")))
    expect(page.locator("#messages")).to_contain_text("me quitaron el pasaporte")  # by the page's own poll

    page.fill("textarea[name=text]", "¿Estás en un lugar seguro ahora?")
    page.click("main >> text=Enviar")
    expect(page.locator(".message")).to_contain_text("Mensaje enviado")
    assert sent_to(fake_twilio, phone)[-1].startswith("¿Estas en un lugar seguro")
    shot(page, "handoff")

    page.click("text=Devolver al asistente")
    expect(page.locator(".message")).to_contain_text("devuelta al asistente")
    assert len(sent_to(fake_twilio, phone)) == 3
    menu = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "menu")))
    assert menu and "\n9 " in menu[0]
    assert {"handoff_taken", "handoff_message", "handoff_returned"} <= set(audited(engine, "sara"))


def test_a_form_without_its_csrf_token_is_refused(page: Page, stack: Stack, engine: Engine) -> None:
    auth.create_account(engine, "dora", "agent", PASSWORD, utcnow(), created_by=None)
    enrol_and_log_in(page, stack, "dora")
    page.click("header >> text=Conversaciones")
    before = len(audited(engine, "dora"))
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    page.click("header >> text=Cerrar sesión")
    expect(page.locator("h1")).to_have_text("Formulario caducado")
    assert "logout" not in audited(engine, "dora")[before:]
