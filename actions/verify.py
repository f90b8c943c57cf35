"""¿Es real este número? (VERIFICAR): the numbers in a message compared with the phone
numbers of content/facts.yml. An official number is confirmed with whose it is, its
country, its source's date and its confidence mark; any other is "not on our list",
followed by how to check a recruiter in the person's country (a response with country
variants). An unverified (❌) fact never confirms a number.

The number asked about is never kept: no slot, no log line (counts only), and an answer
about a number not on the list repeats only its last digits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from hotline.content import Fact, load_facts
from hotline.countries import country_names
from hotline.paths import CONTENT
from hotline.phone import Candidate, fact_keys, find_numbers, keys, same_number
from hotline.report_codes import find_codes

logger = logging.getLogger(__name__)

_DATE = re.compile(r"\b(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?\b")
_SEPARATORS = re.compile(r"\s*(?:/|;|,|\bo\b|\by\b)\s*")


@lru_cache(maxsize=1)
def words() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "verify.yml").read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class KnownNumber:
    fact: Fact
    keys: frozenset[tuple[str | None, str]]


@lru_cache(maxsize=1)
def known_numbers() -> tuple[KnownNumber, ...]:
    """Every number a showable fact states (a value may list several: "X / Y")."""
    return index_numbers(load_facts())


def index_numbers(facts: dict[str, Fact]) -> tuple[KnownNumber, ...]:
    known = []
    for fact in facts.values():
        if not fact.showable or not fact.value or not _looks_like_phone(fact):
            continue
        country = fact.raw.get("country")
        for part in _SEPARATORS.split(fact.value):
            for candidate in find_numbers(part):
                if candidate.usable:
                    known.append(KnownNumber(fact, fact_keys(candidate.digits, country)))
    return tuple(known)


def _looks_like_phone(fact: Fact) -> bool:
    """A phone fact, or any value that is only a number (digits, separators, "ext.")."""
    value = fact.value or ""
    return fact.raw.get("kind") == "phone" or not re.sub(r"(?i)ext\.?|[\d\s\-.()+*#/]", "", value)


def matches(candidate: Candidate, known: tuple[KnownNumber, ...]) -> list[Fact]:
    """The showable facts that state this number (each fact once)."""
    typed = keys(candidate.digits)
    found: dict[str, Fact] = {}
    for number in known:
        if same_number(typed, number.keys):
            found.setdefault(number.fact.id, number.fact)
    return list(found.values())


def best_fact(facts: list[Fact], country: str | None) -> Fact:
    """The fact to name: the person's country first, then a verified source."""
    return sorted(facts, key=lambda f: (f.raw.get("country") != country, f.confidence != "verified"))[0]


def shown_date(source_date: Any) -> str:
    """The newest date a source_date names, as a person reads it (12/2025, 2016), or "sin fecha"."""
    found = _DATE.findall(str(source_date or ""))
    if not found:
        return str(words()["undated"])
    year, month, day = max(found)
    return "/".join(part for part in (day, month, year) if part)


def official_values(candidate: Candidate, facts: list[Fact], country: str | None) -> dict[str, str]:
    """What utter_verify_official is filled with."""
    fact = best_fact(facts, country)
    fact_country = fact.raw.get("country")
    others = {f.raw.get("country") for f in facts} - {fact_country}
    notes = fact.notes()
    note = str(words()["note"]).format(notes="; ".join(notes).rstrip(".")) if notes else ""
    if others:
        note += str(words()["also" if len(others) > 1 else "also_one"]).format(count=len(others))
    return {
        "number": fact.value or candidate.text,
        "who": str(fact.raw.get("label_es") or fact.id),
        "where": country_names().get(fact_country or "", str(words()["no_country"])),
        "date": shown_date(fact.raw.get("source_date")),
        "mark": str(words()["marks"][fact.confidence]),
        "note": note,
    }


def asked_numbers(text: str) -> list[Candidate]:
    """The numbers a message asks about: full numbers and readable problems first; one- or
    two-digit runs ("25 años", a time) only when nothing else was written."""
    codes = tuple((start, end) for start, end, _ in find_codes(text))
    found = find_numbers(text, ignore=codes)
    meant = [c for c in found if c.problem != "too_short" and len(c.digits.lstrip("+*#")) > 2]
    return meant or found


class ActionVerifyNumber(Action):
    """Answers for each number of the message (up to the limit), then, if any is not on
    the list, how to check a recruiter in the person's country."""

    def name(self) -> str:
        return "action_verify_number"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        numbers = asked_numbers(str(tracker.latest_message.get("text") or ""))
        if not numbers:
            dispatcher.utter_message(response="utter_verify_ask_number")
            return []
        cap = int(words()["limits"]["numbers_per_message"])
        country = tracker.get_slot("country")
        counts = {"official": 0, "not_listed": 0, "unreadable": 0}
        for candidate in numbers[:cap]:
            counts[self._answer(dispatcher, candidate, country)] += 1
        if counts["not_listed"]:
            dispatcher.utter_message(response="utter_verify_how_to_check")
        if len(numbers) > cap:
            dispatcher.utter_message(response="utter_verify_too_many", cap=str(cap))
        logger.info("number check: %d official, %d not listed, %d unreadable", *counts.values())
        return []

    @staticmethod
    def _answer(dispatcher: CollectingDispatcher, candidate: Candidate, country: str | None) -> str:
        if candidate.problem == "letters":
            dispatcher.utter_message(response="utter_verify_letters")
            return "unreadable"
        if not candidate.usable:
            dispatcher.utter_message(response="utter_verify_length")
            return "unreadable"
        facts = matches(candidate, known_numbers())
        if facts:
            dispatcher.utter_message(response="utter_verify_official", **official_values(candidate, facts, country))
            return "official"
        dispatcher.utter_message(response="utter_verify_not_listed", tail=candidate.tail())
        return "not_listed"
