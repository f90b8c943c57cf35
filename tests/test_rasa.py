"""Rasa's own checks on the real model: data validation and the test stories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hotline.paths import ROOT
from scripts.stack import MODEL, RASA

pytestmark = pytest.mark.rasa
RASA_ENV = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def rasa(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RASA), *args], cwd=ROOT, env=RASA_ENV, capture_output=True, text=True, timeout=timeout)


def test_data_validates() -> None:
    result = rasa(
        "data",
        "validate",
        "--domain",
        "build/domain",
        "--data",
        "nlu_data",
        "bot",
        "build/data",
        "--config",
        "config.yml",
        "--fail-on-warnings",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_stories_pass_end_to_end(tmp_path: Path) -> None:
    """Every flow of tests/stories, through the trained NLU and dialogue, with no error."""
    result = rasa(
        "test",
        "core",
        "--model",
        str(MODEL),
        "--stories",
        "tests/stories",
        "--out",
        str(tmp_path),
        "--fail-on-prediction-errors",
        "--no-plot",
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, details[-4000:] + result.stdout[-2000:] + result.stderr[-2000:]
    assert "No warnings for test stories" in details or "none of the test stories failed" in details.lower()
