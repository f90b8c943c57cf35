"""Content audit in the console: the facts of content/facts.yml that need re-checking (the
same list as `make audit`, hotline/audit.py), each with its value, confidence and sources,
and a form to record "called and confirmed on <date>" (not in the future, a short note).
Each confirmation is stored in `fact_confirmations` and audited; the page shows the latest
one per fact. `latest_confirmations` is for the content build.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from console import auth
from console.app import ERRORS, base_path, console_of
from console.labels import console_labels, label
from hotline import audit as content_audit
from hotline.content import load_facts
from reports.db import transaction
from reports.models import FactConfirmation, StaffAccount

MAX_NOTE = 500
NONE = label("common", "none")


@dataclass(frozen=True)
class Confirmation:
    confirmed_on: date
    staff: str
    note: str


def latest_confirmations(engine: Engine) -> dict[str, date]:
    """fact id -> the latest date staff confirmed it on."""
    with transaction(engine) as session:
        query = select(FactConfirmation.fact_id, func.max(FactConfirmation.confirmed_on)).group_by(
            FactConfirmation.fact_id
        )
        return {fact_id: confirmed_on for fact_id, confirmed_on in session.execute(query)}


def latest_details(engine: Engine) -> dict[str, Confirmation]:
    """fact id -> its latest confirmation (by date, then by when it was recorded)."""
    with transaction(engine) as session:
        query = (
            select(FactConfirmation, StaffAccount.username)
            .outerjoin(StaffAccount, StaffAccount.id == FactConfirmation.staff_id)
            .order_by(FactConfirmation.confirmed_on, FactConfirmation.recorded_at, FactConfirmation.id)
        )
        return {
            row.fact_id: Confirmation(row.confirmed_on, username or NONE, row.note)
            for row, username in session.execute(query)
        }


def spanish_reason(reason: str) -> str:
    labels = console_labels()["facts"]["reasons"]
    for confidence, mark in content_audit.MARKS.items():
        if reason == f"{mark} {confidence}":
            return str(labels[confidence])
    if reason == "⚠️ caveat":
        return str(labels["caveat"])
    if reason == "never confirmed by a call":
        return str(labels["never_confirmed"])
    if reason.startswith("last confirmed "):
        return f"{labels['old']} ({reason.removeprefix('last confirmed ')})"
    return reason


def parse_confirmation(form: FormData, today: date) -> tuple[date | None, str, str | None]:
    """The date and note of the form, or the Spanish error."""
    labels = console_labels()["facts"]
    raw = form.get("confirmed_on")
    note = form.get("note")
    note = note[: 64 * 1024] if isinstance(note, str) else ""
    try:
        confirmed_on = date.fromisoformat(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        confirmed_on = None
    if confirmed_on is None:
        return None, note, str(labels["bad_date"])
    if confirmed_on > today:
        return None, note, str(labels["future_date"]).format(today=today.isoformat())
    if len(note) > MAX_NOTE:
        return None, note, str(labels["note_too_long"]).format(n=len(note), limit=MAX_NOTE)
    return confirmed_on, note.strip(), None


async def _page(
    request: Request, account: StaffAccount, status: int = 200, form: dict[str, str] | None = None, **context: Any
) -> Response:
    console = console_of(request)
    today = console.now().date()
    rows = await run_in_threadpool(content_audit.audit, today)
    latest = await run_in_threadpool(latest_details, console.engine)
    return console.render(
        request,
        "facts.html",
        status,
        account=account,
        rows=rows,
        latest=latest,
        reasons={row.fact.id: [spanish_reason(r) for r in row.reasons] for row in rows},
        today=today.isoformat(),
        form=form or {},
        max_note=MAX_NOTE,
        **context,
    )


@auth.requires("agent")
async def facts_page(request: Request, account: StaffAccount) -> Response:
    done = request.query_params.get("hecho") == "1"
    message = str(console_labels()["facts"]["saved"]) if done else None
    return await _page(request, account, message=message)


@auth.requires("agent")
async def confirm_submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    fact_id = str(request.path_params.get("fact_id", ""))
    if fact_id not in load_facts():
        return console.error(request, 404, ERRORS["not_found"][0], str(console_labels()["facts"]["unknown_fact"]))
    now = console.now()
    confirmed_on, note, problem = parse_confirmation(request.state.form, now.date())
    if problem or confirmed_on is None:
        filled = {"fact_id": fact_id, "note": note}
        return await _page(request, account, 400, form=filled, error=problem)

    def store() -> None:
        with transaction(console.engine) as session:
            session.add(
                FactConfirmation(
                    fact_id=fact_id, confirmed_on=confirmed_on, staff_id=account.id, note=note, recorded_at=now
                )
            )
            auth.record(
                session,
                "fact_confirmed",
                now,
                actor=account.username,
                target=auth.AUDIT_TARGETS["fact"].format(id=fact_id),
                detail=auth.AUDIT_DETAILS["fact_confirmed"].format(date=confirmed_on.isoformat()),
            )

    await run_in_threadpool(store)
    return RedirectResponse(f"{base_path(request)}/datos?hecho=1#dato-{fact_id}", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/datos", facts_page, methods=["GET"]),
        Route("/datos/{fact_id}/confirmar", confirm_submit, methods=["POST"]),
    ]
