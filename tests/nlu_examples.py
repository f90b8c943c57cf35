"""Read Rasa NLU YAML examples (annotations removed) without needing Rasa installed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ANNOTATION = re.compile(r"\[([^\]]+)\](?:\{[^}]*\}|\([^)]*\))")


def examples(path: Path) -> list[tuple[str, str]]:
    """(intent, plain text) for every intent example in one NLU file."""
    found = []
    for item in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
        if "intent" in item:
            for line in item["examples"].splitlines():
                line = line.strip()
                if line.startswith("- "):
                    found.append((item["intent"], ANNOTATION.sub(r"\1", line[2:])))
    return found


def all_examples(folder: Path) -> list[tuple[str, str]]:
    return [e for path in sorted(folder.glob("*.yml")) for e in examples(path)]
