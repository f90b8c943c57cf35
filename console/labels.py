"""The console's Spanish labels of content/console.yml (read once)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from hotline.paths import CONTENT


@lru_cache(maxsize=1)
def console_labels() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "console.yml").read_text(encoding="utf-8"))
    return data
