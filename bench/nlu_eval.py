"""Held-out NLU evaluation: the project's pipeline and Rasa's default pipeline, trained on
the same data (nlu_data/), scored on messages written separately (bench/data/heldout*.yml).

Runs in the Rasa environment: `make bench-nlu` (or `.venv-rasa/bin/python -m bench.nlu_eval
[--only ours] [--keep]`). Prints a table and rewrites its section of bench/RESULTS.md.

Training data versions side by side (`make bench-nlu-versions`): `--version main=/tmp/nlu-base
--version new=.` trains each project tree (a `git worktree add` of another commit, or this
one) with its own config.yml, nlu_data/ and code, in its own process (bench/nlu_worker.py),
and scores every held-out set (or each `--set FILE`) per intent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import replace_section  # noqa: E402

CONTRACT = [
    "greet",
    "goodbye",
    "thank",
    "help",
    "affirm",
    "deny",
    "bot_challenge",
    "ask_rights",
    "ask_trafficking_info",
    "check_job_offer",
    "ask_documents",
    "ask_minor_travel",
    "ask_safe_travel",
    "ask_shelter",
    "ask_hotlines",
    "ask_protection",
    "emergency",
    "report_case",
    "follow_up_report",
    "delete_my_data",
    "human_handoff",
    "inform_country",
]
OOS = "out_of_scope"
HELDOUT_SETS = ["heldout.yml", "heldout_b.yml", "heldout_realworld.yml"]
VERSIONS_SECTION = "NLU: training data versions side by side (issue 12, real-world phrasing)"
PIPELINES = {
    "ours": ROOT / "config.yml",
    "rasa_default": ROOT / "bench" / "configs" / "rasa_default.yml",
    "ours_plain_tokenizer": ROOT / "bench" / "configs" / "ablation_plain_tokenizer.yml",
    "ours_with_diet_40": ROOT / "bench" / "configs" / "diet_40.yml",
}


# The held-out metrics every NLU table shows, as (label, key of the evaluation's result).
METRIC_ROWS = (
    ("macro-F1, contract intents", "macro_f1"),
    ("macro-F1 incl. out_of_scope", "macro_f1_with_oos"),
    ("accuracy", "accuracy"),
    ("emergency recall", "emergency_recall"),
    ("out-of-scope recall", "oos_recall"),
    ("out-of-scope taken as emergency/report_case", "oos_as_alarm"),
)


def load_examples(path: Path) -> list[tuple[str, str, list[dict[str, Any]]]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(m.get("text"), m.get("intent"), m.get("entities") or []) for m in data.intent_examples]


def train(config: Path, out_dir: Path) -> tuple[Path, float]:
    from rasa.model_training import train_nlu

    started = time.monotonic()
    model = train_nlu(
        config=str(config), nlu_data=str(ROOT / "nlu_data"), output=str(out_dir), fixed_model_name=config.stem
    )
    return Path(model), time.monotonic() - started


def predict(model: Path, texts: list[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))

    async def parse_all() -> list[dict[str, Any]]:
        return [await agent.parse_message(t) for t in texts]

    return asyncio.run(parse_all())


def as_label(intent: str) -> str:
    """Out-of-scope answers may come out as out_of_scope or nlu_fallback: both are right."""
    return OOS if intent in (OOS, "nlu_fallback") else intent


def f1(tp: int, fp: int, fn: int) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def score(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    labels = [*CONTRACT, OOS]
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, predicted, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fn[g] += 1
            fp[p] += 1
    per_intent = {label: f1(tp[label], fp[label], fn[label]) for label in labels}
    emergencies = [p for g, p in zip(gold, predicted, strict=True) if g == "emergency"]
    oos = [p for g, p in zip(gold, predicted, strict=True) if g == OOS]
    return {
        "macro_f1": sum(per_intent[label] for label in CONTRACT) / len(CONTRACT),
        "macro_f1_with_oos": sum(per_intent.values()) / len(labels),
        "per_intent": per_intent,
        "emergency_recall": sum(p == "emergency" for p in emergencies) / max(1, len(emergencies)),
        "oos_recall": sum(p == OOS for p in oos) / max(1, len(oos)),
        "oos_as_alarm": sum(p in ("emergency", "report_case") for p in oos) / max(1, len(oos)),
        "accuracy": sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold),
        "n": len(gold),
        "support": dict(Counter(gold)),
    }


def entity_accuracy(
    examples: list[tuple[str, str, list[dict[str, Any]]]], parses: list[dict[str, Any]]
) -> dict[str, float]:
    """Share of annotated country / report_code values found with the right value."""
    found: Counter = Counter()
    total: Counter = Counter()
    for (_, _, entities), parse in zip(examples, parses, strict=True):
        predicted = {(e["entity"], str(e.get("value"))) for e in parse.get("entities", [])}
        for entity in entities:
            if entity["entity"] in ("country", "report_code"):
                total[entity["entity"]] += 1
                found[entity["entity"]] += (entity["entity"], str(entity.get("value"))) in predicted
    return {name: found[name] / total[name] for name in total}


def model_size_mb(model: Path) -> float:
    return model.stat().st_size / 1e6


def run(pipelines: list[str], keep: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="nlu-bench-"))
    sets = {
        name: load_examples(ROOT / "bench" / "data" / name)
        for name in HELDOUT_SETS
        if (ROOT / "bench" / "data" / name).exists()
    }
    for name in pipelines:
        model, seconds = train(PIPELINES[name], workdir)
        entry: dict[str, Any] = {"train_seconds": seconds, "model_mb": model_size_mb(model), "sets": {}}
        for set_name, examples in sets.items():
            parses = predict(model, [t for t, _, _ in examples])
            gold = [as_label(i) for _, i, _ in examples]
            predicted = [as_label(p["intent"]["name"] if p.get("intent") else "nlu_fallback") for p in parses]
            entry["sets"][set_name] = score(gold, predicted)
            entry["sets"][set_name]["entities"] = entity_accuracy(examples, parses)
            entry["sets"][set_name]["errors"] = [
                (t, g, p) for (t, _, _), g, p in zip(examples, gold, predicted, strict=True) if g != p
            ]
        results[name] = entry
        if keep:
            print(f"kept {model}")
    return results


def table(results: dict[str, Any]) -> str:
    names = list(results)
    lines = [f"Measured {date.today()} on {platform.machine()} ({os.cpu_count()} cores), rasa 3.6.21.", ""]
    lines.append("| metric | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    lines.append("| training time (s) | " + " | ".join(f"{results[n]['train_seconds']:.0f}" for n in names) + " |")
    lines.append("| model size (MB) | " + " | ".join(f"{results[n]['model_mb']:.1f}" for n in names) + " |")
    sets = list(results[names[0]]["sets"])
    rows = METRIC_ROWS
    for set_name in sets:
        n = results[names[0]]["sets"][set_name]["n"]
        for label, key in rows:
            lines.append(
                f"| {set_name} ({n}): {label} | "
                + " | ".join(f"{results[x]['sets'][set_name][key]:.3f}" for x in names)
                + " |"
            )
        for entity in ("country", "report_code"):
            if entity in results[names[0]]["sets"][set_name]["entities"]:
                lines.append(
                    f"| {set_name}: {entity} value found | "
                    + " | ".join(f"{results[x]['sets'][set_name]['entities'].get(entity, 0):.3f}" for x in names)
                    + " |"
                )
    lines.append("")
    lines.append("Per-intent F1 (" + ", ".join(sets) + "; " + " / ".join(names) + "):")
    lines.append("")
    lines.append("| intent | " + " | ".join(f"{n} {s}" for n in names for s in sets) + " |")
    lines.append("|---|" + "---|" * (len(names) * len(sets)))
    for intent in [*CONTRACT, OOS]:
        lines.append(
            f"| {intent} | "
            + " | ".join(f"{results[n]['sets'][s]['per_intent'][intent]:.2f}" for n in names for s in sets)
            + " |"
        )
    return "\n".join(lines)


def score_parses(examples: list[tuple[str, str, list[dict[str, Any]]]], parses: list[dict[str, Any]]) -> dict[str, Any]:
    """One held-out set's scores and errors from the model's parses."""
    gold = [as_label(i) for _, i, _ in examples]
    predicted = [as_label((p.get("intent") or {}).get("name") or "nlu_fallback") for p in parses]
    scored = score(gold, predicted)
    scored["entities"] = entity_accuracy(examples, parses)
    scored["errors"] = [(t, g, p) for (t, _, _), g, p in zip(examples, gold, predicted, strict=True) if g != p]
    return scored


def run_versions(versions: dict[str, Path], set_paths: list[Path], reuse: list[str]) -> dict[str, Any]:
    """Train each project tree in its own process and score every set with its model."""
    sets = {path.name: load_examples(path) for path in set_paths}
    texts = [t for examples in sets.values() for t, _, _ in examples]
    workdir = ROOT / "build" / "nlu-versions"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    results: dict[str, Any] = {}
    for name, root in versions.items():
        out = workdir / f"{name}.parses.json"
        command = [sys.executable, str(ROOT / "bench" / "nlu_worker.py"), str(root), str(workdir), name]
        command += [str(workdir / "texts.json"), str(out)] + (["--reuse"] if name in reuse else [])
        subprocess.run(command, check=True)
        worker = json.loads(out.read_text(encoding="utf-8"))
        entry: dict[str, Any] = {"train_seconds": worker["train_seconds"], "model_mb": worker["model_mb"], "sets": {}}
        entry["commit"] = git_commit(root)
        offset = 0
        for set_name, examples in sets.items():
            parses = worker["parses"][offset : offset + len(examples)]
            offset += len(examples)
            entry["sets"][set_name] = score_parses(examples, parses)
        results[name] = entry
    return results


def git_commit(root: Path) -> str:
    """The tree's commit, marked when its files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", "nlu_data", "config.yml", "rasa_plugins", "hotline")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def versions_table(results: dict[str, Any]) -> str:
    """Per held-out set: each intent's F1 for every version side by side, then the totals."""
    names = list(results)
    machine = f"{platform.machine()} ({os.cpu_count()} cores)"
    lines = [f"Measured {date.today()} on {machine}, rasa 3.6.21, each version's config.yml.", ""]
    for n in names:
        seconds = results[n]["train_seconds"]
        trained = "model from an earlier run" if seconds is None else f"trained in {seconds:.0f} s"
        lines.append(f"- {n}: commit {results[n]['commit']}, {trained}")
    rows = METRIC_ROWS
    for set_name, first in results[names[0]]["sets"].items():
        lines += ["", f"**{set_name}** ({first['n']} messages)", ""]
        lines.append("| | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for label, key in rows:
            lines.append(f"| {label} | " + " | ".join(f"{results[n]['sets'][set_name][key]:.3f}" for n in names) + " |")
        for intent in [*CONTRACT, OOS]:
            cells = [results[n]["sets"][set_name]["per_intent"][intent] for n in names]
            if first["support"].get(intent):
                label = f"F1 {intent} ({first['support'][intent]})"
                lines.append(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def quiet_logs() -> None:
    """Rasa logs every parsed message at debug level; the benchmark needs none of it."""
    import logging

    from rasa.utils.log_utils import configure_structlog

    logging.basicConfig(level=logging.WARNING)
    configure_structlog(logging.WARNING)


def main() -> int:
    quiet_logs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(PIPELINES), action="append", help="run one pipeline (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the trained models")
    parser.add_argument("--errors", type=int, default=0, help="print up to N misclassified messages per set")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument(
        "--config", type=Path, action="append", default=[], help="also evaluate this config (by file stem)"
    )
    parser.add_argument(
        "--version", action="append", default=[], metavar="NAME=ROOT", help="compare project trees (training data)"
    )
    parser.add_argument("--set", type=Path, action="append", default=[], help="held-out file (default: bench/data)")
    parser.add_argument(
        "--reuse", action="append", default=[], metavar="NAME", help="with --version: reuse NAME's model if trained"
    )
    args = parser.parse_args()
    if args.version:
        return compare_versions(args)
    for extra in args.config:
        PIPELINES[extra.stem] = extra.resolve()
    pipelines = (args.only or []) + [c.stem for c in args.config] or list(PIPELINES)
    results = run(pipelines, args.keep)
    text = table(results)
    print(text)
    if args.errors:
        for name, entry in results.items():
            for set_name, scored in entry["sets"].items():
                print(f"\n{name} {set_name} errors:")
                for t, g, p in scored["errors"][: args.errors]:
                    print(f"  {g:>22} -> {p:<22} {t[:100]}")
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "nlu_eval.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    if not args.no_record and set(pipelines) == set(PIPELINES):
        replace_section(ROOT / "bench" / "RESULTS.md", "NLU: held-out evaluation, side by side", text)
    return 0


def compare_versions(args: argparse.Namespace) -> int:
    """--version mode: print and record the side-by-side table, list errors if asked."""
    versions = {name: Path(root).resolve() for name, root in (v.split("=", 1) for v in args.version)}
    set_paths = [p.resolve() for p in args.set] or [
        ROOT / "bench" / "data" / name for name in HELDOUT_SETS if (ROOT / "bench" / "data" / name).exists()
    ]
    results = run_versions(versions, set_paths, args.reuse)
    text = versions_table(results)
    print(text)
    for name, entry in results.items():
        for set_name, scored in entry["sets"].items():
            if args.errors:
                print(f"\n{name} {set_name} errors:")
            for t, g, p in scored["errors"][: args.errors]:
                print(f"  {g:>22} -> {p:<22} {t[:100]}")
    dump = json.dumps(results, indent=1, ensure_ascii=False)
    (ROOT / "build" / "nlu_versions.json").write_text(dump, encoding="utf-8")
    if not args.no_record:
        replace_section(ROOT / "bench" / "RESULTS.md", VERSIONS_SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
