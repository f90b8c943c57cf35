"""Content audit: the facts a person must re-check before they can be trusted.

Lists every fact that is not verified (secondary, unverified) or carries a caveat, and
every fact whose last check by phone (`verified_on`) is missing or older than
--max-age-days, with the answers that show it. `make audit` or `python -m hotline.audit`.
Exit status 0; the list is for staff, not a gate.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date, timedelta

from hotline.content import Fact, load_facts, render_all

MARKS = {"verified": "✅", "secondary": "🟡", "unverified": "❌"}
DEFAULT_MAX_AGE_DAYS = 180


@dataclass(frozen=True)
class AuditRow:
    fact: Fact
    reasons: tuple[str, ...]
    shown_in: tuple[str, ...]


def fact_usage() -> dict[str, set[str]]:
    """fact id -> the answers (response [variant]) that show or state it."""
    usage: dict[str, set[str]] = {}
    for name, variants in render_all().items():
        for variant, pages in variants.items():
            for page in pages:
                for fact_id in page.facts:
                    usage.setdefault(fact_id, set()).add(f"{name}[{variant}]")
    return usage


def audit(today: date, max_age_days: int = DEFAULT_MAX_AGE_DAYS) -> list[AuditRow]:
    usage = fact_usage()
    rows = []
    for fact in load_facts().values():
        reasons = []
        if fact.confidence != "verified":
            reasons.append(f"{MARKS.get(fact.confidence, '?')} {fact.confidence}")
        if fact.raw.get("caveat"):
            reasons.append("⚠️ caveat")
        checked = fact.raw.get("verified_on")
        if fact.showable and fact.value:
            if not checked:
                reasons.append("never confirmed by a call")
            elif date.fromisoformat(str(checked)) < today - timedelta(days=max_age_days):
                reasons.append(f"last confirmed {checked}")
        if reasons:
            rows.append(AuditRow(fact, tuple(reasons), tuple(sorted(usage.get(fact.id, ())))))
    # Facts people actually see first, then by id.
    return sorted(rows, key=lambda r: (not r.shown_in, r.fact.id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-age-days", type=int, default=DEFAULT_MAX_AGE_DAYS)
    parser.add_argument("--shown-only", action="store_true", help="only facts that answers show")
    args = parser.parse_args(argv)
    rows = audit(date.today(), args.max_age_days)
    if args.shown_only:
        rows = [r for r in rows if r.shown_in]
    print(f"{len(rows)} facts to re-check (max age {args.max_age_days} days)\n")
    for row in rows:
        value = f" {row.fact.value}" if row.fact.value else ""
        print(f"{row.fact.id}{value}: {'; '.join(row.reasons)}")
        print(f"    source: {', '.join(row.fact.raw.get('sources') or ['none'])} ({row.fact.raw.get('source_date')})")
        print(f"    shown in: {', '.join(row.shown_in) if row.shown_in else 'no answer'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
