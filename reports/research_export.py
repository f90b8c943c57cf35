"""An anonymised case-level export for researchers, in the column names of the Counter
Trafficking Data Collaborative's global dataset (CTDC codebook; docs/public-figures.md):

    python -m reports.research_export --desde 2026-01 --hasta 2026-06 [--out FILE] [--k 11]

One row per report, from plain columns only (country, kind, minors, year): never report
text, place, code, id, channel or a date finer than the year. Fields the hotline does not
record are empty. k-anonymity (k = --k or HOTLINE_EXPORT_MIN_GROUP, default 11 as CTDC):
a report whose quasi-identifiers (year, majority status, country, exploitation type) are
shared by fewer than k reports of the export is generalised (exploitation type, then
majority status, then country emptied) and dropped if still rarer than k. A period with
fewer than k reports is refused. Each export and each refusal is audited (actor `cli`).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from reports.config import _int, load_settings
from reports.db import make_engine, transaction
from reports.models import AuditEntry, Report
from reports.public_figures import public_labels

DEFAULT_K = 11  # CTDC's own k for its downloadable global dataset
COLUMNS = (
    "yearOfRegistration",
    "Datasource",
    "gender",
    "ageBroad",
    "majorityStatus",
    "majorityStatusAtExploit",
    "majorityEntry",
    "citizenship",
    "CountryOfExploitation",
    "typeOfExploitConcatenated",
    "isForcedLabour",
    "isSexualExploit",
    "isOtherExploit",
    "typeOfLabourConcatenated",
    "typeOfSexConcatenated",
    "recruiterRelationship",
)
QUASI = ("yearOfRegistration", "majorityStatus", "CountryOfExploitation", "typeOfExploitConcatenated")
GENERALISE = ("typeOfExploitConcatenated", "majorityStatus", "CountryOfExploitation")  # emptied in this order
EXPLOIT = {  # the hotline's kind -> CTDC's typeOfExploitConcatenated
    "sexual": "Sexual exploitation",
    "labour": "Forced labour",
    "forced_marriage": "Forced marriage",
    "organ_removal": "Organ removal",
    "begging": "Other",
    "forced_crime": "Other",
    "other": "Other",
}
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


class ExportRefused(ValueError):
    """The period is not valid or holds too few reports to export anonymously."""


@dataclass(frozen=True)
class Export:
    csv: str
    rows: int
    reports: int
    dropped: int
    message: str


def min_group(env: Mapping[str, str] = os.environ) -> int:
    return _int(env, "HOTLINE_EXPORT_MIN_GROUP", DEFAULT_K, minimum=2)


def period_bounds(start: str, end: str) -> tuple[datetime, datetime]:
    """[first day of `start`, first day of the month after `end`) in UTC, from AAAA-MM."""
    if not MONTH.fullmatch(start) or not MONTH.fullmatch(end) or start > end:
        raise ExportRefused(public_labels()["export"]["refused_period"])
    year, month = int(end[:4]), int(end[5:])
    after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return datetime(int(start[:4]), int(start[5:]), 1, tzinfo=UTC), after


def ctdc_row(country: str | None, kind: str | None, minors: bool | None, created_at: datetime) -> dict[str, str]:
    """One report in CTDC's columns. majorityStatus: "Minor" when the report is about a child
    or says minors are involved, "Adult" when it says none are, empty when not asked."""
    exploit = EXPLOIT.get(kind or "", "")
    minor = "Minor" if kind == "child" or minors else "Adult" if minors is False else ""
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        yearOfRegistration=str(created_at.year),
        Datasource="Hotline",
        majorityStatus=minor,
        CountryOfExploitation=country or "",
        typeOfExploitConcatenated=exploit,
    )
    return _flags(row)


def _flags(row: dict[str, str]) -> dict[str, str]:
    """CTDC's 0/1 flags follow typeOfExploitConcatenated (empty when it is unknown)."""
    exploit = row["typeOfExploitConcatenated"]
    for flag, value in (("isForcedLabour", "Forced labour"), ("isSexualExploit", "Sexual exploitation")):
        row[flag] = "" if not exploit else "1" if exploit == value else "0"
    other = exploit not in ("", "Forced labour", "Sexual exploitation")
    row["isOtherExploit"] = "" if not exploit else "1" if other else "0"
    return row


def k_anonymise(rows: list[dict[str, str]], k: int) -> tuple[list[dict[str, str]], int]:
    """Generalise the rows whose quasi-identifiers are rarer than k, one field at a time, and
    drop those still rarer; returns (kept rows, dropped count)."""
    for field in GENERALISE:
        groups = Counter(tuple(row[q] for q in QUASI) for row in rows)
        for row in rows:
            if groups[tuple(row[q] for q in QUASI)] < k:
                row[field] = ""
                _flags(row)
    groups = Counter(tuple(row[q] for q in QUASI) for row in rows)
    kept = [row for row in rows if groups[tuple(row[q] for q in QUASI)] >= k]
    return kept, len(rows) - len(kept)


def _audit(engine: Engine, now: datetime, detail: str) -> None:
    with transaction(engine) as session:
        session.add(AuditEntry(at=now, actor="cli", action="export", target="ctdc.csv", detail=detail[:300]))


def export(engine: Engine, start: str, end: str, k: int, now: datetime) -> Export:
    """The CTDC CSV for reports filed from month `start` to month `end` (AAAA-MM, both
    included). Raises ExportRefused (audited when the period is valid) when it has fewer
    than k reports."""
    labels = public_labels()["export"]
    since, until = period_bounds(start, end)
    period = f"{start}/{end}"
    with transaction(engine) as session:
        found = session.execute(
            select(Report.country, Report.kind, Report.minors, Report.created_at)
            .where(Report.created_at >= since, Report.created_at < until)
            .order_by(Report.created_at)
        ).all()
    if len(found) < k:
        _audit(engine, now, str(labels["audit_refused"]).format(n=len(found), period=period, k=k))
        raise ExportRefused(str(labels["refused_small"]).format(n=len(found), period=period, k=k))
    rows, dropped = k_anonymise([ctdc_row(*report) for report in found], k)
    rows.sort(key=lambda row: tuple(row[c] for c in COLUMNS))  # no trace of the filing order
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    _audit(engine, now, str(labels["audit_done"]).format(rows=len(rows), dropped=dropped, period=period, k=k))
    message = str(labels["done"]).format(rows=len(rows), n=len(found), period=period, dropped=dropped)
    return Export(out.getvalue(), len(rows), len(found), dropped, message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Anonymised CTDC-format export for researchers.")
    parser.add_argument("--desde", required=True, help="first month, AAAA-MM")
    parser.add_argument("--hasta", required=True, help="last month, AAAA-MM")
    parser.add_argument("--out", default="-", help="file (default: standard output)")
    parser.add_argument("--k", type=int, default=None, help="minimum group size (HOTLINE_EXPORT_MIN_GROUP, 11)")
    args = parser.parse_args(argv)
    k = args.k if args.k is not None else min_group()
    if k < 2:
        parser.error("--k must be at least 2")
    engine = make_engine(load_settings().database_url)
    try:
        done = export(engine, args.desde, args.hasta, k, datetime.now(UTC))
    except ExportRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.out == "-":
        sys.stdout.write(done.csv)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as handle:
            handle.write(done.csv)
    print(done.message, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
