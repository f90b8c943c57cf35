"""How answers typed on a phone are read inside the report form (actions/answers.py)."""

from __future__ import annotations

import pytest

from actions import answers
from actions.answers import SKIPPED


@pytest.mark.parametrize(
    ("text", "intent", "expected"),
    [
        ("si", None, "yes"),
        ("Sí", None, "yes"),
        ("siii 🙏", None, "yes"),
        ("claro que si", None, "yes"),
        ("no", None, "no"),
        ("NO!", None, "no"),
        ("nel", None, "no"),
        ("no sé", None, SKIPPED),
        ("saltar", None, SKIPPED),
        ("ni idea", None, SKIPPED),
        ("pues fijate que hay dos chamacas", None, None),
        ("pues fijate que hay dos chamacas", "affirm", "yes"),  # the classifier, when sure
        ("", None, None),
    ],
)
def test_yes_no(text: str, intent: str | None, expected: str | None) -> None:
    assert answers.yes_no(text, intent, 0.95) == expected


def test_an_unsure_classifier_is_not_an_answer() -> None:
    assert answers.yes_no("mmm creo que tal vez", "affirm", 0.5) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "sexual"),
        (" 2 ", "labour"),
        ("los tienen en una finca", "labour"),
        ("los ponen a vender droga", "forced_crime"),
        ("la quieren casar a la fuerza", "forced_marriage"),
        ("8", "other"),
        ("saltar", SKIPPED),
        ("9", None),
        ("algo raro", None),
    ],
)
def test_kind_by_number_or_word(text: str, expected: str | None) -> None:
    assert answers.kind_of(text) == expected


@pytest.mark.parametrize("text", ["CANCELAR", "cancelar.", "ya no quiero", "Olvídalo"])
def test_cancel_words(text: str) -> None:
    assert answers.is_word(text, "cancel")


@pytest.mark.parametrize("text", ["cancelar la cita del bar", "no quiero que lo cancelen"])
def test_cancel_only_as_the_whole_message(text: str) -> None:
    assert not answers.is_word(text, "cancel")


def test_clip_keeps_what_fits_and_says_so() -> None:
    limit = answers.message_limit()
    assert limit == 4000
    clipped = answers.clip("a" * (limit + 10))
    assert clipped.clipped and len(clipped.text) == limit
    assert answers.clip("hola") == answers.Clipped("hola", False)
    assert answers.clip("\x00ho\x07la\n😀 ") == answers.Clipped("hola\n😀", False)


def test_every_kind_has_a_label_and_distinct_option() -> None:
    kinds = answers.form_content()["kinds"]
    options = [k["option"] for k in kinds.values() if k["option"] is not None]
    assert len(options) == len(set(options)) == 8
    assert all(answers.kind_label(key) for key in kinds)


def test_corrections_cover_every_question_of_the_summary() -> None:
    corrections = answers.form_content()["corrections"]
    assert sorted(corrections, key=int) == [str(n) for n in range(1, 10)]


def test_word_lists_hold_only_text() -> None:
    """YAML reads a bare no/yes/on as a boolean: every word must stay a string."""
    groups = answers.form_content()["words"]
    assert all(isinstance(word, str) for words in groups.values() for word in words)
    assert all(isinstance(word, str) for kind in answers.form_content()["kinds"].values() for word in kind["words"])
