"""Hotline operations (issue 13): what the new work costs where it runs often.

1. The gateway's hot path: reading an answer's topic marks and counting them (every answer),
   and one background round's upsert of the counts (every 10 s per gateway).
2. The public page at /cifras/ (each gateway renders it at most every 10 minutes): reports
   by country, kind and month with complementary suppression, before this issue (reports only,
   the page of the last stop) and now (with questions by topic and month), at 1,000 and 10,000
   reports.
3. The on-call chain (`escalate_due`, every 30 s in the jobs loop): the run that pages 300
   urgent reports at once, and the steady run when nothing is due.
Each on SQLite and PostgreSQL. `make bench-operations` (or `.venv/bin/python -m
bench.operations [--quick]`): prints a table and rewrites its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from bench.results import replace_section
from channels.rasa_client import topic_marks
from console import auth
from reports import oncall
from reports.db import make_engine, transaction, upgrade
from reports.keys import init_keyring, load_keys
from reports.models import OnCallShift, Report
from reports.public_figures import count_reports, render
from reports.questions import QuestionTally, TopicMark, add_counts, count_questions
from reports.service import ReportDraft, file_report
from scripts.stack import ROOT, sqlite_url
from tests.db_fixtures import settings_for, temporary_postgres_database

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
PASSWORD = "correcto caballo batería grapa"
COUNTRIES = ["MX", "GT", "HN", "SV", "NI", "CR", "PA", "BZ", "DO", "US", "CA", ""]
KINDS = ["labour", "sexual", "begging", "forced_crime", "child", "other", ""]
TOPICS = ["ask_rights", "ask_shelter", "ask_hotlines", "emergency", "report_case", "check_job_offer", "greet"]
ANSWER: list[dict[str, Any]] = [
    {"recipient_id": "x", "text": "Nunca vayas con desconocidos que te ofrecen dónde dormir."},
    {"recipient_id": "x", "custom": {"hotline": {"topic": "ask_shelter", "country": "GT"}}},
]


def best_ms(run: Callable[[], object], repeat: int) -> float:
    """The fastest of `repeat` runs, in milliseconds (the least disturbed by the machine)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def hot_path_us(answers: int = 100_000) -> float:
    """Microseconds per answer: its marks read and counted (the gateway's added work)."""
    tally = QuestionTally()
    started = time.perf_counter()
    for _ in range(answers):
        tally.add(topic_marks(ANSWER), now=NOW)
    return (time.perf_counter() - started) * 1e6 / answers


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """An empty database of that kind, dropped afterwards (the audit log cannot be emptied)."""
    if kind == "PostgreSQL":
        with temporary_postgres_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield sqlite_url(Path(folder) / "reports.db")


def add_reports(engine: Engine, keys_dir: Path, total: int, recent_urgent: int = 0) -> None:
    """`total` reports spread over 24 months, countries and kinds: one filed the real way,
    the others copies of its row with their own id, hash, country, kind and date (filing
    each would time the code hash, not the page). The last `recent_urgent` are urgent and
    from the last hour (what the on-call chain pages)."""
    keys = load_keys(settings_for("sqlite://", keys_dir))
    draft = ReportDraft(
        what="bench", country="GT", place=None, when=None, people="2", minors=False, kind="labour", danger_now=False
    )
    with transaction(engine) as session:
        filed = file_report(session, draft, keys, NOW, notify_channels=())
        model = session.get(Report, filed.report_id)
        assert model is not None
        columns = {c.key: getattr(model, c.key) for c in Report.__table__.columns}
    rng = random.Random(13)
    rows = []
    for n in range(total - 1):
        urgent = n >= total - 1 - recent_urgent
        created = NOW - (timedelta(minutes=rng.randrange(60)) if urgent else timedelta(days=rng.randrange(730)))
        rows.append(
            {
                **columns,
                "id": secrets.token_hex(16),
                "lookup_hash": secrets.token_hex(32),
                "country": rng.choice(COUNTRIES) or None,
                "kind": rng.choice(KINDS) or None,
                "created_at": created,
                "updated_at": created,
                "priority": "urgent" if urgent else "normal",
            }
        )
    with transaction(engine) as session:
        session.execute(insert(Report), rows)


def add_questions(engine: Engine) -> None:
    rng = random.Random(6)
    months = [f"{2025 + m // 12}-{m % 12 + 1:02d}" for m in range(24)]
    counts = Counter({(m, c, t): rng.randrange(0, 400) for m in months for c in COUNTRIES for t in TOPICS})
    add_counts(engine, counts)


def page_ms(engine: Engine, with_questions: bool, repeat: int) -> float:
    """One rendering as the gateway does it: read the counts, suppress, write the HTML."""
    if with_questions:
        return best_ms(lambda: render(count_reports(engine), 5, NOW, count_questions(engine)), repeat)
    return best_ms(lambda: render(count_reports(engine), 5, NOW), repeat)


def flush_ms(engine: Engine, repeat: int) -> float:
    """One background round adding 200 keys (a busy 10 s: every topic, month and country)."""
    tally = QuestionTally()

    def one_round() -> None:
        for topic in TOPICS:
            for country in COUNTRIES:
                tally.add([TopicMark(topic, country or None)] * 3, now=NOW)
        tally.flush(engine)

    return best_ms(one_round, repeat)


def escalation_ms(engine: Engine, keys_dir: Path, url: str) -> tuple[float, float, int]:
    """(first run ms, steady run ms, pages written): 300 urgent reports of the last hour,
    three people on call with no contact (every page reaches nobody, so each run escalates
    until the supervisors are paged), then a run with nothing due."""
    settings = settings_for(url, keys_dir, console_url="https://consola.example/console", oncall_ack_minutes=10)
    people = [auth.create_account(engine, f"guardia{n}", "agent", PASSWORD, NOW, created_by=None).id for n in range(3)]
    auth.create_account(engine, "supervisora", "supervisor", PASSWORD, NOW, created_by=None)
    with transaction(engine) as session:
        for staff_id in people:
            session.add(
                OnCallShift(
                    staff_id=staff_id,
                    starts_at=NOW - timedelta(hours=1),
                    ends_at=NOW + timedelta(hours=8),
                    countries=[],
                    created_at=NOW,
                )
            )
    key = secrets.token_bytes(32)
    started = time.perf_counter()
    first = oncall.escalate_due(engine, settings, NOW, key)
    first_ms = (time.perf_counter() - started) * 1000
    pages = first.paged
    for _ in range(10):  # the chain to its end: next person, next, supervisors, nobody left
        counts = oncall.escalate_due(engine, settings, NOW, key)
        pages += counts.escalated
        if not (counts.paged or counts.escalated):
            break
    steady = best_ms(lambda: oncall.escalate_due(engine, settings, NOW, key), 5)
    return first_ms, steady, pages


def measure_one(kind: str, size: int, with_escalation: bool) -> dict[str, str]:
    with fresh_database(kind) as url, tempfile.TemporaryDirectory() as keys:
        upgrade(url)
        engine = make_engine(url)
        try:
            init_keyring(Path(keys))
            add_reports(engine, Path(keys), size, recent_urgent=300 if with_escalation else 0)
            add_questions(engine)
            row = {
                "database": kind,
                "reports": f"{size:,}",
                "page before": f"{page_ms(engine, False, 3):.0f}",
                "page now": f"{page_ms(engine, True, 3):.0f}",
                "flush": f"{flush_ms(engine, 5):.1f}",
            }
            if with_escalation:
                first, steady, pages = escalation_ms(engine, Path(keys), url)
                row |= {"first": f"{first:.0f}", "steady": f"{steady:.0f}", "pages": str(pages)}
            return row
        finally:
            engine.dispose()


def measure(quick: bool) -> list[dict[str, str]]:
    kinds = ["SQLite"] if quick else ["SQLite", "PostgreSQL"]
    sizes = [1_000] if quick else [1_000, 10_000]
    return [measure_one(kind, size, size == sizes[0]) for kind in kinds for size in sizes]


HEAD = (
    "| database | reports | /cifras/ page before (reports only) ms | page now (+ questions) ms "
    "| count flush, 200 keys ms | escalate: first run, 300 urgent ms | pages written | escalate: steady run ms |"
)


def table(rows: list[dict[str, str]], per_answer_us: float) -> str:
    lines = [HEAD, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['database']} | {r['reports']} | {r['page before']} | {r['page now']} | {r['flush']} | "
            f"{r.get('first', '')} | {r.get('pages', '')} | {r.get('steady', '')} |"
        )
    lines.append("")
    lines.append(
        f"Gateway hot path: reading an answer's topic marks and counting them: **{per_answer_us:.1f} µs per answer**."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SQLite and 1,000 reports only; RESULTS.md untouched")
    args = parser.parse_args(argv)
    per_answer = hot_path_us()
    rows = measure(args.quick)
    body = table(rows, per_answer)
    print(body)
    if not args.quick:
        intro = (
            f"Measured {date.today().isoformat()} on {platform.machine()} ({len(rows)} rows; best of 3 page "
            "renderings, of 5 flushes and steady runs). Baseline (before this issue): the page as the last stop "
            "rendered it, reports only; the gateway's per-answer work before this issue was none. Questions: 24 "
            "months x 12 countries x 7 topics. The page is rendered at most every 10 minutes per gateway, the "
            "flush runs every 10 s per gateway, `escalate_due` every 30 s in the jobs loop.\n\n"
        )
        replace_section(ROOT / "bench" / "RESULTS.md", "Hotline operations (issue 13)", intro + body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
