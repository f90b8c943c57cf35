"""Content audit in the console: the facts of content/facts.yml that need re-checking (the
same list as `make audit`, hotline/audit.py), each with its value, confidence and sources,
and a form to record "called and confirmed on <date>" (not in the future, a short note).
Each confirmation is stored in `fact_confirmations` and audited; the page shows the latest
one per fact, and whether it is already in the assistant's content or waiting for export.

A confirmation reaches the assistant only through content/confirmations.yml, committed and
reviewed like any content change (the content build never reads a database):

    python -m console.facts_audit export [--out content/confirmations.yml]   (make confirmations)

writes the latest confirmation of each fact from HOTLINE_DATABASE_URL into that file, merged
with what it already has (a confirmation in the file but not in this database is kept; the
newer of the two wins), sorted by fact id, with the recording account's role (never a name);
unknown fact ids and dates after today are refused and nothing is written. Each export is
audited (actor "cli", action "facts_exported"). The page reads content/confirmations.yml, or
the copy HOTLINE_CONFIRMATIONS_FILE names (see console.directory.confirmations_file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth
from console.app import ERRORS, console_of, redirect_to
from console.directory import confirmations_file
from console.labels import console_labels, label
from hotline import audit as content_audit
from hotline.content import (
    CONFIRMATIONS,
    Confirmations,
    ContentError,
    dump_confirmations,
    load_fact_sheet,
    load_facts,
    read_confirmations,
)
from hotline.content import Confirmation as CarriedConfirmation
from hotline.paths import ROOT
from reports.config import load_settings
from reports.db import make_engine, transaction
from reports.models import FactConfirmation, StaffAccount, utcnow

MAX_NOTE = 500
NONE = label("common", "none")
EXPORTED_DETAIL = label("facts", "exported_detail")
IN_CONTENT = label("facts", "in_content")
NOT_IN_CONTENT = label("facts", "not_in_content")
PAGE_LABELS = {key: label("facts", key) for key in ("exported", "waiting_export", "note_public")}


@dataclass(frozen=True)
class Confirmation:
    confirmed_on: date
    staff: str
    note: str
    role: str = ""
    recorded_at: datetime | None = None


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
            select(FactConfirmation, StaffAccount.username, StaffAccount.role)
            .outerjoin(StaffAccount, StaffAccount.id == FactConfirmation.staff_id)
            .order_by(FactConfirmation.confirmed_on, FactConfirmation.recorded_at, FactConfirmation.id)
        )
        return {
            row.fact_id: Confirmation(row.confirmed_on, username or NONE, row.note, role or "", row.recorded_at)
            for row, username, role in session.execute(query)
        }


# -- export into content/confirmations.yml -----------------------------------------------


class ExportError(ContentError):
    """An export that would write content the build refuses: nothing is written."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    total: int  # confirmations in the file
    updated: tuple[str, ...]  # fact ids whose confirmation is new or newer than the file's


def _stamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def merge_confirmations(
    existing: Confirmations, latest: dict[str, Confirmation], known: set[str], today: date
) -> tuple[Confirmations, tuple[str, ...]]:
    """The file's confirmations with the database's latest ones: per fact the newer (by date,
    then by when it was recorded; the file's on a tie), nothing dropped."""
    unknown = sorted((set(latest) | set(existing.entries)) - known)
    if unknown:
        raise ExportError(f"confirmations of facts that content/facts.yml does not have: {', '.join(unknown)}")
    future = sorted(f"{i} ({c.confirmed_on.isoformat()})" for i, c in latest.items() if c.confirmed_on > today)
    if future:
        raise ExportError(f"confirmations dated after today ({today.isoformat()}): {', '.join(future)}")
    merged = dict(existing.entries)
    updated = []
    for fact_id, found in latest.items():
        carried = CarriedConfirmation(fact_id, found.confirmed_on, found.note, found.role, _stamp(found.recorded_at))
        old = merged.get(fact_id)
        if old is None or (carried.confirmed_on, carried.recorded_at) > (old.confirmed_on, old.recorded_at):
            merged[fact_id] = carried
            updated.append(fact_id)
    return replace(existing, entries=merged), tuple(sorted(updated))


def _shown_path(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def export_confirmations(engine: Engine, out: Path, now: datetime) -> ExportResult:
    """Write the merged confirmations to `out` (replaced whole, never half-written) and audit it.
    A file that does not exist yet starts from content/confirmations.yml's labels, empty."""
    existing = read_confirmations(out) if out.exists() else replace(read_confirmations(CONFIRMATIONS), entries={})
    merged, updated = merge_confirmations(existing, latest_details(engine), set(load_fact_sheet()), now.date())
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(dump_confirmations(merged), encoding="utf-8")
    os.replace(partial, out)
    detail = EXPORTED_DETAIL.format(total=len(merged.entries), updated=len(updated), facts=", ".join(updated) or NONE)
    auth.audit(engine, "facts_exported", now, actor="cli", target=_shown_path(out), detail=detail)
    return ExportResult(out, len(merged.entries), updated)


def _in_content(carried: CarriedConfirmation | None) -> str:
    if carried is None:
        return NOT_IN_CONTENT
    return IN_CONTENT.format(date=carried.confirmed_on.isoformat(), by=carried.by)


def export_state(latest: Confirmation | None, carried: CarriedConfirmation | None) -> str | None:
    """ "exported" when the content already has the latest confirmation's date (or a newer
    one), "waiting" when it still has to be exported; None when staff recorded none."""
    if latest is None:
        return None
    return "exported" if carried is not None and carried.confirmed_on >= latest.confirmed_on else "waiting"


def spanish_reason(reason: str) -> str:
    labels = console_labels()["facts"]["reasons"]
    for confidence, mark in content_audit.MARKS.items():
        if reason == f"{mark} {confidence}":
            return str(labels[confidence])
    if reason == "⚠️ caveat":
        return str(labels["caveat"])
    if reason == "never confirmed by a call":
        return str(labels["never_confirmed"])
    if reason.startswith(content_audit.LAST_CONFIRMED):
        return f"{labels['old']} ({reason.removeprefix(content_audit.LAST_CONFIRMED)})"
    if reason.startswith(content_audit.FUTURE_CONFIRMATION):
        return f"{labels['future_confirmation']} ({reason.removeprefix(content_audit.FUTURE_CONFIRMATION)})"
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
    rows = await run_in_threadpool(content_audit.audit, today, content_audit.DEFAULT_MAX_AGE_DAYS, confirmations_file())
    latest = await run_in_threadpool(latest_details, console.engine)
    exports = {row.fact.id: export_state(latest.get(row.fact.id), row.confirmation) for row in rows}
    in_content = {row.fact.id: _in_content(row.confirmation) for row in rows}
    return console.render(
        request,
        "facts.html",
        status,
        account=account,
        rows=rows,
        latest=latest,
        exports=exports,
        in_content=in_content,
        labels=PAGE_LABELS,
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
    return redirect_to(request, "facts", query={"hecho": "1"}, fragment=f"dato-{fact_id}")


def routes() -> list[Route]:
    return [
        Route("/datos", facts_page, methods=["GET"], name="facts"),
        Route("/datos/{fact_id}/confirmar", confirm_submit, methods=["POST"], name="fact_confirm"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.facts_audit", description="Staff fact confirmations.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the database's confirmations into content/confirmations.yml")
    export.add_argument("--out", type=Path, default=CONFIRMATIONS, help="default content/confirmations.yml")
    args = parser.parse_args(argv)
    engine = make_engine(load_settings().database_url)
    try:
        result = export_confirmations(engine, args.out, utcnow())
    except ContentError as error:
        print(f"nothing written: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"{result.path}: {result.total} confirmation(s), {len(result.updated)} new or newer", end="")
    print(f" ({', '.join(result.updated)})" if result.updated else "")
    print("Review the change (git diff), run `make content`, and commit it like any content change.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
