"""The phone-number normaliser: every written form of a number reduces to the same keys,
and what cannot be a number says why (hotline/phone.py)."""

from __future__ import annotations

import pytest

from hotline.phone import fact_keys, find_numbers, has_long_number, keys, same_number


def one(text: str) -> str:
    (found,) = find_numbers(text)
    assert found.usable, found
    return found.digits


@pytest.mark.parametrize(
    "typed",
    [
        "55 1234 5678",
        "55-1234-5678",
        "55.1234.5678",
        "(55) 1234 5678",
        "5512345678",
        "+52 55 1234 5678",
        "+52 (55) 1234-5678",
        "+52 1 55 1234 5678",
        "0052 55 1234 5678",
        "011 52 55 1234 5678",
        "52 55 1234 5678",
        "044 55 1234 5678",
    ],
)
def test_a_mexican_mobile_in_every_written_form(typed: str) -> None:
    assert same_number(keys(one(f"este numero {typed} es real?")), fact_keys("5512345678", "MX"))


@pytest.mark.parametrize("typed", ["800 5533 000", "01 800 5533 000", "018005533000", "+52 800 553 3000"])
def test_a_toll_free_number_with_and_without_the_old_01(typed: str) -> None:
    assert same_number(keys(one(typed)), fact_keys(one("800 5533 000"), "MX"))


@pytest.mark.parametrize(
    "typed", ["1-888-373-7888", "888-373-7888", "+1 888 373 7888", "001 888 373 7888", "(888) 373-7888"]
)
def test_north_american_numbers_with_and_without_the_leading_1(typed: str) -> None:
    assert same_number(keys(one(typed)), fact_keys(one("1-888-373-7888"), "US"))


@pytest.mark.parametrize("typed", ["2411-9191", "2411 9191", "+502 2411 9191", "(502) 2411-9191", "00502 24119191"])
def test_a_central_american_number_with_its_calling_code(typed: str) -> None:
    assert same_number(keys(one(typed)), fact_keys(one("2411-9191"), "GT"))


def test_another_countrys_calling_code_is_another_number() -> None:
    assert not same_number(keys(one("+503 2411 9191")), fact_keys(one("2411-9191"), "GT"))
    (mexican,) = find_numbers("+52 2411 9191")
    assert mexican.problem == "length"  # 8 digits after +52: no Mexican number is that long


@pytest.mark.parametrize(
    ("typed", "fact"), [("911", "911"), ("9-1-1", "911"), ("110", "110"), ("145", "145"), ("133", "133")]
)
def test_short_numbers(typed: str, fact: str) -> None:
    assert same_number(keys(one(typed)), fact_keys(fact, "GT"))


def test_a_star_code_is_not_the_plain_number() -> None:
    assert same_number(keys(one("*765")), fact_keys(one("*765"), "MX"))
    assert not same_number(keys(one("765")), fact_keys(one("*765"), "MX"))
    assert not same_number(keys(one("*911")), fact_keys("911", "MX"))


def test_belize_and_its_leading_zero() -> None:
    assert same_number(keys(one("0-800-922-8477")), fact_keys(one("800 922 8477"), "BZ"))


def test_an_extension_is_not_a_second_number() -> None:
    assert [c.digits for c in find_numbers("55 5242 5100 ext. 5086")] == ["5552425100"]
    assert [c.digits for c in find_numbers("809-508-2555 extension 2071")] == ["8095082555"]


def test_several_numbers_in_one_message_in_order() -> None:
    found = find_numbers("me dieron 55 1234 5678, el 2411-9191 y tambien +1 888 373 7888")
    assert [c.digits for c in found] == ["5512345678", "24119191", "+18883737888"]


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("55-ABC-1234", "letters"),
        ("1-800-FLOWERS-1", "letters"),
        ("5512345678 5587654321", "too_long"),
        ("551234567", "length"),
        ("+52 55 1234 567", "length"),
        ("7", "too_short"),
    ],
)
def test_what_cannot_be_a_number_says_why(typed: str, problem: str) -> None:
    (found,) = find_numbers(typed)
    assert found.problem == problem
    assert not found.usable


def test_a_number_outside_the_region_is_kept_whole() -> None:
    assert keys(one("+34 612 345 678")) == frozenset({("?", "34612345678")})


def test_words_emoji_and_visa_names_are_not_numbers() -> None:
    assert find_numbers("😀 hola, visa H-2A y H-2B?") == []
    assert find_numbers("") == []


def test_long_numbers_are_told_from_years_and_prices() -> None:
    assert has_long_number("llama al 55 1234 5678")
    assert not has_long_number("en 2025 pagaron 1500 dolares")
    assert not has_long_number("55-ABC-1234")


def test_the_tail_is_all_an_unknown_number_shows() -> None:
    (found,) = find_numbers("+52 55 1234 5678")
    assert found.tail() == "5678"
