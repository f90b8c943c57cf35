"""Where can I sleep safely (ask_shelter, menu option 7): the entries of the services
directory (content/services.yml) for the place the person names, one SMS segment per page.

The place is a city of the directory found in the message (accents, case and one- or
two-letter typos forgiven, other names from content/shelters.yml), else the `country` slot.
Shelters and reception centres come first, then the other kinds; when the message says whom
it is for (a woman, children, a family, LGBTI) only entries that take them are offered. The
words are content/shelters.yml's; every entry says "dato por confirmar" (the directory is 🟡
until staff call) and shows a phone only as the directory has it. MAS continues with the
next page (the slot `shelter_answer` keeps the query, never the message). No place known:
ask for it; nothing in the directory for it: today's answer, utter_ask_shelter.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from hotline.content import load_common, load_topics, page_name
from hotline.discreet import hide_sensitive, sensitive_words_in
from hotline.paths import CONTENT
from hotline.services import Service, load_services
from hotline.sms import sms_segments
from hotline.text import fold_accents

logger = logging.getLogger(__name__)

SLOT = "shelter_answer"
FALLBACK = "utter_ask_shelter"
TOPIC = "ask_shelter"


def topic_mark(country: str | None) -> dict[str, Any]:
    """The mark the content build puts on a topic's first page (reports/questions.py): the
    gateway counts this answer under its topic, as it counts utter_ask_shelter."""
    return {"hotline": {"topic": TOPIC, **({"country": country} if country else {})}}


_WORD = re.compile(r"[a-z0-9ñ]+")


@lru_cache(maxsize=1)
def words() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "shelters.yml").read_text(encoding="utf-8"))
    return data


def folded_tokens(text: str) -> list[str]:
    """Lower case, no accents, ñ as n: how people type on phones."""
    return _WORD.findall(fold_accents(text.lower()).replace("ñ", "n"))


def city_name(city: str) -> str:
    """The city as said: "Danlí (El Paraíso)" -> "Danlí"."""
    return city.split(" (")[0].strip()


@lru_cache(maxsize=1)
def place_names() -> dict[tuple[str, ...], tuple[str, ...]]:
    """Folded words of a name -> the directory cities it stands for."""
    names: dict[tuple[str, ...], set[str]] = {}
    not_alone = {tuple(folded_tokens(str(name))) for name in words().get("not_alone") or []}
    for service in directory().values():
        key = tuple(folded_tokens(city_name(service.city))) if service.city else ()
        if service.city and key not in not_alone:
            names.setdefault(key, set()).add(service.city)
    for alias, cities in (words().get("places") or {}).items():
        names.setdefault(tuple(folded_tokens(str(alias))), set()).update(str(c) for c in cities)
    return {key: tuple(sorted(cities)) for key, cities in names.items() if key}


@lru_cache(maxsize=1)
def directory() -> dict[str, Service]:
    """The services directory with its exported corrections, read once per process (content
    changes are deployed with a restart, like the model)."""
    return load_services()


@lru_cache(maxsize=1)
def fallback_depth() -> int:
    """Pages of the longest variant of utter_ask_shelter (its MAS pages)."""
    return max(len(pages) for pages in load_topics()[FALLBACK].values())


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, stopping early once past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _typos_allowed(name: str) -> int:
    """Short names must be typed right: "omoa" is not "roma"."""
    return 0 if len(name) < 6 else 1 if len(name) < 10 else 2


def find_cities(text: str) -> tuple[str, ...]:
    """The directory cities a message names: every name written right ("reynosa o
    matamoros"), else the closest typo (the longer name on a tie)."""
    tokens = folded_tokens(text)
    exact: set[str] = set()
    best: tuple[int, int, tuple[str, ...]] | None = None  # (typos, -length, cities)
    for key, cities in place_names().items():
        joined = " ".join(key)
        allowed = _typos_allowed(joined.replace(" ", ""))
        for start in range(len(tokens) - len(key) + 1):
            window = " ".join(tokens[start : start + len(key)])
            if window == joined:
                exact.update(cities)
                continue
            typos = edit_distance(window, joined, allowed)
            if typos <= allowed and (best is None or (typos, -len(joined)) < best[:2]):
                best = (typos, -len(joined), cities)
    if exact:
        return tuple(sorted(exact))
    return best[2] if best else ()


def find_groups(text: str) -> tuple[str, ...]:
    """Whom the message says the place is for (keys of content/shelters.yml `groups`)."""
    tokens = set(folded_tokens(text))
    groups = words()["groups"]
    return tuple(
        name for name, group in groups.items() if tokens & {t for w in group["words"] for t in folded_tokens(str(w))}
    )


def pick(
    services: dict[str, Service], cities: tuple[str, ...], country: str | None, groups: tuple[str, ...]
) -> list[Service]:
    """The entries for the place, shelters first, limited to those that take the groups."""
    order = [str(k) for k in words()["kinds_first"]]
    if cities:
        found = [s for s in services.values() if s.city in cities]
    elif country:
        found = [s for s in services.values() if s.country == country]
    else:
        return []
    wanted = {v for g in groups for v in words()["groups"][g]["serves"]}
    if wanted:
        found = [s for s in found if "all" in s.serves or wanted & set(s.serves)]
    found = [s for s in found if s.kind in order]
    ranked = sorted(enumerate(found), key=lambda pair: (order.index(pair[1].kind), pair[1].city is None, pair[0]))
    return [service for _, service in ranked][: int(words()["limits"]["entries"])]


def short_name(name: str) -> str:
    """The name before a parenthesis, comma or quote: what fits an SMS."""
    return re.split(r" \(|, | «", name, maxsplit=1)[0].strip()


def _where(service: Service, discreet: bool) -> str | None:
    city = city_name(service.city) if service.city else None
    address = service.address
    if address and discreet and sensitive_words_in(address):
        address = None
    if address and city and fold_accents(city.lower()) not in fold_accents(address.lower()):
        return f"{address}, {city}"
    return address or city


def entry_text(service: Service, discreet: bool, detail: int = 2) -> str:
    """One entry. detail 2: address and hours; 1: the city only; 0: the name cut to fit."""
    texts = words()["texts"]
    name, kind = short_name(service.name), str(words()["kinds"][service.kind])
    if discreet and sensitive_words_in(name):
        name, kind = str(words()["discreet_names"][service.kind]), ""
    where = _where(service, discreet) if detail >= 2 else (city_name(service.city) if service.city else None)
    hours = service.hours if detail >= 2 and service.hours else None
    if hours and discreet and sensitive_words_in(hours):
        hours = None
    return str(texts["entry"]).format(
        kind=kind,
        name=name,
        where=str(texts["where"]).format(where=where) if where and detail >= 1 else "",
        phone=str(texts["phone"]).format(phone=service.phone) if service.phone else "",
        hours=str(texts["hours"]).format(hours=hours) if hours else "",
    )


def fitted_entry(service: Service, discreet: bool, room: str) -> str:
    """The most detailed entry that still fits one segment with `room` (the MAS suffix)."""
    for detail in (2, 1, 0):
        text = entry_text(service, discreet, detail)
        if sms_segments(f"{text} {room}".strip()) == 1:
            return text
    return text


def pages(services: list[Service], discreet: bool) -> list[str]:
    """The entries then the safety sentence, packed into pages of one SMS segment each; every
    page but the last ends with "Hay más: escribe MAS."."""
    suffix = str(load_common()["more_suffix"])
    items = [fitted_entry(s, discreet, suffix) for s in services] + [str(words()["texts"]["safety"])]
    result: list[str] = []
    current = ""
    for index, item in enumerate(items):
        candidate = f"{current} {item}".strip()
        last = index == len(items) - 1
        if sms_segments(candidate if last else f"{candidate} {suffix}") == 1 or not current:
            current = candidate
        else:
            result.append(f"{current} {suffix}")
            current = item
    result.append(current)
    return [_safe(page, discreet) for page in result]


def _safe(text: str, discreet: bool) -> str:
    """The last guard for a watched phone (the names above already are neutral)."""
    return hide_sensitive(text) if discreet and sensitive_words_in(text) else text


@dataclass(frozen=True)
class Query:
    cities: tuple[str, ...]
    country: str | None
    groups: tuple[str, ...]
    page: int = 0
    fallback: bool = False

    def dump(self) -> str:
        return json.dumps(
            {
                "cities": self.cities,
                "country": self.country,
                "groups": self.groups,
                "page": self.page,
                "fallback": self.fallback,
            }
        )

    @classmethod
    def load(cls, value: Any) -> Query | None:
        try:
            data = json.loads(str(value))
            return cls(
                tuple(str(c) for c in data["cities"]),
                data["country"],
                tuple(str(g) for g in data["groups"] if g in words()["groups"]),
                int(data["page"]),
                bool(data["fallback"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


class ActionAnswerShelter(Action):
    """The directory's entries for the person's place, or a question, or today's answer."""

    def name(self) -> str:
        return "action_answer_shelter"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "more":
            return self._more(dispatcher, tracker)
        text = str(tracker.latest_message.get("text") or "")
        country = tracker.get_slot("country")
        cities = find_cities(text)
        query = Query(cities, None if cities else country, find_groups(text))
        if not query.cities and not query.country:
            dispatcher.utter_message(text=str(words()["texts"]["ask_place"]), json_message=topic_mark(None))
            logger.info("shelter answer: place asked")
            return [SlotSet(SLOT, None)]
        return self._send(dispatcher, tracker, query)

    def _more(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        query = Query.load(tracker.get_slot(SLOT))
        if query is None:
            dispatcher.utter_message(response="utter_more_nothing")
            return []
        following = Query(query.cities, query.country, query.groups, query.page + 1, query.fallback)
        return self._send(dispatcher, tracker, following)

    def _send(self, dispatcher: CollectingDispatcher, tracker: Tracker, query: Query) -> list[EventType]:
        found = [] if query.fallback else pick(directory(), query.cities, query.country, query.groups)
        if not found:
            fallback = Query(query.cities, query.country, query.groups, query.page, True)
            if query.page >= fallback_depth():
                dispatcher.utter_message(response="utter_more_nothing")
                return [SlotSet(SLOT, None)]
            dispatcher.utter_message(response=page_name(FALLBACK, query.page))
            logger.info("shelter answer: none in the directory, general answer page %d", query.page + 1)
            return [SlotSet(SLOT, fallback.dump())]
        shown = pages(found, bool(tracker.get_slot("discreet")))
        if query.page >= len(shown):
            dispatcher.utter_message(response="utter_more_nothing")
            return [SlotSet(SLOT, None)]
        # counted once per question: not again when the place comes after "¿En qué ciudad…?"
        first = query.page == 0 and (tracker.latest_message.get("intent") or {}).get("name") != "inform_country"
        dispatcher.utter_message(text=shown[query.page], json_message=topic_mark(found[0].country) if first else None)
        logger.info("shelter answer: %d entries, page %d of %d", len(found), query.page + 1, len(shown))
        return [SlotSet(SLOT, query.dump())]
