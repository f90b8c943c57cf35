"""The verdict of the job-offer checklist: a risk level and the reasons, built on the
ILO forced-labour indicators and fair-recruitment principles (content/job_offer.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from hotline.paths import CONTENT


@dataclass(frozen=True)
class Verdict:
    level: str  # "high", "medium" or "low"
    flags: tuple[str, ...]


@lru_cache(maxsize=1)
def load_checklist() -> dict[str, Any]:
    checklist: dict[str, Any] = yaml.safe_load((CONTENT / "job_offer.yml").read_text(encoding="utf-8"))
    return checklist


def assess(answers: dict[str, bool | None], checklist: dict[str, Any] | None = None) -> Verdict:
    """Flag every answer that matches a red flag; grave flags alone make the risk high."""
    checklist = checklist or load_checklist()
    flags = tuple(
        slot
        for slot, item in checklist["questions"].items()
        if answers.get(slot) is not None and answers[slot] == item["red_flag_when"]
    )
    grave = [slot for slot in flags if checklist["questions"][slot]["grave"]]
    if grave or len(flags) >= 2:
        level = "high"
    elif flags:
        level = "medium"
    else:
        level = "low"
    return Verdict(level, flags)


def reasons_text(verdict: Verdict, checklist: dict[str, Any] | None = None) -> str:
    checklist = checklist or load_checklist()
    return "; ".join(checklist["questions"][slot]["reason"] for slot in verdict.flags)


class ActionJobOfferVerdict(Action):
    """Says the risk level with its reasons, then clears the answers for a next offer."""

    def name(self) -> str:
        return "action_job_offer_verdict"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        checklist = load_checklist()
        slots = list(checklist["questions"])
        verdict = assess({slot: tracker.get_slot(slot) for slot in slots}, checklist)
        dispatcher.utter_message(response=f"utter_job_risk_{verdict.level}", reasons=reasons_text(verdict, checklist))
        return [SlotSet(slot, None) for slot in slots]
