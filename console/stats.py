"""Statistics for supervisors: reports by country, kind, month and priority, the urgent
share and the median time to first triage (filing to the first status change away from
"received"), as tables and server-rendered SVG bar charts (no scripts); and response times:
from an on-call alert to its acknowledgement and from filing to the first staff action
(median and 90th percentile, in minutes).

The CSV export holds aggregated counts only (dimension, value, count; months, never finer
dates; never report text, ids or codes). Counts from 1 to 4 are written "<5"; a dimension's
total is suppressed when any of its cells is, and since every dimension counts the same
reports, every total is suppressed as soon as one is. Each export is audited.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth
from console.app import console_of
from console.cases import KIND_NAMES
from console.labels import console_labels
from reports.db import transaction
from reports.models import OnCallPage, Report, StaffAccount, StatusChange
from reports.response import first_actions
from reports.triage import priority_label

SMALL = 5  # counts from 1 to SMALL - 1 are suppressed in the export
DIMENSIONS = ("country", "kind", "month", "priority")
BAR_WIDTH = 360  # px of the longest bar
BAR_HEIGHT = 22
LABEL_WIDTH = 220


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    width: int
    y: int


@dataclass(frozen=True)
class Chart:
    dimension: str
    title: str
    bars: tuple[Bar, ...]
    height: int
    width: int = LABEL_WIDTH + BAR_WIDTH + 60


@dataclass(frozen=True)
class Stats:
    total: int
    counts: dict[str, dict[str, int]]  # dimension -> value -> count (value "" = no value)
    urgent: int
    triaged: int
    median_triage_hours: float | None

    @property
    def urgent_share(self) -> float | None:
        return self.urgent / self.total if self.total else None


def _month(at: datetime) -> str:
    return at.strftime("%Y-%m")


def compute(engine: Engine) -> Stats:
    """The counts and the median triage time, from plain columns only (nothing is unsealed)."""
    with transaction(engine) as session:
        reports = session.execute(select(Report.id, Report.country, Report.kind, Report.priority, Report.created_at))
        counts: dict[str, Counter[str]] = {dimension: Counter() for dimension in DIMENSIONS}
        created: dict[str, datetime] = {}
        for report_id, country, kind, priority, created_at in reports:
            counts["country"][country or ""] += 1
            counts["kind"][kind or ""] += 1
            counts["month"][_month(created_at)] += 1
            counts["priority"][priority] += 1
            created[report_id] = created_at
        first: dict[str, datetime] = {}
        changes = session.execute(
            select(StatusChange.report_id, StatusChange.at)
            .where(StatusChange.new_status != "received")
            .order_by(StatusChange.at, StatusChange.id)
        )
        for report_id, at in changes:
            first.setdefault(report_id, at)
    hours = [(at - created[rid]).total_seconds() / 3600 for rid, at in first.items() if rid in created]
    return Stats(
        total=len(created),
        counts={dimension: dict(counter) for dimension, counter in counts.items()},
        urgent=counts["priority"].get("urgent", 0),
        triaged=len(hours),
        median_triage_hours=statistics.median(hours) if hours else None,
    )


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile (nearest rank) of some durations, in minutes."""

    count: int
    median: float | None
    p90: float | None


def spread(minutes: list[float]) -> Spread:
    if not minutes:
        return Spread(0, None, None)
    ranked = sorted(minutes)
    return Spread(len(ranked), statistics.median(ranked), ranked[math.ceil(0.9 * len(ranked)) - 1])


@dataclass(frozen=True)
class ResponseTimes:
    acknowledge: Spread  # first on-call page of a report or hand-off -> its first acknowledgement
    first_action: Spread  # filing -> the report's first staff action


def response_times(engine: Engine) -> ResponseTimes:
    """Both spreads, from plain columns (page times, action times); nothing is unsealed."""
    with transaction(engine) as session:
        first_page: dict[str, datetime] = {}
        first_ack: dict[str, datetime] = {}
        for subject, created_at, acknowledged_at in session.execute(
            select(OnCallPage.subject, OnCallPage.created_at, OnCallPage.acknowledged_at)
        ):
            first_page[subject] = min(created_at, first_page.get(subject, created_at))
            if acknowledged_at is not None:
                first_ack[subject] = min(acknowledged_at, first_ack.get(subject, acknowledged_at))
        created = {rid: at for rid, at in session.execute(select(Report.id, Report.created_at))}
        actions = first_actions(session)
    ack = [(at - first_page[subject]).total_seconds() / 60 for subject, at in first_ack.items()]
    acted = [(at - created[rid]).total_seconds() / 60 for rid, at in actions.items() if rid in created]
    return ResponseTimes(spread(ack), spread([max(0.0, m) for m in acted]))


def value_label(dimension: str, value: str) -> str:
    if not value:
        return str(console_labels()["stats"]["no_value"])
    if dimension == "kind":
        return KIND_NAMES.get(value, value)
    if dimension == "priority":
        return priority_label(value)
    return value


def ordered(dimension: str, values: dict[str, int]) -> list[tuple[str, int]]:
    """Months in time order, the others from most to fewest."""
    if dimension == "month":
        return sorted(values.items())
    return sorted(values.items(), key=lambda item: (-item[1], item[0]))


def charts(stats: Stats) -> list[Chart]:
    titles = console_labels()["stats"]["dimensions"]
    made = []
    for dimension in DIMENSIONS:
        rows = ordered(dimension, stats.counts[dimension])
        top = max((count for _, count in rows), default=1)
        bars = tuple(
            Bar(value_label(dimension, value), count, max(1, round(BAR_WIDTH * count / top)), index * BAR_HEIGHT)
            for index, (value, count) in enumerate(rows)
        )
        made.append(Chart(dimension, str(titles[dimension]), bars, max(1, len(bars)) * BAR_HEIGHT))
    return made


def suppressed_rows(stats: Stats) -> list[tuple[str, str, str]]:
    """(dimension, value, count) rows for the export. Counts from 1 to 4 are "<5". Every
    dimension counts the same reports, so a dimension with no small cell gives the total
    away: a dimension with a single small cell also hides its next smallest cell, and every
    total is hidden as soon as any cell is."""
    labels = console_labels()["stats"]
    small_mark, hidden_mark = str(labels["suppressed"]), str(labels["suppressed_total"])
    rows: list[tuple[str, str, str]] = []
    any_suppressed = False
    for dimension in DIMENSIONS:
        cells = ordered(dimension, stats.counts[dimension])
        small = {value for value, count in cells if 0 < count < SMALL}
        others = sorted((count, value) for value, count in cells if count >= SMALL)
        complement = {others[0][1]} if len(small) == 1 and others else set()
        any_suppressed = any_suppressed or bool(small)
        for value, count in cells:
            shown = small_mark if value in small else hidden_mark if value in complement else str(count)
            rows.append((dimension, value or str(labels["no_value"]), shown))
    if 0 < stats.total < SMALL:
        total = small_mark
    elif any_suppressed:
        total = hidden_mark
    else:
        total = str(stats.total)
    rows.extend((dimension, "total", total) for dimension in DIMENSIONS)
    return rows


def to_csv(rows: list[tuple[str, str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("dimension", "value", "count"))
    for dimension, value, count in rows:
        # a leading =, +, - or @ would be a formula in a spreadsheet
        writer.writerow((dimension, "'" + value if value[:1] in "=+-@" else value, count))
    return out.getvalue()


@auth.requires("supervisor")
async def stats_page(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    stats = await run_in_threadpool(compute, console.engine)
    times = await run_in_threadpool(response_times, console.engine)
    context: dict[str, Any] = {
        "stats": stats,
        "times": times,
        "charts": charts(stats),
        "labels": console_labels()["stats"],
        "public_url": console.settings.public_url,
    }
    return console.render(request, "stats.html", account=account, **context)


@auth.requires("supervisor")
async def stats_csv(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)

    def export() -> str:
        rows = suppressed_rows(compute(console.engine))
        auth.audit(
            console.engine,
            "export",
            console.now(),
            actor=account.username,
            target="estadisticas.csv",
            detail=auth.AUDIT_DETAILS["export_rows"].format(n=len(rows)),
        )
        return to_csv(rows)

    body = await run_in_threadpool(export)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="estadisticas.csv"'},
    )


def routes() -> list[Route]:
    return [
        Route("/estadisticas", stats_page, methods=["GET"], name="stats"),
        Route("/estadisticas.csv", stats_csv, methods=["GET"], name="stats_csv"),
    ]
