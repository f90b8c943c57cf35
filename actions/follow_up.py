"""Follow-up with a case code: the status in plain words and any message staff left,
then additions. A wrong code gets the same answer and timing as any other miss, and a
sender gets at most a few tries per hour (reports.service.look_up_code)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import answers
from actions.config import engine, keys, settings
from hotline.report_codes import find_codes, normalize_code
from reports.db import transaction
from reports.service import Lookup, LookupOutcome, TipsterView, add_information, look_up_code, tipster_view

logger = logging.getLogger(__name__)

LOOKUP_SECONDS = 0.6  # every lookup answers after at least this long, hit or miss
ENDED = "none"  # followup_report when the follow-up ended without a report
SLOTS = ("report_code", "followup_report", "followup_addition", "followup_added")
MAX_STAFF_MESSAGES_SHOWN = 3


def typed_code(tracker: Tracker) -> str:
    """The code as typed: the extractor's entity, a TRT code in the text, or 8-9 bare
    symbols ("7k4m q2xh 5"), which people type when they drop the prefix."""
    text = str(tracker.latest_message.get("text") or "")
    entity = next(
        (e.get("value") for e in tracker.latest_message.get("entities", []) if e.get("entity") == "report_code"), None
    )
    if entity:
        return str(entity)
    found = find_codes(text)
    if found:
        return found[0][2]
    bare = normalize_code("TRT" + text.strip())
    return bare or text.strip()


def look_up(raw_code: str, sender: str) -> tuple[Lookup, TipsterView | None]:
    with transaction(engine()) as session:
        lookup = look_up_code(session, raw_code, sender, keys(), limit_per_hour=settings().followup_attempts_per_hour)
        if lookup.outcome is not LookupOutcome.FOUND or not lookup.report_id or not lookup.tipster_key:
            return lookup, None
        return lookup, tipster_view(session, lookup.report_id, lookup.tipster_key)


async def look_up_evenly(raw_code: str, sender: str) -> tuple[Lookup, TipsterView | None]:
    """Pad every lookup to the same duration, so timing does not tell a hit from a miss."""
    started = time.monotonic()
    result = await asyncio.to_thread(look_up, raw_code, sender)
    if result[0].outcome in (LookupOutcome.FOUND, LookupOutcome.NOT_FOUND):
        await asyncio.sleep(max(0.0, LOOKUP_SECONDS - (time.monotonic() - started)))
    return result


def save_addition(report_id: str, text: str) -> None:
    with transaction(engine()) as session:
        add_information(session, report_id, text, keys())


class ActionStartFollowUp(Action):
    """A follow-up starts from the code: a report opened in an earlier, unfinished
    follow-up must not be reachable again without it. A code in this message is kept."""

    def name(self) -> str:
        return "action_start_follow_up"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        has_code = any(e.get("entity") == "report_code" for e in tracker.latest_message.get("entities", []))
        stale = [slot for slot in SLOTS if tracker.get_slot(slot) is not None]
        return [SlotSet(slot, None) for slot in stale if not (slot == "report_code" and has_code)]


class ValidateFollowUpForm(FormValidationAction):
    def name(self) -> str:
        return "validate_follow_up_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        return [] if tracker.get_slot("followup_report") == ENDED else domain_slots

    async def validate_report_code(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(tracker.latest_message.get("text") or "")
        if answers.is_word(text, "leave"):
            dispatcher.utter_message(response="utter_followup_no_code")
            return {"report_code": None, "followup_report": ENDED}
        try:
            lookup, view = await look_up_evenly(typed_code(tracker), tracker.sender_id)
        except Exception:
            logger.exception("follow-up lookup failed")
            dispatcher.utter_message(response="utter_followup_failed")
            return {"report_code": None, "followup_report": ENDED}
        outcome = lookup.outcome
        if outcome is LookupOutcome.RATE_LIMITED:
            dispatcher.utter_message(response="utter_followup_rate_limited")
            return {"report_code": None, "followup_report": ENDED}
        if outcome is not LookupOutcome.FOUND or view is None:
            reply = {
                LookupOutcome.TYPO: "utter_followup_code_typo",
                LookupOutcome.INVALID: "utter_followup_code_invalid",
            }
            dispatcher.utter_message(response=reply.get(outcome, "utter_followup_not_found"))
            return {"report_code": None, "forget_history": True}
        status: dict[str, str] = answers.form_content()["status"]
        dispatcher.utter_message(
            response="utter_followup_status",
            date=view.created_at.strftime("%d/%m/%Y"),
            status=status.get(view.status, view.status),
        )
        for message in view.messages[-MAX_STAFF_MESSAGES_SHOWN:]:
            dispatcher.utter_message(response="utter_followup_staff_message", message=message)
        # The code is not kept in the conversation (the report id is enough to add), and the
        # message that carried it is forgotten by the tracker store.
        return {"report_code": "found", "followup_report": lookup.report_id, "forget_history": True}

    async def validate_followup_addition(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(tracker.latest_message.get("text") or "")
        if any(answers.is_word(text, group) for group in ("done", "skip", "cancel", "leave")):
            return {"followup_addition": "done"}
        report_id = tracker.get_slot("followup_report")
        clipped = answers.clip(text.strip())
        if clipped.clipped:
            dispatcher.utter_message(response="utter_report_too_long", limit=answers.message_limit())
        if not clipped.text or not report_id:
            return {"followup_addition": None}
        try:
            await asyncio.to_thread(save_addition, str(report_id), clipped.text)
        except Exception:
            logger.exception("saving an addition failed")
            dispatcher.utter_message(response="utter_followup_failed")
            return {"followup_addition": "done"}
        return {"followup_addition": None, "followup_added": "yes", "forget_history": True}


class ActionAskFollowupAddition(Action):
    """The first time: what to do; after each addition: a short receipt."""

    def name(self) -> str:
        return "action_ask_followup_addition"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        added = tracker.get_slot("followup_added") == "yes"
        dispatcher.utter_message(response="utter_followup_added" if added else "utter_ask_followup_addition")
        return []


class ActionKeepFollowupText(Action):
    """After the emergency answer inside a follow-up: what the person wrote is added to
    their report (when one is open), so an alarming message is never lost."""

    def name(self) -> str:
        return "action_keep_followup_text"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        report_id = tracker.get_slot("followup_report")
        text = answers.clip(str(tracker.latest_message.get("text") or "").strip()).text
        if not text or report_id in (None, ENDED):
            return []
        try:
            await asyncio.to_thread(save_addition, str(report_id), text)
        except Exception:
            logger.exception("saving an addition failed")
            return []
        return [SlotSet("followup_added", "yes"), SlotSet("forget_history", True)]


class ActionFollowUpDone(Action):
    def name(self) -> str:
        return "action_follow_up_done"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if tracker.get_slot("followup_report") not in (None, ENDED):
            dispatcher.utter_message(response="utter_followup_done")
        return [*(SlotSet(slot, None) for slot in SLOTS), SlotSet("forget_history", True)]
