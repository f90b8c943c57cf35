"""The job-offer verdict: risk level and reasons from the checklist answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.job_offer import ActionJobOfferVerdict, assess, load_checklist, reasons_text

SLOTS = ["job_fee", "job_documents", "job_contract", "job_employer_verified", "job_tourist_visa"]
SAFE = {
    "job_fee": False,
    "job_documents": False,
    "job_contract": True,
    "job_employer_verified": True,
    "job_tourist_visa": False,
}


def tracker(slots: dict[str, Any]) -> Tracker:
    return Tracker("test-sender", slots, {"intent": {"name": "affirm"}}, [], False, None, {}, "job_offer_form")


@pytest.mark.parametrize(
    ("changes", "level"),
    [
        ({}, "low"),
        ({"job_contract": False}, "medium"),
        ({"job_employer_verified": False}, "medium"),
        ({"job_contract": False, "job_employer_verified": False}, "high"),
        ({"job_fee": True}, "high"),
        ({"job_documents": True}, "high"),
        ({"job_tourist_visa": True}, "high"),
    ],
)
def test_assess(changes: dict[str, bool], level: str) -> None:
    assert assess({**SAFE, **changes}).level == level


def test_unanswered_questions_raise_no_flag() -> None:
    assert assess(dict.fromkeys(SLOTS)).level == "low"


def test_reasons_name_each_flag_in_checklist_order() -> None:
    verdict = assess({**SAFE, "job_tourist_visa": True, "job_fee": True})
    checklist = load_checklist()["questions"]
    assert verdict.flags == ("job_fee", "job_tourist_visa")
    assert reasons_text(verdict) == f"{checklist['job_fee']['reason']}; {checklist['job_tourist_visa']['reason']}"


def test_action_sends_the_level_response_with_reasons_and_clears_answers() -> None:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionJobOfferVerdict().run(dispatcher, tracker({**SAFE, "job_fee": True}), {}))
    assert dispatcher.messages[0]["response"] == "utter_job_risk_high"
    assert dispatcher.messages[0]["reasons"] == load_checklist()["questions"]["job_fee"]["reason"]
    assert events == [SlotSet(slot, None) for slot in SLOTS]
