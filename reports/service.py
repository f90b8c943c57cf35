"""Filing and following up anonymous reports: functions that take a Session.

Callers (Rasa actions, the console, jobs) validate input, open one `transaction()` and call
these. The processes that take reports hold only `Keys` (the staff public key): they can
seal, never open. Only `open_report` needs the private key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from nacl.public import PrivateKey, PublicKey
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hotline.report_codes import check_code, code_body, new_code, normalize_code
from reports import crypto
from reports.config import load_settings
from reports.keys import Keys
from reports.models import (
    KINDS,
    STATUSES,
    FollowUpAttempt,
    Notification,
    Report,
    ReportAddition,
    ReportAttachment,
    StatusChange,
    TipsterMessage,
    utcnow,
)
from reports.notify import configured_channels
from reports.triage import people_count, triage

MAX_TEXT_CHARS = 4000  # per message; enforced by the caller, which can tell the person
MAX_SEALED_BYTES = 64 * 1024  # refused here whatever the caller did
RATE_WINDOW = timedelta(hours=1)
_CODE_ATTEMPTS = 5  # a fresh code colliding with a stored one is ~n/2^40: retrying is enough


class ReportNotFound(LookupError):
    """No report with that id (deleted by retention, or a stale id)."""


@dataclass
class ReportDraft:
    what: str  # free text, "" when skipped
    country: str | None  # ISO alpha-2
    place: str | None
    when: str | None
    people: str | None  # as typed ("como 5", "3")
    minors: bool | None
    kind: str | None  # one of models.KINDS
    danger_now: bool | None
    contact_consent: bool = False
    reply_to: str | None = None  # seal_contact() text from the channel edge; kept only with consent
    sender: str | None = None  # the Rasa sender id (a pseudonym); kept only as an HMAC, only with consent
    channel: str | None = None
    attachments_from: str | None = None  # the sender id whose kept photos go with this report (always, not contact)


@dataclass(frozen=True)
class FiledReport:
    code: str
    report_id: str
    priority: str
    reasons: tuple[str, ...]
    hash_prefix: str


class LookupOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TYPO = "typo"
    INVALID = "invalid"


@dataclass(frozen=True)
class Lookup:
    outcome: LookupOutcome
    report_id: str | None = None
    tipster_key: bytes | None = field(default=None, repr=False)  # seed of the tipster private key; memory only


@dataclass(frozen=True)
class TipsterView:
    status: str
    messages: tuple[str, ...]
    additions: int
    created_at: datetime


# -- filing ------------------------------------------------------------------------------


def _sealed(public_key: PublicKey, value: str | dict[str, Any]) -> bytes:
    data = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    blob = crypto.seal_text(public_key, data)
    if len(blob) > MAX_SEALED_BYTES:
        raise ValueError(f"text too long: over {MAX_SEALED_BYTES} bytes sealed")
    return blob


def _validated(draft: ReportDraft) -> tuple[str | None, str | None]:
    """Normalised country and kind; ValueError for values the caller should not pass."""
    country = draft.country.strip().upper() if draft.country else None
    if country is not None and (len(country) != 2 or not country.isascii() or not country.isalpha()):
        raise ValueError("country must be an ISO 3166 alpha-2 code")
    if draft.kind is not None and draft.kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    return country, draft.kind


def _inserted(session: Session, report: Report) -> bool:
    """Insert in a savepoint: False when the lookup hash is taken (the code already exists)."""
    try:
        with session.begin_nested():
            session.add(report)
            session.flush()
    except IntegrityError:
        return False
    return True


def _notify_channels_from_environment() -> tuple[str, ...]:
    return configured_channels(load_settings())


def file_report(
    session: Session,
    draft: ReportDraft,
    keys: Keys,
    now: datetime | None = None,
    *,
    notify_channels: tuple[str, ...] | None = None,
) -> FiledReport:
    """Store a sealed report and return its code (shown once, never stored). Urgent reports
    get a pending Notification per staff channel (notify_channels; None: those configured in
    the environment); the caller sends them after commit with `notify.notify_report`."""
    now = now or utcnow()
    country, kind = _validated(draft)
    body = {"what": draft.what, "place": draft.place, "when": draft.when, "people": draft.people}
    sealed_body = _sealed(keys.public_key, body)
    consent = bool(draft.contact_consent)
    contact = crypto.contact_blob(draft.reply_to) if consent and draft.reply_to else None
    reporter_ref = crypto.sender_ref(keys.sender_key, draft.sender) if consent and draft.sender else None
    result = triage(draft)

    fields: dict[str, Any] = {
        "created_at": now,
        "updated_at": now,
        "status": "received",
        "country": country,
        "kind": kind,
        "minors": draft.minors,
        "danger_now": draft.danger_now,
        "people_count": people_count(draft.people),
        "recent": "recent" in result.reasons,
        "priority": result.priority,
        "triage_score": result.score,
        "triage_reasons": list(result.reasons),
        "sealed_body": sealed_body,
        "contact_consent": consent,
        "contact_sealed": contact,
        "reporter_ref": reporter_ref,
        "channel": draft.channel if consent else None,
    }
    for _ in range(_CODE_ATTEMPTS):
        code = new_code()
        secrets = crypto.code_secrets(code_body(code), keys.code_salt)
        report = Report(lookup_hash=secrets.lookup_hash, tipster_public_key=secrets.tipster_public_key, **fields)
        if _inserted(session, report):
            break
    else:
        raise RuntimeError("no unused case code found")  # would take ~2^40 reports

    report.status_changes.append(StatusChange(at=now, old_status=None, new_status="received"))
    if draft.attachments_from:
        _attach_kept_photos(session, report.id, crypto.sender_ref(keys.sender_key, draft.attachments_from))
    if result.priority == "urgent":
        channels = _notify_channels_from_environment() if notify_channels is None else notify_channels
        for channel in channels:
            report.notifications.append(Notification(channel=channel, created_at=now, status="pending"))
    session.flush()
    return FiledReport(
        code=code,
        report_id=report.id,
        priority=result.priority,
        reasons=result.reasons,
        hash_prefix=crypto.code_hash_prefix(secrets.lookup_hash),
    )


# -- follow-up ---------------------------------------------------------------------------


def _lock_sender(session: Session, ref: str) -> None:
    """Serialise one sender's lookups so parallel tries cannot slip past the hourly limit.
    SQLite transactions already begin IMMEDIATE (one writer at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(bytes.fromhex(ref[:16]), "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def look_up_code(
    session: Session,
    raw_code: str,
    sender: str,
    keys: Keys,
    limit_per_hour: int = 5,
    now: datetime | None = None,
) -> Lookup:
    """Find a report from a typed code. Typos and non-codes answer at once without counting;
    otherwise the try counts (limit_per_hour per sender) and costs one slow hash, found or
    not, so hits and misses take the same path (the caller pads the answer time)."""
    status = check_code(raw_code)
    if status == "invalid":
        return Lookup(LookupOutcome.INVALID)
    if status == "typo":
        return Lookup(LookupOutcome.TYPO)
    now = now or utcnow()
    ref = crypto.sender_ref(keys.sender_key, sender)
    _lock_sender(session, ref)
    recent = session.scalar(
        select(func.count())
        .select_from(FollowUpAttempt)
        .where(FollowUpAttempt.sender_ref == ref, FollowUpAttempt.attempted_at > now - RATE_WINDOW)
    )
    if (recent or 0) >= limit_per_hour:
        return Lookup(LookupOutcome.RATE_LIMITED)
    session.add(FollowUpAttempt(sender_ref=ref, attempted_at=now))
    session.flush()
    code = normalize_code(raw_code)
    assert code is not None  # check_code said it is one
    secrets = crypto.code_secrets(code_body(code), keys.code_salt)
    report_id = session.scalar(select(Report.id).where(Report.lookup_hash == secrets.lookup_hash))
    if report_id is None:
        return Lookup(LookupOutcome.NOT_FOUND)
    return Lookup(LookupOutcome.FOUND, report_id=report_id, tipster_key=secrets.tipster_seed)


def _report(session: Session, report_id: str) -> Report:
    report = session.get(Report, report_id)
    if report is None:
        raise ReportNotFound(report_id)
    return report


def tipster_view(session: Session, report_id: str, tipster_key: bytes) -> TipsterView:
    """What the tipster sees at follow-up: status and the staff messages, opened with the key
    only the code gives. PermissionError if the key is not this report's."""
    report = _report(session, report_id)
    private = crypto.tipster_private_key(tipster_key)
    if bytes(private.public_key) != report.tipster_public_key:
        raise PermissionError("not this report's tipster key")
    messages = tuple(crypto.unseal_text(private, m.sealed_for_tipster) for m in report.tipster_messages)
    additions = session.scalar(select(func.count()).where(ReportAddition.report_id == report_id)) or 0
    return TipsterView(status=report.status, messages=messages, additions=additions, created_at=report.created_at)


def add_information(session: Session, report_id: str, text: str, keys: Keys, now: datetime | None = None) -> None:
    """More information from the tipster, sealed to the staff key."""
    if not text.strip():
        raise ValueError("empty addition")
    now = now or utcnow()
    report = _report(session, report_id)
    report.additions.append(ReportAddition(created_at=now, sealed_body=_sealed(keys.public_key, text)))
    report.updated_at = now
    session.flush()


def leave_message_for_tipster(
    session: Session,
    report_id: str,
    text: str,
    author: str | None = None,
    now: datetime | None = None,
    *,
    keys: Keys | None = None,
) -> None:
    """A staff message the tipster reads at follow-up (sealed to the report's tipster key);
    with keys, also a copy sealed to the staff key so the console can show what was said."""
    if not text.strip():
        raise ValueError("empty message")
    now = now or utcnow()
    report = _report(session, report_id)
    message = TipsterMessage(
        created_at=now,
        sealed_for_tipster=_sealed(PublicKey(report.tipster_public_key), text),
        sealed_for_staff=_sealed(keys.public_key, text) if keys else None,
        author=author,
    )
    report.tipster_messages.append(message)
    report.updated_at = now
    session.flush()


def change_status(
    session: Session,
    report_id: str,
    new_status: str,
    actor: str | None = None,
    note: str | None = None,
    keys: Keys | None = None,
    now: datetime | None = None,
) -> None:
    """Move a report to new_status and record who and why (the note sealed to the staff key).
    Closing sets closed_at, from which retention counts; reopening clears it."""
    if new_status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if note and keys is None:
        raise ValueError("a note needs the keys to seal it")
    now = now or utcnow()
    report = _report(session, report_id)
    note_sealed = _sealed(keys.public_key, note) if note and keys else None
    report.status_changes.append(
        StatusChange(
            at=now,
            old_status=report.status,
            new_status=new_status,
            actor=actor,
            note_sealed=note_sealed,
        )
    )
    report.status = new_status
    report.closed_at = now if new_status == "closed" else None
    report.updated_at = now
    session.flush()


def forget_sender(session: Session, sender: str, keys: Keys) -> int:
    """Erasure on request: unlink the sender from their reports (the reports stay, anonymous)
    and delete their lookup attempts. Returns how many reports were unlinked."""
    ref = crypto.sender_ref(keys.sender_key, sender)
    ids = session.scalars(select(Report.id).where(Report.reporter_ref == ref)).all()
    if ids:
        session.execute(
            update(Report)
            .where(Report.id.in_(ids))
            .values(reporter_ref=None, contact_sealed=None, channel=None, contact_consent=False)
        )
    session.execute(delete(FollowUpAttempt).where(FollowUpAttempt.sender_ref == ref))
    discard_kept_photos(session, sender, keys)
    return len(ids)


# -- photos sent during the report form --------------------------------------------------

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
MAX_KEPT_PER_SENDER = 10


def keep_photo(session: Session, sender: str, content: bytes, content_type: str, keys: Keys) -> None:
    """A photo (metadata already stripped) for the report this sender is writing: sealed
    to the staff key, held under the sender's HMAC until the report is filed."""
    if not content or len(content) > MAX_ATTACHMENT_BYTES:
        raise ValueError("photo empty or too large")
    ref = crypto.sender_ref(keys.sender_key, sender)
    kept = session.scalar(
        select(func.count()).where(ReportAttachment.sender_ref == ref, ReportAttachment.report_id.is_(None))
    )
    if (kept or 0) >= MAX_KEPT_PER_SENDER:
        raise ValueError("too many photos for one report")
    sealed = crypto.seal(keys.public_key, content)
    session.add(
        ReportAttachment(sender_ref=ref, content_type=content_type[:100], size=len(content), sealed_content=sealed)
    )
    session.flush()


def _attach_kept_photos(session: Session, report_id: str, ref: str) -> None:
    session.execute(
        update(ReportAttachment)
        .where(ReportAttachment.sender_ref == ref, ReportAttachment.report_id.is_(None))
        .values(report_id=report_id, sender_ref=None)
    )


def discard_kept_photos(session: Session, sender: str, keys: Keys) -> int:
    """A cancelled report or an erasure: the sender's photos not yet filed are deleted."""
    ref = crypto.sender_ref(keys.sender_key, sender)
    result = session.execute(
        delete(ReportAttachment).where(ReportAttachment.sender_ref == ref, ReportAttachment.report_id.is_(None))
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- console -----------------------------------------------------------------------------


def open_report(session: Session, report_id: str, private_key: PrivateKey, *, photos: bool = True) -> dict[str, Any]:
    """Everything about a report, opened with the staff private key (console and tests).
    With photos=False the photos stay sealed (the console opens each one only when it is
    shown, console/photos.py) and "attachments" is left empty."""
    report = _report(session, report_id)

    def note(blob: bytes | None) -> str | None:
        return crypto.unseal_text(private_key, blob) if blob else None

    return {
        "id": report.id,
        "status": report.status,
        "created_at": report.created_at,
        "updated_at": report.updated_at,
        "closed_at": report.closed_at,
        "country": report.country,
        "kind": report.kind,
        "minors": report.minors,
        "danger_now": report.danger_now,
        "people_count": report.people_count,
        "recent": report.recent,
        "priority": report.priority,
        "triage_score": report.triage_score,
        "triage_reasons": list(report.triage_reasons),
        "hash_prefix": crypto.code_hash_prefix(report.lookup_hash),
        "body": json.loads(crypto.unseal_text(private_key, report.sealed_body)),
        "contact_consent": report.contact_consent,
        "contact": crypto.open_contact(private_key, report.contact_sealed) if report.contact_sealed else None,
        "channel": report.channel,
        "additions": [{"created_at": a.created_at, "text": note(a.sealed_body)} for a in report.additions],
        "status_changes": [
            {"at": c.at, "old": c.old_status, "new": c.new_status, "actor": c.actor, "note": note(c.note_sealed)}
            for c in report.status_changes
        ],
        "attachments": [
            {"content_type": a.content_type, "size": a.size, "content": crypto.unseal(private_key, a.sealed_content)}
            for a in session.scalars(
                select(ReportAttachment).where(ReportAttachment.report_id == report_id).order_by(ReportAttachment.id)
            )
            if photos
        ],
        "tipster_messages": [
            {"created_at": m.created_at, "author": m.author, "text": note(m.sealed_for_staff)}
            for m in report.tipster_messages
        ],
    }
