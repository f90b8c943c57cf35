"""`delete_my_data`: unlink this person from their reports (contact address and sender
reference), delete their hand-off requests and transcripts, then let the tracker store
erase the conversation itself: it sees the `erase_conversation` slot when it saves and
keeps nothing but a fresh session."""

from __future__ import annotations

import asyncio
import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.config import engine, keys
from reports.db import transaction
from reports.handoffs import forget_conversation
from reports.service import forget_sender

logger = logging.getLogger(__name__)


def unlink(sender: str) -> int:
    with transaction(engine()) as session:
        forget_conversation(session, sender)  # hand-off requests and transcripts
        return forget_sender(session, sender, keys())


class ActionDeleteMyData(Action):
    def name(self) -> str:
        return "action_delete_my_data"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        try:
            unlinked = await asyncio.to_thread(unlink, tracker.sender_id)
        except Exception:
            logger.exception("erasure: unlinking reports failed")
            dispatcher.utter_message(response="utter_delete_failed")
            return []
        logger.info("erasure: conversation erased, %d report(s) unlinked", unlinked)
        dispatcher.utter_message(response="utter_delete_my_data")
        dispatcher.utter_message(response="utter_delete_phone_steps")
        return [SlotSet("erase_conversation", True)]
