"""Four-eyes referrals to an institution (reports/referrals.py, console/referrals.py): the
rules on their own, then over real HTTP (uvicorn, SQLite, a local SMTP server as the
institution's inbox) and in a real browser. The e-mail path uses the one directory contact
whose sourced value is an e-mail address (content/facts.yml); the message only ever reaches
the test's local SMTP server."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine, select, text

from console import auth
from console import referrals as pages
from console.directory import Contact, contacts_for, directory
from reports import crypto, referrals
from reports.config import Settings
from reports.db import alembic_config, make_engine, transaction, upgrade
from reports.models import Referral, Report, StaffAccount
from reports.service import FiledReport, ReportDraft, file_report
from tests.browser import PHONE as PHONE_SCREEN
from tests.browser import fits_the_width, login_with_totp, new_page, open_report, report_fact, shot
from tests.conftest import Mailbox
from tests.db_fixtures import Keyring
from tests.test_console_cases import audit, signed_in, staff_id
from tests.test_console_web import PASSWORD, START, Console, csrf, serve

PHONE = "+50255550123"  # the tipster's (made-up) reply address, sealed in the report


def email_contact() -> Contact:
    """The directory's contact with a sourced e-mail address (the only way an address is chosen)."""
    found = [c for contacts in directory().values() for c in contacts if c.email]
    assert found, "no directory contact has a sourced e-mail address: the e-mail path cannot be tested"
    return found[0]


def received(raw: str) -> tuple[str, str, str, str]:
    """(From, To, Subject, body) of a message the local SMTP server kept."""
    message = message_from_string(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return str(message["From"]), str(message["To"]), str(message["Subject"]), message.get_content()


def smtp(tmp_path: Path, mailbox: Mailbox) -> Settings:
    """The console's outgoing mail: the local SMTP server standing for the institution's."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'console.db'}",
        keys_dir=tmp_path / "keys",
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_from="linea@hotline.test",
    )


@pytest.fixture
def console(tmp_path: Path, keyring: Keyring, mailbox: Mailbox) -> Iterator[Console]:
    assert keyring.directory == tmp_path / "keys"
    with serve(tmp_path, reports=smtp(tmp_path, mailbox)) as served:
        yield served


def file(console: Console, keyring: Keyring, country: str, with_contact: bool = False) -> FiledReport:
    draft = ReportDraft(
        what="Retienen a cuatro mujeres en un bar y les quitaron los documentos",
        country=country,
        place="barrio El Centro",
        when="desde enero",
        people="4",
        minors=False,
        kind="sexual",
        danger_now=False,
        contact_consent=with_contact,
        reply_to=crypto.seal_contact(keyring.keys.public_key, "whatsapp", PHONE) if with_contact else None,
        sender="tipster-1" if with_contact else None,
        channel="whatsapp" if with_contact else None,
    )
    with transaction(console.engine) as session:
        return file_report(session, draft, keyring.keys, START - timedelta(hours=2), notify_channels=())


def the_referral(console: Console) -> Referral:
    with transaction(console.engine) as session:
        referral = session.scalars(select(Referral).order_by(Referral.id.desc())).first()
        assert referral is not None
        session.expunge(referral)
        return referral


def prepare(client: httpx.Client, report_id: str, institution: str, **extra: object) -> httpx.Response:
    fields = extra.pop("campo", ["country", "kind", "what", "place", "when", "people"])
    data = {"csrf": csrf(client, f"/casos/{report_id}"), "institution": institution, "campo": fields, **extra}
    return client.post(f"/casos/{report_id}/derivar", data=data)


def step(client: httpx.Client, report_id: str, referral_id: int, name: str, **data: str) -> httpx.Response:
    token = csrf(client, f"/casos/{report_id}")
    return client.post(f"/casos/{report_id}/derivaciones/{referral_id}/{name}", data={"csrf": token, **data})


# -- the rules --------------------------------------------------------------------------------------


def test_the_hash_covers_the_sealed_summary_fields_and_consent(keyring: Keyring) -> None:
    referral = Referral(
        institution_key="gt.mp",
        shared_fields=["what"],
        contact_consent_how=None,
        summary_sealed=crypto.seal_text(keyring.keys.public_key, "Resumen"),
    )
    first = referrals.content_hash(referral)
    assert re.fullmatch(r"[0-9a-f]{64}", first) and first == referrals.content_hash(referral)
    referral.summary_sealed = crypto.seal_text(keyring.keys.public_key, "Resumen")  # same words, new content
    second = referrals.content_hash(referral)
    assert second != first
    referral.shared_fields = ["what", "place"]
    assert referrals.content_hash(referral) != second


def test_the_contact_is_shared_only_with_a_recorded_consent() -> None:
    with_contact = Report(contact_sealed=b"sealed")
    without = Report(contact_sealed=None)
    with pytest.raises(referrals.Invalid, match="contact_without_consent"):
        referrals.check_fields(with_contact, ["what", "contact"], None)
    with pytest.raises(referrals.Invalid, match="no_contact"):
        referrals.check_fields(without, ["contact"], "phone")
    with pytest.raises(referrals.Invalid, match="bad_consent"):
        referrals.check_fields(with_contact, ["contact"], "asumido")
    with pytest.raises(referrals.Invalid, match="bad_field"):
        referrals.check_fields(with_contact, ["code"], None)
    assert referrals.check_fields(with_contact, ["contact", "what"], "phone") == ["what", "contact"]
    not_shared = Referral(shared_fields=["what"])
    assert referrals.contact_leaks(f"llamar al {PHONE}", not_shared, PHONE)
    assert referrals.contact_leaks("llamar al 5025 5550 123", not_shared, PHONE)  # spaced out, still the number
    assert not referrals.contact_leaks("sin contacto", not_shared, PHONE)
    assert not referrals.contact_leaks(f"llamar al {PHONE}", Referral(shared_fields=["contact"]), PHONE)


def test_only_the_directory_gives_an_email_address() -> None:
    contact = email_contact()
    assert contact.sources and contact.value == contact.email
    phones = [c for contacts in directory().values() for c in contacts if c.kind == "phone"]
    assert phones and all(c.email is None for c in phones)


def test_the_generated_summary_has_the_chosen_fields_and_fits_the_limit(keyring: Keyring) -> None:
    body = {"what": "Los encierran de noche", "place": "zona 1", "when": None, "people": "3"}
    opened: dict[str, Any] = {
        "id": "0123abcd-0000-4000-8000-000000000000",
        "created_at": START,
        "country": "GT",
        "kind": "labour",
        "minors": None,
        "danger_now": True,
        "body": body,
        "additions": [{"text": "Se los llevaron a otra finca"}],
        "contact": ("sms", PHONE),
    }
    summary = pages.generate_summary(opened, ["country", "kind", "minors", "danger_now", "what", "when"], None)
    for line in (
        "Referencia: 0123abcd.",
        "País: Guatemala (GT)",
        "Tipo de situación: trabajo forzoso",
        "Hay menores: no se sabe",
        "Peligro inmediato: sí",
        "Qué pasa: Los encierran de noche",
        "Cuándo: —",
        "No compartimos ningún dato de contacto",
    ):
        assert line in summary, line
    assert "zona 1" not in summary and "otra finca" not in summary and PHONE not in summary
    shared = pages.generate_summary(opened, ["additions", "contact"], "written")
    assert "Se los llevaron a otra finca" in shared and f"{PHONE} (sms)" in shared and "lo dio por escrito" in shared
    long = {**opened, "body": {**body, "what": "x" * 4000}, "additions": [{"text": "y" * 4000}] * 3}
    cut = pages.generate_summary(long, ["what", "additions"], None)
    assert len(cut) == referrals.MAX_SUMMARY_CHARS and "…" in cut and cut.endswith("canal acordado.")


def unreachable_smtp(tmp_path: Path) -> Settings:
    with socket.socket() as probe:  # a port nobody listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Settings(
        f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "keys", smtp_host="127.0.0.1", smtp_port=port, smtp_from="l@h.test"
    )


def approved(console: Console, keyring: Keyring, contact: Contact, report_id: str) -> int:
    """A referral prepared by ana and approved by beto, through the rules (the flow's HTTP
    steps are tested above)."""
    console.add("ana", "agent")
    console.add("beto", "supervisor")
    ana_id, beto_id = staff_id(console, "ana"), staff_id(console, "beto")
    with transaction(console.engine) as session:
        report = session.get(Report, report_id)
        ana, beto = session.get(StaffAccount, ana_id), session.get(StaffAccount, beto_id)
        assert report is not None and ana is not None and beto is not None
        row = referrals.draft(
            session, report, contact.key, contact.country, ["what"], None, "Resumen", ana, keyring.keys, START
        )
        referrals.submit(session, row, ana, START)
        referrals.decide(session, row, beto, True, row.content_hash or "", "", keyring.keys, START)
        return row.id


def test_two_sends_at_once_send_one_email(console: Console, keyring: Keyring, mailbox: Mailbox) -> None:
    contact = email_contact()
    filed = file(console, keyring, contact.country)
    before = len(mailbox.messages)
    referral_id = approved(console, keyring, contact, filed.report_id)
    clients = [signed_in(console, name) for name in ("carla", "dario")]
    with clients[0] as carla, clients[1] as dario:
        tokens = [csrf(client, f"/casos/{filed.report_id}") for client in (carla, dario)]
        start = threading.Barrier(2)

        def send(client: httpx.Client, token: str) -> int:
            start.wait()
            path = f"/casos/{filed.report_id}/derivaciones/{referral_id}/correo"
            return client.post(path, data={"csrf": token}).status_code

        with ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(send, (carla, dario), tokens))
    assert answers == [303, 403]  # one sent it; the other found it sent
    assert len(mailbox.wait_for(before + 1)) == before + 1
    assert len(mailbox.messages) == before + 1
    assert [e[1] for e in audit(console)].count("referral_sent") == 1


def test_an_email_the_server_refuses_or_cannot_send_leaves_the_referral_approved(
    tmp_path: Path, keyring: Keyring
) -> None:
    contact = email_contact()
    with serve(tmp_path, reports=unreachable_smtp(tmp_path)) as console:
        filed = file(console, keyring, contact.country)
        referral_id = approved(console, keyring, contact, filed.report_id)
        with signed_in(console, "carla") as client:
            failed = step(client, filed.report_id, referral_id, "correo")
            assert failed.status_code == 502 and "El servidor de correo no aceptó el mensaje" in failed.text
        assert the_referral(console).state == "approved"
        refusal = [e for e in audit(console) if e[1] == "referral_send_failed"]
        assert [(e[0], e[2]) for e in refusal] == [("carla", f"denuncia {filed.report_id}")]
        assert refusal[0][3] and refusal[0][3].startswith(f"derivación {referral_id}: {contact.key} · ")
    bare = tmp_path / "sin-correo"
    bare.mkdir()
    (bare / "keys").symlink_to(tmp_path / "keys")  # the same keyring
    with serve(bare) as console:  # no HOTLINE_SMTP_*: the page says so, nothing is sent
        filed = file(console, keyring, contact.country)
        referral_id = approved(console, keyring, contact, filed.report_id)
        with signed_in(console, "carla") as client:
            assert "El correo saliente no está configurado" in client.get(f"/casos/{filed.report_id}").text
            off = step(client, filed.report_id, referral_id, "correo")
            assert off.status_code == 409 and "no está configurado" in off.text
        assert the_referral(console).state == "approved"


def test_the_whole_path_on_sqlite_and_postgresql(engine: Engine, keyring: Keyring) -> None:
    """The rules against each database the line runs on (JSON fields, dates, row locks)."""
    ana = auth.create_account(engine, "ana", "agent", PASSWORD, START, created_by=None)
    sara = auth.create_account(engine, "sara", "supervisor", PASSWORD, START, created_by=None)
    draft = ReportDraft("Los encierran de noche", "GT", "zona 1", None, "3", False, "labour", False)
    with transaction(engine) as session:
        report_id = file_report(session, draft, keyring.keys, START, notify_channels=()).report_id
    with transaction(engine) as session:
        report = session.get(Report, report_id)
        author, approver = session.get(StaffAccount, ana.id), session.get(StaffAccount, sara.id)
        assert report is not None and author is not None and approver is not None
        row = referrals.draft(
            session, report, "gt.x", "GT", ["what", "place"], None, "Resumen", author, keyring.keys, START
        )
        referrals.submit(session, row, author, START)
        with pytest.raises(referrals.NotAllowed, match="not_supervisor"):
            referrals.decide(session, row, author, True, row.content_hash or "", "", keyring.keys, START)
        referrals.decide(session, row, approver, True, row.content_hash or "", "", keyring.keys, START)
        referrals.mark_sent(session, row, "pdf", None, approver, START)
        with pytest.raises(referrals.Invalid, match="bad_date"):
            referrals.record_outcome(
                session, row, "other", "", START.date() + timedelta(days=1), approver, keyring.keys, START
            )
        referrals.record_outcome(session, row, "other", "Llamaron", START.date(), approver, keyring.keys, START)
        referral_id = row.id
    with transaction(engine) as session:
        stored = session.get(Referral, referral_id, with_for_update=True)
        assert stored is not None
        assert (stored.state, stored.shared_fields, stored.sent_via, stored.outcome_on) == (
            "answered",
            ["what", "place"],
            "pdf",
            START.date(),
        )
        assert stored.approved_hash == stored.content_hash == referrals.content_hash(stored)
        assert crypto.unseal_text(keyring.private_key, stored.outcome_note_sealed or b"") == "Llamaron"


# -- over HTTP --------------------------------------------------------------------------------------


def test_prepare_approve_by_another_supervisor_email_and_outcome(
    console: Console, keyring: Keyring, mailbox: Mailbox
) -> None:
    contact = email_contact()
    filed = file(console, keyring, contact.country)
    before = len(mailbox.messages)  # the server is the session's: earlier tests' mail stays
    console.add("sara", "supervisor")
    with signed_in(console, "ana") as ana:
        assert prepare(ana, filed.report_id, contact.key).status_code == 303
        referral = the_referral(console)
        page = ana.get(f"/casos/{filed.report_id}?hecho=derivacion_drafted").text
        assert "Borrador de derivación guardado" in page and "barrio El Centro" in page
        summary = page.split('name="summary"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]
        assert f"Referencia: {filed.report_id[:8]}" in summary and "No compartimos ningún dato de contacto" in summary
        edited = "Caso de posible explotación sexual en barrio El Centro, cuatro mujeres sin documentos."
        assert step(ana, filed.report_id, referral.id, "resumen", summary=edited).status_code == 303
        early = step(ana, filed.report_id, referral.id, "correo")  # not approved: nothing leaves
        assert early.status_code == 403 and "Nada se envía sin aprobación" in early.text
        assert step(ana, filed.report_id, referral.id, "solicitar").status_code == 303
        frozen = step(ana, filed.report_id, referral.id, "resumen", summary="otro texto")
        assert frozen.status_code == 409 and "congelado" in frozen.text
        refused = step(
            ana,
            filed.report_id,
            referral.id,
            "decidir",
            decision="approve",
            hash=the_referral(console).content_hash or "",
        )
        assert refused.status_code == 403 and "Solo supervisión" in refused.text  # an agent decides nothing
    assert len(mailbox.messages) == before
    pending = the_referral(console)
    assert pending.state == "pending" and pending.content_hash == referrals.content_hash(pending)
    with signed_in(console, "beto", "supervisor") as beto:
        stale = step(beto, filed.report_id, referral.id, "decidir", decision="approve", hash="0" * 64)
        assert stale.status_code == 409 and "cambió desde que la abrió" in stale.text
        page = beto.get(f"/casos/{filed.report_id}").text
        seen = re.search(r'name="hash" value="([0-9a-f]{64})"', page)
        assert seen and seen.group(1) == pending.content_hash and edited in page
        assert (
            step(beto, filed.report_id, referral.id, "decidir", decision="approve", hash=seen.group(1)).status_code
            == 303
        )
        sent = step(beto, filed.report_id, referral.id, "correo")
        assert sent.status_code == 303 and sent.headers["location"].endswith(
            f"derivacion_sent#derivacion-{referral.id}"
        )
        sender, to, subject, body = received(mailbox.wait_for(before + 1)[before])
        assert (sender, to, subject) == (
            "linea@hotline.test",
            contact.email,
            f"Derivación de caso {filed.report_id[:8]}",
        )
        assert body.strip() == edited  # exactly the approved summary
        again = step(beto, filed.report_id, referral.id, "correo")
        assert again.status_code == 403 and len(mailbox.messages) == before + 1  # sent once
        early = step(beto, filed.report_id, referral.id, "resultado", outcome="accepted", date="2020-01-01", note="")
        assert early.status_code == 400 and "Fecha no válida" in early.text
        day = START.date().isoformat()
        answered = step(
            beto, filed.report_id, referral.id, "resultado", outcome="accepted", date=day, note="Fiscal asignada"
        )
        assert answered.status_code == 303
        page = beto.get(f"/casos/{filed.report_id}").text
    assert "respondida" in page and "Aprobada por beto" in page and f"por correo a {contact.email}" in page
    assert f'aceptada el {day}: <span class="text">Fiscal asignada</span>' in page
    done = the_referral(console)
    assert (done.state, done.sent_via, done.sent_to, done.outcome, done.outcome_on) == (
        "answered",
        "email",
        contact.email,
        "accepted",
        START.date(),
    )
    assert done.decided_by == staff_id(console, "beto") and done.approved_hash == done.content_hash
    with transaction(console.engine) as session:
        report = session.get(Report, filed.report_id)
        assert report is not None and report.status == "referred"
    target, detail = f"denuncia {filed.report_id}", f"derivación {referral.id}: {contact.key}"
    entries = audit(console)
    for entry in (
        ("ana", "referral_drafted", target, detail),
        ("ana", "referral_edited", target, detail),
        ("ana", "referral_refused", target, f"{detail} · not_approved"),
        ("ana", "referral_submitted", target, detail),
        ("ana", "referral_refused", target, f"{detail} · not_supervisor"),
        ("beto", "referral_refused", target, f"{detail} · changed"),
        ("beto", "referral_approved", target, detail),
        ("beto", "referral_sent", target, f"{detail} · correo"),
        ("beto", "referral_outcome", target, f"{detail} · accepted"),
    ):
        assert entry in entries, entry
    assert not any("mujeres" in str(entry) or "Fiscal" in str(entry) for entry in entries)  # never report text


def test_the_author_cannot_approve_their_own_referral_even_as_a_supervisor(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring, "GT")
    contact = contacts_for("GT")["GT"][0]
    with signed_in(console, "sara", "supervisor") as sara:
        assert prepare(sara, filed.report_id, contact.key).status_code == 303
        referral = the_referral(console)
        assert step(sara, filed.report_id, referral.id, "solicitar").status_code == 303
        page = sara.get(f"/casos/{filed.report_id}").text
        assert "usted no puede aprobar su propia derivación" in page and 'value="approve"' not in page
        pending = the_referral(console)
        for decision in ("approve", "reject"):
            own = step(
                sara, filed.report_id, referral.id, "decidir", decision=decision, hash=pending.content_hash or ""
            )
            assert own.status_code == 403
            assert "No puede aprobar ni rechazar una derivación que preparó usted" in own.text
    after = the_referral(console)
    assert (after.state, after.decided_by, after.approved_hash) == ("pending", None, None)
    refusal = ("sara", "referral_self_decision_refused", f"denuncia {filed.report_id}")
    assert [entry[:3] for entry in audit(console)].count(refusal) == 2
    sara_id = staff_id(console, "sara")
    with pytest.raises(referrals.NotAllowed, match="own_referral"), transaction(console.engine) as session:
        row = session.get(Referral, referral.id)  # the rule itself, whoever calls it
        sara_account = session.get(StaffAccount, sara_id)
        assert row is not None and sara_account is not None
        referrals.decide(session, row, sara_account, True, row.content_hash or "", "", keyring.keys, START)


def test_a_rejected_referral_is_edited_back_to_draft_and_needs_a_new_approval(
    console: Console, keyring: Keyring
) -> None:
    filed = file(console, keyring, "GT")
    contact = contacts_for("GT")["GT"][0]
    console.add("sara", "supervisor")
    with signed_in(console, "ana") as ana:
        prepare(ana, filed.report_id, contact.key)
        referral = the_referral(console)
        step(ana, filed.report_id, referral.id, "solicitar")
    first_hash = the_referral(console).content_hash
    with signed_in(console, "beto", "supervisor") as beto:
        rejected = step(
            beto,
            filed.report_id,
            referral.id,
            "decidir",
            decision="reject",
            hash=first_hash or "",
            note="Falta el lugar",
        )
        assert rejected.status_code == 303
        assert "Rechazada por beto" in beto.get(f"/casos/{filed.report_id}").text
        assert step(beto, filed.report_id, referral.id, "pdf").status_code == 403  # rejected: nothing leaves
    with signed_in(console, "ana2") as other_agent:
        assert step(other_agent, filed.report_id, referral.id, "resumen", summary="x").status_code == 403
    with transaction(console.engine) as session:
        ana_id = session.scalars(select(StaffAccount.id).where(StaffAccount.username == "ana")).one()
        row = session.get(Referral, referral.id)
        ana_account = session.get(StaffAccount, ana_id)
        assert row is not None and ana_account is not None
        referrals.edit(session, row, "Con el lugar: barrio El Centro", ana_account, keyring.keys, None, START)
        assert (row.state, row.decided_by, row.approved_hash, row.content_hash) == ("draft", None, None, None)
        referrals.submit(session, row, ana_account, START)
        assert row.content_hash != first_hash  # a new content: a new approval


def test_a_change_after_approval_stops_the_send(console: Console, keyring: Keyring, mailbox: Mailbox) -> None:
    contact = email_contact()
    filed = file(console, keyring, contact.country)
    before = len(mailbox.messages)
    console.add("ana", "agent")
    console.add("beto", "supervisor")
    ana_id, beto_id = staff_id(console, "ana"), staff_id(console, "beto")
    with transaction(console.engine) as session:
        report = session.get(Report, filed.report_id)
        ana = session.get(StaffAccount, ana_id)
        beto = session.get(StaffAccount, beto_id)
        assert report is not None and ana is not None and beto is not None
        row = referrals.draft(
            session, report, contact.key, contact.country, ["what"], None, "Resumen", ana, keyring.keys, START
        )
        referrals.submit(session, row, ana, START)
        referrals.decide(session, row, beto, True, row.content_hash or "", "", keyring.keys, START)
        referral_id = row.id
    with transaction(console.engine) as session:  # a hand-made change in the database, after the approval
        session.execute(
            text("UPDATE referrals SET summary_sealed = :blob WHERE id = :id"),
            {"blob": crypto.seal_text(keyring.keys.public_key, "Otro texto"), "id": referral_id},
        )
    with signed_in(console, "carla", "agent") as client:
        for path in ("correo", "pdf"):
            refused = step(client, filed.report_id, referral_id, path)
            assert refused.status_code == 403 and "ya no es el aprobado" in refused.text
    assert len(mailbox.messages) == before and the_referral(console).state == "approved"
    assert ("carla", "referral_refused") in [(e[0], e[1]) for e in audit(console)]


def test_the_pdf_for_a_secure_channel_is_uncached_audited_and_exactly_the_approved_summary(
    console: Console, keyring: Keyring
) -> None:
    filed = file(console, keyring, "GT")
    contact = contacts_for("GT")["GT"][0]
    with signed_in(console, "ana") as ana:
        prepare(ana, filed.report_id, contact.key)
        referral = the_referral(console)
        assert step(ana, filed.report_id, referral.id, "pdf").status_code == 403  # a draft: nothing leaves
        step(ana, filed.report_id, referral.id, "solicitar")
    with signed_in(console, "beto", "supervisor") as beto:
        hash_ = the_referral(console).content_hash or ""
        step(beto, filed.report_id, referral.id, "decidir", decision="approve", hash=hash_)
        page = beto.get(f"/casos/{filed.report_id}").text
        assert "no tiene correo de esta institución" in page  # a phone line: only the PDF path
        assert step(beto, filed.report_id, referral.id, "correo").status_code == 409
        answer = step(beto, filed.report_id, referral.id, "pdf")
        again = step(beto, filed.report_id, referral.id, "pdf")  # the same channel, again: allowed, audited
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/pdf"
    assert answer.headers["cache-control"] == "no-store, private" and answer.headers["pragma"] == "no-cache"
    assert (
        answer.headers["content-disposition"]
        == f'attachment; filename="derivacion-{filed.report_id[:8]}-{referral.id}.pdf"'
    )
    assert answer.content.startswith(b"%PDF-") and again.content == answer.content
    sent = the_referral(console)
    summary = crypto.unseal_text(keyring.private_key, sent.summary_sealed or b"")
    assert answer.content == pages.render_pdf(sent, summary, contact.label)
    assert b"barrio El Centro" not in answer.content  # the text is drawn as glyphs, not stored in clear
    assert (sent.state, sent.sent_via, sent.sent_to) == ("sent", "pdf", None)
    target = f"denuncia {filed.report_id}"
    entries = [(e[0], e[1], e[2]) for e in audit(console)]
    assert entries.count(("beto", "referral_pdf_downloaded", target)) == 2
    assert entries.count(("beto", "referral_sent", target)) == 1
    assert ("ana", "referral_refused", target) in entries


def test_the_tipsters_contact_goes_only_with_their_recorded_consent(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring, "GT", with_contact=True)
    contact = contacts_for("GT")["GT"][0]
    with signed_in(console, "ana") as ana:
        page = ana.get(f"/casos/{filed.report_id}").text
        assert 'value="contact"' in page and "Cómo consintió la persona" in page
        refused = prepare(ana, filed.report_id, contact.key, campo=["what", "contact"])
        assert refused.status_code == 400 and "indique cómo consintió" in refused.text
        with transaction(console.engine) as session:
            assert session.scalars(select(Referral)).all() == []
        assert prepare(ana, filed.report_id, contact.key, campo=["what"]).status_code == 303
        without = the_referral(console)
        page = ana.get(f"/casos/{filed.report_id}").text
        assert PHONE not in page.split('name="summary"', 1)[1].split("</textarea>", 1)[0]
        leak = step(ana, filed.report_id, without.id, "resumen", summary=f"Llamar a la persona al {PHONE}")
        assert leak.status_code == 400 and "no consintió en compartirlo" in leak.text
        assert (
            prepare(ana, filed.report_id, contact.key, campo=["what", "contact"], consentimiento="phone").status_code
            == 303
        )
        shared = the_referral(console)
    summary = crypto.unseal_text(keyring.private_key, shared.summary_sealed or b"")
    assert f"{PHONE} (whatsapp)" in summary and "lo dijo por teléfono" in summary
    assert (shared.shared_fields, shared.contact_consent_how) == (["what", "contact"], "phone")
    assert crypto.unseal_text(keyring.private_key, without.summary_sealed or b"").count(PHONE) == 0
    refusals = [e for e in audit(console) if e[1] == "referral_refused"]
    assert [e[3].rsplit(" · ", 1)[1] for e in refusals if e[3]] == ["contact_without_consent", "contact_in_summary"]
    with signed_in(console, "carla") as other:  # a report without a contact offers none to share
        plain = file(console, keyring, "GT")
        page = other.get(f"/casos/{plain.report_id}").text
        assert 'value="contact"' not in page and "no guarda ningún contacto" in page
        assert (
            prepare(other, plain.report_id, contact.key, campo=["contact"], consentimiento="phone").status_code == 400
        )


def test_wrong_referral_requests_get_clear_answers(console: Console, keyring: Keyring) -> None:
    filed = file(console, keyring, "GT")
    other = file(console, keyring, "GT")
    contact = contacts_for("GT")["GT"][0]
    with signed_in(console, "ana") as ana:
        prepare(ana, filed.report_id, contact.key)
        referral = the_referral(console)
        unknown = prepare(ana, filed.report_id, "intl.crm")
        assert unknown.status_code == 400 and "Elija una institución del directorio" in unknown.text
        for report_id, referral_id in ((other.report_id, referral.id), (filed.report_id, 999999), (filed.report_id, 0)):
            missing = step(ana, report_id, referral_id, "solicitar")
            assert missing.status_code == 404, (report_id, referral_id)
        bad = step(ana, filed.report_id, referral.id, "decidir", decision="quizá", hash="")
        assert bad.status_code == 400 and "Elija aprobar o rechazar" in bad.text
        empty = step(ana, filed.report_id, referral.id, "resumen", summary="   ")
        assert empty.status_code == 400 and "El resumen está vacío" in empty.text
        no_csrf = ana.post(f"/casos/{filed.report_id}/derivaciones/{referral.id}/solicitar", data={})
        assert no_csrf.status_code == 403
    assert the_referral(console).state == "draft"


def test_referrals_from_before_the_approval_flow_stay_valid(tmp_path: Path, keyring: Keyring) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0011")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:  # rows as the console wrote them before this flow
            connection.execute(
                text(
                    "INSERT INTO reports (id, lookup_hash, tipster_public_key, created_at, updated_at, status,"
                    " priority, triage_score, triage_reasons, sealed_body, contact_consent)"
                    " VALUES ('r1', 'h1', :key, :at, :at, 'referred', 'normal', 0, '[]', :body, 0)"
                ),
                {"key": b"k" * 32, "at": START, "body": crypto.seal_text(keyring.keys.public_key, "{}")},
            )
            connection.execute(
                text(
                    "INSERT INTO referrals (report_id, institution_key, country, referred_at)"
                    " VALUES ('r1', 'gt.mp', 'GT', :at)"
                ),
                {"at": START},
            )
        upgrade(url)
        with transaction(engine) as session:
            old = session.scalars(select(Referral)).one()
            assert (old.state, old.summary_sealed, old.approved_hash) == ("recorded", None, None)
            with pytest.raises(referrals.NotAllowed):
                referrals.check_sendable(old)  # a noted referral is never sent by the new flow
    finally:
        engine.dispose()


# -- in the browser ---------------------------------------------------------------------------------


def sign_in(page: Page, console: Console, username: str, role: str) -> None:
    console.add(username, role)
    login_with_totp(page, console.url, username, PASSWORD, console.code(username))


def test_a_referral_prepared_approved_by_another_supervisor_sent_and_answered_in_the_browser(
    browser: Browser, console: Console, keyring: Keyring, mailbox: Mailbox
) -> None:
    contact = email_contact()
    filed = file(console, keyring, contact.country)
    before = len(mailbox.messages)
    dialogs: list[str] = []
    with new_page(browser, dialogs) as page:
        sign_in(page, console, "ana", "agent")
        open_report(page, filed.report_id)
        page.check(f"input[name=institution][value='{contact.key}']")
        page.uncheck("input[name=campo][value=people]")
        page.click("text=Preparar borrador de derivación")
        expect(page.locator(".message")).to_contain_text("Borrador de derivación guardado")
        card = page.locator("article.referral").first
        expect(card.locator(".referral-state")).to_have_text("borrador")
        summary = card.locator("textarea[name=summary]")
        expect(summary).to_contain_text("Qué pasa: Retienen a cuatro mujeres")
        expect(summary).not_to_contain_text("Personas: 4")
        summary.fill(summary.input_value() + "\nNota del equipo: caso prioritario.")
        card.locator("text=Guardar resumen").click()
        expect(page.locator(".message")).to_have_text("Resumen guardado.")
        page.locator("article.referral").first.locator("text=Enviar a aprobación").click()
        expect(page.locator(".message")).to_have_text("Derivación enviada a aprobación.")
        expect(page.locator("article.referral .referral-state")).to_have_text("pendiente de aprobación")
        expect(page.locator("article.referral textarea[name=summary]")).to_have_count(0)  # frozen
        expect(page.locator("article.referral button[value=approve]")).to_have_count(0)
        shot(page, "referral-pending")
    with new_page(browser, dialogs) as page:
        sign_in(page, console, "beto", "supervisor")
        open_report(page, filed.report_id)
        card = page.locator("article.referral").first
        expect(card.locator(".referral-summary")).to_contain_text("Nota del equipo: caso prioritario.")
        card.locator("button[value=approve]").click()
        expect(page.locator(".message")).to_have_text("Derivación aprobada: ya se puede enviar.")
        expect(page.locator("article.referral .referral-decision")).to_contain_text("Aprobada por beto")
        page.locator("article.referral").first.locator(f"text=Enviar por correo a {contact.email}").click()
        expect(page.locator(".message")).to_have_text("Derivación enviada por correo a la institución.")
        expect(report_fact(page, "Estado")).to_have_text("referido")
        card = page.locator("article.referral").first
        expect(card.locator(".referral-state")).to_have_text("enviada")
        expect(card.locator(".referral-sent")).to_contain_text(f"por correo a {contact.email}")
        _, to, _, body = received(mailbox.wait_for(before + 1)[before])
        assert to == contact.email and "Nota del equipo: caso prioritario." in body
        card.locator("select[name=outcome]").select_option("no_answer")
        card.locator("textarea[name=note]").fill("Sin acuse tras dos semanas")
        card.locator("text=Registrar respuesta").click()
        expect(page.locator(".message")).to_have_text("Respuesta de la institución registrada.")
        card = page.locator("article.referral").first
        expect(card.locator(".referral-state")).to_have_text("respondida")
        expect(card.locator(".referral-outcome")).to_have_text(
            f"sin respuesta el {START.date().isoformat()}: Sin acuse tras dos semanas"
        )
        shot(page, "referral-answered")
        page.set_viewport_size(PHONE_SCREEN)  # a phone: the referral's card fits the screen too
        page.reload()
        assert fits_the_width(page)
        shot(page, "referral-answered-phone")
    assert dialogs == []
    actions = [(e[0], e[1]) for e in audit(console) if e[1].startswith("referral_")]
    assert actions == [
        ("ana", "referral_drafted"),
        ("ana", "referral_edited"),
        ("ana", "referral_submitted"),
        ("beto", "referral_approved"),
        ("beto", "referral_sent"),
        ("beto", "referral_outcome"),
    ]
