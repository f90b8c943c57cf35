"""On call in the console over real HTTP (uvicorn, SQLite, a test clock): supervisors set and
delete shifts, staff set where alerts reach them, the acknowledge link confirms on POST only
and refuses (clearly, audited) a link used twice, expired, unknown or used by someone not on
call; the queue shows response deadlines, overdue first; statistics show the time to
acknowledge and to first action. The same in Chromium at the end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from reports import oncall
from reports.config import Settings
from reports.db import transaction
from reports.keys import load_oncall_key
from reports.models import OnCallPage, OnCallShift, StaffAccount, StaffContact
from reports.service import change_status
from tests.browser import login_with_totp, new_page, shot
from tests.conftest import Mailbox
from tests.db_fixtures import Keyring, settings_for
from tests.test_console_cases import audit, file, queue_ids, signed_in, staff_id
from tests.test_console_web import PASSWORD, START, Console, csrf, log_in, password_step, serve
from tests.test_oncall import LINK, read_mail

MAIL = "ana@linea.example"


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring) -> Iterator[Console]:
    with serve(tmp_path) as served:
        yield served


def job_settings(console: Console, keyring: Keyring, mailbox: Mailbox) -> Settings:
    """What the jobs process would have: the same database and keyring, the SMTP server."""
    url = str(console.engine.url)
    return settings_for(
        url,
        keyring.directory,
        console_url=console.url,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_from="alertas@linea.example",
        oncall_ack_minutes=10,
    )


def new_shift(client: httpx.Client, staff: int, starts: str, ends: str, countries: str = "") -> httpx.Response:
    form = {"csrf": csrf(client, "/guardia"), "staff": str(staff), "starts": starts, "ends": ends}
    return client.post("/guardia", data={**form, "countries": countries})


def test_supervisors_set_and_delete_shifts_and_agents_may_not(console: Console) -> None:
    console.add("ana", "agent")
    ana = staff_id(console, "ana")
    with signed_in(console, "sara", "supervisor") as client:
        page = client.get("/guardia")
        assert page.status_code == 200 and "Nadie está de guardia ahora" in page.text
        made = new_shift(client, ana, "2026-11-29T11:00", "2026-11-29T19:00", "gt, mx")
        assert made.status_code == 200 and "Turno creado para ana." in made.text, made.text
        assert re.search(r'id="on-call-now">ana<', made.text)
        assert "GT, MX" in made.text
        for starts, ends, countries, why in (
            ("2026-11-29T19:00", "2026-11-29T11:00", "", "Escribe las horas"),
            ("ayer", "2026-11-29T11:00", "", "Escribe las horas"),
            ("2026-11-29T11:00", "2026-11-29T19:00", "GT, XX, <b>", "no son válidos: XX, &lt;B&gt;"),
        ):
            refused = new_shift(client, ana, starts, ends, countries)
            assert refused.status_code == 400 and why in refused.text
        for nobody in (999999, 10**12):
            assert new_shift(client, nobody, "2026-11-29T11:00", "2026-11-29T19:00").status_code == 400
        with transaction(console.engine) as session:
            (shift,) = session.scalars(select(OnCallShift))
            assert (shift.staff_id, shift.countries, shift.created_by) == (ana, ["GT", "MX"], "sara")
            assert shift.starts_at == START.replace(hour=11, minute=0, second=0)
        gone = client.post(f"/guardia/{shift.id}/borrar", data={"csrf": csrf(client, "/guardia")})
        assert (
            gone.status_code == 303
            and client.get(gone.headers["location"].removeprefix("/console")).text.count("Turno borrado.") == 1
        )
        assert client.post(f"/guardia/{shift.id}/borrar", data={"csrf": csrf(client, "/guardia")}).status_code == 404
    with console.client() as client:
        log_in(console, client, "ana")
        assert client.get("/guardia").status_code == 403
        assert client.post("/guardia", data={"csrf": csrf(client, "/mis-avisos")}).status_code == 403
    actions = [(actor, action, target) for actor, action, target, _ in audit(console)]
    assert ("sara", "oncall_shift_created", f"turno {shift.id}") in actions
    assert ("sara", "oncall_shift_deleted", f"turno {shift.id}") in actions
    assert ("ana", "forbidden", "/console/guardia") in actions


def test_staff_set_their_alert_contact_sealed_and_audited_without_values(console: Console) -> None:
    with signed_in(console, "ana") as client:
        page = client.get("/mis-avisos")
        assert page.status_code == 200 and "Ahora: ninguno" in page.text
        form = {"csrf": csrf(client, "/mis-avisos"), "email": MAIL, "telegram": "", "phone": "+502 5550 1234"}
        saved = client.post("/mis-avisos/contacto", data=form)
        assert saved.status_code == 200 and "Datos de aviso guardados (correo, SMS)." in saved.text
        assert "Ahora: correo, SMS" in saved.text and "5550" not in saved.text
        wrong = client.post("/mis-avisos/contacto", data={**form, "csrf": csrf(client, "/mis-avisos"), "phone": "12"})
        assert wrong.status_code == 400 and "formato internacional" in wrong.text
    with transaction(console.engine) as session:
        (row,) = session.scalars(select(StaffContact))
        assert b"5550" not in row.sealed and row.channels == "email,sms"
    details = [detail for _, action, _, detail in audit(console) if action == "oncall_contact_set"]
    assert details == ["email,sms"]


def test_the_acknowledge_link_confirms_on_post_once_and_refuses_clearly(
    console: Console, keyring: Keyring, mailbox: Mailbox
) -> None:
    console.add("ana", "agent")
    console.add("carla", "agent")
    ana = staff_id(console, "ana")
    with transaction(console.engine) as session:
        session.add(OnCallShift(staff_id=ana, starts_at=START, ends_at=START + timedelta(hours=8), countries=["GT"]))
        oncall.set_contact(session, ana, load_oncall_key(console_settings(console)), oncall.Contact(MAIL), START)
    filed = file(console, keyring, danger_now=True, hours_ago=0)
    mails = len(mailbox.messages)
    assert oncall.escalate_due(console.engine, job_settings(console, keyring, mailbox), console.clock()).sent == 1
    link = LINK.search(read_mail(mailbox.wait_for(mails + 1)[-1])[2])
    assert link is not None and link.group(0).startswith(console.url)
    path = link.group(0)[len(console.url) :]
    with console.client() as client:  # signed out (or a link scanner): to the login, nothing changes
        assert client.get(path).headers["location"] == "/console/login"
        assert password_step(client, "ana").headers["location"] == "/console/login/totp"
        form = {"csrf": csrf(client, "/login/totp"), "code": console.code("ana")}
        assert client.post("/login/totp", data=form).headers["location"] == "/console" + path  # back to the link
        console.clock.advance(seconds=30)  # the next login needs the next code
    with console.client() as client:
        log_in(console, client, "carla")
        refused = client.get(path)
        assert refused.status_code == 403 and "no estás de guardia ahora" in refused.text
        assert 'id="ack"' not in refused.text
    with console.client() as client:
        log_in(console, client, "ana")
        page = client.get(path)
        assert page.status_code == 200 and 'id="ack"' in page.text and "Denuncia urgente" in page.text
        assert filed.code not in page.text and "encerradas" not in page.text
        with transaction(console.engine) as session:
            assert session.scalar(select(OnCallPage.acknowledged_at)) is None  # GET changed nothing
        console.clock.advance(minutes=2, seconds=30)
        done = client.post(path, data={"csrf": csrf(client, path)})
        assert done.status_code == 200 and "Aviso confirmado" in done.text
        assert f'href="/console/casos/{filed.report_id}"' in done.text
        twice = client.post(path, data={"csrf": csrf(client, "/mis-avisos")})
        assert twice.status_code == 409 and "Este enlace ya se usó: ana confirmó el aviso el" in twice.text
        mine = client.get("/mis-avisos")
        assert "Denuncia urgente" in mine.text and "sin confirmar" not in mine.text
        unknown = client.get("/guardia/confirmar/" + "A" * 43)
        assert unknown.status_code == 404 and "no existe" in unknown.text
        assert client.get("/guardia/confirmar/corto").status_code == 404
    with transaction(console.engine) as session:
        page_row = session.scalar(select(OnCallPage))
        assert page_row is not None and page_row.acknowledged_by == ana
        assert page_row.acknowledged_at == START + timedelta(minutes=3)
    actions = [(actor, action, detail) for actor, action, _, detail in audit(console) if "oncall" in action]
    assert actions == [
        ("carla", "oncall_ack_refused", "not_on_call"),
        ("ana", "oncall_acknowledged", "acknowledged"),
        ("ana", "oncall_ack_refused", "used"),
        ("ana", "oncall_ack_refused", "unknown"),
        ("ana", "oncall_ack_refused", "unknown"),
    ]


def test_an_expired_link_is_refused(console: Console, keyring: Keyring, mailbox: Mailbox) -> None:
    console.add("ana", "agent")
    ana = staff_id(console, "ana")
    with transaction(console.engine) as session:
        session.add(OnCallShift(staff_id=ana, starts_at=START, ends_at=START + timedelta(days=3), countries=[]))
        oncall.set_contact(session, ana, load_oncall_key(console_settings(console)), oncall.Contact(MAIL), START)
    file(console, keyring, danger_now=True, hours_ago=0)
    mails = len(mailbox.messages)
    oncall.escalate_due(console.engine, job_settings(console, keyring, mailbox), console.clock())
    link = LINK.search(read_mail(mailbox.wait_for(mails + 1)[-1])[2])
    assert link is not None
    path = link.group(0)[len(console.url) :]
    console.clock.advance(hours=24)
    with console.client() as client:
        log_in(console, client, "ana")
        page = client.get(path)
        assert page.status_code == 410 and "Este enlace caducó" in page.text and 'id="ack"' not in page.text
        assert client.post(path, data={"csrf": csrf(client, "/mis-avisos")}).status_code == 410
    assert [d for _, a, _, d in audit(console) if a == "oncall_ack_refused"] == ["expired", "expired"]


def console_settings(console: Console) -> Settings:
    return settings_for(
        str(console.engine.url), Path(str(console.engine.url).removeprefix("sqlite:///")).parent / "keys"
    )


def test_the_queue_shows_deadlines_overdue_first(console: Console, keyring: Keyring) -> None:
    fresh_urgent = file(console, keyring, danger_now=True, hours_ago=0.5)
    old_normal = file(console, keyring, hours_ago=80)  # 72 h to answer: overdue
    late_urgent_seen = file(console, keyring, danger_now=True, hours_ago=3)  # acted on: not overdue
    recent_normal = file(console, keyring, hours_ago=10)
    with transaction(console.engine) as session:
        change_status(session, late_urgent_seen.report_id, "in_review", "1", None, keyring.keys, START)
    with signed_in(console, "ana") as client:
        ids = queue_ids(client)
        assert ids == [r.report_id for r in (old_normal, late_urgent_seen, fresh_urgent, recent_normal)]
        page = client.get("/casos").text
        assert page.count("VENCIDA") == 1 and "Primero las vencidas" in page
        row = page.split(f'data-id="{old_normal.report_id}"')[1].split("</tr>")[0]
        deadline = (START - timedelta(hours=80) + timedelta(hours=72)).strftime("%Y-%m-%d %H:%M")
        assert f'class="due overdue">{deadline}' in row and "VENCIDA" in row
        fresh = page.split(f'data-id="{fresh_urgent.report_id}"')[1].split("</tr>")[0]
        assert (START + timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M") in fresh and "VENCIDA" not in fresh


def test_statistics_show_time_to_acknowledge_and_to_first_action(console: Console, keyring: Keyring) -> None:
    console.add("ana", "agent")
    ana = staff_id(console, "ana")
    reports = [file(console, keyring, danger_now=True, hours_ago=0) for _ in range(3)]
    with transaction(console.engine) as session:
        for minutes, report in zip((6, 20), reports, strict=False):
            session.add(
                OnCallPage(
                    subject=f"report:{report.report_id}",
                    report_id=report.report_id,
                    step=0,
                    level="on_call",
                    staff_id=ana,
                    created_at=START,
                    sent_at=START,
                    channels="email",
                    token_hash=oncall.token_hash(report.report_id),
                    expires_at=START + timedelta(days=1),
                    acknowledged_at=START + timedelta(minutes=minutes),
                    acknowledged_by=ana,
                )
            )
        for minutes, report in zip((30, 90, 60), reports, strict=True):
            at = START + timedelta(minutes=minutes)
            change_status(session, report.report_id, "in_review", "ana", None, keyring.keys, at)
    with signed_in(console, "sara", "supervisor") as client:
        page = client.get("/estadisticas").text
    assert re.search(r'id="time-acknowledge">mediana 13 min · p90 20 min \(2\)<', page)
    assert re.search(r'id="time-first_action">mediana 60 min · p90 90 min \(3\)<', page)


def test_a_shift_and_an_acknowledgement_in_chromium(
    browser: Browser, console: Console, keyring: Keyring, mailbox: Mailbox
) -> None:
    console.add("sara", "supervisor")
    console.add("ana", "agent")
    ana = staff_id(console, "ana")
    dialogs: list[str] = []
    with new_page(browser, dialogs) as page:
        login_with_totp(page, console.url, "sara", PASSWORD, console.code("sara"))
        page.click("header nav >> text=Guardias")
        expect(page.locator("h1")).to_have_text("Guardias")
        page.select_option("#staff", str(ana))
        page.fill("#starts", "2026-11-29T12:00")
        page.fill("#ends", "2026-11-29T20:00")
        page.fill("#countries", "GT")
        page.click("#new-shift button[type=submit]")
        expect(page.locator(".message")).to_have_text("Turno creado para ana.")
        expect(page.locator("#on-call-now")).to_have_text("ana")
        shot(page, "oncall-shifts")
        page.click("header nav form button[type=submit]")
        expect(page.locator("h1")).to_have_text("Iniciar sesión")
        console.clock.advance(seconds=30)
        login_with_totp(page, console.url, "ana", PASSWORD, console.code("ana"))
        page.click("header nav >> text=Mis avisos")
        page.fill("#email", MAIL)
        page.click("#contact button[type=submit]")
        expect(page.locator(".message")).to_have_text("Datos de aviso guardados (correo).")
        file(console, keyring, danger_now=True, hours_ago=0)
        mails = len(mailbox.messages)
        oncall.escalate_due(console.engine, job_settings(console, keyring, mailbox), console.clock())
        link = LINK.search(read_mail(mailbox.wait_for(mails + 1)[-1])[2])
        assert link is not None
        page.click("header nav form button[type=submit]")  # signed out: the link leads through the login
        console.clock.advance(seconds=30)
        page.goto(link.group(0))
        expect(page.locator("h1")).to_have_text("Iniciar sesión")
        page.fill("#username", "ana")
        page.fill("#password", PASSWORD)
        page.click("main button[type=submit]")
        page.fill("#code", console.code("ana"))
        page.click("main button[type=submit]")
        expect(page).to_have_url(link.group(0))
        expect(page.locator("h1")).to_have_text("Confirmar aviso de guardia")
        shot(page, "oncall-ack")
        page.click("#ack button[type=submit]")
        expect(page.locator(".message")).to_have_text("Aviso confirmado. Gracias: nadie más será avisado.")
        page.goto(link.group(0))
        expect(page.locator(".error")).to_contain_text("Este enlace ya se usó: ana confirmó el aviso el")
        expect(page.locator("#ack")).to_have_count(0)
    assert dialogs == []
    with transaction(console.engine) as session:
        acknowledged = session.scalar(select(OnCallPage.acknowledged_by))
        assert acknowledged == ana and session.get(StaffAccount, ana) is not None


def test_only_an_acknowledge_link_is_returned_to_after_login(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        assert client.get("/casos").headers["location"] == "/console/login"
        log_in(console, client, "ana")  # asserts the landing page is home, not the queue
