"""Rasa's SQL tracker store with conversations that cannot grow without bound.

Rasa loads and replays a whole session every turn, so the 300th turn of a long chat is
several times slower than the first. When a session passes `max_session_events`, this
store starts a new session carrying the slots over (the same events Rasa writes when a
session expires), so every turn costs about the same and old turns stop being replayed.
"""

from __future__ import annotations

from typing import Any, List, Optional

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SessionStarted, SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

DEFAULT_MAX_SESSION_EVENTS = 120


class BoundedSQLTrackerStore(SQLTrackerStore):
    def __init__(
        self, domain: Optional[Domain] = None, max_session_events: int = DEFAULT_MAX_SESSION_EVENTS, **kwargs: Any
    ) -> None:
        super().__init__(domain=domain, **kwargs)
        self.max_session_events = int(max_session_events)

    async def save(self, tracker: DialogueStateTracker) -> None:
        if len(tracker.events) > self.max_session_events and self._at_rest(tracker):
            for event in self.session_restart_events(tracker):
                tracker.update(event)
        await super().save(tracker)

    @staticmethod
    def _at_rest(tracker: DialogueStateTracker) -> bool:
        """Only between turns, outside forms: a restart must not cut a flow in half."""
        return tracker.latest_action_name == ACTION_LISTEN_NAME and not tracker.active_loop_name

    @staticmethod
    def session_restart_events(tracker: DialogueStateTracker) -> List[Event]:
        carried: List[Event] = [
            SlotSet(name, value)
            for name, value in tracker.current_slot_values().items()
            if value is not None and name not in ("requested_slot", "session_started_metadata")
        ]
        return [
            ActionExecuted(ACTION_SESSION_START_NAME),
            SessionStarted(),
            *carried,
            ActionExecuted(ACTION_LISTEN_NAME),
        ]
