"""The referral directory: the institutions and lines of content/facts.yml, by country, each
with its value, confidence mark and sources, so staff see how sure a contact is before they
refer a case to it, and "confirmado por teléfono el <fecha>" when staff confirmed it by
phone (as carried into content/confirmations.yml: `make confirmations`). Read-only and
cached; facts marked unverified are left out (they must never be used, not even by staff).

HOTLINE_CONFIRMATIONS_FILE points the console (this directory and the content-audit page) at
another copy of content/confirmations.yml, for example a checkout's or a test's; the
assistant's content itself is only ever built from content/confirmations.yml."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from console.labels import label, label_map
from hotline.content import load_facts

KINDS = ("institution", "phone", "web")
USABLE = ("verified", "secondary")
CONFIDENCE_NAMES = label_map("directory", "confidence", keys=USABLE)
PHONE_CONFIRMED = label("facts", "phone_confirmed")
CONFIRMATIONS_ENV = "HOTLINE_CONFIRMATIONS_FILE"
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def confirmations_file() -> Path | None:
    """The confirmations file the console shows: HOTLINE_CONFIRMATIONS_FILE, else None
    (content/confirmations.yml)."""
    named = os.environ.get(CONFIRMATIONS_ENV, "").strip()
    return Path(named) if named else None


@dataclass(frozen=True)
class Contact:
    key: str  # the fact id, stored in Referral.institution_key
    country: str
    kind: str
    label: str
    value: str | None
    confidence: str
    mark: str
    sources: tuple[str, ...]
    source_date: str | None
    caveat: str | None
    confirmed_on: date | None = None  # by phone, from content/confirmations.yml

    @property
    def confirmation(self) -> str | None:
        """ "confirmado por teléfono el <fecha>", or None."""
        if self.confirmed_on is None:
            return None
        return PHONE_CONFIRMED.format(date=self.confirmed_on.isoformat())

    @property
    def email(self) -> str | None:
        """The institution's e-mail address when the fact's own value is one and has a
        source: a referral is e-mailed only there (an address is never typed or guessed)."""
        value = (self.value or "").strip()
        return value if self.sources and EMAIL.fullmatch(value) else None

    @property
    def confidence_name(self) -> str:
        name = CONFIDENCE_NAMES.get(self.confidence, self.confidence)
        return f"{name} · {self.confirmation}" if self.confirmation else name


def directory(confirmations: Path | None = None) -> dict[str, tuple[Contact, ...]]:
    """ISO country code -> its usable contacts, in the order of facts.yml, with the phone
    confirmations of `confirmations` (default: confirmations_file())."""
    return _directory(confirmations or confirmations_file())


@lru_cache(maxsize=4)
def _directory(confirmations: Path | None) -> dict[str, tuple[Contact, ...]]:
    by_country: dict[str, list[Contact]] = {}
    for fact in load_facts(confirmations).values():
        raw = fact.raw
        country = raw.get("country")
        if raw.get("kind") not in KINDS or not country or fact.confidence not in USABLE:
            continue
        contact = Contact(
            key=fact.id,
            country=str(country),
            kind=str(raw["kind"]),
            label=str(raw.get("label_es") or fact.id),
            value=fact.value,
            confidence=fact.confidence,
            mark=str(raw.get("mark") or ""),
            sources=tuple(str(s) for s in raw.get("sources") or ()),
            source_date=str(raw["source_date"]) if raw.get("source_date") else None,
            caveat=str(raw["caveat_es"]) if raw.get("caveat_es") else None,
            confirmed_on=fact.confirmation.confirmed_on if fact.confirmation else None,
        )
        by_country.setdefault(contact.country, []).append(contact)
    return {country: tuple(contacts) for country, contacts in sorted(by_country.items())}


def contacts_for(country: str | None) -> dict[str, tuple[Contact, ...]]:
    """The contacts to offer for a report: its country's, or every country's when unknown."""
    everything = directory()
    if country and country in everything:
        return {country: everything[country]}
    return everything


def find(key: str) -> Contact | None:
    for contacts in directory().values():
        for contact in contacts:
            if contact.key == key:
                return contact
    return None
