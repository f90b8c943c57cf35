"""The number check (VERIFICAR): official numbers of the fact sheet confirmed with whose,
where, the source's date and its mark; unverified facts never; anything else is not on the
list and the person learns how to check a recruiter. Also the rule that decides the intent."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.verify import (
    ActionVerifyNumber,
    index_numbers,
    known_numbers,
    matches,
    official_values,
    shown_date,
    words,
)
from hotline.build import build
from hotline.content import MAX_SEGMENTS, Fact, load_facts
from hotline.phone import find_numbers
from hotline.sms import sms_segments
from hotline.verify_cues import VerifyCues

NUMBER = "+52 55 9876 1234"  # on no list


def tracker(text: str, country: str | None = None) -> Tracker:
    return Tracker(
        "test-sender",
        {"country": country},
        {"text": text, "intent": {"name": "verify_number"}},
        [],
        False,
        None,
        {},
        "",
    )


def run(text: str, country: str | None = None) -> list[dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionVerifyNumber().run(dispatcher, tracker(text, country), {}))
    assert events == []  # no slot ever holds the number
    messages: list[dict[str, Any]] = dispatcher.messages
    return messages


def test_every_showable_phone_fact_is_known_and_no_unverified_one() -> None:
    facts = load_facts()
    known = {number.fact.id for number in known_numbers()}
    phones = {f.id for f in facts.values() if f.raw.get("kind") == "phone" and f.value}
    assert {f for f in phones if facts[f].showable} <= known
    assert not {f for f in known if not facts[f].showable}


def test_an_official_number_names_whose_where_when_and_the_mark() -> None:
    fact = load_facts()["us.dol_whd_phone"]
    (message,) = run("VERIFICAR +1 (866) 487 9243")
    assert message["response"] == "utter_verify_official"
    assert message["number"] == fact.value
    assert message["who"] == fact.raw["label_es"]
    assert message["where"] == "Estados Unidos"
    assert message["mark"] == words()["marks"]["verified"]
    assert message["date"] == words()["undated"]


def test_a_secondary_fact_says_so_with_its_caveat_and_date() -> None:
    fact = load_facts()["gt.mp_phone"]
    (message,) = run("verificar 2411 9191")
    assert message["mark"] == words()["marks"]["secondary"]
    assert fact.caveat_es and fact.caveat_es.rstrip(".") in message["note"]
    assert message["date"] == "16/03/2020"


def test_an_unverified_fact_never_confirms_a_number() -> None:
    facts = load_facts()
    unverified = [f for f in facts.values() if not f.showable and f.value and f.raw.get("kind") == "phone"]
    assert unverified
    for fact in unverified:
        for candidate in find_numbers(fact.value or ""):
            assert all(f.showable for f in matches(candidate, known_numbers())), fact.id
    messages = run("VERIFICAR 1570")  # gt.mp_1570: ❌, and no other fact states it
    assert [m["response"] for m in messages] == ["utter_verify_not_listed", "utter_verify_how_to_check"]


def test_a_fact_whose_value_lists_several_numbers_knows_each() -> None:
    fact = Fact("xx.two", "1-888-373-7888 / 233733", "verified", None, {"kind": "phone", "country": "US"})
    known = index_numbers({fact.id: fact})
    assert [matches(c, known) for c in find_numbers("233733, 888 373 7888")] == [[fact], [fact]]


def test_a_number_on_no_list_shows_only_its_last_digits_and_how_to_check() -> None:
    messages = run(f"es real este numero {NUMBER}?", "GT")
    assert [m["response"] for m in messages] == ["utter_verify_not_listed", "utter_verify_how_to_check"]
    assert messages[0]["tail"] == "1234"
    assert "9876" not in str(messages)


def test_the_person_s_country_is_named_first_for_a_shared_number() -> None:
    (message,) = run("VERIFICAR 911", "SV")
    assert message["where"] == "El Salvador"
    assert message["note"] == words()["also"].format(count=8)


def test_every_official_answer_fits_two_sms_segments() -> None:
    template = build(write=False)["responses"]["utter_verify_official"][0]["text"]
    for number in known_numbers():
        for candidate in find_numbers(number.fact.value or ""):
            found = matches(candidate, known_numbers())
            for country in (None, number.fact.raw.get("country")):
                text = template.format(**official_values(candidate, found, country))
                assert sms_segments(text) <= MAX_SEGMENTS, text


@pytest.mark.parametrize(
    ("text", "responses"),
    [
        ("VERIFICAR", ["utter_verify_ask_number"]),
        ("verificar 😀", ["utter_verify_ask_number"]),
        ("VERIFICAR 55-ABC-1234", ["utter_verify_letters"]),
        ("VERIFICAR 5512345678 5587654321", ["utter_verify_length"]),
        ("VERIFICAR 551234567", ["utter_verify_length"]),
        ("verificar el 7", ["utter_verify_length"]),
        ("verificar el 12", ["utter_verify_not_listed", "utter_verify_how_to_check"]),
        (
            "VERIFICAR 911, 2411 9191, 5598761234, 1-866-487-9243",
            [
                "utter_verify_official",
                "utter_verify_official",
                "utter_verify_not_listed",
                "utter_verify_how_to_check",
                "utter_verify_too_many",
            ],
        ),
        ("VERIFICAR TRT-7K4M-Q2XH-5", ["utter_verify_ask_number"]),
    ],
)
def test_bad_input_gets_a_polite_answer(text: str, responses: list[str]) -> None:
    assert [m["response"] for m in run(text)] == responses


def test_the_log_counts_and_never_shows_the_number(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        run(f"VERIFICAR {NUMBER}, 911")
    assert "number check: 1 official, 1 not listed, 0 unreadable" in caplog.text
    assert "9876" not in caplog.text and "1234" not in caplog.text


@pytest.mark.parametrize(
    ("source_date", "shown"),
    [
        ("2016-10", "10/2016"),
        ("2020 report; 2023", "2023"),
        ("undated", "sin fecha"),
        (None, "sin fecha"),
        ("2021-03-16; 2024-08-20", "20/08/2024"),
    ],
)
def test_source_dates_as_people_read_them(source_date: str | None, shown: str) -> None:
    assert shown_date(source_date) == shown


CUES = VerifyCues.from_file()


@pytest.mark.parametrize(
    "text",
    [
        "VERIFICAR 55 1234 5678",
        "verifica",
        "Verificar numero",
        "verifcar 2411 9191",
        "este numero es de migracion? 55 1234 5678",
        "es real este telefono 2233 4455?",
        "Felicidades, fue seleccionado. Llame al +52 55 1234 5678 para su visa. es oficial?",
    ],
)
def test_the_rule_hears_a_number_check(text: str) -> None:
    assert CUES.is_command(text) or CUES.asks_about_a_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "a que numero llamo en honduras",
        "me ofrecen chamba en cancun con todo pagado es real?",
        "el numero de emergencias en mexico es 911?",
        "me cobran 1500 dolares por la work visa, es estafa?",
        "mi numero es 55 1234 5678",
        "que es la trata",
    ],
)
def test_the_rule_leaves_other_questions_alone(text: str) -> None:
    assert not CUES.is_command(text) and not CUES.asks_about_a_number(text)
