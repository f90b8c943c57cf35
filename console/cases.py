"""Queue and case work: the queue (urgent first, then oldest first, with filters), the report
page (opened with the staff private key only when shown; each view audited), status changes,
assignment, internal notes (sealed to the staff key), the referrals' section (four eyes:
console/referrals.py) and messages the tipster reads with their code.

Every action writes an AuditEntry naming who, what and the report id, never report text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nacl.public import PrivateKey
from sqlalchemy import ColumnElement, and_, case, not_, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth, directory, photos, referrals
from console.app import ERRORS, Console, console_of, redirect_to
from console.labels import console_labels, label, label_map
from console.pages import FORM_TEXT_LIMIT, REPORT_ID, audit, in_transaction, not_found, path_value
from reports import crypto, response, service
from reports.db import transaction
from reports.keys import KeyringError, Keys
from reports.models import (
    KINDS,
    PRIORITIES,
    STATUSES,
    CaseAssignment,
    CaseNote,
    Report,
    StaffAccount,
    utcnow,
)
from reports.triage import priority_label, reason_labels, response_deadline, response_time

MAX_NOTE_CHARS = service.MAX_TEXT_CHARS  # 4000, for notes, status notes and tipster messages
QUEUE_LIMIT = 200
CONTACT_MAX_CHARS = 1600  # contact back (console/contact.py): one Twilio message
STATUS_NAMES = label_map("cases", "statuses", keys=STATUSES)
KIND_NAMES = label_map("cases", "kinds", keys=KINDS)
_DONE = label_map("cases", "done", keys=("status", "assignment", "note", "referral", "message"))
DONE = {  # ?hecho=<token> after an action -> what the page says
    "foto": photos.LABELS["marked"],
    "estado": _DONE["status"],
    "asignacion": _DONE["assignment"],
    "nota": _DONE["note"],
    "derivacion": _DONE["referral"],
    "mensaje": _DONE["message"],
    **referrals.DONE,
}
QUEUE_LABELS = label_map("cases", "queue", keys=("order_hint", "due", "overdue"))
TOO_LONG = label("cases", "too_long")
EMPTY = label("cases", "empty")
NO_KEY_TITLE = label("cases", "no_key_title")
NO_KEY = label("cases", "no_key")
BAD_FILTER = label("cases", "bad_filter")
FILTER_NAMES = label_map("cases", "filter_names", keys=("country", "kind", "status", "assignee"))
BAD_STATUS = label("cases", "bad_status")
BAD_PERSON = label("cases", "bad_person")
UNKNOWN_STAFF = label("cases", "unknown_staff")
ASSIGN_FORBIDDEN = label("cases", "assign_forbidden")
NOT_FOUND = label("cases", "not_found")
UNREADABLE = label("cases", "unreadable")
SYSTEM = label("cases", "system")
NONE = label("common", "none")


class NotFound(LookupError):
    """No report with that id."""


class UnknownStaff(ValueError):
    """An assignment to an account that does not exist or is disabled."""


# -- queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    country: str = ""
    kind: str = ""
    status: str = ""  # "" = open (not closed), "todos" = all
    assignee: str = ""  # "" = anyone, "nadie" = unassigned, else a staff id

    @classmethod
    def from_query(cls, params: Any) -> tuple[QueueFilters, list[str]]:
        """The filters from the query string; values that are not valid are dropped and named."""
        wrong: list[str] = []
        country = str(params.get("pais", "")).strip().upper()
        if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
            wrong.append(FILTER_NAMES["country"])
            country = ""
        kind = str(params.get("tipo", ""))
        if kind and kind not in KINDS:
            wrong.append(FILTER_NAMES["kind"])
            kind = ""
        status = str(params.get("estado", ""))
        if status and status not in (*STATUSES, "todos"):
            wrong.append(FILTER_NAMES["status"])
            status = ""
        assignee = str(params.get("asignado", ""))
        if assignee and assignee != "nadie" and not (assignee.isascii() and assignee.isdigit() and len(assignee) < 10):
            wrong.append(FILTER_NAMES["assignee"])
            assignee = ""
        return cls(country, kind, status, assignee), wrong


@dataclass(frozen=True)
class QueueRow:
    id: str
    created_at: Any
    priority: str
    country: str | None
    kind: str | None
    status: str
    reasons: list[str]
    assignee: str | None
    due_at: datetime | None = None  # the response deadline (content/triage.yml response_hours)
    overdue: bool = False  # past it with no staff action yet


def overdue(now: datetime) -> ColumnElement[bool]:
    """SQL: open, past its priority's response deadline, and nobody has acted on it."""
    late = or_(*(and_(Report.priority == p, Report.created_at < now - response_time(p)) for p in PRIORITIES))
    return and_(Report.status != "closed", late, not_(response.acted()))


def queue(
    session: Session, filters: QueueFilters, limit: int = QUEUE_LIMIT, now: datetime | None = None
) -> list[QueueRow]:
    """Reports in the queue order: overdue first, then urgent, then the oldest first."""
    now = now or utcnow()
    late = overdue(now)
    query = (
        select(Report, StaffAccount.username, late)
        .outerjoin(CaseAssignment, CaseAssignment.report_id == Report.id)
        .outerjoin(StaffAccount, StaffAccount.id == CaseAssignment.staff_id)
    )
    if filters.country:
        query = query.where(Report.country == filters.country)
    if filters.kind:
        query = query.where(Report.kind == filters.kind)
    if filters.status == "":
        query = query.where(Report.status != "closed")
    elif filters.status != "todos":
        query = query.where(Report.status == filters.status)
    if filters.assignee == "nadie":
        query = query.where(CaseAssignment.report_id.is_(None))
    elif filters.assignee:
        query = query.where(CaseAssignment.staff_id == int(filters.assignee))
    query = query.order_by(
        case((late, 0), else_=1), case((Report.priority == "urgent", 0), else_=1), Report.created_at, Report.id
    ).limit(limit)
    return [
        QueueRow(
            id=report.id,
            created_at=report.created_at,
            priority=report.priority,
            country=report.country,
            kind=report.kind,
            status=report.status,
            reasons=reason_labels(report.triage_reasons),
            assignee=username,
            due_at=response_deadline(report.priority, report.created_at),
            overdue=bool(is_late),
        )
        for report, username, is_late in session.execute(query)
    ]


def _staff(session: Session) -> list[StaffAccount]:
    return list(session.scalars(select(StaffAccount).order_by(StaffAccount.username)))


@auth.requires("agent")
async def queue_page(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    filters, wrong = QueueFilters.from_query(request.query_params)

    def read() -> tuple[list[QueueRow], list[StaffAccount]]:
        with transaction(console.engine) as session:
            return queue(session, filters, now=console.now()), _staff(session)

    rows, staff = await run_in_threadpool(read)
    error = BAD_FILTER.format(names=", ".join(wrong)) if wrong else None
    return console.render(
        request,
        "queue.html",
        account=account,
        rows=rows,
        filters=filters,
        staff=staff,
        countries=sorted(directory.directory()),
        error=error,
        **_labels(),
    )


def _labels() -> dict[str, Any]:
    return {
        "status_names": STATUS_NAMES,
        "kind_names": KIND_NAMES,
        "kinds": KINDS,
        "statuses": STATUSES,
        "priority_label": priority_label,
        "queue_labels": QUEUE_LABELS,
    }


# -- the report page ------------------------------------------------------------------------


def _target(report_id: str) -> str:
    return auth.AUDIT_TARGETS["report"].format(id=report_id)


def _open_page(
    console: Console, report_id: str, account: StaffAccount, private_key: PrivateKey, detail: str | None
) -> dict[str, Any]:
    """Everything the page shows, opened now; the view is audited in the same transaction."""
    with transaction(console.engine) as session:
        try:
            opened = service.open_report(session, report_id, private_key, photos=False)  # each photo: photos.py
        except service.ReportNotFound as error:
            raise NotFound(report_id) from error
        names = {s.id: s.username for s in _staff(session)}

        def unsealed(blob: bytes) -> str:
            try:
                return crypto.unseal_text(private_key, blob)
            except crypto.SealError:
                return UNREADABLE

        notes = [
            {"at": n.created_at, "author": names.get(n.author_id or -1, NONE), "text": unsealed(n.sealed_body)}
            for n in session.scalars(select(CaseNote).where(CaseNote.report_id == report_id).order_by(CaseNote.id))
        ]
        referral_context = referrals.page_context(
            session, report_id, account, names, private_key, opened["contact"] is not None, console
        )
        assignment = session.get(CaseAssignment, report_id)
        photo_context = photos.page_context(session, report_id, opened["country"])
        audit(session, console, "report_viewed", account, _target(report_id), detail)
    for change in opened["status_changes"]:
        actor = change["actor"]
        change["actor_name"] = names.get(int(actor), actor) if actor and actor.isdigit() else (actor or SYSTEM)
    return {
        "report": opened,
        "reasons": reason_labels(opened["triage_reasons"]),
        "notes": notes,
        **referral_context,
        "assignee": names.get(assignment.staff_id) if assignment else None,
        "assignee_id": assignment.staff_id if assignment else None,
        "staff": [(staff_id, name) for staff_id, name in sorted(names.items(), key=lambda item: item[1])],
        "contacts": directory.contacts_for(opened["country"]),
        **photo_context,
    }


def _report_id(request: Request) -> str | None:
    return path_value(request, "report_id", REPORT_ID)


def _not_found(request: Request) -> Response:
    return not_found(request, NOT_FOUND)


def _keys(console: Console) -> tuple[Keys, PrivateKey] | None:
    try:
        return console.report_keys()
    except (KeyringError, ValueError):
        return None


async def _report_page(
    request: Request,
    account: StaffAccount,
    report_id: str,
    status: int = 200,
    form: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    console = console_of(request)
    keyring = await run_in_threadpool(_keys, console)
    if keyring is None:
        return console.error(request, 503, NO_KEY_TITLE, NO_KEY)
    try:
        page = await run_in_threadpool(_open_page, console, report_id, account, keyring[1], None)
    except NotFound:
        return _not_found(request)
    except crypto.SealError:
        return console.error(request, 503, NO_KEY_TITLE, NO_KEY)
    filled = {"note": "", "message": "", "status_note": "", "contact_text": ""}
    filled.update(form or {})
    return console.render(
        request,
        "report.html",
        status,
        account=account,
        form=filled,
        max_chars=MAX_NOTE_CHARS,
        contact_labels=console_labels()["contact"],
        contact_max_chars=CONTACT_MAX_CHARS,
        **page,
        **_labels(),
        **context,
    )


@auth.requires("agent")
async def report_page(request: Request, account: StaffAccount) -> Response:
    report_id = _report_id(request)
    if report_id is None:
        return _not_found(request)
    done = DONE.get(request.query_params.get("hecho", ""))
    return await _report_page(request, account, report_id, message=done)


def _back(request: Request, report_id: str, done: str) -> Response:
    return redirect_to(request, "case", query={"hecho": done}, report_id=report_id)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:FORM_TEXT_LIMIT] if isinstance(value, str) else ""  # as typed: notes keep their line breaks


def _length_error(text: str, required: bool = True) -> str | None:
    if required and not text.strip():
        return EMPTY
    if len(text) > MAX_NOTE_CHARS:
        return TOO_LONG.format(n=len(text), limit=MAX_NOTE_CHARS)
    return None


def _exists(session: Session, report_id: str) -> None:
    if session.get(Report, report_id) is None:
        raise NotFound(report_id)


async def _act(request: Request, report_id: str, work: Any) -> Response | None:
    """Runs `work(session, keys)` in one transaction; a 404/503 answer when it cannot."""
    console = console_of(request)
    keyring = await run_in_threadpool(_keys, console)
    if keyring is None:
        return console.error(request, 503, NO_KEY_TITLE, NO_KEY)

    def run(session: Session) -> None:
        _exists(session, report_id)
        work(session, keyring[0])

    try:
        await in_transaction(console, run)
    except (NotFound, service.ReportNotFound):
        return _not_found(request)
    return None


@auth.requires("agent")
async def status_submit(request: Request, account: StaffAccount) -> Response:
    report_id = _report_id(request)
    if report_id is None:
        return _not_found(request)
    console = console_of(request)
    form: FormData = request.state.form
    new_status = _text(form, "status")
    note = _text(form, "status_note")
    if new_status not in STATUSES:
        return await _report_page(request, account, report_id, 400, {"status_note": note}, error=BAD_STATUS)
    problem = _length_error(note, required=False)
    if problem:
        return await _report_page(request, account, report_id, 400, {"status_note": note}, error=problem)

    def work(session: Session, keys: Keys) -> None:
        service.change_status(
            session, report_id, new_status, str(account.id), note.strip() or None, keys, console.now()
        )
        audit(session, console, "status_changed", account, _target(report_id), new_status)

    return await _act(request, report_id, work) or _back(request, report_id, "estado")


@auth.requires("agent")
async def assign_submit(request: Request, account: StaffAccount) -> Response:
    report_id = _report_id(request)
    if report_id is None:
        return _not_found(request)
    console = console_of(request)
    form: FormData = request.state.form
    raw = _text(form, "staff_id")
    supervisor = auth.has_role(account.role, "supervisor")
    if raw == "":
        staff_id = None
    elif raw.isascii() and raw.isdigit() and len(raw) < 10:
        staff_id = int(raw)
    else:
        return await _report_page(request, account, report_id, 400, error=BAD_PERSON)
    if staff_id != account.id and not supervisor:
        await run_in_threadpool(
            auth.audit, console.engine, "forbidden", console.now(), actor=account.username, target=_target(report_id)
        )
        return console.error(request, 403, ERRORS["forbidden"][0], ASSIGN_FORBIDDEN)

    def work(session: Session, keys: Keys) -> None:
        now = console.now()
        current = session.get(CaseAssignment, report_id)
        if staff_id is None:
            if current is not None:
                session.delete(current)
            auth.record(session, "case_unassigned", now, actor=account.username, target=_target(report_id))
            return
        target = session.get(StaffAccount, staff_id)
        if target is None or target.disabled:
            raise UnknownStaff(staff_id)
        if current is None:
            session.add(CaseAssignment(report_id=report_id, staff_id=staff_id, assigned_at=now))
        else:
            current.staff_id, current.assigned_at = staff_id, now
        auth.record(
            session,
            "case_assigned",
            now,
            actor=account.username,
            target=_target(report_id),
            detail=auth.AUDIT_DETAILS["assigned"].format(username=target.username),
        )

    try:
        answer = await _act(request, report_id, work)
    except UnknownStaff:
        return await _report_page(request, account, report_id, 400, error=UNKNOWN_STAFF)
    return answer or _back(request, report_id, "asignacion")


@auth.requires("agent")
async def note_submit(request: Request, account: StaffAccount) -> Response:
    report_id = _report_id(request)
    if report_id is None:
        return _not_found(request)
    console = console_of(request)
    text = _text(request.state.form, "note")
    problem = _length_error(text)
    if problem:
        return await _report_page(request, account, report_id, 400, {"note": text}, error=problem)

    def work(session: Session, keys: Keys) -> None:
        now = console.now()
        sealed = crypto.seal_text(keys.public_key, text)
        session.add(CaseNote(report_id=report_id, author_id=account.id, created_at=now, sealed_body=sealed))
        auth.record(session, "note_added", now, actor=account.username, target=_target(report_id))

    return await _act(request, report_id, work) or _back(request, report_id, "nota")


@auth.requires("agent")
async def message_submit(request: Request, account: StaffAccount) -> Response:
    report_id = _report_id(request)
    if report_id is None:
        return _not_found(request)
    console = console_of(request)
    text = _text(request.state.form, "message")
    problem = _length_error(text)
    if problem:
        return await _report_page(request, account, report_id, 400, {"message": text}, error=problem)

    def work(session: Session, keys: Keys) -> None:
        now = console.now()
        service.leave_message_for_tipster(session, report_id, text.strip(), account.username, now, keys=keys)
        auth.record(session, "tipster_message", now, actor=account.username, target=_target(report_id))

    return await _act(request, report_id, work) or _back(request, report_id, "mensaje")


def case_routes() -> list[Route]:
    return [
        Route("/casos", queue_page, methods=["GET"], name="queue"),
        Route("/casos/{report_id}", report_page, methods=["GET"], name="case"),
        Route("/casos/{report_id}/estado", status_submit, methods=["POST"], name="case_status"),
        Route("/casos/{report_id}/asignar", assign_submit, methods=["POST"], name="case_assign"),
        Route("/casos/{report_id}/nota", note_submit, methods=["POST"], name="case_note"),
        Route("/casos/{report_id}/mensaje", message_submit, methods=["POST"], name="case_message"),
    ]
