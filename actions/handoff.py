"""`human_handoff` and the second "not understood": the conversation goes on the staff
console's hand-off list (reports.handoffs), with the reply address the channel edge sealed
to the staff key, so a staff member can take it over. The bot keeps answering until then."""

from __future__ import annotations

import asyncio
import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.config import engine
from actions.metadata import trusted_metadata
from actions.report import usable_reply_to
from reports.db import transaction
from reports.handoffs import request_handoff
from reports.models import HANDOFF_LANGUAGES, utcnow

logger = logging.getLogger(__name__)


def reason_of(tracker: Tracker) -> str:
    """ "asked" when the person asked for a human, "fallback" when the bot failed twice."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    return "asked" if intent == "human_handoff" else "fallback"


def language_of(tracker: Tracker) -> str | None:
    """The other language the person wrote (the `language` slot), for staff; None: Spanish."""
    language = tracker.get_slot("language")
    return language if language in HANDOFF_LANGUAGES else None


def put_on_list(
    conversation_id: str, channel: str | None, reason: str, reply_to: str | None, language: str | None = None
) -> None:
    with transaction(engine()) as session:
        request_handoff(session, conversation_id, channel, reason, reply_to, utcnow(), language)


class ActionRequestHandoff(Action):
    def name(self) -> str:
        return "action_request_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        metadata = await asyncio.to_thread(trusted_metadata, tracker)
        channel = metadata.get("channel") or None
        reason = reason_of(tracker)
        try:
            await asyncio.to_thread(
                put_on_list,
                tracker.sender_id,
                channel,
                reason,
                usable_reply_to(metadata.get("reply_to")),
                language_of(tracker),
            )
        except Exception:
            logger.exception("hand-off request not stored")  # the answer already gave the national lines
            return []
        logger.info("hand-off requested reason=%s channel=%s language=%s", reason, channel, language_of(tracker))
        return []
