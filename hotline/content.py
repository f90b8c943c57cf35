"""The assistant's Spanish answers, rendered from content/ with their facts.

Answers live in content/topics/*.yml as response name -> variant (`default` or an ISO
country code) -> page text (or a list of pages; pages after the first are read with MAS).
Texts name facts only through placeholders, so every number keeps its source:
  {fact:ID}  the fact's value (a phone number or address) and its short caveat, if any
  {ref:ID}   nothing shown; declares that the sentence states the legal fact ID
  {country}  the variant's country name
The variant `all_countries` is copied to every country that has no variant of its own.
Any other {name} is left for Rasa to fill at run time (for example {reasons}).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hotline.countries import country_names
from hotline.paths import CONTENT
from hotline.sms import sms_segments

MAX_SEGMENTS = 2
SHOWABLE = {"verified", "secondary"}
ALL_COUNTRIES = "all_countries"
_PLACEHOLDER = re.compile(r"\{(fact|ref):([a-z0-9_.]+)\}")
_COUNTRY = re.compile(r"\{country\}")


class ContentError(ValueError):
    """Content that must not reach a person: unknown or unverified fact, too long."""


@dataclass(frozen=True)
class Fact:
    id: str
    value: str | None
    confidence: str
    caveat_es: str | None
    raw: dict[str, Any]

    @property
    def showable(self) -> bool:
        return self.confidence in SHOWABLE

    def shown_as(self) -> str:
        if not self.value:
            raise ContentError(f"fact {self.id} has no value to show; use {{ref:{self.id}}}")
        return f"{self.value} ({self.caveat_es})" if self.caveat_es else self.value


@dataclass
class Page:
    response: str
    variant: str
    index: int
    text: str
    facts: list[str] = field(default_factory=list)


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def load_facts() -> dict[str, Fact]:
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


def render_template(template: str, country: str | None = None) -> tuple[str, list[str]]:
    """Fill fact and country placeholders; returns the text and the fact ids it uses."""
    facts = load_facts()
    used: list[str] = []

    def fill(match: re.Match[str]) -> str:
        kind, fact_id = match.group(1), match.group(2)
        fact = facts.get(fact_id)
        if fact is None:
            raise ContentError(f"unknown fact {fact_id}")
        if not fact.showable:
            raise ContentError(f"fact {fact_id} is {fact.confidence}: it must never be shown")
        used.append(fact_id)
        return fact.shown_as() if kind == "fact" else ""

    text = _PLACEHOLDER.sub(fill, template)
    if _COUNTRY.search(text):
        if country is None:
            raise ContentError("{country} used in a default variant")
        text = _COUNTRY.sub(country_names()[country], text)
    text = re.sub(r"[ \t]+([.,;:])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip(), used


def render_pages(name: str, variant: str, templates: list[str]) -> list[Page]:
    """Render one variant's pages, adding the MAS invitation to all but the last."""
    country = None if variant == "default" else variant
    if country is not None and country not in country_names():
        raise ContentError(f"{name}: unknown variant {variant}")
    pages = []
    for index, template in enumerate(templates):
        text, used = render_template(template, country)
        if index < len(templates) - 1:
            text = f"{text}\n{load_common()['more_suffix']}"
        segments = sms_segments(text)
        if segments > MAX_SEGMENTS:
            raise ContentError(
                f"{name} [{variant}] page {index + 1} needs {segments} SMS segments "
                f"(max {MAX_SEGMENTS}): {len(text)} characters"
            )
        pages.append(Page(name, variant, index, text, used))
    return pages


def render_all() -> dict[str, dict[str, list[Page]]]:
    """Every response, every variant, every page, checked."""
    return {
        name: {variant: render_pages(name, variant, pages) for variant, pages in variants.items()}
        for name, variants in load_topics().items()
    }
