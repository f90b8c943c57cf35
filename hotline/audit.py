"""Content audit: the facts a person must re-check before they can be trusted.

Lists every fact that is not verified (secondary, unverified) or carries a caveat, and
every fact whose last check by phone is missing or older than --max-age-days, with the
answers that show it; then every entry of the services directory (content/services.yml) that
staff must call: not verified, never called or called too long ago. The last check of a fact
is the newer of facts.yml `verified_on` and the staff confirmation carried in
content/confirmations.yml (`make confirmations`). A confirmation
clears only the age reason: a call shows the number answers, not that the source is
official, so a 🟡 or ❌ fact stays listed for its mark until facts.yml is updated.
`make audit` or `python -m hotline.audit`. Exit status 0 (the list is for staff, not a gate),
1 only if content/services.yml is invalid.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from hotline.content import Confirmation, Fact, load_facts, render_all, utc_today
from hotline.services import Service, ServicesError, load_services

MARKS = {"verified": "✅", "secondary": "🟡", "unverified": "❌"}
DEFAULT_MAX_AGE_DAYS = 180
NEVER_CONFIRMED = "never confirmed by a call"
LAST_CONFIRMED = "last confirmed "
FUTURE_CONFIRMATION = "confirmation dated after today "


@dataclass(frozen=True)
class AuditRow:
    fact: Fact
    reasons: tuple[str, ...]
    shown_in: tuple[str, ...]
    confirmation: Confirmation | None = None  # from content/confirmations.yml


def fact_usage(facts: dict[str, Fact] | None = None) -> dict[str, set[str]]:
    """fact id -> the answers (response [variant]) that show or state it."""
    usage: dict[str, set[str]] = {}
    for name, variants in render_all(facts).items():
        for variant, pages in variants.items():
            for page in pages:
                for fact_id in page.facts:
                    usage.setdefault(fact_id, set()).add(f"{name}[{variant}]")
    return usage


def audit(today: date, max_age_days: int = DEFAULT_MAX_AGE_DAYS, confirmations: Path | None = None) -> list[AuditRow]:
    """The facts to re-check on `today`, with content/confirmations.yml (or the given file)."""
    facts = load_facts(confirmations)
    usage = fact_usage(facts)
    rows = []
    for fact in facts.values():
        reasons = []
        if fact.confidence != "verified":
            reasons.append(f"{MARKS.get(fact.confidence, '?')} {fact.confidence}")
        if fact.raw.get("caveat"):
            reasons.append("⚠️ caveat")
        if fact.confirmation and fact.confirmation.confirmed_on > today:
            reasons.append(f"{FUTURE_CONFIRMATION}{fact.confirmation.confirmed_on.isoformat()}")
        checked = fact.checked_on(today)
        if fact.showable and fact.value:
            if checked is None:
                reasons.append(NEVER_CONFIRMED)
            elif checked < today - timedelta(days=max_age_days):
                reasons.append(f"{LAST_CONFIRMED}{checked.isoformat()}")
        if reasons:
            row = AuditRow(fact, tuple(reasons), tuple(sorted(usage.get(fact.id, ()))), fact.confirmation)
            rows.append(row)
    # Facts people actually see first, then by id.
    return sorted(rows, key=lambda r: (not r.shown_in, r.fact.id))


@dataclass(frozen=True)
class ServiceRow:
    service: Service
    reasons: tuple[str, ...]


NO_PHONE = "no phone in the sources: find one"


def service_reasons(service: Service, today: date, max_age_days: int) -> list[str]:
    """Why staff must call a directory entry; empty when it was verified recently."""
    reasons = []
    if service.confidence != "verified":
        reasons.append(f"{service.mark} {service.confidence}")
    if service.verified_on is None:
        reasons.append(NEVER_CONFIRMED)
    elif service.verified_on < today - timedelta(days=max_age_days):
        reasons.append(f"{LAST_CONFIRMED}{service.verified_on.isoformat()}")
    if reasons and service.phone is None:
        reasons.append(NO_PHONE)
    return reasons


def services_to_call(
    today: date, max_age_days: int = DEFAULT_MAX_AGE_DAYS, services: dict[str, Service] | None = None
) -> list[ServiceRow]:
    """Directory entries to call on `today` (ServicesError if the file is invalid), by
    country then id."""
    entries = load_services() if services is None else services
    rows = []
    for service in entries.values():
        reasons = service_reasons(service, today, max_age_days)
        if reasons:
            rows.append(ServiceRow(service, tuple(reasons)))
    return sorted(rows, key=lambda r: (r.service.country, r.service.id))


def print_services(rows: list[ServiceRow], max_age_days: int) -> None:
    """The directory part of the report: what to call and what to ask."""
    print(f"\n{len(rows)} directory entries to call (content/services.yml, max age {max_age_days} days)\n")
    for row in rows:
        service = row.service
        where = f"{service.city}, {service.country}" if service.city else service.country
        print(f"{service.id} [{service.kind}] {service.name} ({where}): {'; '.join(row.reasons)}")
        print(f"    phone: {service.phone or 'none'}; address: {service.address or 'none'}")
        print(f"    source: {', '.join(service.sources)} ({service.source_date})")
        if service.caveat:
            print(f"    caveat: {service.caveat}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-age-days", type=int, default=DEFAULT_MAX_AGE_DAYS)
    parser.add_argument("--shown-only", action="store_true", help="only facts that answers show")
    args = parser.parse_args(argv)
    rows = audit(utc_today(), args.max_age_days)
    if args.shown_only:
        rows = [r for r in rows if r.shown_in]
    print(f"{len(rows)} facts to re-check (max age {args.max_age_days} days)\n")
    for row in rows:
        value = f" {row.fact.value}" if row.fact.value else ""
        print(f"{row.fact.id}{value}: {'; '.join(row.reasons)}")
        print(f"    source: {', '.join(row.fact.raw.get('sources') or ['none'])} ({row.fact.raw.get('source_date')})")
        if row.confirmation:
            confirmed = row.confirmation
            note = f": {confirmed.note}" if confirmed.note else ""
            print(f"    confirmed by phone: {confirmed.confirmed_on.isoformat()} ({confirmed.by}){note}")
        print(f"    shown in: {', '.join(row.shown_in) if row.shown_in else 'no answer'}")
    try:
        service_rows = services_to_call(utc_today(), args.max_age_days)
    except ServicesError as error:
        print(f"\ncontent/services.yml is invalid: {error}", file=sys.stderr)
        return 1
    print_services(service_rows, args.max_age_days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
