"""The gateway's own state in the reports database: delivery ids already seen, people who
opted out, ids of messages sent on channels that can delete them, messages kept while
Rasa was down (sealed with the gateway key), the person's side of a live hand-off
(sealed to the staff key), and WhatsApp's window: when a person last wrote (the time
only) and staff messages held until they write again (sealed with the gateway key).
Blocking calls: the core runs them in threads.
No address and no text in clear: pseudonyms, keyed hashes and sealed boxes only."""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.exc import IntegrityError

from reports import handoffs
from reports.db import transaction
from reports.keys import Keys
from reports.models import (
    ChannelMessage,
    Delivery,
    DiscreetConversation,
    Handoff,
    HeldMessage,
    LastInbound,
    OptOut,
    PendingMessage,
    utcnow,
)

PENDING_MAX_AGE = timedelta(hours=24)  # a kept message older than this is dropped, not answered late
# A delivery id is remembered longer than any report is kept: a captured signed webhook
# replayed later must not be answered again (Twilio's signature carries no time).
DELIVERY_MAX_AGE = timedelta(days=400)
DELETABLE_WINDOW = timedelta(hours=48)  # Telegram lets a bot delete messages this long
# A staff message held for a person outside WhatsApp's window waits this long for them to
# write; the console keeps its own copy (hand-off transcript, the tipster's follow-up).
HELD_MAX_AGE = timedelta(days=30)
LAST_INBOUND_KEPT = timedelta(hours=48)  # past WhatsApp's 24 hours the time no longer matters


@dataclass(frozen=True)
class PendingRow:
    row_id: int
    pseudonym: str
    channel: str
    sealed: bytes


class PendingClaim(Protocol):
    def done(self) -> None:
        """The message was answered (or Rasa has it): it is deleted."""
        ...

    def release(self) -> None:
        """Not answered: it stays kept, for the next round."""
        ...


class RowLockClaim:
    """A pending row locked in an open transaction on its own connection (PostgreSQL)."""

    def __init__(self, connection: Connection, row_id: int) -> None:
        self.connection, self.row_id = connection, row_id

    @classmethod
    def take(cls, engine: Engine, row_id: int) -> RowLockClaim | None:
        connection = engine.connect()
        try:
            locked = connection.execute(
                select(PendingMessage.id).where(PendingMessage.id == row_id).with_for_update(skip_locked=True)
            ).first()
        except BaseException:
            connection.close()
            raise
        if locked is None:
            connection.rollback()
            connection.close()
            return None
        return cls(connection, row_id)

    def done(self) -> None:
        try:
            self.connection.execute(delete(PendingMessage).where(PendingMessage.id == self.row_id))
            self.connection.commit()
        finally:
            self.connection.close()

    def release(self) -> None:
        try:
            self.connection.rollback()
        finally:
            self.connection.close()


_CLAIMED: set[tuple[str, int]] = set()  # (database, row id) claimed in this process
_CLAIMED_LOCK = threading.Lock()


class MemoryClaim:
    """A pending row claimed in this process (SQLite: one gateway process by construction)."""

    def __init__(self, store: GatewayStore, row_id: int) -> None:
        self.store, self.row_id = store, row_id
        self.key = (str(store.engine.url), row_id)

    @classmethod
    def take(cls, store: GatewayStore, row_id: int) -> MemoryClaim | None:
        claim = cls(store, row_id)
        with _CLAIMED_LOCK:
            if claim.key in _CLAIMED:
                return None
            _CLAIMED.add(claim.key)
        with transaction(store.engine) as session:
            if session.get(PendingMessage, row_id) is not None:
                return claim
        claim.release()  # answered and deleted since it was listed
        return None

    def done(self) -> None:
        try:
            self.store.delete_pending(self.row_id)
        finally:
            self.release()

    def release(self) -> None:
        with _CLAIMED_LOCK:
            _CLAIMED.discard(self.key)


@dataclass
class GatewayStore:
    engine: Engine
    gateway_key: bytes

    def first_delivery(self, channel: str, delivery_id: str) -> bool:
        """Record a provider's delivery id; False when it was seen before (a retry, a replay)."""
        key = hmac.new(self.gateway_key, f"{channel}:{delivery_id}".encode(), hashlib.sha256).hexdigest()
        try:
            with transaction(self.engine) as session:
                session.add(Delivery(delivery_hash=key, received_at=utcnow()))
        except IntegrityError:
            return False
        return True

    def set_opt_out(self, pseudonym: str, opted_out: bool) -> None:
        with transaction(self.engine) as session:
            session.execute(delete(OptOut).where(OptOut.pseudonym == pseudonym))
            if opted_out:
                session.add(OptOut(pseudonym=pseudonym, opted_out_at=utcnow()))

    def is_opted_out(self, pseudonym: str) -> bool:
        with transaction(self.engine) as session:
            return session.get(OptOut, pseudonym) is not None

    def set_discreet(self, pseudonym: str, discreet: bool) -> None:
        with transaction(self.engine) as session:
            session.execute(delete(DiscreetConversation).where(DiscreetConversation.pseudonym == pseudonym))
            if discreet:
                session.add(DiscreetConversation(pseudonym=pseudonym, since=utcnow()))

    def is_discreet(self, pseudonym: str) -> bool:
        with transaction(self.engine) as session:
            return session.get(DiscreetConversation, pseudonym) is not None

    def remember_message(self, pseudonym: str, message_id: str) -> None:
        """A message id the channel lets us delete later (erasure)."""
        with transaction(self.engine) as session:
            session.add(ChannelMessage(pseudonym=pseudonym, message_id=message_id, sent_at=utcnow()))

    def forget_messages(self, pseudonym: str) -> list[str]:
        """The still-deletable message ids of a conversation; all its ids are forgotten."""
        with transaction(self.engine) as session:
            ids = session.scalars(
                select(ChannelMessage.message_id).where(
                    ChannelMessage.pseudonym == pseudonym, ChannelMessage.sent_at > utcnow() - DELETABLE_WINDOW
                )
            ).all()
            session.execute(delete(ChannelMessage).where(ChannelMessage.pseudonym == pseudonym))
            return list(ids)

    def keep_pending(self, pseudonym: str, channel: str, sealed: bytes) -> None:
        with transaction(self.engine) as session:
            session.add(PendingMessage(pseudonym=pseudonym, channel=channel, sealed=sealed, received_at=utcnow()))

    def pending_rows(self) -> list[PendingRow]:
        """Kept messages, oldest first; those too old to answer are dropped first."""
        with transaction(self.engine) as session:
            session.execute(delete(PendingMessage).where(PendingMessage.received_at < utcnow() - PENDING_MAX_AGE))
            rows = session.execute(
                select(
                    PendingMessage.id, PendingMessage.pseudonym, PendingMessage.channel, PendingMessage.sealed
                ).order_by(PendingMessage.id)
            ).all()
        return [PendingRow(r[0], r[1], r[2], r[3]) for r in rows]

    def delete_pending(self, row_id: int) -> None:
        with transaction(self.engine) as session:
            session.execute(delete(PendingMessage).where(PendingMessage.id == row_id))

    def claim_pending(self, row_id: int) -> PendingClaim | None:
        """The kept message for this drainer alone, or None when another has it (or it is
        gone). PostgreSQL: a row lock (FOR UPDATE SKIP LOCKED) held until `done` deletes the
        row or `release` leaves it; a drainer that dies releases it with its connection.
        SQLite (one process by construction): a claim in this process's memory."""
        if self.engine.dialect.name == "postgresql":
            return RowLockClaim.take(self.engine, row_id)
        return MemoryClaim.take(self, row_id)

    # -- live hand-off: the person's messages kept (sealed) for the staff member ----------

    def handoff_inbound(self, pseudonym: str, text: str, danger: bool, keys: Keys) -> handoffs.InboundResult:
        with transaction(self.engine) as session:
            return handoffs.record_inbound(session, pseudonym, text, danger, keys, utcnow())

    def forget_handoffs(self, pseudonym: str) -> bool:
        """Erasure: the conversation's hand-offs go; True when one was live (Rasa paused)."""
        with transaction(self.engine) as session:
            current = handoffs.open_handoff(session, pseudonym)
            live = current is not None and current.state == "live"
            handoffs.forget_conversation(session, pseudonym)
            return live

    def idle_handoffs(self) -> list[tuple[int, str]]:
        """Live hand-offs whose person went quiet (requests nobody took lapse first)."""
        with transaction(self.engine) as session:
            handoffs.expire_waiting(session, utcnow())
            return [(h.id, h.conversation_id) for h in handoffs.idle_live(session, utcnow())]

    def close_idle_handoff(self, handoff_id: int) -> None:
        with transaction(self.engine) as session:
            if session.get(Handoff, handoff_id) is not None:
                handoffs.close(session, handoff_id, "idle", utcnow(), person_told=False)

    # -- WhatsApp's 24-hour window -------------------------------------------------------

    def note_inbound(self, pseudonym: str, now: datetime) -> None:
        """The person wrote at `now` (a channel with a reply window)."""
        with transaction(self.engine) as session:
            found = session.get(LastInbound, pseudonym)
            if found is None:
                session.add(LastInbound(pseudonym=pseudonym, at=now))
            elif found.at < now:
                found.at = now

    def last_inbound(self, pseudonym: str) -> datetime | None:
        with transaction(self.engine) as session:
            found = session.get(LastInbound, pseudonym)
            return found.at if found is not None else None

    def hold(self, pseudonym: str, channel: str, sealed: bytes, now: datetime) -> int:
        """Keep a staff message until the person writes; returns its row id."""
        with transaction(self.engine) as session:
            held = HeldMessage(pseudonym=pseudonym, channel=channel, sealed=sealed, held_at=now)
            session.add(held)
            session.flush()
            return held.id

    def unhold(self, row_id: int) -> None:
        """The template that would have announced it was not sent: the message is not kept."""
        with transaction(self.engine) as session:
            session.execute(delete(HeldMessage).where(HeldMessage.id == row_id))

    def has_held(self, pseudonym: str, now: datetime) -> bool:
        """Whether a template already told this person that messages wait for them."""
        with transaction(self.engine) as session:
            return (
                session.scalar(
                    select(HeldMessage.id)
                    .where(HeldMessage.pseudonym == pseudonym, HeldMessage.held_at >= now - HELD_MAX_AGE)
                    .limit(1)
                )
                is not None
            )

    def take_held(self, pseudonym: str) -> list[tuple[str, bytes]]:
        """The held messages of a person, oldest first, as (channel, sealed); they are deleted
        here (whoever deletes them sends them: two gateways never send one twice)."""
        with transaction(self.engine) as session:
            rows = session.execute(
                select(HeldMessage.id, HeldMessage.channel, HeldMessage.sealed)
                .where(HeldMessage.pseudonym == pseudonym)
                .order_by(HeldMessage.id)
            ).all()
            taken = []
            for row_id, channel, sealed in rows:
                result = session.execute(delete(HeldMessage).where(HeldMessage.id == row_id))
                if getattr(result, "rowcount", 0) == 1:  # not deleted meanwhile by another gateway
                    taken.append((channel, sealed))
            return taken

    def put_back_held(self, pseudonym: str, held: list[tuple[str, bytes]], now: datetime) -> None:
        """Messages taken but not sent (the channel failed): kept for the next message."""
        with transaction(self.engine) as session:
            for channel, sealed in held:
                session.add(HeldMessage(pseudonym=pseudonym, channel=channel, sealed=sealed, held_at=now))

    def forget_window(self, pseudonym: str) -> None:
        """Erasure: the time of the last message and any held message go."""
        with transaction(self.engine) as session:
            session.execute(delete(HeldMessage).where(HeldMessage.pseudonym == pseudonym))
            session.execute(delete(LastInbound).where(LastInbound.pseudonym == pseudonym))

    def purge(self) -> None:
        """Forget what is no longer needed: old deliveries, undeletable message ids, held
        messages nobody came back for, window times older than the window itself."""
        with transaction(self.engine) as session:
            session.execute(delete(Delivery).where(Delivery.received_at < utcnow() - DELIVERY_MAX_AGE))
            session.execute(delete(ChannelMessage).where(ChannelMessage.sent_at < utcnow() - DELETABLE_WINDOW))
            session.execute(delete(HeldMessage).where(HeldMessage.held_at < utcnow() - HELD_MAX_AGE))
            session.execute(delete(LastInbound).where(LastInbound.at < utcnow() - LAST_INBOUND_KEPT))
