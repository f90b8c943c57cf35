"""Keep bench/RESULTS.md: each benchmark rewrites only its own section."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = "# Benchmark results\n\nEach section is rewritten by the benchmark that owns it (see bench/).\n"


def replace_section(path: Path, title: str, body: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    found = pattern.search(text)
    text = pattern.sub(lambda _: section + "\n", text) if found else text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
