"""The assistant's Spanish answers, rendered from content/ with their facts.

Answers live in content/topics/*.yml as response name -> variant (`default` or an ISO
country code) -> page text (or a list of pages; pages after the first are read with MAS).
Texts name facts only through placeholders, so every number keeps its source:
  {fact:ID}  the fact's value (a phone number or address) and its short caveat, if any
  {ref:ID}   nothing shown; declares that the sentence states the legal fact ID
  {country}  the variant's country name
The variant `all_countries` is copied to every country that has no variant of its own.
A topic file in another language (`language: en`, for messages in English, Portuguese,
French or Haitian Creole) carries `caveats`, its translation of every Spanish caveat its
facts show: an untranslated caveat is an error, so a number never loses its warning. Those
pages show no phone confirmation note (it is Spanish); a caveat the call answered still shows.
Any other {name} is left for Rasa to fill at run time (for example {reasons}).

Every page must fit its SMS budget (content/sms_budget.yml): one segment, or two for the
pages listed there with a reason; the MAS invitation counts in the page's length. The
emergency answer has its own rule (check_emergency); the share of one-segment pages is
checked by hotline/build.py over every page the built responses can send.

Staff confirmations by phone reach the content only through content/confirmations.yml
(written by `make confirmations` from the console's database, committed and reviewed like
any content change; the build never reads a database). A fact's effective check date is the
newer of facts.yml `verified_on` and its confirmation there. A phone-confirmed fact that is
secondary (🟡), or whose caveat only says it is still to be confirmed (the file's
`answered_caveats_es`, which the note then replaces), is shown with the file's `shown_es` note
("confirmado por teléfono en nov. 2026") on every page where it still fits the SMS limit. A
call does not change a fact's confidence: that stays as facts.yml says until its source is
updated there, and the audit keeps listing it for its mark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hotline.countries import country_names
from hotline.paths import CONTENT
from hotline.sms import sms_segments

MAX_SEGMENTS = 2  # no page ever takes more (content/sms_budget.yml allows 2, never 3)
DEFAULT_SEGMENTS = 1  # every page's budget unless content/sms_budget.yml lists it
SHOWABLE = {"verified", "secondary"}
ALL_COUNTRIES = "all_countries"
_PLACEHOLDER = re.compile(r"\{(fact|ref):([a-z0-9_.]+)\}")
_COUNTRY = re.compile(r"\{country\}")
CONFIRMATIONS = CONTENT / "confirmations.yml"
SMS_BUDGET = CONTENT / "sms_budget.yml"
CONFIRMATIONS_HEADER = """\
# Staff confirmations by phone carried into the assistant's content: per fact id of
# content/facts.yml, the latest day staff called the number and it answered (confirmed_on),
# their short note, who recorded it (the account's role, never a person's name) and when (UTC).
# Produced by `make confirmations` (python -m console.facts_audit export) from the console's
# fact_confirmations table, merged with what this file already has (nothing is dropped), and
# committed and reviewed like any content change. The notes are published with the content.
# The build (hotline/build.py) refuses unknown fact ids and dates after today; a fact's
# effective check date is the newer of facts.yml verified_on and confirmed_on here. A call does
# not change a fact's confidence mark. shown_es (with months_es) is the note the assistant adds
# where it fits to a phone-confirmed fact that is secondary (🟡) or whose caveat is one of
# answered_caveats_es (caveats a call answers: the note replaces them). Edit these three by
# hand if needed; the export keeps them.
"""


class ContentError(ValueError):
    """Content that must not reach a person: unknown or unverified fact, too long."""


@dataclass(frozen=True)
class Confirmation:
    """A fact confirmed by phone, as carried in content/confirmations.yml."""

    fact_id: str
    confirmed_on: date
    note: str
    by: str  # the recording account's role
    recorded_at: str  # UTC, YYYY-MM-DDTHH:MM:SSZ

    def as_yaml(self) -> dict[str, str]:
        return {
            "confirmed_on": self.confirmed_on.isoformat(),
            "note": self.note,
            "by": self.by,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True)
class Confirmations:
    """content/confirmations.yml: the assistant's note and the confirmations, by fact id."""

    shown_es: str
    months_es: tuple[str, ...]
    entries: dict[str, Confirmation]
    answered_caveats_es: tuple[str, ...] = ()

    def note_for(self, confirmation: Confirmation) -> str:
        day = confirmation.confirmed_on
        return self.shown_es.format(month=self.months_es[day.month - 1], year=day.year)


@dataclass(frozen=True)
class Fact:
    id: str
    value: str | None
    confidence: str
    caveat_es: str | None
    raw: dict[str, Any]
    confirmation: Confirmation | None = None
    confirmed_es: str | None = None  # the note shown for a phone confirmation, if any
    confirmed_replaces_caveat: bool = False  # the caveat only said "to be confirmed"

    @property
    def showable(self) -> bool:
        return self.confidence in SHOWABLE

    @property
    def verified_on(self) -> date | None:
        """facts.yml's own check date."""
        return _as_date(self.raw.get("verified_on"), f"facts.yml: {self.id} verified_on")

    def checked_on(self, today: date | None = None) -> date | None:
        """The effective check date: the newer of verified_on and the phone confirmation
        (a confirmation after `today`, when given, does not count)."""
        dates = [self.verified_on]
        if self.confirmation and (today is None or self.confirmation.confirmed_on <= today):
            dates.append(self.confirmation.confirmed_on)
        known = [d for d in dates if d is not None]
        return max(known) if known else None

    def notes(self, confirmed: bool = True) -> list[str]:
        """What is shown in brackets after the value: the caveat and the confirmation note
        (the note alone when it answers the caveat)."""
        if confirmed and self.confirmed_es:
            return (
                [self.confirmed_es]
                if self.confirmed_replaces_caveat or not self.caveat_es
                else [self.caveat_es, self.confirmed_es]
            )
        return [self.caveat_es] if self.caveat_es else []

    def shown_as(self, confirmed: bool = True) -> str:
        if not self.value:
            raise ContentError(f"fact {self.id} has no value to show; use {{ref:{self.id}}}")
        notes = self.notes(confirmed)
        return f"{self.value} ({'; '.join(notes)})" if notes else self.value


@dataclass
class Page:
    response: str
    variant: str
    index: int
    text: str
    facts: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)  # facts shown with their phone confirmation


@dataclass(frozen=True)
class SmsBudget:
    """content/sms_budget.yml: one SMS segment per page unless a page is listed, with why.

    A person on a prepaid phone pays per segment and reads a short message more easily, so
    the build refuses a page past its budget, a list whose one-segment share falls below
    `min_one_segment_share`, and an emergency answer that breaks its own rule (see
    check_emergency)."""

    min_one_segment_share: float
    two_segments: dict[tuple[str, str], str]  # (page name, variant) -> why it needs two
    emergency_response: str
    emergency_numbers: dict[str, str]  # country code -> the fact its first message must show
    asks_country_es: str  # what the region's emergency answer asks, word for word

    def allowed(self, page: str, variant: str) -> int:
        """Segments this page may take."""
        return MAX_SEGMENTS if (page, variant) in self.two_segments else DEFAULT_SEGMENTS


def page_name(name: str, index: int) -> str:
    """utter_x, utter_x_more, utter_x_more2, ... (the Rasa response of each page)."""
    return name if index == 0 else f"{name}_more" + ("" if index == 1 else str(index))


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _as_date(value: Any, where: str) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ContentError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def utc_today() -> date:
    """Today on the console's clock (UTC), the bound for confirmation dates."""
    return datetime.now(timezone.utc).date()


@lru_cache(maxsize=1)
def load_fact_sheet() -> dict[str, Fact]:
    """content/facts.yml alone, without confirmations."""
    data = _read_yaml(CONTENT / "facts.yml")
    facts: dict[str, Fact] = {}
    for entry in data["facts"]:
        value = entry.get("value")
        facts[entry["id"]] = Fact(
            id=entry["id"],
            value=str(value) if value is not None else None,
            confidence=entry["confidence"],
            caveat_es=entry.get("caveat_es"),
            raw=entry,
        )
    return facts


def read_confirmations(path: Path = CONFIRMATIONS) -> Confirmations:
    """A confirmations file, checked for shape (not against facts.yml: see with_confirmations)."""
    name = path.name
    try:
        data = _read_yaml(path)
    except (OSError, yaml.YAMLError) as error:
        raise ContentError(f"{name}: cannot be read: {error}") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ContentError(f"{name}: expected a mapping with version: 1")
    shown_es, months = data.get("shown_es"), data.get("months_es")
    if not isinstance(shown_es, str) or "{month}" not in shown_es or "{year}" not in shown_es:
        raise ContentError(f"{name}: shown_es must be a text with {{month}} and {{year}}")
    try:
        shown_es.format(month="", year="")
    except (KeyError, IndexError, ValueError):
        raise ContentError(f"{name}: shown_es may only use {{month}} and {{year}}") from None
    if not isinstance(months, list) or len(months) != 12 or not all(isinstance(m, str) and m for m in months):
        raise ContentError(f"{name}: months_es must list the 12 month names")
    answered = data.get("answered_caveats_es") or []
    if not isinstance(answered, list) or not all(isinstance(c, str) and c for c in answered):
        raise ContentError(f"{name}: answered_caveats_es must be a list of caveats")
    entries: dict[str, Confirmation] = {}
    for fact_id, entry in (data.get("confirmations") or {}).items():
        where = f"{name}: {fact_id}"
        if not isinstance(entry, dict):
            raise ContentError(f"{where}: expected confirmed_on, note, by and recorded_at")
        confirmed_on = _as_date(entry.get("confirmed_on"), f"{where} confirmed_on")
        if confirmed_on is None:
            raise ContentError(f"{where}: confirmed_on is missing")
        recorded_at = entry.get("recorded_at")
        if isinstance(recorded_at, datetime):  # unquoted in YAML
            recorded_at = recorded_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries[str(fact_id)] = Confirmation(
            fact_id=str(fact_id),
            confirmed_on=confirmed_on,
            note=str(entry.get("note") or ""),
            by=str(entry.get("by") or ""),
            recorded_at=str(recorded_at or ""),
        )
    return Confirmations(shown_es, tuple(months), entries, tuple(answered))


def dump_confirmations(confirmations: Confirmations) -> str:
    """The file's text: header, labels, then the confirmations by fact id (deterministic)."""
    data = {
        "version": 1,
        "shown_es": confirmations.shown_es,
        "months_es": list(confirmations.months_es),
        "answered_caveats_es": list(confirmations.answered_caveats_es),
        "confirmations": {
            fact_id: confirmations.entries[fact_id].as_yaml() for fact_id in sorted(confirmations.entries)
        },
    }
    return CONFIRMATIONS_HEADER + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)


def with_confirmations(sheet: dict[str, Fact], confirmations: Confirmations) -> dict[str, Fact]:
    """The facts with their phone confirmations; refuses a confirmation of an unknown fact."""
    unknown = sorted(set(confirmations.entries) - set(sheet))
    if unknown:
        raise ContentError(f"confirmations.yml confirms facts that facts.yml does not have: {', '.join(unknown)}")
    facts = dict(sheet)
    for fact_id, confirmation in confirmations.entries.items():
        fact = sheet[fact_id]
        answers = fact.caveat_es is not None and fact.caveat_es in confirmations.answered_caveats_es
        shown = fact.showable and bool(fact.value) and (fact.confidence == "secondary" or answers)
        note = confirmations.note_for(confirmation) if shown else None
        facts[fact_id] = replace(
            fact, confirmation=confirmation, confirmed_es=note, confirmed_replaces_caveat=shown and answers
        )
    return facts


@lru_cache(maxsize=1)
def _default_facts() -> dict[str, Fact]:
    return with_confirmations(load_fact_sheet(), read_confirmations(CONFIRMATIONS))


def load_facts(confirmations: Path | None = None) -> dict[str, Fact]:
    """The facts with their confirmations: content/confirmations.yml (read once), or the
    given file (read now: to check an export before committing it)."""
    if confirmations is None:
        return _default_facts()
    return with_confirmations(load_fact_sheet(), read_confirmations(confirmations))


def check_confirmation_dates(facts: dict[str, Fact], today: date) -> None:
    """Refuses a confirmation dated after today: nobody has called yet."""
    future = sorted(
        f"{fact.id} ({fact.confirmation.confirmed_on.isoformat()})"
        for fact in facts.values()
        if fact.confirmation and fact.confirmation.confirmed_on > today
    )
    if future:
        raise ContentError(f"confirmations.yml has dates after today ({today.isoformat()}): {', '.join(future)}")


def read_sms_budget(path: Path = SMS_BUDGET) -> SmsBudget:
    """The budget file, checked for shape (its pages are checked against the content in
    check_budget)."""
    data = _read_yaml(path)
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ContentError(f"{path.name}: expected a mapping with version: 1")
    share = data.get("min_one_segment_share")
    if not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ContentError(f"{path.name}: min_one_segment_share must be a share between 0 and 1")
    two: dict[tuple[str, str], str] = {}
    for page, variants in (data.get("two_segments") or {}).items():
        for variant, why in (variants or {}).items():
            if not isinstance(why, str) or not why.strip():
                raise ContentError(f"{path.name}: {page} [{variant}] needs a reason for its second segment")
            two[(str(page), str(variant))] = why
    emergency = data.get("emergency") or {}
    numbers = emergency.get("numbers")
    if not isinstance(numbers, dict) or not emergency.get("response") or not emergency.get("asks_country_es"):
        raise ContentError(f"{path.name}: emergency needs response, asks_country_es and numbers")
    return SmsBudget(
        min_one_segment_share=float(share),
        two_segments=two,
        emergency_response=str(emergency["response"]),
        emergency_numbers={str(code): str(fact_id) for code, fact_id in numbers.items()},
        asks_country_es=str(emergency["asks_country_es"]),
    )


@lru_cache(maxsize=1)
def load_sms_budget() -> SmsBudget:
    return read_sms_budget(SMS_BUDGET)


@lru_cache(maxsize=1)
def load_common() -> dict[str, str]:
    return dict(_read_yaml(CONTENT / "common.yml")["strings"])


def load_topics() -> dict[str, dict[str, list[str]]]:
    """response name -> variant -> list of page templates, from every topic file."""
    responses: dict[str, dict[str, list[str]]] = {}
    for path in sorted((CONTENT / "topics").glob("*.yml")):
        data = _read_yaml(path) or {}
        for name, variants in (data.get("responses") or {}).items():
            if name in responses:
                raise ContentError(f"{path.name}: response {name} is defined twice")
            responses[name] = _expand_variants(
                {
                    str(variant): [pages] if isinstance(pages, str) else list(pages)
                    for variant, pages in variants.items()
                }
            )
    return responses


def _expand_variants(variants: dict[str, list[str]]) -> dict[str, list[str]]:
    """`all_countries` stands for one variant per country not written out."""
    shared = variants.pop(ALL_COUNTRIES, None)
    if shared is not None:
        for code in country_names():
            variants.setdefault(code, shared)
    return variants


def render_template(
    template: str,
    country: str | None = None,
    facts: dict[str, Fact] | None = None,
    confirmed: bool = True,
    shown_confirmed: list[str] | None = None,
) -> tuple[str, list[str]]:
    """Fill fact and country placeholders; returns the text and the fact ids it uses.
    With `confirmed`, a fact's phone confirmation note is shown (once per text); the ids
    shown with it are added to `shown_confirmed`."""
    facts = load_facts() if facts is None else facts
    used: list[str] = []
    noted = shown_confirmed if shown_confirmed is not None else []

    def fill(match: re.Match[str]) -> str:
        kind, fact_id = match.group(1), match.group(2)
        fact = facts.get(fact_id)
        if fact is None:
            raise ContentError(f"unknown fact {fact_id}")
        if not fact.showable:
            raise ContentError(f"fact {fact_id} is {fact.confidence}: it must never be shown")
        used.append(fact_id)
        if kind != "fact":
            return ""
        note = confirmed and bool(fact.confirmed_es) and fact_id not in noted
        if note:
            noted.append(fact_id)
        return fact.shown_as(confirmed=note)

    text = _PLACEHOLDER.sub(fill, template)
    if _COUNTRY.search(text):
        if country is None:
            raise ContentError("{country} used in a default variant")
        text = _COUNTRY.sub(country_names()[country], text)
    text = re.sub(r"[ \t]+([.,;:])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip(), used


def render_pages(
    name: str,
    variant: str,
    templates: list[str],
    facts: dict[str, Fact] | None = None,
    budget: SmsBudget | None = None,
    confirmed: bool = True,
) -> list[Page]:
    """Render one variant's pages, adding the MAS invitation to all but the last. Each page
    must fit its SMS budget (one segment unless content/sms_budget.yml allows two); a page that
    the phone confirmation notes would push past it is shown without them (`confirmed` False:
    never with them)."""
    budget = load_sms_budget() if budget is None else budget
    country = None if variant == "default" else variant
    if country is not None and country not in country_names():
        raise ContentError(f"{name}: unknown variant {variant}")
    pages = []
    for index, template in enumerate(templates):
        allowed = budget.allowed(page_name(name, index), variant)
        suffix = f"\n{load_common()['more_suffix']}" if index < len(templates) - 1 else ""
        noted: list[str] = []
        text, used = render_template(template, country, facts, confirmed=confirmed, shown_confirmed=noted)
        text += suffix
        if noted and sms_segments(text) > allowed:
            noted = []
            text, used = render_template(template, country, facts, confirmed=False)
            text += suffix
        segments = sms_segments(text)
        if segments > allowed:
            why = "" if allowed == MAX_SEGMENTS else f"; only pages listed in {SMS_BUDGET.name} may take {MAX_SEGMENTS}"
            raise ContentError(
                f"{page_name(name, index)} [{variant}] needs {segments} SMS segments "
                f"(budget {allowed}{why}): {len(text)} characters"
            )
        pages.append(Page(name, variant, index, text, used, noted))
    return pages


@dataclass(frozen=True)
class TopicLanguage:
    """A topic file's language and, when not Spanish, its translation of the caveats."""

    language: str
    caveats: dict[str, str]
    discreet: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # twins for discreet mode


def load_topic_languages() -> dict[str, TopicLanguage]:
    """response name -> its file's language, for the responses not in Spanish."""
    found: dict[str, TopicLanguage] = {}
    for path in sorted((CONTENT / "topics").glob("*.yml")):
        data = _read_yaml(path) or {}
        language = str(data.get("language") or "es")
        if language == "es":
            continue
        caveats = data.get("caveats") or {}
        if not isinstance(caveats, dict) or not all(isinstance(v, str) and v for v in caveats.values()):
            raise ContentError(f"{path.name}: caveats must map each Spanish caveat to its translation")
        discreet = {
            str(name): {str(v): [pages] if isinstance(pages, str) else list(pages) for v, pages in variants.items()}
            for name, variants in (data.get("discreet") or {}).items()
        }
        topic = TopicLanguage(language, {str(k): v for k, v in caveats.items()}, discreet)
        found.update({str(name): topic for name in data.get("responses") or {}})
    return found


def translated_facts(facts: dict[str, Fact], topic: TopicLanguage) -> dict[str, Fact]:
    """The facts with their caveats in the topic's language and no Spanish confirmation note;
    a caveat without translation is marked so that showing it fails (see render_all)."""
    return {
        fact_id: replace(
            fact,
            caveat_es=topic.caveats.get(fact.caveat_es, _UNTRANSLATED) if fact.caveat_es else None,
            confirmed_es=None,
            confirmed_replaces_caveat=False,
        )
        for fact_id, fact in facts.items()
    }


_UNTRANSLATED = "<<untranslated caveat>>"


def render_language_pages(
    name: str,
    variant: str,
    templates: list[str],
    facts: dict[str, Fact],
    topic: TopicLanguage,
    budget: SmsBudget | None = None,
) -> list[Page]:
    """One variant of a response in another language: its caveats translated (refused when
    a caveat has no translation), no Spanish confirmation note."""
    local = translated_facts(facts, topic)
    pages = render_pages(name, variant, templates, local, budget, confirmed=False)
    for page in pages:
        if _UNTRANSLATED in page.text:
            missing = sorted({facts[f].caveat_es or "" for f in page.facts if local[f].caveat_es == _UNTRANSLATED})
            raise ContentError(f"{name} [{variant}]: no {topic.language} translation of the caveats {missing}")
    return pages


def _render_in_language(
    name: str,
    variants: dict[str, list[str]],
    facts: dict[str, Fact],
    topic: TopicLanguage,
    budget: SmsBudget | None = None,
) -> dict[str, list[Page]]:
    return {
        variant: render_language_pages(name, variant, pages, facts, topic, budget)
        for variant, pages in variants.items()
    }


def check_emergency(rendered: dict[str, dict[str, list[Page]]], budget: SmsBudget, facts: dict[str, Fact]) -> None:
    """Someone in danger reads the first message only: for a known country it is one segment
    that shows the country's emergency number (with its caveat, as {fact:ID} shows it);
    before the country is known it asks for it in the same message, within two segments.
    One page per variant (the offer to report follows at once, there is no MAS)."""
    name = budget.emergency_response
    variants = rendered.get(name)
    if not variants or "default" not in variants:
        raise ContentError(f"{name}: the emergency answer has no default variant")
    for variant, pages in variants.items():
        if len(pages) != 1:
            raise ContentError(f"{name} [{variant}] must be one page (the offer to report follows at once)")
        text, segments = pages[0].text, sms_segments(pages[0].text)
        if variant == "default":
            if budget.asks_country_es not in text or segments > MAX_SEGMENTS:
                raise ContentError(
                    f"{name} [default] must ask {budget.asks_country_es!r} within {MAX_SEGMENTS} segments"
                )
            continue
        if segments != 1:
            raise ContentError(f"{name} [{variant}] needs {segments} SMS segments: a known country's must fit one")
        fact_id = budget.emergency_numbers.get(variant)
        fact = facts.get(fact_id) if fact_id else None
        shown = fact is not None and fact.value and any(fact.shown_as(note) in text for note in (True, False))
        if not shown or fact_id not in pages[0].facts:
            raise ContentError(f"{name} [{variant}] must show the country's emergency number ({fact_id})")
    missing = sorted(set(country_names()) - set(variants))
    if missing:
        raise ContentError(f"{name} has no variant for {', '.join(missing)}")


def render_all(
    facts: dict[str, Fact] | None = None, budget: SmsBudget | None = None
) -> dict[str, dict[str, list[Page]]]:
    """Every response, every variant, every page, checked against its SMS budget (with
    content/confirmations.yml unless other facts are given: see load_facts)."""
    facts = load_facts() if facts is None else facts
    budget = load_sms_budget() if budget is None else budget
    languages = load_topic_languages()
    rendered = {
        name: (
            _render_in_language(name, variants, facts, languages[name], budget)
            if name in languages
            else {variant: render_pages(name, variant, pages, facts, budget) for variant, pages in variants.items()}
        )
        for name, variants in load_topics().items()
    }
    check_emergency(rendered, budget, facts)
    return rendered
