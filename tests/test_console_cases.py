"""Queue and case work over real HTTP (uvicorn, SQLite, a test clock): the queue order and
filters, the report page opened with the staff key (each view audited), status changes,
assignment, notes, referrals to the facts directory and messages the tipster reads with
their code."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from console.directory import contacts_for, directory
from reports.db import transaction
from reports.models import AuditEntry, CaseAssignment, CaseNote, Referral, Report, StaffAccount, StatusChange
from reports.service import FiledReport, ReportDraft, add_information, file_report, look_up_code, tipster_view
from tests.db_fixtures import Keyring
from tests.test_console_web import START, Console, csrf, log_in, serve

SCRIPT = "<script>alert(1)</script>"
ROW = re.compile(r'class="case-row" data-id="([0-9a-f-]{36})"')


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring) -> Iterator[Console]:
    assert keyring.directory == tmp_path / "keys"  # the console reads the same keyring
    with serve(tmp_path) as served:
        yield served


def file(
    console: Console,
    keyring: Keyring,
    what: str = "Tienen a tres personas encerradas en un taller",
    *,
    country: str | None = "GT",
    kind: str | None = "labour",
    danger_now: bool | None = False,
    hours_ago: float = 1,
) -> FiledReport:
    draft = ReportDraft(
        what=what,
        country=country,
        place="zona 1",
        when="la semana pasada",
        people="3",
        minors=False,
        kind=kind,
        danger_now=danger_now,
    )
    with transaction(console.engine) as session:
        return file_report(session, draft, keyring.keys, START - timedelta(hours=hours_ago), notify_channels=())


def staff_id(console: Console, username: str) -> int:
    with transaction(console.engine) as session:
        return session.scalars(select(StaffAccount.id).where(StaffAccount.username == username)).one()


def audit(console: Console) -> list[tuple[str | None, str, str | None, str | None]]:
    with transaction(console.engine) as session:
        return [
            (e.actor, e.action, e.target, e.detail) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


@contextmanager
def signed_in(console: Console, username: str, role: str = "agent") -> Iterator[httpx.Client]:
    console.add(username, role)
    with console.client() as client:
        log_in(console, client, username)
        yield client


def queue_ids(client: httpx.Client, query: str = "") -> list[str]:
    page = client.get(f"/casos{query}")
    assert page.status_code == 200, page.text
    return ROW.findall(page.text)


def test_queue_puts_urgent_first_then_oldest_and_filters(console: Console, keyring: Keyring) -> None:
    old_normal = file(console, keyring, hours_ago=50)
    new_urgent = file(console, keyring, country="MX", kind="sexual", danger_now=True, hours_ago=1)
    newer_normal = file(console, keyring, kind="sexual", hours_ago=10)
    old_urgent = file(console, keyring, kind="child", danger_now=True, hours_ago=30)
    assert new_urgent.priority == old_urgent.priority == "urgent" and old_normal.priority != "urgent"
    with signed_in(console, "ana") as client:
        expected = [old_urgent, new_urgent, old_normal, newer_normal]
        assert queue_ids(client) == [r.report_id for r in expected]
        assert queue_ids(client, "?pais=GT") == [r.report_id for r in (old_urgent, old_normal, newer_normal)]
        assert queue_ids(client, "?tipo=sexual") == [new_urgent.report_id, newer_normal.report_id]
        assert queue_ids(client, "?pais=MX&tipo=labour") == []
        token = csrf(client, f"/casos/{old_normal.report_id}")
        closed = client.post(f"/casos/{old_normal.report_id}/estado", data={"csrf": token, "status": "closed"})
        assert closed.status_code == 303
        assert old_normal.report_id not in queue_ids(client)  # the queue shows open reports
        assert queue_ids(client, "?estado=closed") == [old_normal.report_id]
        assert len(queue_ids(client, "?estado=todos")) == 4
        taken = client.post(f"/casos/{newer_normal.report_id}/asignar", data={"csrf": token, "staff_id": ""})
        assert taken.status_code == 403  # an agent cannot unassign
        ana = staff_id(console, "ana")
        taken = client.post(f"/casos/{newer_normal.report_id}/asignar", data={"csrf": token, "staff_id": str(ana)})
        assert taken.status_code == 303
        assert queue_ids(client, f"?asignado={ana}") == [newer_normal.report_id]
        assert newer_normal.report_id not in queue_ids(client, "?asignado=nadie")
        bad = client.get("/casos", params={"pais": SCRIPT, "tipo": "nada"})
        assert bad.status_code == 200 and "Filtro no válido, no aplicado: país, tipo" in bad.text
        assert SCRIPT not in bad.text and len(ROW.findall(bad.text)) == 3


def test_report_page_shows_the_opened_report_and_audits_every_view(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring, what=f"Me obligan a trabajar {SCRIPT}")
    with transaction(console.engine) as session:
        add_information(session, filed.report_id, "Cambiaron de dirección el lunes", keyring.keys, START)
    with signed_in(console, "ana") as client:
        for _ in range(2):
            page = client.get(f"/casos/{filed.report_id}")
            assert page.status_code == 200
            assert "Me obligan a trabajar &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
            assert SCRIPT not in page.text
            assert "Cambiaron de dirección el lunes" in page.text and "zona 1" in page.text
            assert "nuevo" in page.text  # the Spanish label of "received"
    views = [entry for entry in audit(console) if entry[1] == "report_viewed"]
    assert views == [("ana", "report_viewed", f"denuncia {filed.report_id}", None)] * 2
    assert not any("obligan" in str(entry) for entry in audit(console))  # never report text


def test_status_change_and_referral_are_recorded_and_audited(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    contact = next(c for c in contacts_for("GT")["GT"] if c.confidence == "verified")
    with signed_in(console, "ana") as client:
        page = client.get(f"/casos/{filed.report_id}")
        assert contact.label in page.text and "verificado" in page.text and "secundario" in page.text
        assert set(contacts_for("GT")) == {"GT"} and "MX" in directory()
        token = csrf(client, f"/casos/{filed.report_id}")
        data = {"csrf": token, "status": "in_review", "status_note": f"Revisando {SCRIPT}"}
        changed = client.post(f"/casos/{filed.report_id}/estado", data=data)
        assert changed.status_code == 303 and changed.headers["location"].endswith("?hecho=estado")
        page = client.get(f"/casos/{filed.report_id}?hecho=estado")
        assert "Estado cambiado." in page.text and "nuevo → en revisión (ana)" in page.text
        assert "Revisando &lt;script&gt;" in page.text
        unknown = client.post(f"/casos/{filed.report_id}/derivar", data={"csrf": token, "institution": "intl.crm"})
        assert unknown.status_code == 400 and "Elija una institución del directorio" in unknown.text
        referred = client.post(f"/casos/{filed.report_id}/derivar", data={"csrf": token, "institution": contact.key})
        assert referred.status_code == 303
        page = client.get(f"/casos/{filed.report_id}")
        assert f"{contact.label} (GT)" in page.text and "confianza: ✅ verificado" in page.text
    ana = staff_id(console, "ana")
    with transaction(console.engine) as session:
        changes = session.scalars(select(StatusChange).where(StatusChange.report_id == filed.report_id)).all()
        referral = session.scalars(select(Referral)).one()
        report = session.get(Report, filed.report_id)
        assert report is not None and report.status == "in_review"  # "referred" once sent (test_console_referrals)
    assert [(c.new_status, c.actor) for c in changes] == [("received", None), ("in_review", str(ana))]
    assert changes[1].note_sealed is not None and b"Revisando" not in changes[1].note_sealed
    assert (referral.institution_key, referral.country, referral.staff_id) == (contact.key, "GT", ana)
    assert referral.state == "draft"  # nothing is sent without another supervisor's approval
    target = f"denuncia {filed.report_id}"
    actions = audit(console)
    assert ("ana", "status_changed", target, "in_review") in actions
    assert ("ana", "referral_drafted", target, f"derivación {referral.id}: {contact.key}") in actions


def test_an_overlong_note_is_refused_and_kept_in_the_form(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    long_note = "Llamé a la fiscalía. " * 191 + "<b>fin</b>"  # 4021 characters
    assert len(long_note) == 4021
    with signed_in(console, "ana") as client:
        token = csrf(client, f"/casos/{filed.report_id}")
        refused = client.post(f"/casos/{filed.report_id}/nota", data={"csrf": token, "note": long_note})
        assert refused.status_code == 400
        assert "El texto tiene 4021 caracteres; el máximo es 4000" in refused.text
        assert long_note.replace("<b>", "&lt;b&gt;").replace("</b>", "&lt;/b&gt;") in refused.text
        empty = client.post(f"/casos/{filed.report_id}/nota", data={"csrf": token, "note": "   "})
        assert empty.status_code == 400 and "Escriba un texto" in empty.text
        with transaction(console.engine) as session:
            assert session.scalars(select(CaseNote)).all() == []
        saved = client.post(f"/casos/{filed.report_id}/nota", data={"csrf": token, "note": long_note[:4000]})
        assert saved.status_code == 303
        page = client.get(saved.headers["location"].removeprefix("/console"))
        assert "Nota guardada." in page.text and long_note[:4000] in page.text
    with transaction(console.engine) as session:
        note = session.scalars(select(CaseNote)).one()
    assert note.author_id == staff_id(console, "ana") and b"fiscal" not in note.sealed_body
    assert ("ana", "note_added", f"denuncia {filed.report_id}", None) in audit(console)


def test_a_message_for_the_tipster_is_read_with_their_code(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    text = "Gracias. Hemos pasado su denuncia a la fiscalía <i>hoy</i>."
    with signed_in(console, "ana") as client:
        token = csrf(client, f"/casos/{filed.report_id}")
        sent = client.post(f"/casos/{filed.report_id}/mensaje", data={"csrf": token, "message": text})
        assert sent.status_code == 303
        page = client.get(f"/casos/{filed.report_id}")
        assert "a la fiscalía &lt;i&gt;hoy&lt;/i&gt;." in page.text
    with transaction(console.engine) as session:
        lookup = look_up_code(session, filed.code, "tipster-sender", keyring.keys, now=START)
        assert lookup.report_id == filed.report_id and lookup.tipster_key is not None
        view = tipster_view(session, filed.report_id, lookup.tipster_key)
    assert view.messages == (text,)
    assert ("ana", "tipster_message", f"denuncia {filed.report_id}", None) in audit(console)


def test_only_supervisors_assign_to_someone_else(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    console.add("beto", "agent")
    beto = staff_id(console, "beto")
    with signed_in(console, "ana") as agent:
        token = csrf(agent, f"/casos/{filed.report_id}")
        refused = agent.post(f"/casos/{filed.report_id}/asignar", data={"csrf": token, "staff_id": str(beto)})
        assert refused.status_code == 403 and "Solo supervisión" in refused.text
        with transaction(console.engine) as session:
            assert session.get(CaseAssignment, filed.report_id) is None
    with signed_in(console, "sara", "supervisor") as supervisor:
        token = csrf(supervisor, f"/casos/{filed.report_id}")
        assigned = supervisor.post(f"/casos/{filed.report_id}/asignar", data={"csrf": token, "staff_id": str(beto)})
        assert assigned.status_code == 303
        missing = supervisor.post(f"/casos/{filed.report_id}/asignar", data={"csrf": token, "staff_id": "999"})
        assert missing.status_code == 400 and "Esa cuenta no existe" in missing.text
        assert "Asignada a</dt><dd>beto" in supervisor.get(f"/casos/{filed.report_id}").text
    with transaction(console.engine) as session:
        assignment = session.get(CaseAssignment, filed.report_id)
        assert assignment is not None and assignment.staff_id == beto
    actions = audit(console)
    assert ("sara", "case_assigned", f"denuncia {filed.report_id}", "a beto") in actions
    assert ("ana", "forbidden", f"denuncia {filed.report_id}", None) in actions


def test_wrong_report_ids_get_the_404_page(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    with signed_in(console, "ana") as client:
        token = csrf(client, f"/casos/{filed.report_id}")
        for wrong in (str(uuid.uuid4()), "abc", "1%27%20OR%201=1", SCRIPT.replace("/", "")):
            page = client.get(f"/casos/{wrong}")
            assert page.status_code == 404 and "Esa denuncia no existe" in page.text, wrong
            assert SCRIPT not in page.text
        missing = str(uuid.uuid4())
        for action, data in (
            ("estado", {"status": "closed"}),
            ("nota", {"note": "hola"}),
            ("derivar", {"institution": contacts_for("GT")["GT"][0].key}),
            ("mensaje", {"message": "hola"}),
            ("asignar", {"staff_id": str(staff_id(console, "ana"))}),
        ):
            answer = client.post(f"/casos/{missing}/{action}", data={"csrf": token, **data})
            assert answer.status_code == 404 and "Esa denuncia no existe" in answer.text, action
        bad_status = client.post(f"/casos/{filed.report_id}/estado", data={"csrf": token, "status": "borrado"})
        assert bad_status.status_code == 400 and "Estado no válido" in bad_status.text


def test_a_post_without_csrf_is_refused_and_changes_nothing(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    with signed_in(console, "ana") as client:
        for action, data in (
            ("estado", {"status": "closed"}),
            ("nota", {"note": "hola"}),
            ("mensaje", {"message": "x"}),
        ):
            refused = client.post(f"/casos/{filed.report_id}/{action}", data=data)
            assert refused.status_code == 403 and "Formulario caducado" in refused.text
    with transaction(console.engine) as session:
        report = session.get(Report, filed.report_id)
        assert report is not None and report.status == "received"
        assert session.scalars(select(CaseNote)).all() == [] and report.tipster_messages == []


def test_the_report_page_needs_a_signed_in_account(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring)
    with console.client() as client:
        assert client.get(f"/casos/{filed.report_id}").headers["location"] == "/console/login"
        assert client.get("/casos").headers["location"] == "/console/login"
    assert not any(entry[1] == "report_viewed" for entry in audit(console))
