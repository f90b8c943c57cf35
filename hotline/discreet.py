"""Discreet mode: what a watched phone may show (content/discreet.yml).

One module for the three places that apply it: the build (every response's discreet twin),
the gateway (its own notices, staff messages, and a last guard on anything it sends) and the
tests that scan every rendered text. The rule is a word list, matched on whole words with
accents and case ignored, so that "Policía", "POLICIA" and "policia" are one word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from hotline.paths import CONTENT
from hotline.text import fold_accents, folded_words

HIDDEN = "(...)"  # what the gateway's last guard puts in place of a word it cannot rephrase


@dataclass(frozen=True)
class DiscreetContent:
    sensitive: re.Pattern[str]  # on folded, lower-case text
    replacements: tuple[tuple[re.Pattern[str], str], ...]
    responses: dict[str, dict[str, list[str]]]  # hand-written twins: name -> variant -> pages
    gateway_texts: dict[str, str]
    switches: dict[str, bool]  # response name -> the mode it switches to
    commands: frozenset[str]  # whole messages that only switch the mode (folded)


def _word_pattern(words: list[str]) -> re.Pattern[str]:
    parts = []
    for word in words:
        folded = re.escape(fold_accents(word.lower()).rstrip("*"))
        parts.append(folded + r"\w*" if word.endswith("*") else folded)
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b")


@lru_cache(maxsize=1)
def discreet_content() -> DiscreetContent:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "discreet.yml").read_text(encoding="utf-8"))
    replacements = tuple((re.compile(pattern, re.IGNORECASE), text) for pattern, text in data["replacements"])
    responses = {
        name: {str(variant): [pages] if isinstance(pages, str) else list(pages) for variant, pages in variants.items()}
        for name, variants in (data.get("responses") or {}).items()
    }
    return DiscreetContent(
        sensitive=_word_pattern([str(w) for w in data["sensitive_words"]]),
        replacements=replacements,
        responses=responses,
        gateway_texts={str(k): str(v) for k, v in (data.get("gateway_texts") or {}).items()},
        switches={str(k): bool(v) for k, v in (data.get("switches") or {}).items()},
        commands=frozenset(folded_words(str(c)) for c in data.get("commands") or []),
    )


def is_mode_command(text: str) -> bool:
    """A message that only says DISCRETO or NORMAL (nothing to keep in a report)."""
    return folded_words(text) in discreet_content().commands


def sensitive_words_in(text: str) -> list[str]:
    """The sensitive words a text holds (folded, lower case), in order; [] when it is safe."""
    return discreet_content().sensitive.findall(fold_accents(text.lower()))


def _starts_sentence(before: str) -> bool:
    """After nothing, a line break, ¿ ¡ ? ! or a full stop (not an abbreviation: "EE.UU.")."""
    if not before or before[-1] in "\n¿¡?!":
        return True
    return before[-1] == "." and len(before) > 1 and not before[-2].isupper()


def _fit_case(replacement: str) -> Any:
    """A replacement with the case its place asks for: a capital at the start of a
    sentence, lower case where the matched word was."""

    def replace(match: re.Match[str]) -> str:
        text = match.expand(replacement)
        if _starts_sentence(match.string[: match.start()].rstrip(" ")):
            return text[:1].upper() + text[1:]
        if match.group(0)[:1].islower():
            return text[:1].lower() + text[1:]
        return text

    return replace


def rephrase(text: str) -> str:
    """The text with the file's replacements applied (it may still hold a sensitive word)."""
    for pattern, replacement in discreet_content().replacements:
        text = pattern.sub(_fit_case(replacement), text)
    return re.sub(r"[ \t]{2,}", " ", text)


def hide_sensitive(text: str) -> str:
    """The gateway's last guard: rephrase, then hide any word left. The folded text is only
    used to find the words; the person's accents are kept."""
    text = rephrase(text)
    folded = fold_accents(text.lower())
    if len(folded) != len(text):  # folding changed the length: hide on the folded text
        return discreet_content().sensitive.sub(HIDDEN, folded)
    spans = [match.span() for match in discreet_content().sensitive.finditer(folded)]
    for start, end in reversed(spans):
        text = text[:start] + HIDDEN + text[end:]
    return text


def discreet_override(name: str, variant: str) -> list[str] | None:
    """Hand-written pages of one variant of a response's discreet twin, if any."""
    return discreet_content().responses.get(name, {}).get(variant)


def gateway_notice(key: str) -> str | None:
    """The discreet twin of a gateway notice, when the normal one is not already neutral."""
    return discreet_content().gateway_texts.get(key)
