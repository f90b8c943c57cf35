"""The reports schema (SQLAlchemy 2 typed ORM). Alembic migrations create it; tests check
that the migrations and these classes agree.

What is sealed (staff public key): report text, contact, additions, status notes. What is
plain: what triage and the console need to sort and route (country, kind, priority, flags).
Statuses, kinds and priorities are checked in Python, not by CHECK constraints, so the staff
console can add values without a migration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("received", "in_review", "referred", "closed")
KINDS = (
    "sexual",
    "labour",
    "begging",
    "forced_crime",
    "child",
    "forced_marriage",
    "organ_removal",
    "other",
    "unknown",
)
PRIORITIES = ("urgent", "high", "normal")
NOTIFICATION_STATUSES = ("pending", "sent", "failed")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every database: SQLite keeps no zone, so it is added back on
    read; naive datetimes are refused on write (they would be ambiguous)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    lookup_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tipster_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="received", index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    country: Mapped[str | None] = mapped_column(String(2))
    kind: Mapped[str | None] = mapped_column(String(20))
    minors: Mapped[bool | None] = mapped_column(Boolean)
    danger_now: Mapped[bool | None] = mapped_column(Boolean)
    people_count: Mapped[int | None] = mapped_column(Integer)
    recent: Mapped[bool | None] = mapped_column(Boolean)
    priority: Mapped[str] = mapped_column(String(10), index=True)
    triage_score: Mapped[int] = mapped_column(Integer)
    triage_reasons: Mapped[list[str]] = mapped_column(JSON)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)
    contact_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    reporter_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(20))

    additions: Mapped[list[ReportAddition]] = relationship(
        back_populates="report", cascade="all, delete-orphan", passive_deletes=True, order_by="ReportAddition.id"
    )
    status_changes: Mapped[list[StatusChange]] = relationship(
        back_populates="report", cascade="all, delete-orphan", passive_deletes=True, order_by="StatusChange.id"
    )
    tipster_messages: Mapped[list[TipsterMessage]] = relationship(
        back_populates="report", cascade="all, delete-orphan", passive_deletes=True, order_by="TipsterMessage.id"
    )
    notifications: Mapped[list[Notification]] = relationship(
        back_populates="report", cascade="all, delete-orphan", passive_deletes=True, order_by="Notification.id"
    )


def _report_fk() -> Mapped[str]:
    return mapped_column(String(36), ForeignKey("reports.id", ondelete="CASCADE"), index=True)


class ReportAddition(Base):
    """More information a tipster gave at follow-up."""

    __tablename__ = "report_additions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = _report_fk()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="additions")


class StatusChange(Base):
    """History of a report's status; actor is a staff account id once the console has them."""

    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = _report_fk()
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(64))
    note_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="status_changes")


class TipsterMessage(Base):
    """A staff message for the tipster: sealed to the report's tipster key (opened with the
    code at follow-up) and, when written with the staff keys, a copy the console can read."""

    __tablename__ = "tipster_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = _report_fk()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sealed_for_tipster: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_for_staff: Mapped[bytes | None] = mapped_column(LargeBinary)
    author: Mapped[str | None] = mapped_column(String(64))

    report: Mapped[Report] = relationship(back_populates="tipster_messages")


class FollowUpAttempt(Base):
    """One code lookup by a sender (pseudonym HMAC), for the hourly limit; purged after an hour.
    Deliberately not linked to any report."""

    __tablename__ = "follow_up_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_ref: Mapped[str] = mapped_column(String(64), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ReportAttachment(Base):
    """A photo sent during the report form, metadata (EXIF, GPS) stripped at the gateway and
    sealed to the staff key. Until the report is filed it belongs to the sender (`sender_ref`,
    an HMAC); filing moves it to the report, cancelling or erasing deletes it. A photo marked
    as child sexual abuse material stays sealed and is never opened again."""

    __tablename__ = "report_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("reports.id", ondelete="CASCADE"), index=True, nullable=True
    )
    sender_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sealed_content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Marked by a supervisor as child sexual abuse material (console/photos.py): from then on
    # no route opens it; who (username and role at the time) and when. Never cleared.
    csam_marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    csam_marked_by: Mapped[str | None] = mapped_column(String(64))
    csam_marked_role: Mapped[str | None] = mapped_column(String(16))


class Notification(Base):
    """A staff alert about an urgent report on one channel ("email", "telegram"). The error
    is short and never holds report text or secrets."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = _report_fk()
    channel: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))

    report: Mapped[Report] = relationship(back_populates="notifications")


# -- Gateway state (channels/): what the channel gateway must remember between requests.
# Senders appear only as pseudonyms (keyed HMAC made at the channel edge); an address is
# kept only inside a pending message, sealed with the gateway's own key, until answered.


class Delivery(Base):
    """A provider delivery already processed (Twilio MessageSid, Telegram update_id), as a
    hash: the same delivery twice is processed once. Purged after a week."""

    __tablename__ = "channel_deliveries"

    delivery_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class PendingMessage(Base):
    """A message the assistant could not take (Rasa down or slow): kept sealed with the
    gateway key (text and reply address) and processed, in order, when Rasa is back."""

    __tablename__ = "channel_pending_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class OptOut(Base):
    """A sender who wrote STOP/BAJA: nothing is sent to them until they write ALTA."""

    __tablename__ = "channel_opt_outs"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DiscreetConversation(Base):
    """A conversation in discreet mode (content/discreet.yml): the gateway sends it nothing
    with a sensitive word, its own notices included, and refuses such a staff message."""

    __tablename__ = "channel_discreet"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime())


class QuestionCount(Base):
    """How many answers of one topic (an intent: content/public_figures.yml labels the ones
    published) the assistant gave in a month, by the country the answer was written for
    ("" when it was not country-specific). Counts only: no pseudonym, no text, no day."""

    __tablename__ = "question_counts"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    answers: Mapped[int] = mapped_column(Integer, default=0)


class LastInbound(Base):
    """When a person last wrote on a channel with a reply window (WhatsApp: free-form
    messages only within 24 hours of it). The time only, under the pseudonym."""

    __tablename__ = "channel_last_inbound"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class HeldMessage(Base):
    """A staff message to a person outside WhatsApp's 24-hour window: an approved template
    told them a message waits, and this text (sealed with the gateway key) goes out when
    they write again. Dropped after channels.state.HELD_MAX_AGE."""

    __tablename__ = "channel_held_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ChannelMessage(Base):
    """Ids of messages in a Telegram chat (the bot's and the person's), so /borrar can
    delete them from the phone while the Bot API allows it (48 hours). Purged after that."""

    __tablename__ = "channel_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ProviderRecord(Base):
    """A message (or one of its media) a provider still keeps, to be deleted through the
    provider's API once answered (channels/provider_cleanup.py). Provider ids only: never a
    number, a pseudonym or a text. The row goes when the provider confirms the deletion (or
    says the record is gone), or after a time limit (counted and logged)."""

    __tablename__ = "provider_records"
    __table_args__ = (UniqueConstraint("channel", "message_id", "media_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(20))  # the adapter that deletes it ("sms", "whatsapp")
    message_id: Mapped[str] = mapped_column(String(64))  # Twilio Message SID (SM..., MM...)
    media_id: Mapped[str] = mapped_column(String(64), default="")  # Twilio Media SID (ME...), "" for the message
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # next attempt
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)


# -- Staff console (console/): staff accounts and the audit log. The TOTP secret is sealed
# with the console key (console/keys.py); the audit log is append-only (database triggers
# refuse UPDATE and DELETE) and never holds report text.

ROLES = ("agent", "supervisor", "admin")


class StaffAccount(Base):
    """A staff member. `totp_last_counter` is the last accepted TOTP time step, so a code
    cannot be used twice; `failed_logins` and `locked_until` drive the login back-off;
    `session_epoch` goes up at logout, ending every session cookie issued before."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_counter: Mapped[int | None] = mapped_column(Integer)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Base):
    """Who did what and when in the console. Append-only; `detail` is short and never
    holds report text, passwords or codes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[str | None] = mapped_column(String(300))


# -- Case work (console/cases.py): who holds a case, staff notes (sealed to the staff key
# like everything else written about a report) and referrals to institutions of the
# directory built from content/facts.yml (`institution_key` is the fact id).


class CaseAssignment(Base):
    """The staff member a report is assigned to (one at a time; none when the row is absent)."""

    __tablename__ = "case_assignments"

    report_id: Mapped[str] = mapped_column(String(36), ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_accounts.id"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseNote(Base):
    """An internal note on a report, for staff only; the text is sealed to the staff key."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = _report_fk()
    author_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)


class Referral(Base):
    """A report referred to an institution of the directory (`institution_key`: a fact id),
    with four eyes (reports/referrals.py): the author (`staff_id`) prepares it, another
    supervisor approves the exact content (`approved_hash`), then it is sent by e-mail or as
    a PDF and staff record the institution's answer. Texts are sealed to the staff key. Rows
    from before the approval flow have state "recorded"."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = _report_fk()
    institution_key: Mapped[str] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    referred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    staff_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    state: Mapped[str] = mapped_column(String(20), default="draft", server_default="recorded", index=True)
    shared_fields: Mapped[list[str] | None] = mapped_column(JSON)
    contact_consent_how: Mapped[str | None] = mapped_column(String(20))
    summary_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    content_hash: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_hash: Mapped[str | None] = mapped_column(String(64))
    decision_note_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    sent_via: Mapped[str | None] = mapped_column(String(10))  # "email" or "pdf"
    sent_to: Mapped[str | None] = mapped_column(String(254))  # the directory's e-mail address
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_on: Mapped[date | None] = mapped_column(Date)
    outcome_note_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    outcome_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- Content audit (console/facts_audit.py): a staff member called a number of
# content/facts.yml (or opened the live site) and confirmed it on a date. `fact_id` is the
# fact's id; the note is short and never holds report text.


class FactConfirmation(Base):
    """A fact confirmed by staff on `confirmed_on` (not in the future), with a short note."""

    __tablename__ = "fact_confirmations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fact_id: Mapped[str] = mapped_column(String(100), index=True)
    confirmed_on: Mapped[date] = mapped_column(Date)
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    note: Mapped[str] = mapped_column(String(500), default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


SERVICE_CORRECTION_STATES = ("pending", "approved", "rejected")


class ServiceCorrection(Base):
    """A staff member's proposed change to one field of a services directory entry
    (console/service_corrections.py). It reaches content/service_corrections.yml only once a
    supervisor other than the proposer approved it (four eyes), and then only through the
    reviewed export (`make service-corrections`)."""

    __tablename__ = "service_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(100), index=True)
    field: Mapped[str] = mapped_column(String(20))  # a field of hotline.services.CORRECTABLE, or "entry"
    value: Mapped[str] = mapped_column(Text, default="")  # a new entry: its fields as JSON
    source: Mapped[str] = mapped_column(String(500), default="")
    note: Mapped[str] = mapped_column(String(500), default="")
    state: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    proposed_by: Mapped[int] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# -- Live hand-off (console/handoff.py, channels/core.py): a conversation where the person
# asked for a human, or the assistant failed twice. `conversation_id` is the Rasa sender id
# (the gateway's pseudonym, never an address). The reply address is sealed to the staff key
# and kept only while the hand-off is open; messages are sealed to the staff key too.

HANDOFF_STATES = ("waiting", "live", "closed")
HANDOFF_REASONS = ("asked", "fallback")
HANDOFF_CLOSE_REASONS = ("returned", "idle", "expired", "erased")
HANDOFF_LANGUAGES = ("en", "pt", "fr", "ht")  # the other languages the assistant recognises (domain.yml)


class Handoff(Base):
    """One request for a person, from waiting to live (a staff member holds it and Rasa is
    paused) to closed. At most one open (waiting or live) hand-off per conversation."""

    __tablename__ = "handoffs"
    __table_args__ = (
        Index(
            "uq_handoffs_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("state != 'closed'"),
            postgresql_where=text("state != 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(10), default="waiting", index=True)
    reply_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    staff_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    close_reason: Mapped[str | None] = mapped_column(String(20))
    person_told: Mapped[bool] = mapped_column(Boolean, default=True)  # false: tell at their next message
    language: Mapped[str | None] = mapped_column(String(5))  # en/pt/fr/ht when the person wrote one (issue 12)


class HandoffMessage(Base):
    """One message of a live hand-off: `inbound` from the person, else from staff. Sealed to
    the staff key; `danger` is the danger lexicon's reading of an inbound message."""

    __tablename__ = "handoff_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handoff_id: Mapped[int] = mapped_column(Integer, ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    inbound: Mapped[bool] = mapped_column(Boolean)
    staff_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)
    danger: Mapped[bool] = mapped_column(Boolean, default=False)
    # How a staff message went (channels/core.py SEND_PATHS): "direct" (SMS, Telegram),
    # "session" (WhatsApp window open), "template" or "held" (the text waits for the person).
    path: Mapped[str | None] = mapped_column(String(20))


# -- On call (reports/oncall.py, console/oncall.py): who answers alerts when. A shift covers
# some countries (empty: all). A staff member's contact for alerts (e-mail, Telegram chat id,
# phone for SMS) is sealed with the on-call key (keys/oncall.key), which the console (to
# write) and the jobs (to send) hold. A page is one alert to one person about one report or
# hand-off, at one step of the escalation chain; its acknowledge link's token is kept only as
# a SHA-256 hash.

PAGE_SUBJECTS = ("report", "handoff")
PAGE_LEVELS = ("on_call", "supervisor")


class OnCallShift(Base):
    """A staff member on call from `starts_at` to `ends_at` (UTC) for `countries` (all when empty)."""

    __tablename__ = "on_call_shifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StaffContact(Base):
    """Where a staff member gets alerts: one sealed JSON of e-mail, Telegram chat id and phone
    (never stored or logged in clear); `channels` names the ones set, for pages to show."""

    __tablename__ = "staff_contacts"

    staff_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("staff_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    channels: Mapped[str] = mapped_column(String(40), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OnCallPage(Base):
    """One alert to one person about a report or a hand-off at one step of the chain. `channels`
    lists those it went out on; `error` is short and holds no address or secret."""

    __tablename__ = "on_call_pages"
    __table_args__ = (UniqueConstraint("subject", "step", "staff_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(50), index=True)  # "report:<uuid>" or "handoff:<id>"
    report_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("reports.id", ondelete="CASCADE"), index=True, nullable=True
    )
    handoff_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("handoffs.id", ondelete="CASCADE"), index=True, nullable=True
    )
    step: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(12))
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channels: Mapped[str] = mapped_column(String(40), default="")
    error: Mapped[str | None] = mapped_column(String(300))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("staff_accounts.id"))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
