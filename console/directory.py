"""The referral directory: the institutions and lines of content/facts.yml, by country, each
with its value, confidence mark and sources, so staff see how sure a contact is before they
refer a case to it. Read-only and cached; facts marked unverified are left out (they must
never be used, not even by staff)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from console.labels import label_map
from hotline.content import load_facts

KINDS = ("institution", "phone", "web")
USABLE = ("verified", "secondary")
CONFIDENCE_NAMES = label_map("directory", "confidence", keys=USABLE)


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

    @property
    def confidence_name(self) -> str:
        return CONFIDENCE_NAMES.get(self.confidence, self.confidence)


@lru_cache(maxsize=1)
def directory() -> dict[str, tuple[Contact, ...]]:
    """ISO country code -> its usable contacts, in the order of facts.yml."""
    by_country: dict[str, list[Contact]] = {}
    for fact in load_facts().values():
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
