"""Live hand-off to a person: functions that take a Session (the reports core's pattern).

A hand-off is requested by the assistant (the person asked for a human, or it failed to
understand twice), taken by a staff member in the console (Rasa is paused), and closed when
the staff member hands the conversation back, when the person stays silent too long, when
nobody took it in time, or when the person erases the conversation. The reply address and
every message are sealed to the staff key; the address is dropped at closing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reports import crypto
from reports.keys import Keys
from reports.models import HANDOFF_CLOSE_REASONS, HANDOFF_LANGUAGES, HANDOFF_REASONS, Handoff, HandoffMessage

MAX_MESSAGE_CHARS = 1600  # what staff may write in one message: Twilio's limit (Telegram's is 4096)
MAX_INBOUND_CHARS = 10_000  # what is kept of one message from the person (channels cap it lower)
# Rasa starts a new session (and forgets the pause) after 60 quiet minutes (domain.yml
# session_config): a live hand-off is handed back before that.
IDLE_LIMIT = timedelta(minutes=50)
WAITING_LIMIT = timedelta(hours=24)  # nobody took it: the request lapses
CLOSED_RETENTION = timedelta(days=30)  # the transcript of a closed hand-off, for supervision


class HandoffNotFound(LookupError):
    """No open hand-off with that id (closed meanwhile, or a stale id)."""


class HandoffTaken(ValueError):
    """Another staff member holds it (or it is no longer waiting)."""


@dataclass(frozen=True)
class InboundResult:
    """What the gateway must do with a person's message: `live` (staff reads it; the bot
    is paused) and/or `notice` (tell the person the conversation went back to the bot)."""

    live: bool = False
    notice: bool = False


def open_handoff(session: Session, conversation_id: str) -> Handoff | None:
    return session.scalar(select(Handoff).where(Handoff.conversation_id == conversation_id, Handoff.state != "closed"))


def request_handoff(
    session: Session,
    conversation_id: str,
    channel: str | None,
    reason: str,
    reply_to: str | None,
    now: datetime,
    language: str | None = None,
) -> Handoff:
    """A new waiting hand-off, or the open one refreshed with the latest reply address.
    `reply_to` is the channel edge's sealed contact (staff key), or None outside a channel.
    `language` is the other language the person wrote (en, pt, fr, ht), so that staff know
    before answering; None when only Spanish."""
    if reason not in HANDOFF_REASONS:
        raise ValueError(f"unknown hand-off reason {reason!r}")
    if language is not None and language not in HANDOFF_LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    sealed = crypto.contact_blob(reply_to) if reply_to else None
    current = open_handoff(session, conversation_id)
    if current is not None:
        if sealed is not None:
            current.reply_sealed = sealed
        if reason == "asked":
            current.reason = "asked"  # a person asking outranks the bot failing
        if language is not None:
            current.language = language
        return current
    handoff = Handoff(
        conversation_id=conversation_id,
        channel=(channel or "")[:20] or None,
        reason=reason,
        state="waiting",
        reply_sealed=sealed,
        requested_at=now,
        person_told=True,
        language=language,
    )
    try:
        with session.begin_nested():
            session.add(handoff)
    except IntegrityError:  # a parallel request made it first (one open hand-off per conversation)
        found = open_handoff(session, conversation_id)
        if found is None:
            raise
        return found
    return handoff


def _open(session: Session, handoff_id: int) -> Handoff:
    handoff = session.get(Handoff, handoff_id, with_for_update=True)
    if handoff is None or handoff.state == "closed":
        raise HandoffNotFound(handoff_id)
    return handoff


def take(session: Session, handoff_id: int, staff_id: int, now: datetime, override: bool = False) -> Handoff:
    """Waiting → live, held by `staff_id`. `override` (supervisors) takes one another holds."""
    handoff = _open(session, handoff_id)
    if handoff.state == "live" and handoff.staff_id != staff_id and not override:
        raise HandoffTaken(handoff_id)
    if handoff.state == "waiting":
        handoff.taken_at = now
        handoff.last_inbound_at = now
    handoff.state = "live"
    handoff.staff_id = staff_id
    return handoff


def close(session: Session, handoff_id: int, reason: str, now: datetime, person_told: bool = True) -> Handoff:
    """Closed: the reply address is dropped; the transcript stays for CLOSED_RETENTION."""
    if reason not in HANDOFF_CLOSE_REASONS:
        raise ValueError(f"unknown close reason {reason!r}")
    handoff = _open(session, handoff_id)
    handoff.state = "closed"
    handoff.closed_at = now
    handoff.close_reason = reason
    handoff.reply_sealed = None
    handoff.person_told = person_told
    return handoff


def record_inbound(
    session: Session, conversation_id: str, text: str, danger: bool, keys: Keys, now: datetime
) -> InboundResult:
    """A person's message: kept (sealed) for the staff member when their hand-off is live;
    a pending "back to the assistant" notice is taken (it is shown once)."""
    live = open_handoff(session, conversation_id)
    if live is not None and live.state == "live":
        live.last_inbound_at = now
        if text.strip():
            session.add(
                HandoffMessage(
                    handoff_id=live.id,
                    at=now,
                    inbound=True,
                    sealed_body=crypto.seal_text(keys.public_key, text[:MAX_INBOUND_CHARS]),
                    danger=danger,
                )
            )
        return InboundResult(live=True)
    untold = session.scalar(
        select(Handoff)
        .where(Handoff.conversation_id == conversation_id, Handoff.state == "closed", Handoff.person_told.is_(False))
        .order_by(Handoff.id.desc())
        .limit(1)
    )
    if untold is not None:
        untold.person_told = True
        return InboundResult(notice=True)
    return InboundResult()


def record_outbound(
    session: Session, handoff_id: int, staff_id: int, text: str, keys: Keys, now: datetime, path: str | None = None
) -> None:
    """A staff member's message, after the channel accepted it, with the path it took
    (channels.core.SEND_PATHS: on WhatsApp it may wait for the person's next message)."""
    handoff = _open(session, handoff_id)
    if handoff.state != "live":
        raise HandoffTaken(handoff_id)
    session.add(
        HandoffMessage(
            handoff_id=handoff.id,
            at=now,
            inbound=False,
            staff_id=staff_id,
            sealed_body=crypto.seal_text(keys.public_key, text),
            danger=False,
            path=path,
        )
    )


def idle_live(session: Session, now: datetime, limit: timedelta = IDLE_LIMIT) -> list[Handoff]:
    """Live hand-offs whose person has been silent longer than `limit`."""
    return list(session.scalars(select(Handoff).where(Handoff.state == "live", Handoff.last_inbound_at < now - limit)))


def expire_waiting(session: Session, now: datetime, limit: timedelta = WAITING_LIMIT) -> int:
    """Requests nobody took within `limit` are closed (the bot kept answering meanwhile)."""
    stale = list(session.scalars(select(Handoff).where(Handoff.state == "waiting", Handoff.requested_at < now - limit)))
    for handoff in stale:
        close(session, handoff.id, "expired", now)
    return len(stale)


def forget_conversation(session: Session, conversation_id: str) -> int:
    """Erasure: every hand-off of the conversation and its messages are deleted."""
    ids = list(session.scalars(select(Handoff.id).where(Handoff.conversation_id == conversation_id)))
    if ids:
        session.execute(delete(HandoffMessage).where(HandoffMessage.handoff_id.in_(ids)))
        session.execute(delete(Handoff).where(Handoff.id.in_(ids)))
    return len(ids)


def purge_closed(
    session: Session, now: datetime, retention: timedelta = CLOSED_RETENTION, dry_run: bool = False
) -> int:
    """Closed hand-offs past retention go, with their messages; returns how many."""
    old = list(
        session.scalars(select(Handoff.id).where(Handoff.state == "closed", Handoff.closed_at < now - retention))
    )
    if old and not dry_run:
        session.execute(delete(HandoffMessage).where(HandoffMessage.handoff_id.in_(old)))
        session.execute(delete(Handoff).where(Handoff.id.in_(old)))
    return len(old)
