"""Rasa's SQL tracker store, made private and bounded.

- Encrypted at rest: each event's JSON is sealed with AES-GCM (key HOTLINE_TRACKER_KEY,
  the row's sender id as associated data), so a dump of the tracker database shows no
  message, slot or report text. Only the columns Rasa queries stay clear (sender
  pseudonym, event type, time, intent and action names).
- No reply address: `reply_to` (a sealed contact the channel edge adds to a message's
  metadata) is read by the actions during the turn and never written to the store.
- Erasure: when an action sets the `erase_conversation` slot, saving deletes every event
  of that sender and keeps only a fresh session.
- Forgetting: when an action sets `forget_history` (a report filed or cancelled, a case
  code looked up), saving replaces the history with the conversation's state alone
  (slots, the open form, the bot's last actions), so neither the report's words nor the
  code shown or typed stay in the store, even encrypted. A paused conversation (a staff
  member holds it) stays paused through such a restart.
- Bounded: when a session passes `max_session_events`, a new session starts carrying the
  slots over (the events Rasa writes when a session expires), so every turn costs about
  the same and old turns stop being replayed.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, Dict, List, Optional

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
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy.engine import make_url

DEFAULT_MAX_SESSION_EVENTS = 200
ERASE_SLOT = "erase_conversation"
FORGET_SLOT = "forget_history"
PRIVATE_METADATA_KEYS = frozenset({"reply_to"})
SEALED_PREFIX = "v1:"
NOT_CARRIED = ("session_started_metadata", ERASE_SLOT, FORGET_SLOT)


class EventCipher:
    """AES-256-GCM over an event's JSON, bound to its sender id."""

    def __init__(self, key_b64: str) -> None:
        key = base64.b64decode(key_b64 or "", validate=True)
        if len(key) != 32:
            raise ValueError("HOTLINE_TRACKER_KEY must be 32 bytes in base64 (python -m reports.keys init)")
        self._aead = AESGCM(key)

    def seal(self, sender_id: str, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), sender_id.encode("utf-8"))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sender_id: str, stored: str) -> str:
        if not stored.startswith(SEALED_PREFIX):
            return stored  # written before encryption was turned on
        raw = base64.b64decode(stored[len(SEALED_PREFIX) :])
        return self._aead.decrypt(raw[:12], raw[12:], sender_id.encode("utf-8")).decode("utf-8")


def without_private_metadata(value: Any) -> Any:
    """The event's dict with every `reply_to` removed, wherever Rasa copied it
    (the message's metadata, the session start and its metadata slot)."""
    if isinstance(value, dict):
        return {k: without_private_metadata(v) for k, v in value.items() if k not in PRIVATE_METADATA_KEYS}
    if isinstance(value, list):
        return [without_private_metadata(v) for v in value]
    return value


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
        self.max_session_events = int(max_session_events)

    async def save(self, tracker: DialogueStateTracker) -> None:
        if tracker.get_slot(ERASE_SLOT) or tracker.get_slot(FORGET_SLOT):
            events = self.session_restart_events(tracker, carry_slots=not tracker.get_slot(ERASE_SLOT))
            self._erase(tracker.sender_id)
            self._write(tracker.sender_id, events)
            return
        if len(tracker.events) > self.max_session_events and self._at_rest(tracker):
            for event in self.session_restart_events(tracker):
                tracker.update(event)
        with self.session_scope() as session:
            new_events = list(self._additional_events(session, tracker))
        self._write(tracker.sender_id, new_events)

    def _write(self, sender_id: str, events: List[Event]) -> None:
        with self.session_scope() as session:
            for event in events:
                data = without_private_metadata(event.as_dict())
                session.add(
                    self.SQLEvent(
                        sender_id=sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                        action_name=data.get("name"),
                        data=self.cipher.seal(sender_id, json.dumps(data)),
                    )
                )
            session.commit()

    def _erase(self, sender_id: str) -> None:
        with self.session_scope() as session:
            session.query(self.SQLEvent).filter(self.SQLEvent.sender_id == sender_id).delete()
            session.commit()

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        with self.session_scope() as session:
            rows = self._event_query(
                session, sender_id, fetch_events_from_all_sessions=fetch_events_from_all_sessions
            ).all()
            events = [json.loads(self.cipher.open(sender_id, row.data)) for row in rows]
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    @staticmethod
    def _at_rest(tracker: DialogueStateTracker) -> bool:
        """Only between turns, outside forms: a restart must not cut a flow in half."""
        return tracker.latest_action_name == ACTION_LISTEN_NAME and not tracker.active_loop_name

    @staticmethod
    def session_restart_events(tracker: DialogueStateTracker, carry_slots: bool = True) -> List[Event]:
        """A fresh session holding the conversation's state and no history: the slots,
        the open form, and the bot's last actions (so a rule waiting for the answer to the
        last question, "¿Borramos...? SI o NO", still matches); or nothing at all.
        Every event carries the session start's timestamp: Rasa loads a session as the
        events stamped at or after its start."""
        now = time.time()
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
