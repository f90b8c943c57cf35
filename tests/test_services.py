"""The services directory (content/services.yml) validates, and bad entries are refused."""

from __future__ import annotations

import copy
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotline import services as services_module
from hotline.audit import NEVER_CONFIRMED, NO_PHONE, main, services_to_call
from hotline.services import KINDS, SERVES, ServicesError, load_services, parse_services, to_call

COUNTRIES = {"MX", "GT", "SV", "HN", "US"}


def good_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "mx.tenosique.test",
        "country": "MX",
        "city": "Tenosique",
        "name": "Albergue de prueba",
        "kind": "shelter",
        "also": ["legal"],
        "serves": ["women", "children"],
        "summary": "Hospedaje.",
        "address": None,
        "hours": None,
        "phone": "+52 934 342 1111",
        "web": "https://example.org",
        "sources": ["https://example.org/nota"],
        "source_date": "2025-08",
        "confidence": "secondary",
        "mark": "🟡",
        "caveat": "Confirmar.",
        "verified_on": None,
    }
    entry.update(changes)
    return entry


def parse(*entries: dict[str, Any]) -> dict[str, services_module.Service]:
    return parse_services({"version": 1, "services": list(entries)}, COUNTRIES)


def test_the_real_file_validates() -> None:
    services = load_services()
    assert len(services) >= 25
    for service in services.values():
        assert service.sources, service.id
        assert service.kind in KINDS
        assert set(service.serves) <= set(SERVES)
        # Nothing is verified until staff call it (and record the date).
        assert service.confidence == "secondary" or service.verified_on is not None, service.id


def test_the_real_file_covers_the_route() -> None:
    services = load_services().values()
    cities = {(s.country, s.city) for s in services}
    for country, city in [
        ("MX", "Tapachula"),
        ("MX", "Tenosique"),
        ("MX", "Ciudad de México"),
        ("MX", "Saltillo"),
        ("MX", "Tijuana"),
        ("MX", "Ciudad Juárez"),
        ("MX", "Reynosa"),
        ("MX", "Nuevo Laredo"),
        ("MX", "Matamoros"),
        ("GT", "Ciudad de Guatemala"),
        ("SV", "San Salvador"),
        ("HN", "San Pedro Sula"),
        ("US", "El Paso"),
        ("US", "McAllen"),
        ("US", "San Diego"),
    ]:
        assert (country, city) in cities, (country, city)


def test_a_good_entry_parses() -> None:
    service = parse(good_entry())["mx.tenosique.test"]
    assert service.phone == "+52 934 342 1111"
    assert service.kinds == ("shelter", "legal")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"phone": "llamar al albergue"}, "not a written phone number"),
        ({"phone": "123"}, "expected 7 to 15"),
        ({"phone": "+502 2411 9191"}, "calling code +52"),
        ({"web": "la72.org"}, "not an http(s) URL"),
        ({"web": "ftp://example.org"}, "not an http(s) URL"),
        ({"sources": ["https://"]}, "not an http(s) URL"),
        ({"sources": []}, "sources missing"),
        ({"sources": None}, "sources missing"),
        ({"source_date": None}, "source_date missing"),
        ({"source_date": "reciente"}, "source_date"),
        ({"country": "XX", "id": "xx.city.test"}, "country 'XX'"),
        ({"country": "GT"}, "must start with the country code gt."),
        ({"kind": "hotel"}, "unknown kind"),
        ({"serves": ["everyone"]}, "unknown serves"),
        ({"serves": []}, "serves missing"),
        ({"mark": "✅"}, "does not match confidence"),
        ({"confidence": "verified", "mark": "✅"}, "needs verified_on"),
        ({"verified_on": "ayer"}, "verified_on"),
        ({"id": "Tenosique Test"}, "id must look like"),
        ({"telefono": "1"}, "unknown fields"),
    ],
)
def test_invalid_entries_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ServicesError, match=re.escape(message)):
        parse(good_entry(**changes))


def test_a_missing_source_in_a_copy_of_the_real_file_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(services_module.SERVICES.read_text(encoding="utf-8"))
    broken = copy.deepcopy(data)
    del broken["services"][0]["sources"]
    path = tmp_path / "services.yml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ServicesError, match=f"{data['services'][0]['id']}: sources missing"):
        load_services(path)
    assert services_module.main([str(path)]) == 1


def test_a_lost_id_line_merging_two_entries_is_refused(tmp_path: Path) -> None:
    text = services_module.SERVICES.read_text(encoding="utf-8")
    second_id = text.index('  - id: "mx.tapachula.jesus_buen_pastor"')
    path = tmp_path / "services.yml"
    path.write_text(text[:second_id] + text[second_id:].split("\n", 1)[1], encoding="utf-8")
    with pytest.raises(ServicesError, match="twice in one entry"):
        load_services(path)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ServicesError, match="duplicate id"):
        parse(good_entry(), good_entry())


def test_every_unverified_entry_is_listed_to_call() -> None:
    rows = {row.service.id: row for row in services_to_call(date(2026, 12, 6))}
    assert set(rows) == {s.id for s in to_call()}
    assert set(rows) == set(load_services())
    assert NEVER_CONFIRMED in rows["mx.tenosique.la72"].reasons
    assert NO_PHONE not in rows["mx.tenosique.la72"].reasons
    assert NO_PHONE in rows["mx.saltillo.casa_migrante"].reasons


def test_a_recent_call_takes_a_verified_entry_off_the_list() -> None:
    called = parse(
        good_entry(confidence="verified", mark="✅", verified_on="2026-12-01"),
        good_entry(id="mx.tenosique.old", confidence="verified", mark="✅", verified_on="2025-01-01"),
    )
    rows = {row.service.id: row for row in services_to_call(date(2026, 12, 6), 180, called)}
    assert "mx.tenosique.test" not in rows
    assert rows["mx.tenosique.old"].reasons == ("last confirmed 2025-01-01",)


def test_make_audit_lists_directory_entries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "directory entries to call" in out
    assert "mx.tenosique.la72 [shelter]" in out
    assert "phone: +(52)934 342 1111" in out
