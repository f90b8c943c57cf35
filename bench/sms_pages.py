"""How many SMS segments the answers cost (issue 12: one segment by default), side by side
with the content before issue 12. `make bench-sms` (or `.venv/bin/python -m bench.sms_pages
[--baseline REV]`). Prints a table and rewrites its section of bench/RESULTS.md.

A page is every text a person can receive from the built responses (`python -m hotline.build`):
each country variant and MAS page of every answer, the "nothing more" fillers and the menu, in
normal mode; discreet mode's twins (same pages, neutral words) are counted on their own line.
Pages filled at run time ({reasons}, {what}...) are counted as written. Segments are counted
as the SMS channel sends the text (hotline.sms.sms_segments: GSM-7 after to_gsm7). The
baseline is measured the same way on its own code and content, in a temporary git worktree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from bench.results import replace_section

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "d73b231"  # main before issue 12
TITLE = "SMS pages: one segment by default (issue 12)"

# Runs inside the tree being measured (its own hotline.build and hotline.sms), prints JSON.
MEASURE = """
import json
from hotline.build import build
from hotline.sms import sms_segments

def slot(variation, name):
    return next((c["value"] for c in variation.get("condition", []) if c["name"] == name), None)

responses = build(write=False)["responses"]
normal = {n: [v for v in vs if slot(v, "discreet") is not True] for n, vs in responses.items()}
discreet = [v for vs in responses.values() for v in vs if slot(v, "discreet") is True]
pages = {name: [sms_segments(str(v["text"])) for v in variations] for name, variations in normal.items()}
emergency = normal["utter_emergency"]
print(json.dumps({
    "pages": [s for segments in pages.values() for s in segments],
    "first_pages": [s for name, segments in pages.items() if "_more" not in name for s in segments],
    "emergency_known": [sms_segments(str(v["text"])) for v in emergency if slot(v, "country")],
    "emergency_default": [sms_segments(str(v["text"])) for v in emergency if not slot(v, "country")],
    "discreet": [sms_segments(str(v["text"])) for v in discreet],
}))
"""


def measure(tree: Path) -> dict[str, Any]:
    """The page counts of the content and code in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE], cwd=tree, env=env, check=True, capture_output=True, text=True
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def measure_revision(revision: str) -> dict[str, Any]:
    """Measure a past commit in a throwaway worktree (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="sms-baseline-") as parent:
        tree = Path(parent) / "tree"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(tree), revision], check=True)
        try:
            return measure(tree)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)


def rows(data: dict[str, Any]) -> dict[str, str]:
    pages, first = data["pages"], data["first_pages"]
    one = sum(1 for s in pages if s == 1)
    first_one = sum(1 for s in first if s == 1)
    return {
        "pages (every variant, MAS page, filler, menu)": str(len(pages)),
        "one segment": str(one),
        "two segments": str(sum(1 for s in pages if s == 2)),
        "more than two": str(sum(1 for s in pages if s > 2)),
        "share in one segment": f"{one / len(pages):.0%}",
        "first pages (what asking costs) in one segment": f"{first_one} of {len(first)} ({first_one / len(first):.0%})",
        "segments to read every page": str(sum(pages)),
        "emergency, known country: max segments": str(max(data["emergency_known"])),
        "emergency, country unknown: segments": str(max(data["emergency_default"])),
        "discreet-mode variations in one segment": share_of_one(data.get("discreet", [])),
    }


def share_of_one(segments: list[int]) -> str:
    if not segments:
        return "none (no discreet mode)"
    one = sum(1 for s in segments if s == 1)
    return f"{one} of {len(segments)} ({one / len(segments):.0%})"


def table(now: dict[str, str], before: dict[str, str], revision: str) -> str:
    lines = [f"| metric | this tree | main before issue 12 ({revision}) |", "|---|---|---|"]
    lines += [f"| {metric} | {now[metric]} | {before[metric]} |" for metric in now]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision to compare with (default {BASELINE})")
    parser.add_argument("--no-record", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    before_data = measure_revision(args.baseline)
    before, now = rows(before_data), rows(measure(ROOT))
    body = (
        f"Measured {date.today()}: every page the built responses can send (each country variant and MAS page, "
        "the fillers and the menu), segments counted as the SMS channel sends them (GSM-7 after `to_gsm7`: 160 "
        "characters for one segment, 153 each when longer). Pages filled at run time are counted as written. "
        f"Baseline: the same script on main before issue 12 ({args.baseline}), "
        f"{before['one segment']} of {before['pages (every variant, MAS page, filler, menu)']} pages "
        f"({before['share in one segment']}) in one segment. Splitting adds MAS pages, yet reading every page "
        f"costs {now['segments to read every page']} segments against {before['segments to read every page']}. "
        "The build keeps this: it fails when a page grows past its budget, when the one-segment share falls "
        "below 90% or when the emergency answer breaks its rule; content/sms_budget.yml lists the pages allowed "
        "two segments, with why.\n\n" + table(now, before, args.baseline)
    )
    print(table(now, before, args.baseline))
    if not args.no_record:
        replace_section(ROOT / "bench" / "RESULTS.md", TITLE, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
