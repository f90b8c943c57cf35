"""The staff console in a real browser: Playwright for Python drives Debian's headless
Chromium (`make chromium`; no browser is downloaded) against the console's own process
(`python -m console.app`). Most tests start that process alone on an ephemeral 127.0.0.1 port
with a SQLite database (test_console_web.py's `run_console`); the lockout test, which must
move time, runs the same app in-process with a test clock (`serve`); the ones marked `rasa`
use the console process of the whole stack, reaching the real gateway, Rasa and action
servers (Twilio is a local fake). Screenshots go to build/screenshots/ for a person to look
at. The page-driving steps live in tests/browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect
from sqlalchemy import Engine, select

from console import auth
from console.directory import contacts_for
from reports.db import make_engine, transaction
from reports.models import AuditEntry, CaseNote, Referral, Report, StaffAccount, utcnow
from scripts.stack import Stack
from tests.browser import (
    LAPTOP,
    PHONE,
    broken_words,
    enrol_totp,
    expect_login_refused,
    fits_the_width,
    login_with_totp,
    new_page,
    open_queue,
    open_report,
    queue_ids,
    report_fact,
    shot,
    submit_password,
)
from tests.db_fixtures import Keyring
from tests.fake_twilio import FakeTwilio
from tests.test_console_cases import file
from tests.test_console_photos import file_with_photos, jpeg, photo_ids
from tests.test_console_web import PASSWORD, Console, run_console, serve
from tests.test_e2e_gateway import new_phone, sms_form, twilio_post, twiml_messages
from tests.test_e2e_handoff import sent_to

MARKUP = "<script>alert(1)</script> <img src=x onerror=alert(2)>"


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring) -> Iterator[Console]:
    """The console's own process, with the reports' keyring (the private key is here only)."""
    assert keyring.directory == tmp_path / "keys"  # where `run_console` points the console
    with run_console(tmp_path) as running:
        yield running


@pytest.fixture
def console_on_a_test_clock(tmp_path: Path) -> Iterator[Console]:
    """The console's app served in this process, on a clock the test moves (lockout)."""
    with serve(tmp_path) as served:
        yield served


@pytest.fixture
def dialogs() -> list[str]:
    """The dialogs the test's page opened (none, ever: no script of a report runs)."""
    return []


@pytest.fixture
def page(browser: Browser, dialogs: list[str]) -> Iterator[Page]:
    with new_page(browser, dialogs) as opened:
        yield opened
    assert dialogs == []


def signed_in(page: Page, console: Console, username: str, role: str = "agent") -> None:
    """A new account with a confirmed second factor, signed in on `page`."""
    console.add(username, role)
    login_with_totp(page, console.url, username, PASSWORD, console.code(username))


def audit(console: Console, actor: str) -> list[tuple[str, str | None, str | None]]:
    with transaction(console.engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.actor == actor).order_by(AuditEntry.id))
        return [(e.action, e.target, e.detail) for e in entries]


def audit_rows(page: Page, actor: str, action: str) -> Locator:
    """The rows of the /audit page with this actor and action."""
    return (
        page.locator("tbody tr")
        .filter(has=page.locator("td:nth-child(2)", has_text=re.compile(f"^{re.escape(actor)}$")))
        .filter(has=page.locator("td:nth-child(3)", has_text=re.compile(f"^{re.escape(action)}$")))
    )


# -- the console's own process, alone (SQLite) --------------------------------------------------


def test_first_login_enrols_the_second_factor_from_the_page(page: Page, console: Console) -> None:
    console.add("nuevo", "agent", totp=False)
    secret = enrol_totp(page, console.url, "nuevo", PASSWORD, console.clock())
    shot(page, "home-laptop")
    with transaction(console.engine) as session:
        account = session.scalars(select(StaffAccount).where(StaffAccount.username == "nuevo")).one()
    assert account.totp_confirmed and account.totp_secret_sealed and secret.encode() not in account.totp_secret_sealed
    assert [action for action, _, _ in audit(console, "nuevo")] == ["login_failed", "totp_enrolled", "login"]


def test_the_queue_puts_urgent_first_and_filters_by_country(page: Page, console: Console, keyring: Keyring) -> None:
    older_normal = file(console, keyring, country="GT", hours_ago=50)
    newer_urgent = file(console, keyring, country="MX", kind="sexual", danger_now=True, hours_ago=1)
    assert newer_urgent.priority == "urgent" and older_normal.priority != "urgent"
    signed_in(page, console, "ana")
    open_queue(page)
    assert queue_ids(page) == [newer_urgent.report_id, older_normal.report_id]
    expect(page.locator("tr.case-row").first.locator("td").first).to_have_text("URGENTE")
    page.select_option("select[name=pais]", "GT")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/casos\?pais=GT&"))
    expect(page.locator("tr.case-row")).to_have_count(1)
    assert queue_ids(page) == [older_normal.report_id]
    expect(page.locator("select[name=pais]")).to_have_value("GT")  # the form shows the filter applied
    page.select_option("select[name=pais]", "MX")
    page.click("form.filters button[type=submit]")
    expect(page.locator("tr.case-row")).to_have_count(1)
    assert queue_ids(page) == [newer_urgent.report_id]
    page.select_option("select[name=pais]", "HN")
    page.click("form.filters button[type=submit]")
    expect(page.locator("tr.case-row")).to_have_count(0)
    expect(page.locator("tbody")).to_contain_text("No hay denuncias con estos filtros.")


def test_a_report_is_shown_decrypted_and_its_markup_as_text(
    page: Page, dialogs: list[str], console: Console, keyring: Keyring
) -> None:
    what = f"Me obligan a trabajar {MARKUP} en una finca"
    filed = file(console, keyring, what=what)
    signed_in(page, console, "ana")
    open_report(page, filed.report_id)
    page.wait_for_load_state("load")  # images (an injected one too) have loaded or failed by now
    expect(report_fact(page, "Qué pasa")).to_have_text(what)  # the sealed text, opened, literally
    expect(report_fact(page, "Dónde")).to_have_text("zona 1")
    expect(page.locator("main script, main img, main [onerror]")).to_have_count(0)
    assert dialogs == []
    page.evaluate("alert('control')")  # the dialog watcher does see a dialog when one opens
    assert dialogs == ["alert: control"]
    dialogs.clear()
    assert ("report_viewed", f"denuncia {filed.report_id}", None) in audit(console, "ana")


def test_note_referral_and_status_changes_are_confirmed_and_audited(
    page: Page, browser: Browser, console: Console, keyring: Keyring
) -> None:
    filed = file(console, keyring, country="GT")
    contact = next(c for c in contacts_for("GT")["GT"] if c.confidence == "verified")
    signed_in(page, console, "ana")
    open_report(page, filed.report_id)
    expect(report_fact(page, "Estado")).to_have_text("nuevo")

    note = "Llamar a la fiscalía el lunes <b>sin falta</b>"
    page.fill("textarea[name=note]", note)
    page.click("text=Guardar nota")
    expect(page.locator(".message")).to_have_text("Nota guardada.")
    expect(page.locator("main p.text").filter(has_text="· ana")).to_contain_text(note)

    page.check(f"input[name=institution][value='{contact.key}']")
    page.click("text=Preparar borrador de derivación")  # sent only after approval (test_console_referrals.py)
    expect(page.locator(".message")).to_contain_text("Borrador de derivación guardado")
    expect(report_fact(page, "Estado")).to_have_text("nuevo")
    expect(page.locator("article.referral h3")).to_have_text(f"{contact.label} (GT)")

    for status, name, previous in (("in_review", "en revisión", "nuevo"), ("closed", "cerrado", "en revisión")):
        page.select_option("form[action$='/estado'] select[name=status]", status)
        page.click("text=Cambiar estado")
        expect(page.locator(".message")).to_have_text("Estado cambiado.")
        expect(report_fact(page, "Estado")).to_have_text(name)
        expect(page.locator("main li").last).to_contain_text(f"{previous} → {name} (ana)")

    with transaction(console.engine) as session:
        report = session.get(Report, filed.report_id)
        assert report is not None and report.status == "closed"
        assert len(session.scalars(select(CaseNote).where(CaseNote.report_id == filed.report_id)).all()) == 1
        referral_id = session.scalars(select(Referral.id).where(Referral.report_id == filed.report_id)).one()
    target = f"denuncia {filed.report_id}"
    work = [entry for entry in audit(console, "ana") if entry[0] not in ("login", "report_viewed")]
    assert work == [
        ("note_added", target, None),
        ("referral_drafted", target, f"derivación {referral_id}: {contact.key}"),
        ("status_changed", target, "in_review"),
        ("status_changed", target, "closed"),
    ]
    assert audit(console, "ana").count(("report_viewed", target, None)) == 5  # opened, then after each step

    supervisor: list[str] = []
    with new_page(browser, supervisor) as other:
        signed_in(other, console, "sara", "supervisor")
        other.click("header nav >> text=Registro de auditoría")
        expect(other.locator("h1")).to_have_text("Registro de auditoría")
        for action in ("report_viewed", "note_added", "referral_drafted", "status_changed"):
            expect(audit_rows(other, "ana", action).first).to_contain_text(target)
        expect(audit_rows(other, "ana", "status_changed")).to_have_count(2)
    assert supervisor == []


def test_an_agent_is_refused_the_admin_pages_and_the_attempt_is_audited(page: Page, console: Console) -> None:
    signed_in(page, console, "ana")
    expect(page.locator("header nav")).not_to_contain_text("Cuentas")
    expect(page.locator("header nav")).not_to_contain_text("Registro de auditoría")
    for path in ("/admin/accounts", "/audit"):
        answer = page.goto(f"{console.url}{path}")
        assert answer is not None and answer.status == 403
        expect(page.locator("h1")).to_have_text("Acceso no permitido")
        expect(page.locator("main")).to_contain_text("Su rol no permite ver esta página.")
    forbidden = [target for action, target, _ in audit(console, "ana") if action == "forbidden"]
    assert forbidden == ["/console/admin/accounts", "/console/audit"]


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    page: Page, console_on_a_test_clock: Console
) -> None:
    console = console_on_a_test_clock
    console.add("ana", "agent")
    for _ in range(5):
        submit_password(page, console.url, "ana", "no es la contraseña")
        expect_login_refused(page)
    submit_password(page, console.url, "ana", PASSWORD)  # the right password, while locked
    expect_login_refused(page)
    with transaction(console.engine) as session:
        account = session.scalars(select(StaffAccount).where(StaffAccount.username == "ana")).one()
        assert account.failed_logins == 5 and account.locked_until is not None
    assert [action for action, _, _ in audit(console, "ana")] == ["login_failed"] * 6
    console.clock.advance(seconds=61)  # the first lock is one minute
    login_with_totp(page, console.url, "ana", PASSWORD, console.code("ana"))


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(
    page: Page, console: Console, keyring: Keyring
) -> None:
    filed = file(console, keyring)
    signed_in(page, console, "ana")
    open_report(page, filed.report_id)
    page.evaluate("document.querySelector(\"form[action$='/nota'] input[name=csrf]\").remove()")
    expect(page.locator("form[action$='/nota'] input[name=csrf]")).to_have_count(0)
    page.fill("textarea[name=note]", "Una nota que no debe guardarse")
    with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
        page.click("text=Guardar nota")
    assert posted.value.status == 403
    expect(page.locator("h1")).to_have_text("Formulario caducado")
    with transaction(console.engine) as session:
        assert session.scalars(select(CaseNote)).all() == []
    assert "note_added" not in [action for action, _, _ in audit(console, "ana")]

    page.goto(f"{console.url}/casos/{filed.report_id}")  # the same form with its token is accepted
    page.fill("textarea[name=note]", "Ahora sí")
    page.click("text=Guardar nota")
    expect(page.locator(".message")).to_have_text("Nota guardada.")


def test_a_photo_shows_on_the_report_page_and_disappears_after_marking(
    page: Page, console: Console, keyring: Keyring
) -> None:
    report_id = file_with_photos(console.engine, keyring, [jpeg()], country="US")
    (photo_id,) = photo_ids(console.engine, report_id)
    signed_in(page, console, "sara", "supervisor")
    open_report(page, report_id)
    page.wait_for_load_state("load")
    figure = page.locator(f"figure.photo[data-photo-id='{photo_id}']")
    expect(figure.locator("img")).to_be_visible()
    assert figure.locator("img").evaluate("img => img.complete && img.naturalWidth") == 40  # Chromium decoded it
    shot(page, "report-photo")
    page.click("text=Marcar como material de abuso sexual infantil (irreversible)")  # box unticked: not sent
    expect(figure.locator("img")).to_be_visible()
    figure.locator("input[name=confirm]").check()
    page.click("text=Marcar como material de abuso sexual infantil (irreversible)")
    marked = "Foto marcada como material de abuso sexual infantil: ya no se muestra a nadie."
    expect(page.locator(".message")).to_have_text(marked)
    expect(figure.locator(".photo-hidden")).to_contain_text(
        "oculta: marcada como material de abuso sexual infantil por supervisor/sara el "
    )
    expect(page.locator("main img")).to_have_count(0)
    expect(page.locator("section.legal-path")).to_contain_text("report.cybertip.org")
    shot(page, "report-photo-marked")
    answer = page.request.get(f"{console.url}/casos/{report_id}/fotos/{photo_id}")
    assert answer.status == 410 and "image" not in answer.headers["content-type"]
    target, detail = f"denuncia {report_id}", f"foto {photo_id}"
    actions = audit(console, "sara")
    assert actions.count(("photo_viewed", target, detail)) == 1
    assert ("photo_csam_marked", target, detail) in actions and ("photo_hidden_refused", target, detail) in actions


@pytest.mark.parametrize(("name", "viewport"), [("phone", PHONE), ("laptop", LAPTOP)])
def test_the_queue_and_a_report_fit_the_screen(
    browser: Browser, console: Console, keyring: Keyring, name: str, viewport: ViewportSize
) -> None:
    long_word = "https://ejemplo.org/" + "anuncio-de-trabajo-" * 8  # a pasted address does not widen the page
    filed = file(console, keyring, what=f"Vi este anuncio {long_word} y me quitaron el pasaporte", hours_ago=3)
    for hours in (5, 30):
        file(console, keyring, country="MX", kind="sexual", danger_now=True, hours_ago=hours)
    opened: list[str] = []
    with new_page(browser, opened, viewport) as page:
        page.goto(f"{console.url}/login")
        assert fits_the_width(page)
        shot(page, f"login-{name}")
        signed_in(page, console, "ana")
        open_queue(page)
        expect(page.locator("tr.case-row")).to_have_count(3)
        assert fits_the_width(page)
        assert broken_words(page, "div.table th, div.table td") == []  # the table scrolls in its box instead
        shot(page, f"queue-{name}")
        open_report(page, filed.report_id)
        expect(report_fact(page, "Qué pasa")).to_contain_text(long_word)
        assert fits_the_width(page)
        shot(page, f"report-{name}")
        if viewport == LAPTOP:  # on a laptop the whole queue table is seen without scrolling it sideways
            open_queue(page)
            assert page.evaluate("(t => t.scrollWidth <= t.clientWidth)(document.querySelector('div.table'))")
    assert opened == []


# -- the stack's console process, with the real gateway, Rasa and action server (marked `rasa`) ----


@pytest.fixture(scope="module")
def stack_engine(stack: Stack) -> Iterator[Engine]:
    made = make_engine(stack.database_url)
    yield made
    made.dispose()


def enrol_on_the_stack(page: Page, stack: Stack, engine: Engine, username: str) -> None:
    """A new agent account on the running stack's console (real clock), enrolled and signed in."""
    auth.create_account(engine, username, "agent", PASSWORD, utcnow(), created_by=None)
    enrol_totp(page, stack.console_url, username, PASSWORD, datetime.now(UTC))


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


@pytest.mark.rasa
def test_a_report_filed_by_sms_worked_end_to_end_in_the_browser(
    page: Page, stack: Stack, stack_engine: Engine, client: httpx.Client
) -> None:
    file_by_sms(client, stack, new_phone(), f"{MARKUP} en una finca")
    with transaction(stack_engine) as session:
        report_id = session.scalars(select(Report.id).order_by(Report.created_at.desc())).first()
    assert report_id is not None

    enrol_on_the_stack(page, stack, stack_engine, "rosa")
    open_queue(page)
    expect(page.locator(f"tr.case-row[data-id='{report_id}']")).to_have_count(1)
    shot(page, "stack-queue")
    open_report(page, report_id)
    expect(report_fact(page, "Qué pasa")).to_contain_text("<script>alert(1)</script>")  # shown as text
    shot(page, "stack-report")

    page.fill("textarea[name=note]", "Llamar a la fiscalía el lunes <b>sin falta</b>")
    page.click("text=Guardar nota")
    expect(page.locator(".message")).to_be_visible()
    expect(page.locator("main")).to_contain_text("<b>sin falta</b>")

    page.locator("input[name=institution]").first.check()
    page.click("text=Preparar borrador de derivación")  # a draft: sent only after approval
    expect(page.locator("article.referral .referral-state")).to_have_text("borrador")

    page.select_option("form[action$='/estado'] select[name=status]", "closed")
    page.click("text=Cambiar estado")
    expect(report_fact(page, "Estado")).to_have_text("cerrado")

    actions = audited(stack_engine, "rosa")
    for action in ("login", "report_viewed", "note_added", "referral_drafted", "status_changed"):
        assert action in actions, (action, actions)

    page.set_viewport_size(PHONE)  # a phone: nothing wider than the screen
    page.reload()
    assert fits_the_width(page)
    shot(page, "stack-report-phone")
    page.goto(f"{stack.console_url}/admin/accounts")
    expect(page.locator("h1")).to_have_text("Acceso no permitido")  # an agent is no admin


@pytest.mark.rasa
def test_a_live_conversation_taken_over_in_the_browser(
    page: Page, stack: Stack, stack_engine: Engine, client: httpx.Client, fake_twilio: FakeTwilio
) -> None:
    phone = new_phone()
    twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "quiero hablar con una persona")))

    enrol_on_the_stack(page, stack, stack_engine, "sara")
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
    shot(page, "stack-handoff")

    page.click("text=Devolver al asistente")
    expect(page.locator(".message")).to_contain_text("devuelta al asistente")
    assert len(sent_to(fake_twilio, phone)) == 3
    menu = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "menu")))
    assert menu and "\n9 " in menu[0]
    assert {"handoff_taken", "handoff_message", "handoff_returned"} <= set(audited(stack_engine, "sara"))


@pytest.mark.rasa
def test_a_stack_console_form_without_its_csrf_token_is_refused(page: Page, stack: Stack, stack_engine: Engine) -> None:
    enrol_on_the_stack(page, stack, stack_engine, "dora")
    page.click("header >> text=Conversaciones")
    before = len(audited(stack_engine, "dora"))
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    page.click("header >> text=Cerrar sesión")
    expect(page.locator("h1")).to_have_text("Formulario caducado")
    assert "logout" not in audited(stack_engine, "dora")[before:]
