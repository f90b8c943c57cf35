"""The public figures page: reports by country and kind (with their totals) and by month, as
a static HTML file written by a job, never served by the console:

    python -m reports.public_figures [--out DIR]     # HOTLINE_PUBLIC_DIR, default public/cifras

The job reads only plain columns (country, kind, created_at: nothing is unsealed, no key is
needed), so it can run anywhere with the database URL; the web server that publishes /cifras
serves the folder as static files and the console (which holds the private key) stays off the
internet. Small counts are hidden with the cells and totals that would give them back
(reports/suppression.py, k = HOTLINE_PUBLIC_MIN_COUNT, default 5). Questions by topic and
month come from `question_counts` (reports/questions.py: counts of answers, never texts),
only for the topics content/public_figures.yml names, suppressed by the same rule.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from sqlalchemy import Engine, select

from hotline.paths import CONTENT, PUBLIC_FIGURES
from reports.config import _int, load_settings
from reports.db import make_engine, transaction
from reports.models import Report
from reports.questions import count_questions
from reports.suppression import Equation, Key, protect

DEFAULT_MIN_COUNT = 5
TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def public_labels() -> dict[str, Any]:
    """content/public_figures.yml (Spanish labels of the page and of the researchers' export)."""
    data: dict[str, Any] = yaml.safe_load((CONTENT / "public_figures.yml").read_text(encoding="utf-8"))
    return data


@lru_cache(maxsize=1)
def country_names() -> dict[str, str]:
    data = yaml.safe_load((CONTENT / "countries.yml").read_text(encoding="utf-8"))
    return {str(code): str(name) for code, name in data["countries"].items()}


def min_count(env: Mapping[str, str] = os.environ) -> int:
    """k: counts from 1 to k - 1 are never published (HOTLINE_PUBLIC_MIN_COUNT, at least 2)."""
    return _int(env, "HOTLINE_PUBLIC_MIN_COUNT", DEFAULT_MIN_COUNT, minimum=2)


def count_reports(engine: Engine) -> Counter[tuple[str, str, str]]:
    """(country, kind, month) -> reports, from plain columns ("" where there is no value)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    with transaction(engine) as session:
        for country, kind, created_at in session.execute(select(Report.country, Report.kind, Report.created_at)):
            counts[(country or "", kind or "", created_at.strftime("%Y-%m"))] += 1
    return counts


def table(counts: Mapping[tuple[str, str, str], int]) -> tuple[dict[Key, int], list[Equation]]:
    """The published cells (country x kind, each country's and kind's total, each month, the
    grand total) and the equations that tie them: what an attacker can use."""
    values: dict[Key, int] = Counter()
    countries = sorted({c for c, _, _ in counts})
    kinds = sorted({k for _, k, _ in counts})
    months = sorted({m for _, _, m in counts})
    for country in countries:
        for kind in kinds:
            values[("cell", country, kind)] = 0
    for (country, kind, month), n in counts.items():
        values[("cell", country, kind)] += n
        values[("country", country)] += n
        values[("kind", kind)] += n
        values[("month", month)] += n
        values[("total",)] += n
    equations: list[Equation] = []
    for country in countries:
        equations.append((*tuple((("cell", country, k), 1) for k in kinds), (("country", country), -1)))
    for kind in kinds:
        equations.append((*tuple((("cell", c, kind), 1) for c in countries), (("kind", kind), -1)))
    for dimension, names in (("country", countries), ("kind", kinds), ("month", months)):
        if names:
            equations.append((*tuple(((dimension, name), 1) for name in names), (("total",), -1)))
    return dict(values), equations


def published_questions(counts: Mapping[tuple[str, str, str], int]) -> Counter[tuple[str, str]]:
    """(topic, month) -> answers, over all countries, for the topics the page names."""
    topics = public_labels()["topics"]
    published: Counter[tuple[str, str]] = Counter()
    for (month, _country, topic), n in counts.items():
        if topic in topics:
            published[(topic, month)] += n
    return published


def question_table(counts: Mapping[tuple[str, str], int]) -> tuple[dict[Key, int], list[Equation]]:
    """Topic x month cells, each topic's and month's total and the grand total, with the
    equations that tie them (keys start with "q": one suppression over both tables)."""
    topics = sorted({t for t, _ in counts})
    months = sorted({m for _, m in counts})
    values: dict[Key, int] = Counter()
    for topic in topics:
        for month in months:
            values[("q", topic, month)] = counts.get((topic, month), 0)
            values[("qtopic", topic)] += counts.get((topic, month), 0)
            values[("qmonth", month)] += counts.get((topic, month), 0)
            values[("qtotal",)] += counts.get((topic, month), 0)
    equations: list[Equation] = []
    for topic in topics:
        equations.append((*tuple((("q", topic, m), 1) for m in months), (("qtopic", topic), -1)))
    for month in months:
        equations.append((*tuple((("q", t, month), 1) for t in topics), (("qmonth", month), -1)))
    for dimension, names in (("qtopic", topics), ("qmonth", months)):
        if names:
            equations.append((*tuple(((dimension, name), 1) for name in names), (("qtotal",), -1)))
    return dict(values), equations


@dataclass(frozen=True)
class Shown:
    key: str
    label: str
    shown: str


def render(
    counts: Mapping[tuple[str, str, str], int],
    k: int,
    now: datetime,
    questions: Mapping[tuple[str, str, str], int] | None = None,
) -> str:
    """The page's HTML: every hidden cell is written the same way (primary or complementary
    cannot be told apart, so a complementary cell gives no bound away)."""
    t = public_labels()["page"]
    values, equations = table(counts)
    asked = published_questions(questions or {})
    q_values, q_equations = question_table(asked)
    values, equations = {**values, **q_values}, equations + q_equations
    hidden = protect(values, equations, k)
    countries = sorted({c for c, _, _ in counts}, key=lambda c: (c == "", c))
    kinds = sorted({kind for _, kind, _ in counts}, key=lambda kind: (-values[("kind", kind)], kind))
    names = public_labels()["kinds"]

    def shown(key: Key, label: str = "") -> Shown:
        return Shown("|".join(key), label, str(t["hidden"]) if key in hidden else str(values.get(key, 0)))

    def country_label(code: str) -> str:
        return country_names().get(code, code) if code else str(t["no_value"])

    def kind_label(kind: str) -> str:
        return str(names.get(kind, kind)) if kind else str(t["no_value"])

    cross = {
        "columns": [{"key": kind, "label": kind_label(kind)} for kind in kinds],
        "rows": [
            {
                "key": country,
                "label": country_label(country),
                "cells": [shown(("cell", country, kind)) for kind in kinds],
                "total": shown(("country", country)),
            }
            for country in countries
        ],
        "totals": [shown(("kind", kind)) for kind in kinds],
        "grand": shown(("total",)),
    }
    months = [shown(("month", m), m) for m in sorted({m for _, _, m in counts})]
    q_months = sorted({m for _, m in asked})
    q_topics = sorted({t for t, _ in asked}, key=lambda topic: (-values[("qtopic", topic)], topic))
    topic_names = public_labels()["topics"]
    by_topic = {
        "columns": q_months,
        "rows": [
            {
                "key": topic,
                "label": str(topic_names[topic]),
                "cells": [shown(("q", topic, m)) for m in q_months],
                "total": shown(("qtopic", topic)),
            }
            for topic in q_topics
        ],
        "totals": [shown(("qmonth", m)) for m in q_months],
        "grand": shown(("qtotal",)),
    }
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return environment.get_template("public_figures.html").render(
        t=t,
        cross=cross,
        months=months,
        by_topic=by_topic,
        generated=str(t["generated"]).format(date=now.date().isoformat()),
        hidden_note=str(t["hidden_note"]).format(k=k),
    )


def write_page(engine: Engine, out: Path, k: int, now: datetime) -> Path:
    """Write index.html into `out` (made if missing), replacing the old page atomically."""
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    partial = out / ".index.html.tmp"
    partial.write_text(render(count_reports(engine), k, now, count_questions(engine)), encoding="utf-8")
    partial.chmod(0o644)
    partial.replace(page)
    return page


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the public figures page (static HTML).")
    parser.add_argument("--out", type=Path, default=None, help="folder (HOTLINE_PUBLIC_DIR, default public/cifras)")
    args = parser.parse_args(argv)
    out = args.out or Path(os.environ.get("HOTLINE_PUBLIC_DIR", "").strip() or PUBLIC_FIGURES)
    engine = make_engine(load_settings().database_url)
    try:
        page = write_page(engine, out, min_count(), datetime.now(UTC))
    finally:
        engine.dispose()
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
