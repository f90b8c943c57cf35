"""Finding the country a person names, as an ISO code: "guate" -> GT, "el norte" -> US,
"guatemla" -> GT. One typo is forgiven in aliases of 6 letters or more ("temas" is not "texas")."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import yaml

from hotline.paths import CONTENT, ROOT
from hotline.text import fold_accents

FUZZY_MIN_LENGTH = 6


@dataclass(frozen=True)
class CountryMention:
    start: int
    end: int
    text: str
    code: str


@lru_cache(maxsize=1)
def load_aliases() -> dict[str, str]:
    """alias (lower case, unaccented) -> ISO code, from the `country_XX` lookup tables."""
    data = yaml.safe_load((ROOT / "nlu_data" / "country_lookup.yml").read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for table in data["nlu"]:
        code = table["lookup"].removeprefix("country_")
        for line in table["examples"].splitlines():
            alias = line.strip().removeprefix("- ").strip()
            if alias:
                aliases[fold_accents(alias.lower())] = code
    return aliases


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    """ISO code -> the country's name in answers, from content/countries.yml."""
    data = yaml.safe_load((CONTENT / "countries.yml").read_text(encoding="utf-8"))
    return {str(code): str(name) for code, name in data["countries"].items()}


def _within_one_edit(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion, substitution or swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, folded lower word) for each run of letters/digits, offsets in text."""
    folded = fold_accents(text.lower())
    # fold_accents keeps one character per input character for Latin text; fall back
    # to the raw lower text when it does not (other scripts), so offsets stay right.
    if len(folded) != len(text):
        folded = text.lower()
    words, start = [], None
    for i, ch in enumerate(folded + " "):
        if ch.isalnum() or ch == ".":
            if start is None:
                start = i
        elif start is not None:
            words.append((start, i, folded[start:i].strip(".")))
            start = None
    return [w for w in words if w[2]]


def find_countries(text: str, aliases: dict[str, str] | None = None) -> list[CountryMention]:
    """Country mentions in text, longest alias first, without overlaps."""
    aliases = aliases if aliases is not None else load_aliases()
    words = _words(text)
    taken = [False] * len(words)
    found: list[CountryMention] = []
    for size in (4, 3, 2, 1):
        for i in range(len(words) - size + 1):
            if any(taken[i : i + size]):
                continue
            phrase = " ".join(w[2] for w in words[i : i + size])
            code = aliases.get(phrase)
            if code is None and len(phrase) >= FUZZY_MIN_LENGTH:
                code = next(
                    (c for a, c in aliases.items() if len(a) >= FUZZY_MIN_LENGTH and _within_one_edit(phrase, a)), None
                )
            if code:
                start, end = words[i][0], words[i + size - 1][1]
                found.append(CountryMention(start, end, text[start:end], code))
                taken[i : i + size] = [True] * size
    return sorted(found, key=lambda m: m.start)
