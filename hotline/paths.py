"""Where the project's data lives, found from this file so no working directory is assumed."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"
BUILD = ROOT / "build"
PUBLIC_FIGURES = ROOT / "public" / "cifras"  # written by reports.public_figures, never read
