"""Referring a case to an institution, with four eyes, on the report page (the rules are in
reports/referrals.py; this module is their pages, e-mail and PDF).

An agent chooses the institution from the directory (console/directory.py), the report's
fields to share (the tipster's contact only with their consent to share it, recorded with
how it was given) and gets a summary generated from content/referrals.yml, which they may
edit until they submit it. A supervisor other than the author approves or rejects exactly
what was submitted. Only then can it be sent: by e-mail, only to the address the directory
gives for that institution (a sourced fact whose value is an e-mail address; nothing typed,
nothing guessed) through the HOTLINE_SMTP_* server, or as a PDF downloaded for a secure
channel. Staff then record the institution's answer. Every step, and every refusal, is
audited (never report text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth, directory
from console.app import Console, console_of, redirect_to
from console.labels import console_labels, label, label_map
from console.pages import REPORT_ID, audit, form_text, in_transaction, not_found, path_value
from hotline.countries import country_names
from hotline.paths import CONTENT
from reports import crypto, referrals, service
from reports.config import Settings
from reports.keys import KeyringError, Keys
from reports.models import KINDS, Referral, Report, StaffAccount
from reports.notify import NotifyError, send_message

LABELS: dict[str, Any] = console_labels()["referrals"]
ERRORS = label_map("referrals", "errors")
STATE_NAMES = label_map("referrals", "states", keys=referrals.STATES)
FIELD_NAMES = label_map("referrals", "fields", keys=referrals.FIELDS)
CONSENT_NAMES = label_map("referrals", "consent_ways", keys=referrals.CONSENT_WAYS)
PATH_NAMES = label_map("referrals", "paths", keys=referrals.SEND_PATHS)
OUTCOME_NAMES = label_map("referrals", "outcomes", keys=referrals.OUTCOMES)
DECISION_NAMES = label_map("referrals", "decisions", keys=("approved", "rejected"))
KIND_NAMES = label_map("cases", "kinds", keys=KINDS)
DONE_KEYS = ("drafted", "edited", "submitted", "approved", "rejected", "sent", "outcome")
DONE = {f"derivacion_{key}": label("referrals", "done", key) for key in DONE_KEYS}  # ?hecho= -> message
AUDIT_DETAIL = label("referrals", "audit")
REPORT_TARGET = label("audit_log", "targets", "report")
PICK_INSTITUTION = label("cases", "pick_institution")
NO_KEY_TITLE = label("cases", "no_key_title")
NO_KEY = label("cases", "no_key")
REPORT_NOT_FOUND = label("cases", "not_found")
REFERRAL_ID = re.compile(r"[1-9][0-9]{0,8}")  # fits a 32-bit INTEGER column on PostgreSQL
PDF_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian fonts-dejavu-core: all of Unicode's Latin
PDF_HEADERS = {
    "Cache-Control": "no-store, private",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
TIME = "%Y-%m-%d %H:%M"
REFUSALS = {"own_referral": "referral_self_decision_refused", "mail_failed": "referral_send_failed"}  # else refused


class Missing(LookupError):
    """No such report, or no such referral of it."""


@lru_cache(maxsize=1)
def templates() -> dict[str, Any]:
    """content/referrals.yml: the summary, e-mail and PDF texts."""
    data: dict[str, Any] = yaml.safe_load((CONTENT / "referrals.yml").read_text(encoding="utf-8"))
    return data


# -- the generated summary ----------------------------------------------------------------------


def _answer(value: bool | None) -> str:
    texts = templates()["summary"]
    return str(texts["answer_yes"] if value is True else texts["answer_no"] if value is False else texts["unknown"])


def _value(opened: dict[str, Any], name: str, consent: str | None) -> str:
    """One shared field as the institution reads it."""
    texts, body = templates()["summary"], opened["body"]
    if name == "country":
        code = opened["country"]
        return f"{country_names().get(code, code)} ({code})" if code else str(texts["unknown"])
    if name == "kind":
        return KIND_NAMES.get(opened["kind"], str(texts["unknown"])) if opened["kind"] else str(texts["unknown"])
    if name in ("minors", "danger_now"):
        return _answer(opened[name])
    if name == "additions":
        return " / ".join(a["text"] for a in opened["additions"] if a["text"]) or str(texts["empty"])
    if name == "contact":
        channel, address = opened["contact"]
        return f"{address} ({channel})"
    return str(body.get(name) or texts["empty"])


def reference(report_id: str) -> str:
    """What the institution and staff quote: the report id's first 8 characters (never the code)."""
    return report_id[:8]


def generate_summary(opened: dict[str, Any], fields: list[str], consent: str | None) -> str:
    """The summary the author starts from, with only the chosen fields."""
    texts = templates()["summary"]
    lines = [
        texts["header"].format(reference=reference(opened["id"]), received=opened["created_at"].strftime(TIME)),
        texts["intro"],
        "",
    ]
    for name in fields:
        extra = {"consent": CONSENT_NAMES.get(consent or "", "")} if name == "contact" else {}
        lines.append(texts["lines"][name].format(value=_value(opened, name, consent), **extra))
    if "contact" not in fields:
        lines.append(texts["no_contact"])
    footer = "\n\n" + str(texts["footer"])
    body = "\n".join(lines)
    room = referrals.MAX_SUMMARY_CHARS - len(footer)
    if len(body) > room:  # a long report and its additions: cut, for the author to shorten by hand
        body = body[: room - 1] + "…"
    return body + footer


# -- what the report page shows ------------------------------------------------------------------


def mail_settings(console: Console) -> Settings | None:
    """The SMTP server (HOTLINE_SMTP_HOST, _FROM...) referrals are e-mailed through, if any."""
    settings = console.settings.reports
    return settings if settings is not None and settings.smtp_host and settings.smtp_from else None


@dataclass(frozen=True)
class View:
    """One referral as the report page shows it, with what this account may do to it."""

    id: int
    state: str
    state_name: str
    at: datetime
    contact: directory.Contact | None
    institution_key: str
    author: str
    summary: str | None
    shared: tuple[str, ...]
    consent: str | None
    decision: str | None
    decision_note: str | None
    sent: str | None
    outcome: str | None
    outcome_note: str | None
    hash: str
    can_edit: bool
    can_submit: bool
    can_decide: bool
    own_pending: bool
    can_send: bool
    can_record_outcome: bool
    pdf_again: bool  # sent as a PDF: it may be downloaded again (audited) for the same channel


def _view(referral: Referral, account: StaffAccount, names: dict[int, str], private_key: PrivateKey) -> View:
    def name(staff_id: int | None) -> str:
        return names.get(staff_id or -1, label("common", "none"))

    def opened(blob: bytes | None) -> str | None:
        try:
            return referrals.opened_text(private_key, blob)
        except crypto.SealError:
            return label("cases", "unreadable")

    state, author = referral.state, referral.staff_id == account.id
    decision = None
    if referral.decided_at is not None and state in ("approved", "rejected", "sent", "answered"):
        decided = "rejected" if state == "rejected" else "approved"
        decision = LABELS["decided_by"].format(
            decision=DECISION_NAMES[decided],
            username=name(referral.decided_by),
            date=referral.decided_at.strftime(TIME),
        )
    sent = None
    if referral.sent_at is not None:
        template = LABELS["sent_email"] if referral.sent_via == "email" else LABELS["sent_pdf"]
        sent = template.format(
            to=referral.sent_to, date=referral.sent_at.strftime(TIME), username=name(referral.sent_by)
        )
    outcome = None
    if referral.outcome and referral.outcome_on:
        outcome = LABELS["outcome_line"].format(
            outcome=OUTCOME_NAMES.get(referral.outcome, referral.outcome), date=referral.outcome_on.isoformat()
        )
    return View(
        id=referral.id,
        state=state,
        state_name=STATE_NAMES.get(state, state),
        at=referral.referred_at,
        contact=directory.find(referral.institution_key),
        institution_key=referral.institution_key,
        author=name(referral.staff_id),
        summary=opened(referral.summary_sealed),
        shared=tuple(FIELD_NAMES.get(f, f) for f in referral.shared_fields or ()),
        consent=CONSENT_NAMES.get(referral.contact_consent_how or "") or None,
        decision=decision,
        decision_note=opened(referral.decision_note_sealed),
        sent=sent,
        outcome=outcome,
        outcome_note=opened(referral.outcome_note_sealed),
        hash=referral.content_hash or "",
        can_edit=author and state in referrals.EDITABLE,
        can_submit=author and state == "draft",
        can_decide=state == "pending" and not author and account.role in referrals.APPROVER_ROLES,
        own_pending=state == "pending" and author,
        can_send=state == "approved",
        can_record_outcome=state == "sent",
        pdf_again=state in ("sent", "answered") and referral.sent_via == "pdf",
    )


def page_context(
    session: Session,
    report_id: str,
    account: StaffAccount,
    names: dict[int, str],
    private_key: PrivateKey,
    has_contact: bool,
    console: Console,
) -> dict[str, Any]:
    """The referrals section of the report page (console/cases.py)."""
    query = select(Referral).where(Referral.report_id == report_id).order_by(Referral.id)
    return {
        "referrals": [_view(r, account, names, private_key) for r in session.scalars(query)],
        "referral_labels": LABELS,
        "referral_fields": [(key, FIELD_NAMES[key]) for key in referrals.FIELDS if key != "contact" or has_contact],
        "consent_ways": CONSENT_NAMES,
        "outcome_names": OUTCOME_NAMES,
        "has_contact": has_contact,
        "mail_on": mail_settings(console) is not None,
        "summary_limit": referrals.MAX_SUMMARY_CHARS,
        "referral_note_limit": referrals.MAX_NOTE_CHARS,
        "today": console.now().date().isoformat(),
    }


# -- the steps --------------------------------------------------------------------------------------


def _target(report_id: str) -> str:
    return REPORT_TARGET.format(id=report_id)


def _detail(referral_id: int | str, institution: str, reason: str | None = None) -> str:
    detail = AUDIT_DETAIL.format(id=referral_id, institution=institution)
    return f"{detail} · {reason}" if reason else detail


def _keys(console: Console) -> tuple[Keys, PrivateKey] | None:
    try:
        return console.report_keys()
    except (KeyringError, ValueError):
        return None


def _referral(session: Session, report_id: str, referral_id: int) -> Referral:
    """The referral, its row locked for this transaction, when it belongs to that report."""
    referral = session.get(Referral, referral_id, with_for_update=True)
    if referral is None or referral.report_id != report_id:
        raise Missing(referral_id)
    return referral


def _ids(request: Request) -> tuple[str, int] | None:
    report_id = path_value(request, "report_id", REPORT_ID)
    referral_id = path_value(request, "referral_id", REFERRAL_ID)
    return (report_id, int(referral_id)) if report_id and referral_id else None


Step = Callable[[Session, Referral, Keys, PrivateKey], str]


async def _refused(
    request: Request, console: Console, account: StaffAccount, target: str, detail: str, error: referrals.ReferralError
) -> Response:
    """The refusal's page, and its audit row (the step's own transaction was rolled back)."""
    action = REFUSALS.get(error.reason, "referral_refused")
    if isinstance(error, SendFailed):
        detail = f"{detail} · {error.problem}"
    await in_transaction(console, lambda session: audit(session, console, action, account, target, detail))
    return console.error(request, error.status, ERRORS["title"], ERRORS[error.reason])


async def _run(request: Request, account: StaffAccount, step: Step) -> Response:
    """One step on one referral in one transaction; refusals answered and audited."""
    ids = _ids(request)
    if ids is None:
        return not_found(request, ERRORS["not_found"])
    report_id, referral_id = ids
    console = console_of(request)
    keyring = await run_in_threadpool(_keys, console)
    if keyring is None:
        return console.error(request, 503, NO_KEY_TITLE, NO_KEY)
    institution = ""

    def run(session: Session) -> str:
        nonlocal institution
        referral = _referral(session, report_id, referral_id)
        institution = referral.institution_key
        return step(session, referral, *keyring)

    try:
        done = await in_transaction(console, run)
    except Missing:
        return not_found(request, ERRORS["not_found"])
    except referrals.ReferralError as error:
        detail = _detail(referral_id, institution, error.reason)
        return await _refused(request, console, account, _target(report_id), detail, error)
    return _back(request, report_id, done, referral_id)


def _back(request: Request, report_id: str, done: str, referral_id: int) -> Response:
    return redirect_to(
        request,
        "case",
        query={"hecho": f"derivacion_{done}"},
        fragment=f"derivacion-{referral_id}",
        report_id=report_id,
    )


def _contact_address(report: Report, private_key: PrivateKey) -> str | None:
    if report.contact_sealed is None:
        return None
    try:
        return crypto.open_contact(private_key, report.contact_sealed)[1]
    except (crypto.SealError, ValueError):
        return None


@auth.requires("agent")
async def prepare(request: Request, account: StaffAccount) -> Response:
    """A new draft: institution, fields, consent; the summary generated from the report."""
    report_id = path_value(request, "report_id", REPORT_ID)
    if report_id is None:
        return not_found(request, REPORT_NOT_FOUND)
    console = console_of(request)
    contact = directory.find(form_text(request, "institution", 200))
    form = request.state.form
    fields = [str(value) for value in form.getlist("campo")]
    consent = form_text(request, "consentimiento", 40) or None
    keyring = await run_in_threadpool(_keys, console)
    if keyring is None:
        return console.error(request, 503, NO_KEY_TITLE, NO_KEY)

    def run(session: Session) -> int:
        report = session.get(Report, report_id)
        if report is None:
            raise Missing(report_id)
        if contact is None:
            raise referrals.Invalid("pick_institution")
        opened = service.open_report(session, report_id, keyring[1], photos=False)
        shared = referrals.check_fields(report, fields, consent)
        summary = generate_summary(opened, shared, consent)
        now = console.now()
        referral = referrals.draft(
            session, report, contact.key, contact.country, shared, consent, summary, account, keyring[0], now
        )
        audit(session, console, "referral_drafted", account, _target(report_id), _detail(referral.id, contact.key))
        return referral.id

    try:
        referral_id = await in_transaction(console, run)
    except Missing:
        return not_found(request, REPORT_NOT_FOUND)
    except referrals.ReferralError as error:
        reason = error.reason
        detail = _detail("-", contact.key if contact else "-", reason)
        await in_transaction(
            console, lambda session: audit(session, console, "referral_refused", account, _target(report_id), detail)
        )
        text = PICK_INSTITUTION if reason == "pick_institution" else ERRORS[reason]
        return console.error(request, error.status, ERRORS["title"], text)
    return _back(request, report_id, "drafted", referral_id)


@auth.requires("agent")
async def edit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    summary = form_text(request, "summary").replace("\r\n", "\n")

    def step(session: Session, referral: Referral, keys: Keys, private_key: PrivateKey) -> str:
        report = session.get(Report, referral.report_id)
        assert report is not None  # the referral's foreign key
        address = _contact_address(report, private_key)
        referrals.edit(session, referral, summary, account, keys, address, console.now())
        audit(
            session,
            console,
            "referral_edited",
            account,
            _target(referral.report_id),
            _detail(referral.id, referral.institution_key),
        )
        return "edited"

    return await _run(request, account, step)


@auth.requires("agent")
async def submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)

    def step(session: Session, referral: Referral, keys: Keys, private_key: PrivateKey) -> str:
        referrals.submit(session, referral, account, console.now())
        target, detail = _target(referral.report_id), _detail(referral.id, referral.institution_key)
        audit(session, console, "referral_submitted", account, target, detail)
        return "submitted"

    return await _run(request, account, step)


@auth.requires("agent")
async def decide(request: Request, account: StaffAccount) -> Response:
    """Approve or reject (supervisors other than the author; checked in reports/referrals.py)."""
    console = console_of(request)
    decision = form_text(request, "decision", 20)
    seen = form_text(request, "hash", 100)
    note = form_text(request, "note", referrals.MAX_NOTE_CHARS + 100)

    def step(session: Session, referral: Referral, keys: Keys, private_key: PrivateKey) -> str:
        if decision not in ("approve", "reject"):
            raise referrals.Invalid("bad_decision")
        approve = decision == "approve"
        referrals.decide(session, referral, account, approve, seen, note, keys, console.now())
        action = "referral_approved" if approve else "referral_rejected"
        audit(
            session,
            console,
            action,
            account,
            _target(referral.report_id),
            _detail(referral.id, referral.institution_key),
        )
        return "approved" if approve else "rejected"

    return await _run(request, account, step)


def _send_record(
    session: Session, referral: Referral, via: str, to: str | None, account: StaffAccount, console: Console
) -> None:
    """The send recorded: state sent, the report "referred", audited."""
    now = console.now()
    referrals.mark_sent(session, referral, via, to, account, now)
    service.change_status(session, referral.report_id, "referred", str(account.id), None, None, now)
    detail = _detail(referral.id, referral.institution_key, PATH_NAMES[via])
    audit(session, console, "referral_sent", account, _target(referral.report_id), detail)


class SendFailed(referrals.ReferralError):
    """The SMTP server did not take the message: nothing was sent, nothing recorded."""

    status = 502

    def __init__(self, problem: str) -> None:
        super().__init__("mail_failed")
        self.problem = problem[:120]  # notify.send_message's text: no secret, no report text


def _message(referral: Referral, to: str, body: str, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = templates()["email"]["subject"].format(reference=reference(referral.report_id))
    message["From"], message["To"] = settings.smtp_from, to
    message.set_content(body)
    return message


@auth.requires("agent")
async def send_email(request: Request, account: StaffAccount) -> Response:
    """E-mails the approved summary to the directory's address of the institution. The
    referral's row stays locked while the SMTP server takes the message (at most its
    timeout), so two clicks at once send it once: the second finds it sent."""
    console = console_of(request)
    settings = mail_settings(console)

    def step(session: Session, referral: Referral, keys: Keys, private_key: PrivateKey) -> str:
        referrals.check_sendable(referral)
        contact = directory.find(referral.institution_key)
        address = contact.email if contact is not None else None
        if address is None:
            raise referrals.WrongState("no_email")
        if settings is None:
            raise referrals.WrongState("mail_off")
        body = referrals.opened_text(private_key, referral.summary_sealed) or ""
        try:
            send_message(_message(referral, address, body, settings), settings)
        except NotifyError as problem:
            raise SendFailed(str(problem)) from None
        _send_record(session, referral, "email", address, account, console)
        return "sent"

    return await _run(request, account, step)


def render_pdf(referral: Referral, summary: str, institution: str) -> bytes:
    """The approved summary as a PDF (DejaVu Sans when the system has it, for any Latin
    script; else Helvetica, with what it cannot draw replaced). Same referral, same bytes."""
    texts = templates()["pdf"]
    document = FPDF(format="A4")
    document.set_creation_date(referral.decided_at or referral.referred_at)
    document.set_title(texts["title"].format(reference=reference(referral.report_id)))
    document.add_page()
    lines = [
        texts["title"].format(reference=reference(referral.report_id)),
        texts["to"].format(institution=institution),
        texts["approved"].format(date=(referral.decided_at or referral.referred_at).strftime(TIME)),
        "",
        summary,
    ]
    text = "\n".join(lines)
    if PDF_FONT.exists():
        document.add_font("DejaVu", fname=str(PDF_FONT))
        document.set_font("DejaVu", size=11)
    else:
        document.set_font("Helvetica", size=11)
        text = text.encode("cp1252", "replace").decode("cp1252")
    document.multi_cell(0, 6, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(document.output())


@auth.requires("agent")
async def download_pdf(request: Request, account: StaffAccount) -> Response:
    """The approved referral as a PDF for a secure channel: the first download records the
    send; a later one (for the same channel) is allowed and audited too. Never cached."""
    console = console_of(request)
    made: list[bytes] = []

    def step(session: Session, referral: Referral, keys: Keys, private_key: PrivateKey) -> str:
        again = referral.state in ("sent", "answered") and referral.sent_via == "pdf"
        if not again:
            referrals.check_sendable(referral)
        contact = directory.find(referral.institution_key)
        summary = referrals.opened_text(private_key, referral.summary_sealed) or ""
        made.append(render_pdf(referral, summary, contact.label if contact else referral.institution_key))
        if not again:
            _send_record(session, referral, "pdf", None, account, console)
        detail = _detail(referral.id, referral.institution_key)
        audit(session, console, "referral_pdf_downloaded", account, _target(referral.report_id), detail)
        return "sent"

    answer = await _run(request, account, step)
    if not made:
        return answer
    ids = _ids(request)
    assert ids is not None
    name = f"derivacion-{reference(ids[0])}-{ids[1]}.pdf"
    headers = {**PDF_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(made[0], media_type="application/pdf", headers=headers)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


@auth.requires("agent")
async def outcome(request: Request, account: StaffAccount) -> Response:
    """The institution's answer, as staff recorded it."""
    console = console_of(request)
    answer = form_text(request, "outcome", 20)
    note = form_text(request, "note", referrals.MAX_NOTE_CHARS + 100)
    day = _day(form_text(request, "date", 20))

    def step(session: Session, referral: Referral, keys: Keys, private_key: PrivateKey) -> str:
        referrals.record_outcome(session, referral, answer, note, day, account, keys, console.now())
        detail = _detail(referral.id, referral.institution_key, answer)
        audit(session, console, "referral_outcome", account, _target(referral.report_id), detail)
        return "outcome"

    return await _run(request, account, step)


def routes() -> list[Route]:
    base = "/casos/{report_id}/derivaciones/{referral_id}"
    return [
        Route("/casos/{report_id}/derivar", prepare, methods=["POST"], name="case_referral"),
        Route(f"{base}/resumen", edit, methods=["POST"], name="referral_edit"),
        Route(f"{base}/solicitar", submit, methods=["POST"], name="referral_submit"),
        Route(f"{base}/decidir", decide, methods=["POST"], name="referral_decide"),
        Route(f"{base}/correo", send_email, methods=["POST"], name="referral_email"),
        Route(f"{base}/pdf", download_pdf, methods=["POST"], name="referral_pdf"),
        Route(f"{base}/resultado", outcome, methods=["POST"], name="referral_outcome"),
    ]
