"""Deleting the copies a provider keeps: Twilio keeps every message (the report's words, the
reply with the case code, the photo with its GPS) in its message log until asked to delete
it. A channel adapter notes the provider ids of the messages it handled and of the replies
it learns about (`take_provider_records`); each gateway's background work stores its own
(`record`: provider_records, ids only, no number, no text), and one gateway at a time, under
a lease, asks the adapter to delete each one that is due (`delete_due`,
`delete_provider_record`), retrying refusals with a growing delay and giving up, counted
and logged, after GIVE_UP_AFTER. `run` does both.

Why a delay: Twilio refuses to delete a message that has not reached a final state (error
20009; "wait at least 1 minute", rarely up to 14 days: https://www.twilio.com/docs/api/errors/20009),
and a reply's final state comes with the carrier's delivery receipt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine, delete, select, update

from reports.db import transaction
from reports.models import ProviderRecord, utcnow

logger = logging.getLogger("channels.provider_cleanup")

DELETED = "deleted"  # the provider confirmed the deletion
GONE = "gone"  # the provider does not know the record (404): deleted before, nothing to do
NOT_READY = "not_ready"  # the provider refuses for now (a message not in a final state)
FAILED = "failed"  # any other failure (network, 5xx, credentials): try again later
DONE = frozenset({DELETED, GONE})

FIRST_ATTEMPT_AFTER = timedelta(minutes=2)  # Twilio: at least a minute after the message
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=15)  # past Twilio's "up to 14 days" to finalise a record
BATCH = 50  # deletions per round: the background loop comes back soon
MAX_ID_CHARS = 64

Record = tuple[str, str]  # (message id, media id or "")


@runtime_checkable
class ProviderRecords(Protocol):
    """What an adapter offers when its provider keeps copies it can delete."""

    def take_provider_records(self) -> list[Record]: ...

    def put_back_provider_records(self, records: list[Record]) -> None: ...

    async def delete_provider_record(self, message_id: str, media_id: str) -> str: ...


@dataclass(frozen=True)
class CleanupCounts:
    recorded: int = 0
    deleted: int = 0
    retried: int = 0
    given_up: int = 0


def retry_delay(attempts: int) -> timedelta:
    """5 minutes, doubling, at most 6 hours: a message refused for days costs ~60 calls."""
    delay: timedelta = RETRY_FIRST * 2 ** min(max(attempts - 1, 0), 16)
    return min(delay, RETRY_MAX)


async def run(engine: Engine, adapters: Mapping[str, object], now: datetime | None = None) -> CleanupCounts:
    """One round: store what the adapters noted, then delete what is due. A failure (the
    database down) is logged and leaves the rest of the background work running."""
    recorded = await record(engine, adapters, now)
    counts = await delete_due(engine, adapters, now)
    return dataclasses.replace(counts, recorded=recorded)


async def record(engine: Engine, adapters: Mapping[str, object], now: datetime | None = None) -> int:
    """Store the ids this process's adapters noted (each gateway its own: they are in its
    memory until then); returns how many were new."""
    try:
        return await _record(engine, _owners(adapters), now or utcnow())
    except Exception as error:
        logger.warning("provider cleanup failed (%s)", type(error).__name__)
        return 0


async def delete_due(engine: Engine, adapters: Mapping[str, object], now: datetime | None = None) -> CleanupCounts:
    """Ask the providers to delete the stored records that are due (one gateway at a time:
    the caller holds a lease, reports/leases.py)."""
    try:
        return await _delete_due(engine, _owners(adapters), now or utcnow())
    except Exception as error:
        logger.warning("provider cleanup failed (%s)", type(error).__name__)
        return CleanupCounts()


def _owners(adapters: Mapping[str, object]) -> dict[str, ProviderRecords]:
    return {name: adapter for name, adapter in adapters.items() if isinstance(adapter, ProviderRecords)}


async def _record(engine: Engine, owners: Mapping[str, ProviderRecords], now: datetime) -> int:
    recorded = 0
    for name, adapter in owners.items():
        records = adapter.take_provider_records()
        try:
            recorded += await asyncio.to_thread(store, engine, name, records, now)
        except Exception:
            adapter.put_back_provider_records(records)  # kept in memory for the next round
            raise
    return recorded


async def _delete_due(engine: Engine, owners: Mapping[str, ProviderRecords], now: datetime) -> CleanupCounts:
    due = await asyncio.to_thread(due_records, engine, now)
    deleted = retried = given_up = 0
    for row_id, channel, message_id, media_id, attempts, give_up_at in due:
        owner = owners.get(channel)
        outcome = await owner.delete_provider_record(message_id, media_id) if owner else FAILED
        if outcome in DONE:
            deleted += 1
        elif now >= give_up_at:
            given_up += 1
        else:
            retried += 1
            await asyncio.to_thread(postpone, engine, row_id, attempts + 1, now + retry_delay(attempts + 1))
            continue
        await asyncio.to_thread(forget, engine, row_id)
    if deleted or retried or given_up:
        logger.info("provider records deleted=%d retried=%d given_up=%d", deleted, retried, given_up)
    if given_up:
        logger.warning("provider records given up after %d days: %d", GIVE_UP_AFTER.days, given_up)
    return CleanupCounts(0, deleted, retried, given_up)


def store(engine: Engine, channel: str, records: list[Record], now: datetime) -> int:
    """Insert the records not stored yet (a status callback comes several times); returns
    how many are new."""
    wanted = {(m[:MAX_ID_CHARS], media[:MAX_ID_CHARS]) for m, media in records if m}
    if not wanted:
        return 0
    with transaction(engine) as session:
        known = {
            (row[0], row[1])
            for row in session.execute(
                select(ProviderRecord.message_id, ProviderRecord.media_id).where(
                    ProviderRecord.channel == channel,
                    ProviderRecord.message_id.in_(sorted({m for m, _ in wanted})),
                )
            )
        }
        new = sorted(wanted - known)
        for message_id, media_id in new:
            session.add(
                ProviderRecord(
                    channel=channel,
                    message_id=message_id,
                    media_id=media_id,
                    due_at=now + FIRST_ATTEMPT_AFTER,
                    give_up_at=now + GIVE_UP_AFTER,
                    attempts=0,
                )
            )
    return len(new)


def due_records(engine: Engine, now: datetime) -> list[tuple[int, str, str, str, int, datetime]]:
    """The records due now; a message's media before the message itself."""
    with transaction(engine) as session:
        rows = session.execute(
            select(
                ProviderRecord.id,
                ProviderRecord.channel,
                ProviderRecord.message_id,
                ProviderRecord.media_id,
                ProviderRecord.attempts,
                ProviderRecord.give_up_at,
            )
            .where(ProviderRecord.due_at <= now)
            .order_by(ProviderRecord.due_at, ProviderRecord.message_id, ProviderRecord.media_id.desc())
            .limit(BATCH)
        )
        return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]


def postpone(engine: Engine, row_id: int, attempts: int, due_at: datetime) -> None:
    with transaction(engine) as session:
        session.execute(
            update(ProviderRecord).where(ProviderRecord.id == row_id).values(attempts=attempts, due_at=due_at)
        )


def forget(engine: Engine, row_id: int) -> None:
    with transaction(engine) as session:
        session.execute(delete(ProviderRecord).where(ProviderRecord.id == row_id))
