"""Filing and following up reports on real SQLite and PostgreSQL databases: nothing readable
is stored, codes work and are rate-limited, tipster and staff messages reach only their
readers, erasure unlinks, and many reports filed at once all arrive."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from sqlalchemy import Engine, func, select

from hotline.report_codes import check_symbol, code_body
from reports import crypto
from reports.db import transaction
from reports.models import Base, FollowUpAttempt, Notification, Report, StatusChange
from reports.service import (
    MAX_TEXT_CHARS,
    FiledReport,
    LookupOutcome,
    ReportDraft,
    ReportNotFound,
    add_information,
    change_status,
    file_report,
    forget_sender,
    leave_message_for_tipster,
    look_up_code,
    open_report,
    tipster_view,
)
from tests.db_fixtures import Keyring

NOW = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
WHAT = "Tienen encerradas a varias muchachas en la trastienda del Bar Lucero"
PLACE = "Calle del Mercado 17, Tapachula"
ADDRESS = "+50255559876"
SENDER = "rasa-sender-7f3a9c"

TRICKY_TEXTS = [
    "<script>alert('x')</script><b>negrita</b> & &amp;",
    "'; DROP TABLE reports; --",
    "Robert'); DELETE FROM report_additions WHERE ('1'='1",
    "😢🆘👧🏽 ayuda por favor 🙏",
    "مساعدة عاجلة — Помогите — 救命 — 助けて — ¿dónde? ¡ya!",
    "línea1\nlínea2\r\n\ttab \x00 nulo",
    "",
]


def draft(**changes: object) -> ReportDraft:
    base = ReportDraft(
        what=WHAT,
        country="MX",
        place=PLACE,
        when="ayer en la noche",
        people="como 5",
        minors=True,
        kind="sexual",
        danger_now=False,
        contact_consent=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def file(
    engine: Engine, keyring: Keyring, report: ReportDraft | None = None, notify_channels: tuple[str, ...] = ()
) -> FiledReport:
    with transaction(engine) as session:
        return file_report(session, report or draft(), keyring.keys, NOW, notify_channels=notify_channels)


def opened(engine: Engine, keyring: Keyring, report_id: str) -> dict[str, object]:
    with transaction(engine) as session:
        return open_report(session, report_id, keyring.private_key)


def lookup(engine: Engine, keyring: Keyring, code: str, sender: str = SENDER, now: datetime = NOW) -> LookupOutcome:
    with transaction(engine) as session:
        return look_up_code(session, code, sender, keyring.keys, limit_per_hour=5, now=now).outcome


def every_stored_value(engine: Engine) -> list[object]:
    values: list[object] = []
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(table.select()):
                values.extend(row)
    return values


def assert_nowhere(engine: Engine, needles: list[str], files: Sequence[Path] = (), stored: str = "") -> None:
    """No needle in any column of any table (text, JSON or bytes) nor in the database files;
    `stored`, a value known to be stored in plain, shows that the scan does see the data."""
    values = every_stored_value(engine)
    assert not stored or stored in values
    if files and stored:
        assert any(stored.encode() in path.read_bytes() for path in files if path.exists())
    for value in values:
        raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode("utf-8")
        for needle in needles:
            assert needle.encode("utf-8") not in raw, needle
            assert needle.upper().encode("utf-8") not in raw.upper(), needle
    for path in files:
        content = path.read_bytes() if path.exists() else b""
        for needle in needles:
            assert needle.encode("utf-8") not in content, (needle, path.name)


def test_filing_stores_nothing_readable_and_the_private_key_gives_it_back(
    engine: Engine, keyring: Keyring, database_url: str
) -> None:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "sms", ADDRESS)
    filed = file(
        engine,
        keyring,
        draft(contact_consent=True, reply_to=reply_to, sender=SENDER, channel="sms", danger_now=True),
        notify_channels=("email", "telegram"),
    )
    assert filed.priority == "urgent" and filed.reasons[0] == "danger_now"
    with transaction(engine) as session:
        add_information(session, filed.report_id, "El dueño se llama Trinidad Vázquez", keyring.keys, NOW)
        change_status(
            session, filed.report_id, "in_review", actor="staff-1", note="Llamé a la fiscalía", keys=keyring.keys
        )
        leave_message_for_tipster(session, filed.report_id, "Gracias, ya lo revisamos", keys=keyring.keys)

    needles = [
        WHAT,
        "Bar Lucero",
        PLACE,
        "Tapachula",
        "ayer en la noche",
        "como 5",
        ADDRESS,
        "55559876",
        SENDER,
        filed.code,
        code_body(filed.code),
        filed.code.replace("-", ""),
        "Trinidad V",
        "fiscal",
        "Gracias, ya lo",
    ]
    files = []
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [path, Path(f"{path}-wal")]
    assert_nowhere(engine, needles, files, stored=filed.report_id)

    report = opened(engine, keyring, filed.report_id)
    assert report["body"] == {"what": WHAT, "place": PLACE, "when": "ayer en la noche", "people": "como 5"}
    assert report["contact"] == ("sms", ADDRESS)
    assert report["channel"] == "sms" and report["contact_consent"] is True
    assert report["additions"][0]["text"] == "El dueño se llama Trinidad Vázquez"  # type: ignore[index]
    assert report["status_changes"][-1]["note"] == "Llamé a la fiscalía"  # type: ignore[index]
    assert report["tipster_messages"][0]["text"] == "Gracias, ya lo revisamos"  # type: ignore[index]
    assert (report["people_count"], report["country"], report["kind"], report["minors"]) == (5, "MX", "sexual", True)
    with transaction(engine) as session:
        channels = session.scalars(select(Notification.channel).where(Notification.report_id == filed.report_id))
        assert sorted(channels) == ["email", "telegram"]


def test_the_lookup_hash_not_the_code_is_stored(engine: Engine, keyring: Keyring) -> None:
    filed = file(engine, keyring)
    with transaction(engine) as session:
        report = session.get(Report, filed.report_id)
        assert report is not None
        expected = crypto.code_secrets(code_body(filed.code), keyring.keys.code_salt)
        assert report.lookup_hash == expected.lookup_hash
        assert report.tipster_public_key == expected.tipster_public_key
        assert filed.hash_prefix == report.lookup_hash[:8]
        (change,) = session.scalars(select(StatusChange).where(StatusChange.report_id == filed.report_id))
        assert (change.old_status, change.new_status) == (None, "received")


def test_without_consent_no_contact_sender_or_channel_is_kept(engine: Engine, keyring: Keyring) -> None:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "sms", ADDRESS)
    filed = file(engine, keyring, draft(contact_consent=False, reply_to=reply_to, sender=SENDER, channel="sms"))
    with transaction(engine) as session:
        report = session.get(Report, filed.report_id)
        assert report is not None
        assert (report.contact_consent, report.contact_sealed, report.reporter_ref, report.channel) == (
            False,
            None,
            None,
            None,
        )
    assert_nowhere(engine, [crypto.sender_ref(keyring.keys.sender_key, SENDER), reply_to[:40]])


def test_right_code_finds_the_report_and_wrong_codes_do_not(engine: Engine, keyring: Keyring) -> None:
    filed, other = file(engine, keyring), file(engine, keyring)
    assert filed.code != other.code
    with transaction(engine) as session:
        found = look_up_code(session, filed.code.lower().replace("-", " "), SENDER, keyring.keys, now=NOW)
    assert found.outcome is LookupOutcome.FOUND and found.report_id == filed.report_id
    assert found.tipster_key is not None and found.tipster_key.hex() not in repr(found)
    assert lookup(engine, keyring, filed.code[:-2]) is LookupOutcome.FOUND  # without its check symbol
    body = "ZZZZZZZZ" if code_body(filed.code) != "ZZZZZZZZ" else "YYYYYYYY"
    assert lookup(engine, keyring, f"TRT-{body[:4]}-{body[4:]}-{check_symbol(body)}") is LookupOutcome.NOT_FOUND


def test_five_tries_an_hour_then_rate_limited_then_free_again(engine: Engine, keyring: Keyring) -> None:
    filed = file(engine, keyring)
    body = "00000000"
    wrong = f"TRT-{body[:4]}-{body[4:]}-{check_symbol(body)}"
    for minute in range(5):
        assert lookup(engine, keyring, wrong, now=NOW + timedelta(minutes=minute)) is LookupOutcome.NOT_FOUND
    assert lookup(engine, keyring, filed.code, now=NOW + timedelta(minutes=10)) is LookupOutcome.RATE_LIMITED
    assert lookup(engine, keyring, filed.code, sender="another") is LookupOutcome.FOUND
    assert lookup(engine, keyring, filed.code, now=NOW + timedelta(minutes=65)) is LookupOutcome.FOUND


def test_typos_and_garbage_answer_at_once_and_do_not_count(engine: Engine, keyring: Keyring) -> None:
    filed = file(engine, keyring)
    symbols = code_body(filed.code) + filed.code[-1]
    typo_symbol = "0" if symbols[-1] != "0" else "1"
    typo = f"TRT-{symbols[:4]}-{symbols[4:8]}-{typo_symbol}"
    for _ in range(10):
        assert lookup(engine, keyring, typo) is LookupOutcome.TYPO
        assert lookup(engine, keyring, "hola quiero saber de mi caso") is LookupOutcome.INVALID
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(FollowUpAttempt)) == 0
    assert lookup(engine, keyring, filed.code) is LookupOutcome.FOUND


def test_parallel_tries_cannot_slip_past_the_limit(engine: Engine, keyring: Keyring) -> None:
    body = "11111111"
    wrong = f"TRT-{body[:4]}-{body[4:]}-{check_symbol(body)}"
    barrier = threading.Barrier(10)

    def attempt(_: int) -> LookupOutcome:
        barrier.wait()
        return lookup(engine, keyring, wrong)

    with ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert outcomes.count(LookupOutcome.NOT_FOUND) == 5
    assert outcomes.count(LookupOutcome.RATE_LIMITED) == 5


def test_only_the_code_opens_staff_messages_for_the_tipster(engine: Engine, keyring: Keyring) -> None:
    filed, other = file(engine, keyring), file(engine, keyring)
    with transaction(engine) as session:
        leave_message_for_tipster(session, filed.report_id, "¿Puedes decirnos el color de la puerta?", "staff-2", NOW)
        found = look_up_code(session, filed.code, SENDER, keyring.keys, now=NOW)
        other_found = look_up_code(session, other.code, SENDER, keyring.keys, now=NOW)
    assert found.tipster_key is not None and other_found.tipster_key is not None
    with transaction(engine) as session:
        view = tipster_view(session, filed.report_id, found.tipster_key)
        assert view.messages == ("¿Puedes decirnos el color de la puerta?",)
        assert (view.status, view.additions, view.created_at) == ("received", 0, NOW)
        with pytest.raises(PermissionError):
            tipster_view(session, filed.report_id, other_found.tipster_key)
        with pytest.raises(PermissionError):
            tipster_view(session, filed.report_id, bytes(32))
        with pytest.raises(ReportNotFound):
            tipster_view(session, "00000000-0000-4000-8000-000000000000", found.tipster_key)
        (message,) = session.get(Report, filed.report_id).tipster_messages  # type: ignore[union-attr]
        with pytest.raises(crypto.SealError):  # the staff key cannot read the tipster's copy
            crypto.unseal(keyring.private_key, message.sealed_for_tipster)
        assert message.sealed_for_staff is None and message.author == "staff-2"


def test_add_information_is_sealed_counted_and_touches_the_report(engine: Engine, keyring: Keyring) -> None:
    filed = file(engine, keyring)
    later = NOW + timedelta(days=2)
    with transaction(engine) as session:
        add_information(session, filed.report_id, "Ahora los movieron a otra casa", keyring.keys, later)
        add_information(session, filed.report_id, "Es una casa azul", keyring.keys, later)
        with pytest.raises(ValueError):
            add_information(session, filed.report_id, "   ", keyring.keys, later)
        found = look_up_code(session, filed.code, SENDER, keyring.keys, now=later)
        assert found.tipster_key is not None
        assert tipster_view(session, filed.report_id, found.tipster_key).additions == 2
    report = opened(engine, keyring, filed.report_id)
    texts = [a["text"] for a in report["additions"]]  # type: ignore[attr-defined]
    assert texts == ["Ahora los movieron a otra casa", "Es una casa azul"]
    assert report["updated_at"] == later and report["created_at"] == NOW


def test_status_changes_are_recorded_and_closing_sets_closed_at(engine: Engine, keyring: Keyring) -> None:
    filed = file(engine, keyring)
    with transaction(engine) as session:
        change_status(session, filed.report_id, "in_review", actor="staff-1", now=NOW + timedelta(hours=1))
        change_status(session, filed.report_id, "closed", actor="staff-1", now=NOW + timedelta(hours=2))
        with pytest.raises(ValueError):
            change_status(session, filed.report_id, "archived")
        with pytest.raises(ValueError):
            change_status(session, filed.report_id, "referred", note="sin llaves")
    report = opened(engine, keyring, filed.report_id)
    history = [(c["old"], c["new"], c["actor"]) for c in report["status_changes"]]  # type: ignore[attr-defined]
    assert history == [
        (None, "received", None),
        ("received", "in_review", "staff-1"),
        ("in_review", "closed", "staff-1"),
    ]
    assert report["status"] == "closed" and report["closed_at"] == NOW + timedelta(hours=2)
    with transaction(engine) as session:
        change_status(session, filed.report_id, "in_review", now=NOW + timedelta(hours=3))
    assert opened(engine, keyring, filed.report_id)["closed_at"] is None


def test_forget_sender_unlinks_their_reports_and_attempts(engine: Engine, keyring: Keyring) -> None:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "telegram", "123456789")
    mine = [file(engine, keyring, draft(contact_consent=True, reply_to=reply_to, sender=SENDER, channel="telegram"))]
    mine.append(file(engine, keyring, draft(contact_consent=True, sender=SENDER, channel="telegram")))
    theirs = file(engine, keyring, draft(contact_consent=True, reply_to=reply_to, sender="other", channel="telegram"))
    lookup(engine, keyring, mine[0].code)
    lookup(engine, keyring, mine[0].code, sender="other")
    with transaction(engine) as session:
        assert forget_sender(session, SENDER, keyring.keys) == 2
    with transaction(engine) as session:
        for filed in mine:
            report = session.get(Report, filed.report_id)
            assert report is not None
            assert (report.reporter_ref, report.contact_sealed, report.channel, report.contact_consent) == (
                None,
                None,
                None,
                False,
            )
        kept = session.get(Report, theirs.report_id)
        assert kept is not None and kept.reporter_ref and kept.contact_sealed and kept.channel == "telegram"
        refs = list(session.scalars(select(FollowUpAttempt.sender_ref)))
        assert refs == [crypto.sender_ref(keyring.keys.sender_key, "other")]
        assert forget_sender(session, SENDER, keyring.keys) == 0
    assert opened(engine, keyring, mine[0].report_id)["body"]["what"] == WHAT  # type: ignore[index]


@pytest.mark.parametrize("index", range(len(TRICKY_TEXTS)))
def test_tricky_text_round_trips_exactly(engine: Engine, keyring: Keyring, index: int) -> None:
    tricky = TRICKY_TEXTS[index]
    reply_to = crypto.seal_contact(keyring.keys.public_key, "telegram", tricky or "x")
    filed = file(
        engine,
        keyring,
        draft(what=tricky, place=tricky, when=tricky, people=tricky, contact_consent=True, reply_to=reply_to),
    )
    with transaction(engine) as session:
        if tricky.strip():
            add_information(session, filed.report_id, tricky, keyring.keys, NOW)
            leave_message_for_tipster(session, filed.report_id, tricky, now=NOW)
        found = look_up_code(session, filed.code, SENDER, keyring.keys, now=NOW)
        assert found.tipster_key is not None
        view = tipster_view(session, filed.report_id, found.tipster_key)
    report = opened(engine, keyring, filed.report_id)
    assert report["body"] == {"what": tricky, "place": tricky, "when": tricky, "people": tricky}
    assert report["contact"] == ("telegram", tricky or "x")
    if tricky.strip():
        assert report["additions"][0]["text"] == tricky  # type: ignore[index]
        assert view.messages == (tricky,)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 1  # nothing was dropped


def test_inputs_the_caller_should_have_refused(engine: Engine, keyring: Keyring) -> None:
    with transaction(engine) as session:
        with pytest.raises(ValueError, match="country"):
            file_report(session, draft(country="Mexico"), keyring.keys, NOW, notify_channels=())
        with pytest.raises(ValueError, match="kind"):
            file_report(session, draft(kind="smuggling"), keyring.keys, NOW, notify_channels=())
        with pytest.raises(ValueError, match="too long"):
            file_report(session, draft(what="x" * 70_000), keyring.keys, NOW, notify_channels=())
        with pytest.raises(ValueError, match="reply_to"):
            file_report(session, draft(contact_consent=True, reply_to="+50255559876"), keyring.keys, NOW)
        filed = file_report(
            session, draft(what="é" * MAX_TEXT_CHARS, country=" gt "), keyring.keys, NOW, notify_channels=()
        )
        assert session.get(Report, filed.report_id).country == "GT"  # type: ignore[union-attr]


def test_urgent_reports_get_a_pending_notification_per_channel_others_none(engine: Engine, keyring: Keyring) -> None:
    urgent = file(engine, keyring, draft(danger_now=True), notify_channels=("telegram",))
    calm = file(
        engine, keyring, draft(danger_now=False, minors=False, place=None, when=None), notify_channels=("email",)
    )
    assert (urgent.priority, calm.priority) == ("urgent", "normal")
    with transaction(engine) as session:
        rows = session.execute(select(Notification.report_id, Notification.channel, Notification.status)).all()
    assert [tuple(r) for r in rows] == [(urgent.report_id, "telegram", "pending")]


def test_fifty_reports_filed_at_once_are_all_stored_with_unique_codes(engine: Engine, keyring: Keyring) -> None:
    barrier = threading.Barrier(50)

    def one(index: int) -> FiledReport:
        barrier.wait()
        with transaction(engine) as session:
            return file_report(session, draft(what=f"denuncia {index}"), keyring.keys, notify_channels=())

    with ThreadPoolExecutor(50) as pool:
        filed = list(pool.map(one, range(50)))
    assert len({f.code for f in filed}) == 50 and len({f.report_id for f in filed}) == 50
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 50
        assert session.scalar(select(func.count(func.distinct(Report.lookup_hash)))) == 50
        bodies = {open_report(session, f.report_id, keyring.private_key)["body"]["what"] for f in filed}
    assert bodies == {f"denuncia {i}" for i in range(50)}


def test_a_code_collision_is_retried(engine: Engine, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    first = file(engine, keyring)
    codes = iter([first.code, first.code, "TRT-7K4M-Q2XH-" + check_symbol("7K4MQ2XH")])
    monkeypatch.setattr("reports.service.new_code", lambda: next(codes))
    second = file(engine, keyring)
    assert second.code == "TRT-7K4M-Q2XH-" + check_symbol("7K4MQ2XH")
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Report)) == 2


def test_an_unknown_private_key_cannot_open_a_report(engine: Engine, keyring: Keyring) -> None:
    filed = file(engine, keyring)
    with transaction(engine) as session, pytest.raises(crypto.SealError):
        open_report(session, filed.report_id, PrivateKey.generate())
