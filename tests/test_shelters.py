"""The shelter answer (actions/shelters.py): the directory's entries for the place a person
names, one SMS segment a page, each "dato por confirmar", never a phone not in the data, and
text a watched phone may show in discreet mode."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.shelters import SLOT, ActionAnswerShelter, find_cities, find_groups, pages, pick, words
from hotline.content import load_common
from hotline.discreet import sensitive_words_in
from hotline.services import load_services
from hotline.sms import sms_segments

SAFETY = "Nunca vayas con desconocidos que te ofrecen dónde dormir."


def tracker(text: str, intent: str = "ask_shelter", **slots: Any) -> Tracker:
    return Tracker(
        "test-sender",
        {"country": None, "discreet": False, **slots},
        {"text": text, "intent": {"name": intent}},
        [],
        False,
        None,
        {},
        "",
    )


def run(text: str, intent: str = "ask_shelter", **slots: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionAnswerShelter().run(dispatcher, tracker(text, intent, **slots), {}))
    return dispatcher.messages, events


def slot_value(events: list[dict[str, Any]]) -> Any:
    (event,) = [e for e in events if e.get("name") == SLOT]
    return event["value"]


def all_pages(text: str, **slots: Any) -> list[str]:
    """Every page a person gets by writing `text` and then MAS until the end."""
    messages, events = run(text, **slots)
    shown = [str(m["text"]) for m in messages]
    while slot_value(events) is not None:
        messages, events = run("MAS", "more", **{**slots, SLOT: slot_value(events)})
        if messages[0].get("response") == "utter_more_nothing":
            break
        shown.append(str(messages[0]["text"]))
    return shown


@pytest.mark.parametrize(
    ("text", "city"),
    [
        ("albergue en Tapachula", "Tapachula"),
        ("ALBERGUE EN TAPACHULA", "Tapachula"),
        ("donde hay albergue en tapachla", "Tapachula"),
        ("tijuna", "Tijuana"),
        ("estoy en reinosa", "Reynosa"),
        ("casa del migrante en tecún umán", "Tecún Umán (Ayutla, San Marcos)"),
        ("hay albergue en la cdmx?", "Ciudad de México"),
        ("albergue en ciudad juarez", "Ciudad Juárez"),
        ("sps", "San Pedro Sula"),
    ],
)
def test_the_city_is_found_with_accents_case_and_typos_forgiven(text: str, city: str) -> None:
    assert city in find_cities(text)


def test_every_city_written_right_counts_and_a_common_word_alone_does_not() -> None:
    assert find_cities("albergue en reynosa o matamoros") == ("Matamoros", "Reynosa")
    assert find_cities("casa del migrante nuestra señora de guadalupe en reynosa") == ("Reynosa",)
    assert find_cities("albergue en guadalupe nuevo leon") == ("Guadalupe (zona metropolitana de Monterrey)",)


@pytest.mark.parametrize(
    "text", ["donde hay un albergue", "estoy en roma", "albergue en mexico", "me llamo omar", "la virgen de guadalupe"]
)
def test_no_city_is_invented(text: str) -> None:
    assert find_cities(text) == ()


def test_albergue_en_tapachula_lists_the_tapachula_shelters_first_one_segment_each() -> None:
    shown = all_pages("albergue en Tapachula")
    services = load_services()
    tapachula = [s for s in services.values() if s.city == "Tapachula"]
    assert shown[0].startswith("Albergue Diocesano Belén")
    assert all(sms_segments(page) == 1 for page in shown), shown
    assert all(page.endswith(str(load_common()["more_suffix"])) for page in shown[:-1])
    assert shown[-1].endswith(SAFETY)
    joined = " ".join(shown)
    assert joined.count("(dato por confirmar)") == len(tapachula)
    assert "Tijuana" not in joined


def test_shelters_and_reception_come_before_other_kinds() -> None:
    found = pick(load_services(), (), "MX", ())
    kinds = [s.kind for s in found]
    assert kinds == sorted(kinds, key=lambda k: words()["kinds_first"].index(k))
    assert kinds[0] == "shelter"
    assert len(found) <= int(words()["limits"]["entries"])


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("albergue para mujeres en tijuana", "women"),
        ("con mis niños", "children"),
        ("somos familia", "families"),
        ("soy trans", "lgbti"),
        ("albergue gay", "lgbti"),
    ],
)
def test_whom_it_is_for_is_understood(text: str, group: str) -> None:
    assert group in find_groups(text)


def test_only_entries_that_take_the_group_are_offered() -> None:
    services = load_services()
    for_women = pick(services, ("Ciudad de México",), None, ("women",))
    assert for_women and all("women" in s.serves or "all" in s.serves for s in for_women)
    assert "mx.cdmx.casa_tochan" not in {s.id for s in for_women}  # men only
    lgbti = pick(
        services,
        ("Guadalupe (zona metropolitana de Monterrey)", "Santa Catarina (zona metropolitana de Monterrey)"),
        None,
        ("lgbti",),
    )
    assert [s.id for s in lgbti] == ["mx.monterrey.casa_monarca"]


def test_the_country_slot_is_used_when_no_city_is_named() -> None:
    messages, events = run("7", "choose_option", country="GT")
    assert "Guatemala" in messages[0]["text"] or "Tecún" in messages[0]["text"]
    assert json.loads(slot_value(events))["country"] == "GT"


def test_no_place_known_asks_for_the_city_or_country() -> None:
    messages, events = run("donde hay un albergue")
    assert messages[0]["text"].startswith("¿En qué ciudad o país estás?")
    assert SAFETY in messages[0]["text"]
    assert slot_value(events) is None


def test_no_entry_for_the_place_gives_today_s_answer() -> None:
    messages, _ = run("donde hay un albergue", country="CR")
    assert messages[0]["response"] == "utter_ask_shelter"
    messages, _ = run("albergue en omoa para mujeres")  # a reception centre for returnees only
    assert messages[0]["response"] == "utter_ask_shelter"


def test_mas_after_today_s_answer_gives_its_next_page_then_nothing() -> None:
    messages, events = run(
        "MAS",
        "more",
        country="CR",
        **{SLOT: json.dumps({"cities": [], "country": "CR", "groups": [], "page": 0, "fallback": True})},
    )
    assert messages[0]["response"] == "utter_ask_shelter_more"
    messages, events = run("MAS", "more", **{SLOT: slot_value(events)})
    assert messages[0]["response"] == "utter_more_nothing"


def test_mas_without_a_shelter_answer_says_there_is_nothing_more() -> None:
    messages, _ = run("MAS", "more", **{SLOT: "not json"})
    assert messages[0]["response"] == "utter_more_nothing"


def test_every_page_for_every_city_and_country_fits_one_segment_and_shows_only_the_data_s_phones() -> None:
    services = load_services()
    phones = {s.phone for s in services.values() if s.phone}
    places = [((s.city,), None) for s in services.values() if s.city] + [
        ((), c) for c in {s.country for s in services.values()}
    ]
    for cities, country in places:
        for discreet in (False, True):
            for page in pages(pick(services, cities, country, ()), discreet):
                assert sms_segments(page) == 1, page
                for number in re.findall(r"\+?[\d()][\d ()\-.]{6,}\d", page):
                    assert number.strip() in phones, page


def test_a_phone_is_shown_exactly_as_the_directory_has_it() -> None:
    la72 = load_services()["mx.tenosique.la72"]
    shown = " ".join(all_pages("albergue en tenosique"))
    assert f"tel. {la72.phone}" in shown


def test_discreet_mode_never_shows_a_sensitive_word() -> None:
    services = load_services()
    normal = " ".join(all_pages("albergue en tijuana"))
    assert sensitive_words_in(normal)  # "Casa del Migrante": the case discreet mode is for
    watched = all_pages("albergue en tijuana", discreet=True)
    assert watched and not sensitive_words_in(" ".join(watched))
    assert "calle Galileo" in watched[0]  # the address stays: the person must find the door
    for service in services.values():
        for city in filter(None, [service.city]):
            for page in pages(pick(services, (city,), None, ()), True):
                assert not sensitive_words_in(page), page
    for country in {s.country for s in services.values()}:
        for page in pages(pick(services, (), country, ()), True):
            assert not sensitive_words_in(page), page


def test_the_slot_keeps_the_query_never_the_message() -> None:
    _, events = run("albergue en tapachula para mi y mis hijos, me llamo Rosa")
    value = slot_value(events)
    assert "Rosa" not in value
    assert json.loads(value) == {
        "cities": ["Tapachula"],
        "country": None,
        "groups": ["children"],
        "page": 0,
        "fallback": False,
    }


def test_every_alias_names_a_city_of_the_directory() -> None:
    cities = {s.city for s in load_services().values()}
    for alias, targets in words()["places"].items():
        assert set(targets) <= cities, alias
