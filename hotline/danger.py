"""The danger lexicon's matching rule, shared by the Rasa component and the tests.

One strong pattern, or two different weak ones, make a message an emergency. A dampener
(a game, a film, football, school, a laugh, a hijacked account) silences the strong
patterns, so only two weak ones still count: "me secuestraron en el free fire jaja" and
"me secuestraron la cuenta" are not emergencies, "me secuestraron" is. Patterns
are matched against `lexicon_form(text)`: lower case, accents stripped (ñ -> n, as people
type without them), white space collapsed. The patterns themselves are NLU data:
nlu_data/danger_lexicon.yml (`regex: danger_strong` / `regex: danger_weak`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hotline.paths import ROOT

LEXICON = ROOT / "nlu_data" / "danger_lexicon.yml"


def lexicon_form(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped).strip()


@dataclass
class DangerLexicon:
    strong: list[re.Pattern[str]] = field(default_factory=list)
    weak: list[re.Pattern[str]] = field(default_factory=list)
    dampeners: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def from_patterns(cls, strong: list[str], weak: list[str], dampeners: list[str] | None = None) -> DangerLexicon:
        def compiled(patterns: list[str]) -> list[re.Pattern[str]]:
            return [re.compile(p) for p in patterns]

        return cls(compiled(strong), compiled(weak), compiled(dampeners or []))

    @classmethod
    def from_file(cls, path: Path = LEXICON) -> DangerLexicon:
        """Read the lexicon straight from the NLU file (tests and tools; Rasa reads it as data)."""
        patterns: dict[str, list[str]] = {"danger_strong": [], "danger_weak": [], "danger_dampener": []}
        for item in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            for line in item["examples"].splitlines():
                if line.strip().startswith("- "):
                    patterns[item["regex"]].append(line.strip()[2:])
        return cls.from_patterns(patterns["danger_strong"], patterns["danger_weak"], patterns["danger_dampener"])

    def is_danger(self, text: str) -> bool:
        form = lexicon_form(text)
        if any(p.search(form) for p in self.strong) and not any(p.search(form) for p in self.dampeners):
            return True
        return sum(1 for p in self.weak if p.search(form)) >= 2
