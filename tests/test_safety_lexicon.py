"""The emergency safety net fires on danger and stays quiet on everyday talk."""

from __future__ import annotations

import pytest

from hotline.danger import DangerLexicon, lexicon_form
from hotline.paths import ROOT
from tests.nlu_examples import all_examples

TRAINING = all_examples(ROOT / "nlu_data")


@pytest.fixture(scope="module")
def lexicon() -> DangerLexicon:
    return DangerLexicon.from_file()


def share(lexicon: DangerLexicon, intent: str) -> float:
    texts = [t for i, t in TRAINING if i == intent]
    assert texts, intent
    return sum(map(lexicon.is_danger, texts)) / len(texts)


def test_lexicon_has_strong_and_weak_patterns(lexicon: DangerLexicon) -> None:
    assert len(lexicon.strong) >= 20
    assert len(lexicon.weak) >= 5


def test_fires_on_training_emergencies(lexicon: DangerLexicon) -> None:
    assert share(lexicon, "emergency") >= 0.95


def test_never_fires_on_out_of_scope_training(lexicon: DangerLexicon) -> None:
    assert share(lexicon, "out_of_scope") == 0.0


def test_rarely_fires_on_reports(lexicon: DangerLexicon) -> None:
    assert share(lexicon, "report_case") <= 0.03


@pytest.mark.parametrize(
    "text",
    [
        "auxilio",
        "AUXILIOOO",
        "me tienen encerrada",
        "nos tienen encerrados y no podemos salir",
        "tienen a mi hermana encerrada en un bar",
        "me quieren matar",
        "secuestraron a mi esposo",
    ],
)
def test_danger_messages(lexicon: DangerLexicon, text: str) -> None:
    assert lexicon.is_danger(text)


@pytest.mark.parametrize(
    "text",
    [
        "este calor me mata",
        "mi mama me va a matar si llego tarde",
        "estoy encerrado en mi cuarto estudiando",
        "me mataron en free fire",
        "ayuda",  # the menu word, not a cry for help
        "viste la serie del secuestro?",
    ],
)
def test_everyday_hyperbole(lexicon: DangerLexicon, text: str) -> None:
    assert not lexicon.is_danger(text)


def test_lexicon_form_strips_accents_and_case() -> None:
    assert lexicon_form("  Niña   ENCERRÁDA ") == "nina encerrada"
