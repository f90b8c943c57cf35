"""When a message asks whether a phone number is real, shared by the Rasa component
(rasa_plugins.verify.VerifyNumberDetector) and the tests.

Two ways, both NLU data in nlu_data/verify.yml so they can be reviewed with the examples:
- the command word at the start of the message (`regex: verify_command`: VERIFICAR and its
  typos: "verifica", "verificar numero", "berificar");
- a full phone number (7 digits or more) with a question whether it is real or official
  (`regex: verify_question`: "es real", "es de migracion", "oficial", "falso"...).
Patterns are matched against `lexicon_form(text)` (lower case, no accents, single spaces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hotline.danger import lexicon_form
from hotline.paths import ROOT
from hotline.phone import has_long_number

CUES = ROOT / "nlu_data" / "verify.yml"
KINDS = ("verify_command", "verify_question")


@dataclass
class VerifyCues:
    command: list[re.Pattern[str]] = field(default_factory=list)
    question: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def from_patterns(cls, command: list[str], question: list[str]) -> VerifyCues:
        return cls([re.compile(p) for p in command], [re.compile(p) for p in question])

    @classmethod
    def from_file(cls, path: Path = CUES) -> VerifyCues:
        """Read the cues straight from the NLU file (tests and tools; Rasa reads them as data)."""
        patterns: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for item in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
            if item.get("regex") in patterns:
                lines = [line.strip() for line in item["examples"].splitlines()]
                patterns[item["regex"]] += [line[2:] for line in lines if line.startswith("- ")]
        return cls.from_patterns(patterns["verify_command"], patterns["verify_question"])

    def is_command(self, text: str) -> bool:
        form = lexicon_form(text)
        return any(p.search(form) for p in self.command)

    def asks_about_a_number(self, text: str) -> bool:
        """A full phone number and a question whether it is real."""
        form = lexicon_form(text)
        return any(p.search(form) for p in self.question) and has_long_number(text)
