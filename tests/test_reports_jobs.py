"""Retention: closed reports past their time go with everything attached, lookup attempts
after an hour, and whole conversations in Rasa's tracker store after their time."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine, func, select

from hotline.paths import ROOT
from reports.db import make_engine, transaction
from reports.jobs import PurgeCounts, purge_conversations, purge_reports, run_purge
from reports.models import FollowUpAttempt, Notification, Report, ReportAddition, StatusChange, TipsterMessage
from reports.service import ReportDraft, add_information, change_status, file_report, leave_message_for_tipster
from tests.db_fixtures import Keyring, settings_for

NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)


def rasa_events_table(metadata: sa.MetaData) -> sa.Table:
    """Rasa 3.6's SQLTrackerStore.SQLEvent table, column for column (rasa/core/tracker_store.py)."""
    return sa.Table(
        "events",
        metadata,
        sa.Column("id", sa.Integer, sa.Sequence("events_seq", optional=True), primary_key=True),
        sa.Column("sender_id", sa.String(255), nullable=False, index=True),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("timestamp", sa.Float),
        sa.Column("intent_name", sa.String(255)),
        sa.Column("action_name", sa.String(255)),
        sa.Column("data", sa.Text),
    )


def new_report(engine: Engine, keyring: Keyring, filed_at: datetime, closed_at: datetime | None) -> str:
    draft = ReportDraft("texto", "GT", None, None, None, None, None, True)
    with transaction(engine) as session:
        report_id = file_report(session, draft, keyring.keys, filed_at, notify_channels=("email",)).report_id
        add_information(session, report_id, "más", keyring.keys, filed_at)
        leave_message_for_tipster(session, report_id, "gracias", now=filed_at)
        if closed_at:
            change_status(session, report_id, "closed", now=closed_at)
    return report_id


def counts(engine: Engine) -> dict[str, int]:
    with transaction(engine) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Report, ReportAddition, StatusChange, TipsterMessage, Notification, FollowUpAttempt)
        }


def test_old_closed_reports_go_with_everything_attached(engine: Engine, keyring: Keyring, database_url: str) -> None:
    settings = settings_for(database_url, keyring.directory)
    year = timedelta(days=365)
    old_closed = new_report(engine, keyring, NOW - 2 * year, NOW - year - timedelta(days=1))
    recent_closed = new_report(engine, keyring, NOW - 2 * year, NOW - year + timedelta(days=1))
    old_open = new_report(engine, keyring, NOW - 3 * year, None)
    with transaction(engine) as session:
        session.add(FollowUpAttempt(sender_ref="a" * 64, attempted_at=NOW - timedelta(minutes=61)))
        session.add(FollowUpAttempt(sender_ref="a" * 64, attempted_at=NOW - timedelta(minutes=59)))
    before = counts(engine)

    with transaction(engine) as session:
        assert purge_reports(session, settings, NOW, dry_run=True) == (1, 1)
    assert counts(engine) == before
    with transaction(engine) as session:
        assert purge_reports(session, settings, NOW) == (1, 1)

    after = counts(engine)
    with transaction(engine) as session:
        assert session.get(Report, old_closed) is None
        assert session.get(Report, recent_closed) is not None and session.get(Report, old_open) is not None
        for model in (ReportAddition, StatusChange, TipsterMessage, Notification):
            assert session.scalar(select(func.count()).where(model.report_id == old_closed)) == 0
    assert after["reports"] == 2 and after["report_additions"] == before["report_additions"] - 1
    assert after["status_changes"] == before["status_changes"] - 2 and after["notifications"] == 2
    assert after["follow_up_attempts"] == 1


def add_events(url: str, events: list[tuple[str, datetime]]) -> None:
    engine = make_engine(url)
    metadata = sa.MetaData()
    table = rasa_events_table(metadata)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            table.insert(),
            [
                {"sender_id": s, "type_name": "user", "timestamp": at.timestamp(), "data": '{"text": "hola"}'}
                for s, at in events
            ],
        )
    engine.dispose()


def senders(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT sender_id, count(*) FROM events GROUP BY sender_id")).all()
    engine.dispose()
    return {sender: count for sender, count in rows}


def test_conversations_go_when_their_last_event_is_old(database_url: str) -> None:
    month = timedelta(days=30)
    add_events(
        database_url,
        [
            ("old", NOW - 3 * month),
            ("old", NOW - month - timedelta(hours=1)),
            ("still-talking", NOW - 3 * month),
            ("still-talking", NOW - timedelta(days=2)),
            ("new", NOW - timedelta(minutes=5)),
        ],
    )
    assert purge_conversations(database_url, 30, NOW, dry_run=True) == 1
    assert senders(database_url) == {"old": 2, "still-talking": 2, "new": 1}
    assert purge_conversations(database_url, 30, NOW) == 1
    assert senders(database_url) == {"still-talking": 2, "new": 1}
    assert purge_conversations(database_url, 30, NOW) == 0


def test_no_events_table_yet_is_not_an_error(database_url: str, tmp_path: Path) -> None:
    assert purge_conversations(database_url, 30, NOW) == 0
    missing = tmp_path / "no-rasa-yet.db"
    assert purge_conversations(f"sqlite:///{missing}", 30, NOW) == 0
    assert not missing.exists()


def test_run_purge_and_its_command_line(engine: Engine, keyring: Keyring, database_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)  # the command line purges as of the real clock
    tracker = f"sqlite:///{tmp_path / 'rasa.db'}"
    add_events(tracker, [("gone", now - timedelta(days=90)), ("kept", now - timedelta(days=1))])
    report_id = new_report(engine, keyring, now - timedelta(days=800), now - timedelta(days=400))
    settings = settings_for(database_url, keyring.directory, tracker_url=tracker)
    assert run_purge(settings, now, dry_run=True) == PurgeCounts(reports=1, follow_up_attempts=0, conversations=1)

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_TRACKER_URL": tracker,
        "HOTLINE_KEYS_DIR": str(keyring.directory),
    }
    command = [sys.executable, "-m", "reports.jobs", "purge"]
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "would delete: 1 closed reports, 0 lookup attempts, 1 conversations" in dry.stdout
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "deleted: 1 closed reports" in done.stdout and "1 conversations" in done.stdout
    assert report_id not in done.stdout + dry.stdout and "gone" not in done.stdout
    assert senders(tracker) == {"kept": 1}
    assert run_purge(settings) == PurgeCounts()
