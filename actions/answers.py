"""Reading answers typed on a phone inside the report and follow-up forms: skip, cancel,
yes/no, a kind of exploitation by number or word. Word lists live in
content/report_form.yml so they can be reviewed without reading Python."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from hotline.paths import CONTENT
from hotline.text import fold_accents, without_control

SKIPPED = "skip"  # slot value of a skipped question: a filled slot, so the form goes on
_PUNCTUATION = re.compile(r"[^\w\s\-?]+")
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def form_content() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "report_form.yml").read_text(encoding="utf-8"))
    return data


def normalize(text: str) -> str:
    """Lower case, no accents, no punctuation or emoji, single spaces: "¡No sé!" -> "no se"."""
    folded = fold_accents(text.lower())
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", folded)).strip(" -") or folded.strip()


def is_word(text: str, group: str) -> bool:
    """Whether the whole message is one of the words of a group (skip, cancel, done...)."""
    return normalize(text) in set(form_content()["words"][group])


def message_limit() -> int:
    return int(form_content()["limits"]["message_chars"])


@dataclass(frozen=True)
class Clipped:
    text: str
    clipped: bool


def clip(text: str, limit: int | None = None) -> Clipped:
    """The message without control characters (NUL, bell... a phone never means them),
    cut to one message's limit; the caller tells the person when it was cut."""
    limit = limit or message_limit()
    text = without_control(text).strip()
    return Clipped(text[:limit], len(text) > limit)


def yes_no(text: str, intent: str | None = None, confidence: float = 0.0) -> str | None:
    """ "yes", "no", SKIPPED, or None when the answer is neither. Words decide first (they
    are exact); the classifier's affirm/deny only when it is sure."""
    if is_word(text, "skip"):
        return SKIPPED
    words = normalize(text).split()
    if words and (is_word(text, "yes") or (words[0] in form_content()["words"]["yes"] and len(words) <= 4)):
        return "yes"
    if words and (is_word(text, "no") or (words[0] in form_content()["words"]["no"] and len(words) <= 4)):
        return "no"
    if intent in ("affirm", "deny") and confidence >= 0.8:
        return "yes" if intent == "affirm" else "no"
    return None


def kind_of(text: str) -> str | None:
    """The kind of exploitation named by a number (1-8) or a word, SKIPPED, or None."""
    if is_word(text, "skip"):
        return SKIPPED
    answer = normalize(text)
    kinds: dict[str, dict[str, Any]] = form_content()["kinds"]
    for key, kind in kinds.items():
        if kind["option"] is not None and answer == kind["option"]:
            return key
    padded = f" {answer} "
    for key, kind in kinds.items():
        if any(f" {word} " in padded for word in kind["words"]):
            return key
    return None


def kind_label(key: str) -> str:
    label: str = form_content()["kinds"][key]["label"]
    return label


def shown(value: str | None) -> str:
    """How a yes/no/skipped answer is repeated in the summary."""
    words: dict[str, str] = form_content()["shown"]
    if value in ("yes", "no"):
        return words[value]
    return words["skipped"]
