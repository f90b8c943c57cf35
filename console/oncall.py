"""On call in the console (reports/oncall.py does the chain): supervisors set and delete
shifts; every staff member sees their alerts and shifts and says where alerts reach them
(sealed with the on-call key); the acknowledge link of an alert shows a confirm page on GET
(link scanners change nothing) and acknowledges on POST, for the person the alert was sent
to or someone on call now. A link used twice, expired, unknown or used by someone not on call
is refused with a clear message. Everything, refusals included, is audited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth
from console.app import Console, console_of, redirect_to
from console.labels import console_labels, label
from console.pages import audit, form_text, in_transaction, not_found
from hotline.countries import country_names
from reports import oncall
from reports.db import transaction
from reports.keys import KeyringError, load_oncall_key
from reports.models import OnCallPage, OnCallShift, StaffAccount, StaffContact

LABELS: dict[str, Any] = console_labels()["oncall"]
SHIFT_TARGET = label("audit_log", "targets", "shift")
PAGE_TARGET = label("audit_log", "targets", "page")
SHIFT_ID = re.compile(r"[1-9][0-9]{0,8}")  # also a staff id: fits a 32-bit INTEGER column
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")  # datetime-local, typed
DONE = {"creado": "created", "borrado": "deleted"}
LIST_LIMIT = 100


@dataclass(frozen=True)
class ShiftRow:
    id: int
    username: str
    starts_at: datetime
    ends_at: datetime
    countries: str
    current: bool


def _shift_rows(session: Session, now: datetime, staff_id: int | None = None) -> list[ShiftRow]:
    """Shifts not yet over, soonest first (one person's when `staff_id`)."""
    query = (
        select(OnCallShift, StaffAccount.username)
        .join(StaffAccount, StaffAccount.id == OnCallShift.staff_id)
        .where(OnCallShift.ends_at > now)
        .order_by(OnCallShift.starts_at, OnCallShift.id)
        .limit(LIST_LIMIT)
    )
    if staff_id is not None:
        query = query.where(OnCallShift.staff_id == staff_id)
    return [
        ShiftRow(
            shift.id,
            username,
            shift.starts_at,
            shift.ends_at,
            ", ".join(shift.countries) or LABELS["all_countries"],
            shift.starts_at <= now,
        )
        for shift, username in session.execute(query)
    ]


def parse_time(text: str) -> datetime | None:
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def parse_countries(text: str) -> tuple[list[str], list[str]]:
    """(valid ISO codes, wrong entries) of a comma-separated list."""
    known = country_names()
    codes = [part.strip().upper() for part in text.split(",") if part.strip()]
    return sorted({c for c in codes if c in known}), [c for c in codes if c not in known]


# -- shifts (supervisors) ----------------------------------------------------------------------


def _shifts_context(console: Console) -> dict[str, Any]:
    now = console.now()
    with transaction(console.engine) as session:
        names = {i: name for i, name in session.execute(select(StaffAccount.id, StaffAccount.username))}
        active = select(StaffAccount).where(StaffAccount.disabled.is_(False)).order_by(StaffAccount.username)
        return {
            "shifts": _shift_rows(session, now),
            "on_call_now": [names[i] for i in oncall.on_call(session, now)],
            "staff": list(session.scalars(active)),
        }


async def _shifts_page(request: Request, account: StaffAccount, status: int = 200, **context: Any) -> Response:
    console = console_of(request)
    data = await run_in_threadpool(_shifts_context, console)
    context.setdefault("form", {"staff": "", "starts": "", "ends": "", "countries": ""})
    return console.render(request, "oncall.html", status, account=account, labels=LABELS, **data, **context)


@auth.requires("supervisor")
async def shifts_page(request: Request, account: StaffAccount) -> Response:
    done = DONE.get(request.query_params.get("hecho", ""))
    return await _shifts_page(request, account, message=LABELS[done] if done == "deleted" else None)


@auth.requires("supervisor")
async def shift_create(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    form = {name: form_text(request, name, 200) for name in ("staff", "starts", "ends", "countries")}
    starts, ends = parse_time(form["starts"]), parse_time(form["ends"])
    countries, wrong = parse_countries(form["countries"])
    if starts is None or ends is None or ends <= starts:
        return await _shifts_page(request, account, 400, form=form, error=LABELS["bad_time"])
    if wrong:
        error = LABELS["bad_countries"].format(codes=", ".join(wrong))
        return await _shifts_page(request, account, 400, form=form, error=error)

    def create(session: Session) -> str | None:
        person = session.get(StaffAccount, int(form["staff"])) if SHIFT_ID.fullmatch(form["staff"]) else None
        if person is None or person.disabled:
            return None
        shift = OnCallShift(
            staff_id=person.id,
            starts_at=starts,
            ends_at=ends,
            countries=countries,
            created_by=account.username,
            created_at=console.now(),
        )
        session.add(shift)
        session.flush()
        detail = f"{person.username} {starts:%Y-%m-%d %H:%M}–{ends:%Y-%m-%d %H:%M} {','.join(countries) or '*'}"
        audit(session, console, "oncall_shift_created", account, SHIFT_TARGET.format(id=shift.id), detail)
        return person.username

    username = await in_transaction(console, create)
    if username is None:
        return await _shifts_page(request, account, 400, form=form, error=LABELS["bad_staff"])
    return await _shifts_page(request, account, 200, message=LABELS["created"].format(username=username))


@auth.requires("supervisor")
async def shift_delete(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    raw = str(request.path_params.get("shift_id", ""))
    if not SHIFT_ID.fullmatch(raw):
        return not_found(request, LABELS["shift_not_found"])
    shift_id = int(raw)

    def remove(session: Session) -> bool:
        shift = session.get(OnCallShift, shift_id)
        if shift is None:
            return False
        session.delete(shift)
        audit(session, console, "oncall_shift_deleted", account, SHIFT_TARGET.format(id=shift_id))
        return True

    if not await in_transaction(console, remove):
        return not_found(request, LABELS["shift_not_found"])
    return redirect_to(request, "oncall_shifts", query={"hecho": "borrado"})


# -- my alerts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRow:
    id: int
    sent_at: datetime | None
    kind: str
    level: str
    step: int
    channels: str
    acknowledged_at: datetime | None


def _channel_names(channels: str) -> str:
    return ", ".join(LABELS["channel_names"].get(c, c) for c in channels.split(",") if c)


def _oncall_key(console: Console) -> bytes | None:
    try:
        return load_oncall_key(console.settings.keyring())
    except (KeyringError, ValueError):
        return None


def _mine(console: Console, account: StaffAccount) -> dict[str, Any]:
    with transaction(console.engine) as session:
        pages = session.scalars(
            select(OnCallPage).where(OnCallPage.staff_id == account.id).order_by(OnCallPage.id.desc()).limit(LIST_LIMIT)
        )
        rows = [
            PageRow(
                p.id,
                p.sent_at,
                LABELS["kinds"][p.subject.split(":", 1)[0]],
                LABELS["levels"].get(p.level, p.level),
                p.step + 1,
                _channel_names(p.channels),
                p.acknowledged_at,
            )
            for p in pages
        ]
        contact = session.get(StaffContact, account.id)
        return {
            "pages": rows,
            "shifts": _shift_rows(session, console.now(), account.id),
            "contact_channels": _channel_names(contact.channels) if contact is not None else "",
        }


async def _mine_page(request: Request, account: StaffAccount, status: int = 200, **context: Any) -> Response:
    console = console_of(request)
    data = await run_in_threadpool(_mine, console, account)
    return console.render(request, "my_alerts.html", status, account=account, labels=LABELS, **data, **context)


@auth.requires("agent")
async def my_alerts(request: Request, account: StaffAccount) -> Response:
    return await _mine_page(request, account)


@auth.requires("agent")
async def contact_submit(request: Request, account: StaffAccount) -> Response:
    """Set (or clear) one's own contact for alerts; audited by channel names, never values."""
    console = console_of(request)
    key = await run_in_threadpool(_oncall_key, console)
    if key is None:
        return await _mine_page(request, account, 503, error=LABELS["no_key"])
    try:
        contact = oncall.checked_contact(
            form_text(request, "email", 300), form_text(request, "telegram", 40), form_text(request, "phone", 40)
        )
    except oncall.ContactError as error:
        return await _mine_page(request, account, 400, error=LABELS["bad_contact"][str(error)])

    def store(session: Session) -> None:
        oncall.set_contact(session, account.id, key, contact, console.now())
        target = auth.AUDIT_TARGETS["account"].format(id=account.id)
        audit(session, console, "oncall_contact_set", account, target, ",".join(contact.channels()) or "-")

    await in_transaction(console, store)
    channels = _channel_names(",".join(contact.channels()))
    message = LABELS["contact_set"].format(channels=channels) if channels else LABELS["contact_cleared"]
    return await _mine_page(request, account, 200, message=message)


# -- the acknowledge link ----------------------------------------------------------------------

OUTCOME_STATUS = {
    "acknowledged": 200,
    "unknown": 404,
    "used": 409,
    "expired": 410,
    "not_on_call": 403,
    "done_by_other": 409,
}


def _outcome_text(view: oncall.AckView) -> str:
    at = view.acknowledged_at.strftime("%Y-%m-%d %H:%M UTC") if view.acknowledged_at else ""
    return str(LABELS["outcomes"][view.outcome]).format(username=view.acknowledged_by or "", at=at)


def _audit_ack(session: Session, console: Console, account: StaffAccount, view: oncall.AckView) -> None:
    target = PAGE_TARGET.format(id=view.page_id) if view.page_id is not None else None
    action = "oncall_acknowledged" if view.outcome == "acknowledged" else "oncall_ack_refused"
    audit(session, console, action, account, target, view.outcome)


def _ack_page(request: Request, account: StaffAccount, view: oncall.AckView, token: str, confirm: bool) -> Response:
    console = console_of(request)
    message = _outcome_text(view) if not confirm and view.outcome == "acknowledged" else None
    error = None if view.outcome == "acknowledged" else _outcome_text(view)
    return console.render(
        request,
        "oncall_ack.html",
        OUTCOME_STATUS[view.outcome],
        account=account,
        labels=LABELS,
        view=view,
        token=token,
        confirm=confirm,
        message=message,
        error=error,
    )


@auth.requires("agent")
async def ack_page(request: Request, account: StaffAccount) -> Response:
    """GET: what confirming would do, and the button; nothing changes (scanners follow links)."""
    console = console_of(request)
    token = str(request.path_params.get("token", ""))

    def look(session: Session) -> oncall.AckView:
        view, _ = oncall.check(session, token, account.id, console.now())
        if view.outcome != "acknowledged":
            _audit_ack(session, console, account, view)
        return view

    view = await in_transaction(console, look)
    return _ack_page(request, account, view, token, confirm=view.outcome == "acknowledged")


@auth.requires("agent")
async def ack_submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    token = str(request.path_params.get("token", ""))

    def confirm(session: Session) -> oncall.AckView:
        view = oncall.acknowledge(session, token, account.id, console.now())
        _audit_ack(session, console, account, view)
        return view

    view = await in_transaction(console, confirm)
    return _ack_page(request, account, view, token, confirm=False)


def routes() -> list[Route]:
    return [
        Route("/guardia", shifts_page, methods=["GET"], name="oncall_shifts"),
        Route("/guardia", shift_create, methods=["POST"], name="oncall_shift_create"),
        Route("/guardia/{shift_id}/borrar", shift_delete, methods=["POST"], name="oncall_shift_delete"),
        Route("/guardia/confirmar/{token}", ack_page, methods=["GET"], name="oncall_ack"),
        Route("/guardia/confirmar/{token}", ack_submit, methods=["POST"], name="oncall_ack_submit"),
        Route("/mis-avisos", my_alerts, methods=["GET"], name="my_alerts"),
        Route("/mis-avisos/contacto", contact_submit, methods=["POST"], name="my_alerts_contact"),
    ]
