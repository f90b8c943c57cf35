"""Rule-based triage of a report: a priority, a score and the reasons staff see.

Rules, points, words and labels live in content/triage.yml so staff can read and tune them.
A reason is a key ("danger_now", "minors", "place_known", "recent"); its Spanish label is for
the console and notifications.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import yaml

from hotline.paths import CONTENT
from hotline.text import fold_accents

TRIAGE_FILE = CONTENT / "triage.yml"
REASONS = ("danger_now", "minors", "place_known", "recent")


class TriageInput(Protocol):
    """The fields triage reads (ReportDraft has them)."""

    @property
    def danger_now(self) -> bool | None: ...
    @property
    def minors(self) -> bool | None: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def place(self) -> str | None: ...
    @property
    def when(self) -> str | None: ...


@dataclass(frozen=True)
class Triage:
    priority: str
    score: int
    reasons: tuple[str, ...]


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TRIAGE_FILE.read_text(encoding="utf-8"))
    return data


def _plain(text: str) -> str:
    """Lower case, no accents (ñ kept), single spaces: how the word lists are written."""
    return " ".join(re.findall(r"[\wñ]+", fold_accents(text.lower())))


@lru_cache(maxsize=1)
def _recent_pattern() -> re.Pattern[str]:
    words = sorted((_plain(w) for w in rules()["recent_words"]), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)")


def is_recent(when: str | None) -> bool:
    """Whether a "when" answer says now, today or the last days ("ayer", "hace 2 dias")."""
    return bool(when) and _recent_pattern().search(_plain(when or "")) is not None


def people_count(people: str | None) -> int | None:
    """The number in a "people" answer ("como 5", "unas veinte"), or None."""
    if not people:
        return None
    text = _plain(people)
    digits = re.search(r"\d+", text)
    if digits:
        return int(digits.group(0))
    numbers: dict[str, int] = rules()["number_words"]
    for word in text.split():
        if word in numbers:
            return int(numbers[word])
    return None


def triage(draft: TriageInput) -> Triage:
    """Score the report; urgent whenever someone is in danger now."""
    found: list[str] = []
    if draft.danger_now:
        found.append("danger_now")
    if draft.minors or draft.kind == "child":
        found.append("minors")
    if draft.place and draft.place.strip():
        found.append("place_known")
    if is_recent(draft.when):
        found.append("recent")
    config = rules()
    score = sum(int(config["points"][reason]) for reason in found)
    if draft.danger_now or score >= int(config["urgent_score"]):
        priority = "urgent"
    elif score >= int(config["high_score"]):
        priority = "high"
    else:
        priority = "normal"
    return Triage(priority, score, tuple(found))


def reason_labels(reasons: tuple[str, ...] | list[str]) -> list[str]:
    """Spanish labels of reason keys, for the console and notifications."""
    labels: dict[str, str] = rules()["reason_labels"]
    return [labels.get(reason, reason) for reason in reasons]


def priority_label(priority: str) -> str:
    labels: dict[str, str] = rules()["priority_labels"]
    return labels.get(priority, priority)


def response_time(priority: str) -> timedelta:
    """How long staff have to act on a report of this priority (content/triage.yml)."""
    hours: dict[str, float] = rules()["response_hours"]
    return timedelta(hours=float(hours.get(priority, hours["normal"])))


def response_deadline(priority: str, created_at: datetime) -> datetime:
    return created_at + response_time(priority)
