"""Case codes as the reports core uses them (hotline/report_codes.py): format, check
symbol, what people get wrong when typing on a phone."""

from __future__ import annotations

import re

import pytest

from hotline.report_codes import CROCKFORD, check_code, check_symbol, code_body, new_code, normalize_code

CODE_FORMAT = re.compile(r"^TRT-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]$")


def test_new_codes_have_the_format_and_a_valid_check_symbol() -> None:
    codes = [new_code() for _ in range(500)]
    for code in codes:
        assert CODE_FORMAT.match(code), code
        assert check_code(code) == "ok"
        assert set(code_body(code)) <= set(CROCKFORD) and len(code_body(code)) == 8
    assert len(set(codes)) == len(codes)


def test_check_symbol_catches_every_single_symbol_typo() -> None:
    code = "TRT-7K4M-Q2XH-" + check_symbol("7K4MQ2XH")
    symbols = list(code.replace("-", "")[3:])
    for position, original in enumerate(symbols):
        for wrong in CROCKFORD:
            if wrong == original:
                continue
            typed = symbols.copy()
            typed[position] = wrong
            raw = "TRT" + "".join(typed)
            assert check_code(raw) == "typo", (position, wrong)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("TRT-7K4M-Q2XH-{c}", "TRT-7K4M-Q2XH-{c}"),
        ("trt-7k4m-q2xh-{c}", "TRT-7K4M-Q2XH-{c}"),
        ("trt 7k4m q2xh {c}", "TRT-7K4M-Q2XH-{c}"),
        ("TRT7K4MQ2XH{c}", "TRT-7K4M-Q2XH-{c}"),
        ("trt.7k4m.q2xh.{c}", "TRT-7K4M-Q2XH-{c}"),
    ],
)
def test_case_and_separators_do_not_matter(typed: str, expected: str) -> None:
    c = check_symbol("7K4MQ2XH").lower()
    assert normalize_code(typed.format(c=c)) == expected.format(c=c.upper())
    assert check_code(typed.format(c=c)) == "ok"


def test_look_alike_letters_read_as_digits() -> None:
    body = "10010110"
    code = f"TRT-{body[:4]}-{body[4:]}-{check_symbol(body)}"
    typed = code.replace("1", "I", 1).replace("0", "O", 2).replace("1", "l")
    assert typed != code
    assert normalize_code(typed) == code
    assert check_code(typed) == "ok"


def test_without_check_symbol_is_still_looked_up_and_garbage_is_invalid() -> None:
    assert check_code("TRT-7K4M-Q2XH") == "no_check"
    for raw in ("", "hola", "TRT-7K4M", "ABC-7K4M-Q2XH-1", "TRT-7K4M-Q2XH-UU"):
        assert check_code(raw) == "invalid", raw
