"""Train one project version's NLU and parse a list of messages with it, in its own process.

bench/nlu_eval.py compares training data versions (`--version main=/tmp/nlu-base`): each
version is a project tree (a git worktree of another commit, or this one) whose own
config.yml, nlu_data/ and code (rasa_plugins, hotline) must be the ones that run, so the
version's tree goes first on the import path here. This file imports nothing from bench/,
which both trees have. Runs in the Rasa environment:

    .venv-rasa/bin/python bench/nlu_worker.py ROOT MODEL_DIR NAME TEXTS.json PARSES.json [--reuse]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def train(root: Path, model_dir: Path, name: str) -> tuple[Path, float]:
    """The version's NLU model, trained with its own pipeline and data."""
    from rasa.model_training import train_nlu

    started = time.monotonic()
    model = train_nlu(
        config=str(root / "config.yml"), nlu_data=str(root / "nlu_data"), output=str(model_dir), fixed_model_name=name
    )
    return Path(str(model)), time.monotonic() - started


def parse_all(model: Path, texts: list[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))

    async def parse() -> list[dict[str, Any]]:
        return [await agent.parse_message(t) for t in texts]

    return asyncio.run(parse())


def main(argv: list[str]) -> int:
    root, model_dir, name, texts_file, parses_file = argv[:5]
    reuse = "--reuse" in argv[5:]
    project = Path(root).resolve()
    sys.path.insert(0, str(project))  # this version's rasa_plugins and hotline, not another's
    os.chdir(project)  # Rasa's training cache lives under the working directory: one per version
    logging.basicConfig(level=logging.WARNING)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    model = Path(model_dir) / f"{name}.tar.gz"
    seconds = None  # the model was trained by an earlier run
    if not (reuse and model.exists()):
        model, seconds = train(project, Path(model_dir), name)
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    parses = parse_all(model, texts)
    result = {"model": str(model), "train_seconds": seconds, "model_mb": model.stat().st_size / 1e6, "parses": parses}
    Path(parses_file).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
