"""SMS segment counting (GSM 03.38), the rule every answer's length is checked with."""

import pytest

from hotline.sms import is_gsm7, segment_count, sms_segments, to_gsm7


@pytest.mark.parametrize("char", list("éÉñÑüÜ¿¡àèùìò"))
def test_spanish_letters_in_gsm7(char: str) -> None:
    assert is_gsm7(char)


@pytest.mark.parametrize("char", list("áíóúÁÍÓÚ"))
def test_accented_vowels_outside_gsm7(char: str) -> None:
    assert not is_gsm7(char)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("ñ" * 160, 1),
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("a" * 159 + "á", 3),  # one á turns 160 characters into UCS-2
        ("€" * 80, 1),  # extension characters count twice
        ("€" * 81, 2),
        ("^{}\\[]~|" * 10, 1),
        ("^{}\\[]~|" * 10 + "a", 2),
        ("😀" * 35, 1),  # emoji are two UTF-16 units
        ("😀" * 36, 2),
    ],
)
def test_segment_count(text: str, segments: int) -> None:
    assert segment_count(text) == segments


def test_to_gsm7_keeps_spanish_gsm_letters_and_folds_the_rest() -> None:
    assert to_gsm7("¿Sí? ¡Está aquí, niño! Qué pingüino") == "¿Si? ¡Esta aqui, niño! Qué pingüino"
    assert to_gsm7("hola 👋 “ya”") == 'hola  "ya"'
    assert is_gsm7(to_gsm7("Teléfonos: árbol, Canadá, Panamá, México…"))


def test_sms_segments_counts_the_folded_text() -> None:
    text = "á" * 150
    assert segment_count(text) == 3
    assert sms_segments(text) == 1
