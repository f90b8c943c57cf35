"""Triage, table-driven: each row is a report as a tipster would answer and the priority,
score and reasons staff should see."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from reports.triage import REASONS, is_recent, people_count, priority_label, reason_labels, rules, triage


@dataclass
class Answers:
    danger_now: bool | None = None
    minors: bool | None = None
    kind: str | None = None
    place: str | None = None
    when: str | None = None


CASES = [
    ("nothing known", Answers(), "normal", 0, ()),
    ("danger alone is urgent", Answers(danger_now=True), "urgent", 3, ("danger_now",)),
    ("minors alone is high", Answers(minors=True), "high", 2, ("minors",)),
    ("child kind counts as minors", Answers(kind="child"), "high", 2, ("minors",)),
    ("place alone is normal", Answers(place="Tapachula, por el mercado"), "normal", 1, ("place_known",)),
    ("blank place is not a place", Answers(place="   "), "normal", 0, ()),
    ("place and recent is high", Answers(place="Tecún Umán", when="ayer"), "high", 2, ("place_known", "recent")),
    (
        "minors, place, recent is urgent",
        Answers(minors=True, place="Zona 1", when="hoy"),
        "urgent",
        4,
        ("minors", "place_known", "recent"),
    ),
    (
        "minors and place is high",
        Answers(minors=True, place="Zona 1", when="el año pasado"),
        "high",
        3,
        ("minors", "place_known"),
    ),
    ("everything", Answers(True, True, "sexual", "casa azul", "ahorita"), "urgent", 7, REASONS),
    ("danger false is no reason", Answers(danger_now=False, minors=False), "normal", 0, ()),
]


@pytest.mark.parametrize(("answers", "priority", "score", "reasons"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_triage(answers: Answers, priority: str, score: int, reasons: tuple[str, ...]) -> None:
    result = triage(answers)
    assert (result.priority, result.score, result.reasons) == (priority, score, reasons)


@pytest.mark.parametrize(
    "when",
    [
        "ahorita",
        "AHORA MISMO",
        "hoy en la mañana",
        "Ayer",
        "anoche",
        "esta semana",
        "hace 2 dias",
        "hace dos días",
        "hace un rato",
        "todavía los tienen",
        "antier",
        "el sábado",
    ],
)
def test_recent_answers(when: str) -> None:
    assert is_recent(when)


@pytest.mark.parametrize(
    "when", [None, "", "el año pasado", "hace meses", "en 2019", "no sé", "hace 3 años", "hoyo", "ahorros", "mayo"]
)
def test_answers_that_are_not_recent(when: str | None) -> None:
    assert not is_recent(when)


@pytest.mark.parametrize(
    ("people", "count"),
    [
        ("3", 3),
        ("como 5", 5),
        ("unas veinte", 20),
        ("más de 12 personas", 12),
        ("no sé", None),
        (None, None),
        ("", None),
    ],
)
def test_people_count(people: str | None, count: int | None) -> None:
    assert people_count(people) == count


def test_every_reason_has_points_and_a_spanish_label() -> None:
    config = rules()
    assert set(config["points"]) == set(REASONS) == set(config["reason_labels"])
    assert reason_labels(("danger_now", "minors")) == ["Peligro ahora", "Hay menores"]
    assert priority_label("urgent") == "URGENTE"
