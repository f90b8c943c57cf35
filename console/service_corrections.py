"""Corrections to the services directory with four-eyes approval.

Any staff member proposes a change to one field of an entry on /console/servicios (a new
phone, an address, a source, the day they called it), or a new entry (always 🟡, never
called, with its source URLs). The proposal is checked as the
directory's validator would check the corrected entry (hotline/services.py: phone form and
calling code, http(s) URLs, a country the line serves, the field whitelist); a bad one is
refused with a Spanish message naming what is wrong, and audited. A supervisor who did not
propose it approves or rejects it (the proposer never can, whatever their role). Approved
corrections reach the assistant only through content/service_corrections.yml, committed and
reviewed like any content change:

    python -m console.service_corrections export [--out content/service_corrections.yml]
    (make service-corrections)

adds the approved corrections whose id the file lacks, in approval order, with the roles
(never names); the whole result must validate or nothing is written. Each export is audited
(actor "cli", action "service_corrections_exported").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, aliased
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth
from console.app import console_of, redirect_to
from console.labels import console_labels, label
from console.pages import audit, form_text, in_transaction, not_found
from hotline.countries import country_names
from hotline.phone import calling_code_of
from hotline.services import (
    CORRECTABLE,
    CORRECTIONS,
    KEEP,
    NEW_ENTRY,
    SERVES,
    SERVICES,
    Correction,
    ServicesError,
    apply_correction,
    check_phone,
    check_url,
    new_entry,
    parse_service,
    parse_services,
    read_corrections,
    read_yaml,
    with_corrections,
)
from reports.config import load_settings
from reports.db import make_engine, transaction
from reports.models import ServiceCorrection, StaffAccount, utcnow

MAX_VALUE = 500
CORRECTION_ID = re.compile(r"[0-9]{1,9}")
TARGET = label("audit_log", "targets", "service_correction")
SERVICE_TARGET = label("audit_log", "targets", "service")
DETAIL = label("audit_log", "service_correction")


def words() -> dict[str, Any]:
    found: dict[str, Any] = console_labels()["service_corrections"]
    return found


class CorrectionRefused(ValueError):
    """A proposal that must not be stored: the Spanish message says why."""


@dataclass(frozen=True)
class Proposal:
    service_id: str
    field: str
    value: str
    source: str
    note: str


def raw_entries(corrections: Path | None = CORRECTIONS) -> dict[str, dict[str, Any]]:
    """id -> the entry's raw data as the assistant has it (services.yml with the exported
    corrections)."""
    data = with_corrections(
        read_yaml(SERVICES.read_text(encoding="utf-8")), read_corrections(corrections) if corrections else []
    )
    return {str(raw["id"]): raw for raw in data["services"]}


def _check_value(field: str, value: str, country: str, today: date) -> None:
    """The field's own rule, with the Spanish message of content/console.yml."""
    invalid = words()["invalid"]
    if field == "phone" and value:
        try:
            check_phone(value, country, field)
        except ServicesError as error:
            raise CorrectionRefused(
                str(invalid["phone"]).format(value=value, code=calling_code_of(country) or "")
            ) from error
    if field in ("web", "source") and value:
        try:
            check_url(value, field)
        except ServicesError as error:
            raise CorrectionRefused(str(invalid["url"]).format(value=value)) from error
    if field == "country" and value not in country_names():
        raise CorrectionRefused(str(invalid["country"]).format(value=value, countries=", ".join(country_names())))
    if field == "verified_on":
        try:
            when = date.fromisoformat(value)
        except ValueError:
            when = None
        if when is None or when > today:
            raise CorrectionRefused(str(invalid["date"]).format(value=value))


def check_proposal(proposal: Proposal, entries: dict[str, dict[str, Any]], today: date) -> None:
    """CorrectionRefused with the Spanish reason, or None: the corrected entry validates."""
    invalid = words()["invalid"]
    if proposal.service_id not in entries:
        raise CorrectionRefused(str(invalid["unknown_service"]).format(id=proposal.service_id))
    if proposal.field not in CORRECTABLE:
        names = ", ".join(str(words()["fields"][f]) for f in CORRECTABLE)
        raise CorrectionRefused(str(invalid["unknown_field"]).format(fields=names))
    field_name = str(words()["fields"][proposal.field])
    for text in (proposal.value, proposal.source, proposal.note):
        if len(text) > MAX_VALUE:
            raise CorrectionRefused(str(invalid["too_long"]).format(n=len(text), limit=MAX_VALUE))
    if not proposal.value and proposal.field in KEEP:
        raise CorrectionRefused(str(invalid["empty"]).format(field=field_name))
    if not proposal.note:
        raise CorrectionRefused(str(invalid["note"]))
    raw = entries[proposal.service_id]
    country = proposal.value if proposal.field == "country" else str(raw["country"])
    _check_value(proposal.field, proposal.value, country, today)
    if proposal.source:
        _check_value("source", proposal.source, country, today)
    try:
        parse_service(apply_correction(raw, proposal.field, proposal.value, proposal.source), set(country_names()))
    except ServicesError as error:
        raise CorrectionRefused(str(invalid["other"]).format(detail=error)) from error


# Fields of the new-entry form (text inputs; "sources" one URL a line, "serves" checkboxes).
ENTRY_TEXTS = (
    "id",
    "country",
    "city",
    "name",
    "kind",
    "summary",
    "address",
    "hours",
    "phone",
    "web",
    "source_date",
    "caveat",
)


def check_new_entry(fields: dict[str, Any], entries: dict[str, dict[str, Any]], today: date) -> dict[str, Any]:
    """The raw data of a proposed new entry, or CorrectionRefused with the Spanish reason."""
    invalid = words()["invalid"]
    service_id = str(fields.get("id") or "")
    if service_id in entries:
        raise CorrectionRefused(str(invalid["exists"]).format(id=service_id))
    country = str(fields.get("country") or "")
    if country not in country_names():
        raise CorrectionRefused(str(invalid["country"]).format(value=country, countries=", ".join(country_names())))
    sources = [line.strip() for line in str(fields.get("sources") or "").splitlines() if line.strip()]
    if not sources:
        raise CorrectionRefused(str(invalid["sources"]))
    if not fields.get("note"):
        raise CorrectionRefused(str(invalid["note"]))
    for text in (*(str(fields.get(k) or "") for k in ENTRY_TEXTS), *sources, str(fields.get("note"))):
        if len(text) > MAX_VALUE:
            raise CorrectionRefused(str(invalid["too_long"]).format(n=len(text), limit=MAX_VALUE))
    _check_value("phone", str(fields.get("phone") or ""), country, today)
    for url in [str(fields.get("web") or ""), *sources]:
        _check_value("web", url, country, today)
    raw: dict[str, Any] = {key: (str(fields.get(key) or "").strip() or None) for key in ENTRY_TEXTS}
    raw.update(also=[], serves=list(fields.get("serves") or []), sources=sources)
    try:
        parse_service(new_entry(json.dumps(raw, ensure_ascii=False), service_id), set(country_names()))
    except ServicesError as error:
        raise CorrectionRefused(str(invalid["other"]).format(detail=error)) from error
    return raw


def entry_fields(request: Request) -> dict[str, Any]:
    form = request.state.form
    fields: dict[str, Any] = {key: form_text(request, key, 1000).strip() for key in ENTRY_TEXTS}
    fields["sources"] = form_text(request, "sources", 4000)
    fields["note"] = form_text(request, "note", 1000).strip()
    fields["serves"] = [str(v) for v in form.getlist("serves") if isinstance(v, str) and v in SERVES]
    return fields


def proposal_of(request: Request) -> Proposal:
    return Proposal(
        service_id=form_text(request, "service", 200).strip(),
        field=form_text(request, "field", 40).strip(),
        value=form_text(request, "value").strip(),
        source=form_text(request, "source").strip(),
        note=form_text(request, "note").strip(),
    )


# -- what the services page shows ---------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    id: int
    service_id: str
    field: str
    value: str
    source: str
    note: str
    state: str
    proposer: str
    proposer_id: int
    decider: str | None
    proposed_at: datetime


def listed(engine: Engine, limit: int = 50) -> list[Shown]:
    """Pending corrections first (oldest first), then the latest decided ones."""
    proposer, decider = aliased(StaffAccount), aliased(StaffAccount)
    with transaction(engine) as session:
        rows = session.execute(
            select(ServiceCorrection, proposer.username, decider.username)
            .join(proposer, proposer.id == ServiceCorrection.proposed_by)
            .outerjoin(decider, decider.id == ServiceCorrection.decided_by)
            .order_by(ServiceCorrection.state != "pending", ServiceCorrection.id.desc())
            .limit(limit)
        ).all()
    return [
        Shown(c.id, c.service_id, c.field, c.value, c.source, c.note, c.state, p, c.proposed_by, d, c.proposed_at)
        for c, p, d in rows
    ]


# -- handlers -----------------------------------------------------------------------------


@auth.requires("agent")
async def propose(request: Request, account: StaffAccount) -> Response:
    from console.services_page import page  # the page imports this module

    console = console_of(request)
    proposal = proposal_of(request)
    try:
        check_proposal(proposal, raw_entries(), console.now().date())
        problem = None
    except CorrectionRefused as refused:
        problem = str(refused)
    if problem is not None:
        reason = problem

        def record_refusal(session: Session) -> None:
            target = SERVICE_TARGET.format(id=proposal.service_id[:60])
            detail = f"{proposal.field[:20]}: {reason}"
            audit(session, console, "service_correction_invalid", account, target=target, detail=detail)

        await in_transaction(console, record_refusal)
        return await page(request, account, 400, error=problem, form=proposal.__dict__)

    def store(session: Session) -> int:
        correction = ServiceCorrection(
            service_id=proposal.service_id,
            field=proposal.field,
            value=proposal.value,
            source=proposal.source,
            note=proposal.note,
            state="pending",
            proposed_by=account.id,
            proposed_at=console.now(),
        )
        session.add(correction)
        session.flush()
        target = TARGET.format(id=correction.id, service=proposal.service_id)
        detail = DETAIL.format(field=proposal.field, value=proposal.value)
        audit(session, console, "service_correction_proposed", account, target=target, detail=detail)
        return correction.id

    await in_transaction(console, store)
    return redirect_to(request, "services", query={"hecho": "propuesta"}, fragment="correcciones")


@auth.requires("agent")
async def propose_entry(request: Request, account: StaffAccount) -> Response:
    from console.services_page import page  # the page imports this module

    console = console_of(request)
    fields = entry_fields(request)
    service_id = str(fields["id"])
    try:
        raw = check_new_entry(fields, raw_entries(), console.now().date())
        problem = None
    except CorrectionRefused as refused:
        raw, problem = {}, str(refused)
    if problem is not None:
        reason = problem

        def record_refusal(session: Session) -> None:
            target = SERVICE_TARGET.format(id=service_id[:60])
            audit(
                session, console, "service_correction_invalid", account, target=target, detail=f"{NEW_ENTRY}: {reason}"
            )

        await in_transaction(console, record_refusal)
        return await page(request, account, 400, error=problem, entry_form=fields)

    def store(session: Session) -> None:
        value = json.dumps(raw, ensure_ascii=False)
        correction = ServiceCorrection(
            service_id=service_id,
            field=NEW_ENTRY,
            value=value,
            source="",
            note=str(fields["note"]),
            state="pending",
            proposed_by=account.id,
            proposed_at=console.now(),
        )
        session.add(correction)
        session.flush()
        target = TARGET.format(id=correction.id, service=service_id)
        detail = DETAIL.format(field=NEW_ENTRY, value=raw["name"])
        audit(session, console, "service_correction_proposed", account, target=target, detail=detail)

    await in_transaction(console, store)
    return redirect_to(request, "services", query={"hecho": "propuesta"}, fragment="correcciones")


async def _decide(request: Request, account: StaffAccount, state: str) -> Response:
    console = console_of(request)
    raw_id = str(request.path_params.get("correction_id", ""))
    if not CORRECTION_ID.fullmatch(raw_id):
        return not_found(request, str(words()["not_found"]))
    correction_id = int(raw_id)
    action = f"service_correction_{state}"

    def decide(session: Session) -> str:
        correction = session.get(ServiceCorrection, correction_id)
        if correction is None:
            return "not_found"
        target = TARGET.format(id=correction.id, service=correction.service_id)
        if correction.proposed_by == account.id:
            audit(session, console, "service_correction_own_refused", account, target=target)
            return "own"
        if correction.state != "pending":
            return "decided"
        correction.state, correction.decided_by, correction.decided_at = state, account.id, console.now()
        audit(
            session,
            console,
            action,
            account,
            target=target,
            detail=DETAIL.format(field=correction.field, value=correction.value),
        )
        return "done"

    outcome = await in_transaction(console, decide)
    if outcome == "not_found":
        return not_found(request, str(words()["not_found"]))
    if outcome == "own":
        return console.error(request, 403, label("common", "errors", "forbidden", "title"), str(words()["own"]))
    if outcome == "decided":
        return console.error(request, 409, label("common", "errors", "bad_request", "title"), str(words()["decided"]))
    return redirect_to(request, "services", query={"hecho": state}, fragment="correcciones")


@auth.requires("supervisor")
async def approve(request: Request, account: StaffAccount) -> Response:
    return await _decide(request, account, "approved")


@auth.requires("supervisor")
async def reject(request: Request, account: StaffAccount) -> Response:
    return await _decide(request, account, "rejected")


def routes() -> list[Route]:
    return [
        Route("/servicios/correcciones", propose, methods=["POST"], name="service_correction_propose"),
        Route("/servicios/nueva", propose_entry, methods=["POST"], name="service_entry_propose"),
        Route(
            "/servicios/correcciones/{correction_id}/aprobar",
            approve,
            methods=["POST"],
            name="service_correction_approve",
        ),
        Route(
            "/servicios/correcciones/{correction_id}/rechazar",
            reject,
            methods=["POST"],
            name="service_correction_reject",
        ),
    ]


# -- export into content/service_corrections.yml ------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    path: Path
    total: int
    added: tuple[int, ...]


def approved(engine: Engine) -> list[Correction]:
    """Every approved correction, in approval order, with the roles of both people."""
    proposer, decider = aliased(StaffAccount), aliased(StaffAccount)
    with transaction(engine) as session:
        rows = session.execute(
            select(ServiceCorrection, proposer.role, decider.role)
            .join(proposer, proposer.id == ServiceCorrection.proposed_by)
            .join(decider, decider.id == ServiceCorrection.decided_by)
            .where(ServiceCorrection.state == "approved")
            .order_by(ServiceCorrection.decided_at, ServiceCorrection.id)
        ).all()
    return [
        Correction(
            c.id,
            c.service_id,
            c.field,
            c.value,
            c.source,
            c.decided_at.date().isoformat() if c.decided_at else "",
            proposer_role,
            decider_role,
        )
        for c, proposer_role, decider_role in rows
    ]


def dump_corrections(corrections: list[Correction], header_from: Path) -> str:
    """The file's text: its comment header kept, then version and corrections."""
    header = "".join(line for line in _header_lines(header_from))
    body = yaml.safe_dump(
        {"version": 1, "corrections": [c.as_yaml() for c in corrections]},
        allow_unicode=True,
        sort_keys=False,
        width=1000,
    )
    return header + body


def _header_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    return header


def export_corrections(engine: Engine, out: Path, now: datetime) -> ExportResult:
    """Add the approved corrections the file lacks; refuse (write nothing) if the directory
    would not validate with them."""
    existing = read_corrections(out)
    known = {c.id for c in existing}
    added = [c for c in approved(engine) if c.id not in known]
    merged = existing + added
    try:
        parse_services(with_corrections(read_yaml(SERVICES.read_text(encoding="utf-8")), merged))
    except ServicesError as error:
        raise ServicesError(f"nothing written: {error}") from error
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(dump_corrections(merged, out if out.exists() else CORRECTIONS), encoding="utf-8")
    os.replace(partial, out)
    ids = ", ".join(str(c.id) for c in added) or label("common", "none")
    detail = str(words()["exported_detail"]).format(total=len(merged), added=len(added), ids=ids)
    auth.audit(engine, "service_corrections_exported", now, actor="cli", target=out.name, detail=detail)
    return ExportResult(out, len(merged), tuple(c.id for c in added))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.service_corrections", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write approved corrections into content/service_corrections.yml")
    export.add_argument("--out", type=Path, default=CORRECTIONS, help="default content/service_corrections.yml")
    args = parser.parse_args(argv)
    engine = make_engine(load_settings().database_url)
    try:
        result = export_corrections(engine, args.out, utcnow())
    except ServicesError as error:
        print(str(error), file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    added = f" ({', '.join(map(str, result.added))})" if result.added else ""
    print(f"{result.path}: {result.total} correction(s), {len(result.added)} new{added}")
    print("Review the change (git diff), run `python -m hotline.build --check`, and commit it like any content change.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
