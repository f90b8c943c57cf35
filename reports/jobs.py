"""Scheduled jobs (cron or a systemd timer), printing counts only, never ids:

python -m reports.jobs purge [--dry-run]   retention: old closed reports, old lookup
                                           attempts, old conversations in Rasa's store
python -m reports.jobs notify-pending      retry staff notifications that did not go out
python -m reports.jobs escalate            on call: page whoever is on call about new urgent
                                           reports and hand-offs, escalate the unacknowledged
python -m reports.jobs run                 all, on their schedule (purge hourly, alerts
                                           every 2 minutes, on call every 30 s), until SIGTERM

Each job runs under its lease (reports/leases.py): with several replicas (or a cron run
beside the loop) one runs it, the others print that they skipped it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Column, Float, MetaData, String, Table, delete, func, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from reports import handoffs, oncall
from reports.config import Settings, load_settings
from reports.db import make_engine, normalize_url, transaction
from reports.leases import held
from reports.models import FollowUpAttempt, Report, ReportAttachment, utcnow
from reports.notify import notify_pending
from reports.service import RATE_WINDOW

# The columns of Rasa 3.6's SQLTrackerStore table that purging reads (rasa/core/tracker_store.py).
_tracker_metadata = MetaData()
EVENTS = Table(
    "events",
    _tracker_metadata,
    Column("sender_id", String(255)),
    Column("timestamp", Float),
)


@dataclass(frozen=True)
class PurgeCounts:
    reports: int = 0
    follow_up_attempts: int = 0
    conversations: int = 0
    handoffs: int = 0


def purge_reports(session: Session, settings: Settings, now: datetime, dry_run: bool = False) -> tuple[int, int]:
    """Delete closed reports past retention (their rows in other tables go by ON DELETE
    CASCADE) and lookup attempts older than the rate-limit window. Returns both counts."""
    closed_before = now - timedelta(days=settings.closed_report_retention_days)
    old_report = (Report.status == "closed") & (Report.closed_at < closed_before)
    old_attempt = FollowUpAttempt.attempted_at < now - RATE_WINDOW
    reports = session.scalar(select(func.count()).select_from(Report).where(old_report)) or 0
    attempts = session.scalar(select(func.count()).select_from(FollowUpAttempt).where(old_attempt)) or 0
    if not dry_run:
        session.execute(delete(Report).where(old_report))
        session.execute(delete(FollowUpAttempt).where(old_attempt))
        # Photos of a report never filed (the person left the form): kept one day at most.
        stray = ReportAttachment.report_id.is_(None) & (ReportAttachment.created_at < now - timedelta(days=1))
        session.execute(delete(ReportAttachment).where(stray))
    return reports, attempts


def purge_conversations(tracker_url: str, days: int, now: datetime, dry_run: bool = False) -> int:
    """Delete every event of each conversation (sender) whose latest event is older than days.
    Returns how many conversations; 0 when Rasa has not created its store or table yet."""
    url = make_url(normalize_url(tracker_url))
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return 0  # connecting would create an empty SQLite file
    engine = make_engine(tracker_url)
    try:
        if not inspect(engine).has_table("events"):
            return 0
        cutoff = (now - timedelta(days=days)).timestamp()
        stale = select(EVENTS.c.sender_id).group_by(EVENTS.c.sender_id).having(func.max(EVENTS.c.timestamp) < cutoff)
        with engine.begin() as connection:
            senders = connection.scalar(select(func.count()).select_from(stale.subquery()))
            if not dry_run:
                connection.execute(delete(EVENTS).where(EVENTS.c.sender_id.in_(stale)))
        return int(senders or 0)
    finally:
        engine.dispose()


def run_purge(settings: Settings, now: datetime | None = None, dry_run: bool = False) -> PurgeCounts:
    now = now or utcnow()
    engine = make_engine(settings.database_url)
    try:
        with transaction(engine) as session:
            reports, attempts = purge_reports(session, settings, now, dry_run)
            closed_handoffs = handoffs.purge_closed(session, now, dry_run=dry_run)
    finally:
        engine.dispose()
    conversations = purge_conversations(settings.tracker_url, settings.conversation_retention_days, now, dry_run)
    return PurgeCounts(
        reports=reports, follow_up_attempts=attempts, conversations=conversations, handoffs=closed_handoffs
    )


PURGE_JOB, NOTIFY_JOB = "jobs-purge", "jobs-notify-pending"  # their leases (reports/leases.py)
ESCALATE_JOB = "jobs-oncall-escalate"
PURGE_EVERY_SECONDS = 3600.0
NOTIFY_EVERY_SECONDS = 120.0
ESCALATE_EVERY_SECONDS = 30.0


def purge_once(settings: Settings, dry_run: bool = False) -> str:
    """One purge under its lease; what to print (counts only)."""
    engine = make_engine(settings.database_url)
    try:
        with held(engine, PURGE_JOB) as mine:
            if not mine:
                return "purge: skipped, another runner holds the lease"
            counts = run_purge(settings, dry_run=dry_run)
    finally:
        engine.dispose()
    verb = "would delete" if dry_run else "deleted"
    return (
        f"{verb}: {counts.reports} closed reports, {counts.follow_up_attempts} lookup attempts, "
        f"{counts.conversations} conversations"
    )


def notify_once(settings: Settings) -> str:
    """One run of the staff alert outbox under its lease (an alert must not go out twice)."""
    engine = make_engine(settings.database_url)
    try:
        with held(engine, NOTIFY_JOB) as mine:
            if not mine:
                return "notify-pending: skipped, another runner holds the lease"
            sent = notify_pending(engine, settings)
    finally:
        engine.dispose()
    return f"notifications: {sent.sent} sent, {sent.failed} failed"


def escalate_once(settings: Settings, now: datetime | None = None) -> str:
    """One run of the on-call chain under its lease (a page must not go out twice)."""
    engine = make_engine(settings.database_url)
    try:
        with held(engine, ESCALATE_JOB) as mine:
            if not mine:
                return "escalate: skipped, another runner holds the lease"
            counts = oncall.escalate_due(engine, settings, now or utcnow())
    finally:
        engine.dispose()
    return (
        f"on call: {counts.paged} paged, {counts.escalated} escalated, {counts.sent} sent, "
        f"{counts.failed} reached nobody, {counts.exhausted} with nobody left"
    )


def run_forever(
    settings: Settings,
    stop: threading.Event,
    purge_every: float,
    notify_every: float,
    escalate_every: float = ESCALATE_EVERY_SECONDS,
) -> None:
    """Purge now and every `purge_every` seconds, the alert outbox every `notify_every`, the
    on-call chain every `escalate_every`, each under its lease (every replica runs this; one
    at a time works), until `stop`."""
    due = {"purge": 0.0, "notify": 0.0, "escalate": 0.0}
    while not stop.is_set():
        now = time.monotonic()
        if now >= due["purge"]:
            print(_or_failure("purge", lambda: purge_once(settings)), flush=True)
            due["purge"] = now + purge_every
        if now >= due["notify"] and not stop.is_set():
            print(_or_failure("notify-pending", lambda: notify_once(settings)), flush=True)
            due["notify"] = now + notify_every
        if now >= due["escalate"] and not stop.is_set():
            print(_or_failure("escalate", lambda: escalate_once(settings)), flush=True)
            due["escalate"] = now + escalate_every
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def _or_failure(job: str, run: Callable[[], str]) -> str:
    """The job's line, or its failure's type (a database down must not stop the loop)."""
    try:
        return run()
    except Exception as error:
        return f"{job}: failed ({type(error).__name__})"


def stop_on_signals() -> threading.Event:
    """SIGTERM (what a process manager sends) and SIGINT stop the loop between jobs."""
    stop = threading.Event()
    for name in (signal.SIGTERM, signal.SIGINT):
        signal.signal(name, lambda signum, frame: stop.set())
    return stop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.jobs", description="Retention and retry jobs.")
    sub = parser.add_subparsers(dest="command", required=True)
    purge = sub.add_parser("purge", help="delete what is past its retention period")
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    sub.add_parser("notify-pending", help="send staff notifications that failed or never went out")
    sub.add_parser("escalate", help="page whoever is on call; escalate unacknowledged alerts")
    loop = sub.add_parser("run", help="purge hourly, the alert outbox every 2 min, on call every 30 s, until SIGTERM")
    loop.add_argument("--purge-every", type=float, default=PURGE_EVERY_SECONDS, help="seconds")
    loop.add_argument("--notify-every", type=float, default=NOTIFY_EVERY_SECONDS, help="seconds")
    loop.add_argument("--escalate-every", type=float, default=ESCALATE_EVERY_SECONDS, help="seconds")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.command == "purge":
        print(purge_once(settings, dry_run=args.dry_run))
    elif args.command == "notify-pending":
        print(notify_once(settings))
    elif args.command == "escalate":
        print(escalate_once(settings))
    else:
        stop = stop_on_signals()
        print("jobs: running (purge, notify-pending, escalate); SIGTERM stops", flush=True)
        run_forever(settings, stop, args.purge_every, args.notify_every, args.escalate_every)
        print("jobs: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
