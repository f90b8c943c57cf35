"""The services directory (content/services.yml): shelters, returnee reception centres, legal,
health and psychosocial services along the route, for staff to call and, later, for answers.

A wrong address or number sends a person in danger to the wrong door, so the file is checked
strictly when it is loaded: every entry needs source URLs and a source date, a known country,
kind and "serves" values, a mark matching its confidence, and a phone only in a plausible
written form (the number itself must be copied verbatim from a source: no check can prove
that, the sources field lets staff see it). Any problem raises ServicesError naming the entry
and field, so a bad edit fails `make audit` and the tests instead of reaching people.
`python -m hotline.services` validates the file and prints the count.

Staff corrections approved by a second person (console/service_corrections.py) reach the
directory through content/service_corrections.yml (`make service-corrections`, reviewed like
any content change): load_services applies them in order on top of services.yml and then
validates the result, so a correction can never bring in what the file itself would refuse.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from hotline.countries import country_names
from hotline.paths import CONTENT
from hotline.phone import calling_code_of

SERVICES = CONTENT / "services.yml"
CORRECTIONS = CONTENT / "service_corrections.yml"
# Fields staff may correct ("source" adds a source URL to the entry's sources).
CORRECTABLE = (
    "name",
    "country",
    "city",
    "address",
    "hours",
    "phone",
    "web",
    "summary",
    "caveat",
    "source",
    "verified_on",
)
# Fields that cannot be emptied by a correction.
KEEP = ("name", "country", "source", "verified_on")
NEW_ENTRY = "entry"  # a correction that adds a whole entry (its value: the entry as JSON)
KINDS = ("shelter", "reception", "legal", "health", "psychosocial", "family_links")
SERVES = (
    "all",
    "men",
    "women",
    "children",
    "unaccompanied_minors",
    "families",
    "lgbti",
    "asylum_seekers",
    "refugees",
    "returnees",
    "pregnant_women",
    "elderly",
    "disabled",
)
MARKS = {"verified": "✅", "secondary": "🟡"}
REQUIRED = ("id", "country", "name", "kind", "serves", "sources", "source_date", "confidence", "mark")
OPTIONAL = ("city", "also", "summary", "address", "hours", "phone", "web", "caveat", "verified_on")
ID_PATTERN = re.compile(r"^[a-z]{2}(\.[a-z0-9_]+)+$")
SOURCE_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
# A written phone number: digits with spaces, dashes, dots or parentheses, optional leading "+".
PHONE_CHARS = re.compile(r"^\+?[0-9()][0-9 ()\-.]*[0-9]$")
PHONE_DIGITS = (7, 15)


class ServicesError(ValueError):
    """content/services.yml has an entry that must not be used as it is."""


@dataclass(frozen=True)
class Service:
    id: str
    country: str
    city: str | None
    name: str
    kind: str
    also: tuple[str, ...]
    serves: tuple[str, ...]
    summary: str | None
    address: str | None
    hours: str | None
    phone: str | None
    web: str | None
    sources: tuple[str, ...]
    source_date: str
    confidence: str
    mark: str
    caveat: str | None
    verified_on: date | None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The main kind first, then the others the sources name."""
        return (self.kind, *(k for k in self.also if k != self.kind))


def check_url(url: Any, where: str) -> str:
    """An absolute http(s) URL with a host, or ServicesError."""
    if not isinstance(url, str) or not url.strip():
        raise ServicesError(f"{where}: URL missing")
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname or "." not in parsed.hostname:
        raise ServicesError(f"{where}: {url!r} is not an http(s) URL with a host")
    if any(ch.isspace() for ch in url.strip()):
        raise ServicesError(f"{where}: {url!r} contains spaces")
    return url.strip()


def check_phone(phone: Any, country: str, where: str) -> str:
    """A phone written plausibly for its country, or ServicesError. An international form must
    carry the entry's own calling code ("+52" for MX), so a number is not filed under the wrong
    country."""
    if not isinstance(phone, str) or not PHONE_CHARS.match(phone.strip()):
        raise ServicesError(f"{where}: phone {phone!r} is not a written phone number")
    text = phone.strip()
    digits = re.sub(r"\D", "", text)
    if not PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1]:
        raise ServicesError(f"{where}: phone {phone!r} has {len(digits)} digits (expected 7 to 15)")
    if text.startswith("+"):
        code = calling_code_of(country)
        if code is None or not digits.startswith(code):
            raise ServicesError(f"{where}: phone {phone!r} does not start with {country}'s calling code +{code}")
    return text


def _text(raw: dict[str, Any], key: str, where: str, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise ServicesError(f"{where}: {key} missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ServicesError(f"{where}: {key} must be non-empty text or null")
    return value.strip()


def _choices(raw: dict[str, Any], key: str, allowed: tuple[str, ...], where: str, required: bool) -> tuple[str, ...]:
    values = raw.get(key)
    if values is None and not required:
        return ()
    if not isinstance(values, list) or (required and not values):
        raise ServicesError(f"{where}: {key} must be a {'non-empty ' if required else ''}list")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ServicesError(f"{where}: unknown {key} {unknown} (known: {', '.join(allowed)})")
    return tuple(values)


def _verified_on(value: Any, where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as error:
        raise ServicesError(f"{where}: verified_on {value!r} is not YYYY-MM-DD") from error


def parse_service(raw: Any, countries: set[str]) -> Service:
    """One entry of the file, checked field by field."""
    if not isinstance(raw, dict):
        raise ServicesError(f"entry {raw!r} is not a mapping")
    where = str(raw.get("id") or "entry without id")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ServicesError(f"{where}: unknown fields {unknown}")
    for key in REQUIRED:
        if raw.get(key) in (None, "", []):
            raise ServicesError(f"{where}: {key} missing")
    service_id = str(raw["id"])
    if not ID_PATTERN.match(service_id):
        raise ServicesError(f"{where}: id must look like 'mx.city.name' (lower case)")
    country = str(raw["country"])
    if country not in countries:
        raise ServicesError(f"{where}: country {country!r} is not an ISO code the hotline serves")
    if not service_id.startswith(country.lower() + "."):
        raise ServicesError(f"{where}: id must start with the country code {country.lower()}.")
    kind = str(raw["kind"])
    if kind not in KINDS:
        raise ServicesError(f"{where}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    sources = raw["sources"]
    if not isinstance(sources, list) or not sources:
        raise ServicesError(f"{where}: sources must be a non-empty list of URLs")
    source_date = str(raw["source_date"])
    if source_date != "undated" and not SOURCE_DATE.match(source_date):
        raise ServicesError(f"{where}: source_date {source_date!r} is not YYYY[-MM[-DD]] or 'undated'")
    confidence = str(raw["confidence"])
    if MARKS.get(confidence) != raw["mark"]:
        raise ServicesError(f"{where}: mark {raw['mark']!r} does not match confidence {confidence!r}")
    verified_on = _verified_on(raw.get("verified_on"), where)
    if confidence == "verified" and verified_on is None:
        raise ServicesError(f"{where}: a verified entry needs verified_on (the date staff called)")
    phone = raw.get("phone")
    web = raw.get("web")
    return Service(
        id=service_id,
        country=country,
        city=_text(raw, "city", where),
        name=str(_text(raw, "name", where, required=True)),
        kind=kind,
        also=_choices(raw, "also", KINDS, where, required=False),
        serves=_choices(raw, "serves", SERVES, where, required=True),
        summary=_text(raw, "summary", where),
        address=_text(raw, "address", where),
        hours=_text(raw, "hours", where),
        phone=None if phone is None else check_phone(phone, country, f"{where}.phone"),
        web=None if web is None else check_url(web, f"{where}.web"),
        sources=tuple(check_url(url, f"{where}.sources") for url in sources),
        source_date=source_date,
        confidence=confidence,
        mark=str(raw["mark"]),
        caveat=_text(raw, "caveat", where),
        verified_on=verified_on,
    )


def parse_services(data: Any, countries: set[str] | None = None) -> dict[str, Service]:
    """id -> Service for a whole file's data; ServicesError on the first bad entry."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise ServicesError("services.yml needs a top-level 'services' list")
    known = countries if countries is not None else set(country_names())
    services: dict[str, Service] = {}
    for raw in data["services"]:
        service = parse_service(raw, known)
        if service.id in services:
            raise ServicesError(f"{service.id}: duplicate id")
        services[service.id] = service
    return services


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key twice in one mapping: plain YAML keeps the last one, so a
    lost "- id:" line would silently merge two services into one."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ServicesError(f"line {key_node.start_mark.line + 1}: key {key!r} twice in one entry")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def read_yaml(text: str) -> Any:
    """The YAML data of a services file, refusing duplicate keys (ServicesError)."""
    return yaml.load(text, Loader=_StrictLoader)


@dataclass(frozen=True)
class Correction:
    """One approved change to one field of one entry (content/service_corrections.yml)."""

    id: int  # the console's correction id: an export adds only ids the file lacks
    service_id: str
    field: str
    value: str  # "" empties the field (not for KEEP)
    source: str  # a URL the change comes from, added to the entry's sources; "" none
    approved_on: str  # YYYY-MM-DD
    proposed_by: str  # the proposer's role, never a name
    approved_by: str  # the approver's role

    def as_yaml(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service_id,
            "field": self.field,
            "value": json.loads(self.value) if self.field == NEW_ENTRY else self.value,
            "source": self.source,
            "approved_on": self.approved_on,
            "proposed_by": self.proposed_by,
            "approved_by": self.approved_by,
        }


def apply_correction(raw: dict[str, Any], field: str, value: str, source: str = "") -> dict[str, Any]:
    """The raw entry with one correction applied (checked afterwards by parse_service)."""
    if field not in CORRECTABLE:
        raise ServicesError(f"{raw.get('id')}: field {field!r} cannot be corrected (known: {', '.join(CORRECTABLE)})")
    if not value.strip() and field in KEEP:
        raise ServicesError(f"{raw.get('id')}: {field} cannot be emptied")
    changed = dict(raw)
    sources = list(changed.get("sources") or [])
    if field == "source":
        sources.append(value.strip())
    else:
        changed[field] = value.strip() or None
    if source.strip() and source.strip() not in sources:
        sources.append(source.strip())
    changed["sources"] = sources
    return changed


def new_entry(value: str, service_id: str) -> dict[str, Any]:
    """The raw data of a proposed new entry: always 🟡 and never called (staff confirm it
    afterwards with a verified_on correction)."""
    try:
        raw = json.loads(value)
    except ValueError as error:
        raise ServicesError(f"{service_id}: the new entry is not JSON") from error
    if not isinstance(raw, dict) or raw.get("id") != service_id:
        raise ServicesError(f"{service_id}: the new entry must be a mapping with this id")
    return {**raw, "confidence": "secondary", "mark": MARKS["secondary"], "verified_on": None}


def _value_text(value: Any) -> str:
    """A correction's value as stored: a new entry's mapping as JSON, anything else as text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value or "")


def read_corrections(path: Path = CORRECTIONS) -> list[Correction]:
    """The approved corrections of a corrections file ([] when it does not exist)."""
    if not path.exists():
        return []
    data = read_yaml(path.read_text(encoding="utf-8")) or {}
    items = data.get("corrections") or []
    if not isinstance(items, list):
        raise ServicesError(f"{path.name}: 'corrections' must be a list")
    try:
        return [
            Correction(
                int(item["id"]),
                str(item["service"]),
                str(item["field"]),
                json.dumps(item["value"], ensure_ascii=False)
                if isinstance(item.get("value"), dict)
                else str(item.get("value") or ""),
                str(item.get("source") or ""),
                str(item["approved_on"]),
                str(item.get("proposed_by") or ""),
                str(item.get("approved_by") or ""),
            )
            for item in items
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise ServicesError(f"{path.name}: a correction lacks {error}") from error


def with_corrections(data: Any, corrections: list[Correction]) -> Any:
    """The directory's raw data with the corrections applied in order."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        return data
    entries = list(data["services"])
    index = {str(raw.get("id")): i for i, raw in enumerate(entries) if isinstance(raw, dict)}
    for correction in corrections:
        if correction.field == NEW_ENTRY:
            if correction.service_id in index:
                raise ServicesError(f"correction {correction.id}: entry {correction.service_id!r} exists already")
            index[correction.service_id] = len(entries)
            entries.append(new_entry(correction.value, correction.service_id))
            continue
        if correction.service_id not in index:
            raise ServicesError(f"correction {correction.id}: no entry {correction.service_id!r}")
        position = index[correction.service_id]
        entries[position] = apply_correction(entries[position], correction.field, correction.value, correction.source)
    return {**data, "services": entries}


def load_services(path: Path = SERVICES, corrections: Path | None = CORRECTIONS) -> dict[str, Service]:
    """The validated directory from content/services.yml (or the given file), with the
    approved corrections of content/service_corrections.yml (or the given file; None: none)."""
    data = read_yaml(path.read_text(encoding="utf-8"))
    return parse_services(with_corrections(data, read_corrections(corrections) if corrections else []))


def to_call(services: dict[str, Service] | None = None) -> list[Service]:
    """Entries staff still have to confirm by phone (never called, or not verified), by id."""
    entries = load_services() if services is None else services
    return sorted(
        (s for s in entries.values() if s.confidence != "verified" or s.verified_on is None),
        key=lambda s: s.id,
    )


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else SERVICES
    try:
        services = load_services(path, corrections=None if argv else CORRECTIONS)
    except ServicesError as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    print(f"{path}: {len(services)} services, {len(to_call(services))} to call")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
