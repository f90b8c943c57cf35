"""The console's Spanish labels of content/console.yml (read once).

Python code names a label by its path (`label("cases", "empty")`); a path that is not in the
file, or that leads to something other than text, raises LabelError naming it. Modules look
their labels up at import, so a missing key stops the console from starting instead of
showing up as an error page later.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import yaml

from hotline.paths import CONTENT


class LabelError(LookupError):
    """A label path that content/console.yml does not have (or that is not text)."""


@lru_cache(maxsize=1)
def console_labels() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "console.yml").read_text(encoding="utf-8"))
    return data


def _find(path: tuple[str, ...]) -> Any:
    node: Any = console_labels()
    for depth, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            raise LabelError(f"content/console.yml has no {'.'.join(path[: depth + 1])}")
        node = node[key]
    return node


def label(*path: str) -> str:
    """The text at `path` (section, key, ...)."""
    found = _find(path)
    if not isinstance(found, str):
        raise LabelError(f"content/console.yml: {'.'.join(path)} is not text")
    return found


def label_map(*path: str, keys: Iterable[str] = ()) -> dict[str, str]:
    """The texts under `path`, e.g. the Spanish names of the roles: all of them, or only
    `keys` (each of which must be there)."""
    found = _find(path)
    if not isinstance(found, dict):
        raise LabelError(f"content/console.yml: {'.'.join(path)} is not a mapping")
    wanted = tuple(keys)
    return {key: label(*path, key) for key in (wanted or found)}
