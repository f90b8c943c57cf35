"""Rasa's SQL tracker store, made private, unlinkable and bounded.

- Encrypted at rest: each event's JSON is sealed with AES-GCM (key HOTLINE_TRACKER_KEY,
  the sender id as associated data), padded to a multiple of PAD_BYTES so that a row's
  size does not tell which action or intent it holds.
- Unlinkable: nothing in clear lets anyone join a report (reports.created_at) to a
  conversation by time, intent or action names. The clear columns hold only what this
  store's queries need: `sender_id` is a keyed hash of Rasa's sender id (a dump cannot be
  joined to anything else that carries the gateway's pseudonym); `type_name` is a
  constant; `timestamp` is the UTC day of the write (what the retention purge reads);
  `intent_name` and `action_name` stay NULL. Row ids are random, not a counter, so they
  do not tell in which order conversations were written; the order of a conversation's
  events is a sequence number inside the seal, and the latest session is found after
  decryption (Rasa's own query filters on clear types and times). What each row is (its
  sequence number, whether it starts a session) is remembered in memory once decrypted, so
  a turn decrypts the latest session only, as Rasa's query would have loaded it.
- No reply address: `reply_to` (a sealed contact the channel edge adds to a message's
  metadata) is read by the actions during the turn and never written to the store.
- Erasure: when an action sets the `erase_conversation` slot, saving deletes every event
  of that sender and keeps only a fresh session.
- Forgetting: when an action sets `forget_history` (a report filed or cancelled, a case
  code looked up), saving replaces the history with the conversation's state alone
  (slots, the open form, the bot's last actions), stamped at the start of the UTC day
  even inside the seal, so neither the report's words, nor the code shown or typed, nor
  the moment of filing stay in the store. A paused conversation (a staff member holds it)
  stays paused through such a restart.
- Bounded: when a session passes `max_session_events`, a new session starts carrying the
  slots over (the events Rasa writes when a session expires), so every turn costs about
  the same and old turns stop being replayed.

What remains: the day of a conversation's last write (the retention purge needs it), and,
inside the seal, the real time of each user message after the last restart (Rasa's
session expiry needs it). Rows written before this version (prefix "v1:" or plain JSON,
keyed on the raw sender id) are still read, before the new ones, until purged or rewritten.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from hotline.db_connect import retry_connections

DEFAULT_MAX_SESSION_EVENTS = 200
ERASE_SLOT = "erase_conversation"
FORGET_SLOT = "forget_history"
PRIVATE_METADATA_KEYS = frozenset({"reply_to"})
LEGACY_PREFIX = "v1:"  # an event's JSON, sealed, before sequence numbers and padding
SEALED_PREFIX = "v2:"  # {"seq": n, "event": {...}} padded with spaces, sealed
PAD_BYTES = 1024
ROW_TYPE = "event"  # the clear type_name of every row: the real type is inside the seal
DAY_SECONDS = 86400
MAX_ROW_ID = 2**31 - 1  # Rasa's id column is a 32-bit integer on PostgreSQL
WRITE_ATTEMPTS = 3  # a random id taken by a concurrent write: draw new ids and write again
SENDER_REFERENCE_INFO = b"hotline tracker sender reference"
NOT_CARRIED = ("session_started_metadata", ERASE_SLOT, FORGET_SLOT)
INDEX_CACHE_ENTRIES = 100_000  # (sender, row id) -> (sequence number, kind): ~15 MB at most
FETCH_CHUNK = 500  # row ids per IN (...) query
DATABASE_RETRY_SECONDS = 5.0  # a turn's read or write waits this long for a restarting PostgreSQL
T = TypeVar("T")
SESSION_START = "start"  # kinds of rows the session boundary depends on
START_ACTION = "start_action"

IndexEntry = Tuple[int, Optional[int], str]  # row id, sequence number (None: older-version row), kind


class EventCipher:
    """AES-256-GCM over an event's JSON, bound to its sender id, plus the keyed hash that
    stands for the sender id in clear."""

    def __init__(self, key_b64: str) -> None:
        key = base64.b64decode(key_b64 or "", validate=True)
        if len(key) != 32:
            raise ValueError("HOTLINE_TRACKER_KEY must be 32 bytes in base64 (python -m reports.keys init)")
        self._aead = AESGCM(key)
        self._reference_key = hmac.new(key, SENDER_REFERENCE_INFO, hashlib.sha256).digest()

    def sender_reference(self, sender_id: str) -> str:
        """The sender id as the table shows it: useless without the tracker key."""
        return hmac.new(self._reference_key, sender_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def seal(self, sender_id: str, seq: int, event: Dict[str, Any]) -> str:
        plaintext = json.dumps({"seq": seq, "event": event}).encode("utf-8")
        plaintext += b" " * (-len(plaintext) % PAD_BYTES)  # JSON ignores trailing spaces
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, sender_id.encode("utf-8"))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sender_id: str, stored: str) -> Tuple[Optional[int], Dict[str, Any]]:
        """(sequence number, event); no sequence number for a row of an older version."""
        for prefix in (SEALED_PREFIX, LEGACY_PREFIX):
            if stored.startswith(prefix):
                raw = base64.b64decode(stored[len(prefix) :])
                value = json.loads(self._aead.decrypt(raw[:12], raw[12:], sender_id.encode("utf-8")))
                return (int(value["seq"]), value["event"]) if prefix == SEALED_PREFIX else (None, value)
        return None, json.loads(stored)  # written before encryption was turned on


def without_private_metadata(value: Any) -> Any:
    """The event's dict with every `reply_to` removed, wherever Rasa copied it
    (the message's metadata, the session start and its metadata slot)."""
    if isinstance(value, dict):
        return {k: without_private_metadata(v) for k, v in value.items() if k not in PRIVATE_METADATA_KEYS}
    if isinstance(value, list):
        return [without_private_metadata(v) for v in value]
    return value


def day_start(timestamp: float) -> float:
    """The UTC day a time falls in: the only time the table shows in clear."""
    return float(int(timestamp) // DAY_SECONDS * DAY_SECONDS)


def connection_kwargs(database_url: str) -> Dict[str, Any]:
    """Rasa's SQL store arguments from one SQLAlchemy URL (the same HOTLINE_TRACKER_URL
    the purge job reads), so the two sides cannot disagree about the database."""
    url = make_url(database_url)
    dialect = url.get_backend_name()  # "postgresql+psycopg" -> "postgresql" (Rasa uses psycopg2)
    return {
        "dialect": dialect,
        "host": url.host,
        "port": url.port,
        "db": url.database,
        "username": url.username,
        "password": url.password,
        "query": dict(url.query) or None,
    }


def event_kind(event: Dict[str, Any]) -> str:
    """What a session boundary needs to know about an event."""
    if event.get("event") == SessionStarted.type_name:
        return SESSION_START
    if event.get("event") == ActionExecuted.type_name and event.get("name") == ACTION_SESSION_START_NAME:
        return START_ACTION
    return ""


def latest_session_start(kinds: List[str]) -> int:
    """Where the latest session begins in a conversation's events, in order: at the last
    session start, with the `action_session_start` just before it (as Rasa loads a
    conversation); 0 when no session was started."""
    starts = [i for i, kind in enumerate(kinds) if kind == SESSION_START]
    if not starts:
        return 0
    start = starts[-1]
    return start - 1 if start and kinds[start - 1] == START_ACTION else start


def in_order(entry: IndexEntry) -> Tuple[bool, int, int]:
    """Older-version rows first, by id (they were all written before), then by sequence."""
    row_id, seq, _ = entry
    return (seq is not None, row_id if seq is None else seq, row_id)


def survive_database_restarts(engine: Any) -> None:
    """A PostgreSQL restart cuts pooled connections and refuses new ones for a few seconds:
    connections are checked before use (pre-ping) and made again for a while
    (hotline/db_connect.py). Beyond that the turn fails and the gateway keeps the message
    (rasa_plugins/serve.py makes Rasa fail it rather than go on with an empty conversation)."""
    engine.pool._pre_ping = True  # what create_engine(pool_pre_ping=True) sets
    retry_connections(engine)


async def while_the_database_restarts(work: Callable[[], T], budget: float = DATABASE_RETRY_SECONDS) -> T:
    """`work` (one transaction) again while PostgreSQL cuts its connections (a restart, a
    failover: the transaction was rolled back, so doing it again is safe), for up to
    `budget` seconds; then the error goes to Rasa, which fails the turn (serve.py)."""
    deadline = time.monotonic() + budget
    delay = 0.05
    while True:
        try:
            return work()
        except OperationalError:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)  # back-off while the database comes back
            delay = min(delay * 2, 0.5)


class BoundedSQLTrackerStore(SQLTrackerStore):
    def __init__(
        self,
        domain: Optional[Domain] = None,
        max_session_events: int = DEFAULT_MAX_SESSION_EVENTS,
        database_url: Optional[str] = None,
        encryption_key: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        if database_url:
            kwargs.update(connection_kwargs(database_url))
        self.cipher = EventCipher(encryption_key or "")
        super().__init__(domain=domain, **kwargs)
        survive_database_restarts(self.engine)
        self.max_session_events = int(max_session_events)
        # Rows are never changed once written (only deleted): what a row is, once decrypted,
        # is kept here, so a turn decrypts only the latest session, not the whole history.
        self._index_cache: OrderedDict[Tuple[str, int], Tuple[Optional[int], str]] = OrderedDict()

    async def save(self, tracker: DialogueStateTracker) -> None:
        restart = tracker.get_slot(ERASE_SLOT) or tracker.get_slot(FORGET_SLOT)
        if not restart and len(tracker.events) > self.max_session_events and self._at_rest(tracker):
            for event in self.session_restart_events(tracker):
                tracker.update(event)
        for attempt in range(WRITE_ATTEMPTS):
            try:
                await while_the_database_restarts(lambda: self._save_once(tracker, bool(restart)))
                return
            except IntegrityError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise

    def _save_once(self, tracker: DialogueStateTracker, restart: bool) -> None:
        """One transaction: a restart replaces every row of the sender; otherwise the
        events Rasa added since the stored session are appended."""
        sender_id = tracker.sender_id
        with self.session_scope() as session:
            if restart:
                self._forget_index(sender_id, [row_id for (row_id,) in self._row_ids(session, sender_id)])
                self._rows(session, sender_id).delete(synchronize_session=False)
                carry = not tracker.get_slot(ERASE_SLOT)
                events = self.session_restart_events(tracker, carry_slots=carry, stamp=day_start(time.time()))
                next_seq = 0
            else:
                index, _ = self._index(session, sender_id)
                stored_in_session = len(index) - latest_session_start([kind for _, _, kind in index])
                events = list(tracker.events)[stored_in_session:]
                next_seq = 1 + max((seq for _, seq, _ in index if seq is not None), default=-1)
            written = self._add(session, sender_id, events, next_seq)
            session.commit()
        for row_id, seq, kind in written:
            self._remember(sender_id, row_id, seq, kind)

    def _rows(self, session: Any, sender_id: str) -> Any:
        """The sender's rows: keyed on the sender reference, or on the raw sender id when
        written by an older version."""
        column = self.SQLEvent.sender_id
        return session.query(self.SQLEvent).filter(column.in_([self.cipher.sender_reference(sender_id), sender_id]))

    def _row_ids(self, session: Any, sender_id: str) -> Any:
        return self._rows(session, sender_id).with_entities(self.SQLEvent.id)

    def _open_rows(
        self, session: Any, sender_id: str, row_ids: List[int]
    ) -> Iterator[Tuple[int, Optional[int], Dict[str, Any]]]:
        """(row id, sequence number, event) of these rows, decrypted."""
        for start in range(0, len(row_ids), FETCH_CHUNK):
            chunk = row_ids[start : start + FETCH_CHUNK]
            query = session.query(self.SQLEvent.id, self.SQLEvent.data).filter(self.SQLEvent.id.in_(chunk))
            for row_id, data in query:
                seq, event = self.cipher.open(sender_id, data)
                yield row_id, seq, event

    def _index(self, session: Any, sender_id: str) -> Tuple[List[IndexEntry], Dict[int, Dict[str, Any]]]:
        """Every row of the sender in order, as (row id, sequence number, kind); and the
        events it had to decrypt (rows not seen before) by row id."""
        known: Dict[int, Tuple[Optional[int], str]] = {}
        missing = []
        for (row_id,) in self._row_ids(session, sender_id):
            cached = self._index_cache.get((sender_id, row_id))
            if cached is None:
                missing.append(row_id)
            else:
                known[row_id] = cached
        opened = {}
        for row_id, seq, event in self._open_rows(session, sender_id, missing):
            known[row_id] = (seq, event_kind(event))
            opened[row_id] = event
            self._remember(sender_id, row_id, *known[row_id])
        index = sorted(((row_id, seq, kind) for row_id, (seq, kind) in known.items()), key=in_order)
        return index, opened

    def _remember(self, sender_id: str, row_id: int, seq: Optional[int], kind: str) -> None:
        self._index_cache[(sender_id, row_id)] = (seq, kind)
        while len(self._index_cache) > INDEX_CACHE_ENTRIES:
            self._index_cache.popitem(last=False)

    def _forget_index(self, sender_id: str, row_ids: List[int]) -> None:
        for row_id in row_ids:
            self._index_cache.pop((sender_id, row_id), None)

    def _add(self, session: Any, sender_id: str, events: List[Event], first_seq: int) -> List[IndexEntry]:
        reference = self.cipher.sender_reference(sender_id)
        written_on = day_start(time.time())
        ids = self._free_ids(session, len(events))
        written = []
        for seq, (row_id, event) in enumerate(zip(ids, events, strict=True), start=first_seq):
            data = without_private_metadata(event.as_dict())
            session.add(
                self.SQLEvent(
                    id=row_id,
                    sender_id=reference,
                    type_name=ROW_TYPE,
                    timestamp=written_on,
                    intent_name=None,
                    action_name=None,
                    data=self.cipher.seal(sender_id, seq, data),
                )
            )
            written.append((row_id, seq, event_kind(data)))
        return written

    def _free_ids(self, session: Any, count: int) -> List[int]:
        """Random row ids not in use: an id says nothing about when the row was written."""
        ids: set = set()
        while len(ids) < count:
            wanted = {secrets.randbelow(MAX_ROW_ID) + 1 for _ in range(count - len(ids))} - ids
            taken = {i for (i,) in session.query(self.SQLEvent.id).filter(self.SQLEvent.id.in_(wanted))}
            ids |= wanted - taken
        return list(ids)

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        events = await while_the_database_restarts(lambda: self._events(sender_id, fetch_events_from_all_sessions))
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    def _events(self, sender_id: str, fetch_events_from_all_sessions: bool) -> List[Dict[str, Any]]:
        """The sender's events, in order: every session's, or the latest one's."""
        with self.session_scope() as session:
            index, opened = self._index(session, sender_id)
            if not fetch_events_from_all_sessions:
                index = index[latest_session_start([kind for _, _, kind in index]) :]
            wanted = [row_id for row_id, _, _ in index]
            missing = [row_id for row_id in wanted if row_id not in opened]
            opened.update((row_id, event) for row_id, _, event in self._open_rows(session, sender_id, missing))
        return [opened[row_id] for row_id in wanted]

    async def keys(self) -> List[str]:
        """Sender ids cannot be listed: the table holds only their keyed hashes."""
        return []

    @staticmethod
    def _at_rest(tracker: DialogueStateTracker) -> bool:
        """Only between turns, outside forms: a restart must not cut a flow in half."""
        return tracker.latest_action_name == ACTION_LISTEN_NAME and not tracker.active_loop_name

    @staticmethod
    def session_restart_events(
        tracker: DialogueStateTracker, carry_slots: bool = True, stamp: Optional[float] = None
    ) -> List[Event]:
        """A fresh session holding the conversation's state and no history: the slots,
        the open form, and the bot's last actions (so a rule waiting for the answer to the
        last question, "¿Borramos...? SI o NO", still matches); or nothing at all.
        Every event carries one timestamp, `stamp` (the start of the day when forgetting,
        so not even the sealed events tell when a report was filed); no user message is
        carried, so Rasa's session expiry waits for the next one."""
        now = time.time() if stamp is None else stamp
        events: List[Event] = [ActionExecuted(ACTION_SESSION_START_NAME, timestamp=now), SessionStarted(timestamp=now)]
        if carry_slots:
            events += [
                SlotSet(name, value, timestamp=now)
                for name, value in tracker.current_slot_values().items()
                if value is not None and name not in NOT_CARRIED
            ]
            if tracker.active_loop_name:
                events.append(ActiveLoop(tracker.active_loop_name, timestamp=now))
            events += [ActionExecuted(name, timestamp=now) for name in BoundedSQLTrackerStore.last_bot_actions(tracker)]
        events.append(ActionExecuted(ACTION_LISTEN_NAME, timestamp=now))
        if carry_slots and tracker.is_paused():  # a staff member holds it (live hand-off)
            events.append(ConversationPaused(timestamp=now))
        return events

    @staticmethod
    def last_bot_actions(tracker: DialogueStateTracker) -> List[str]:
        """The actions since the last user message; their words (BotUttered) stay out."""
        names: List[str] = []
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                break
            if isinstance(event, ActionExecuted) and event.action_name not in (
                ACTION_LISTEN_NAME,
                ACTION_SESSION_START_NAME,
                None,
            ):
                names.append(event.action_name)
        return list(reversed(names))
