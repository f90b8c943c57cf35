"""Rasa's own checks on the real model: data validation and the test stories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hotline.paths import ROOT
from scripts.stack import MODEL, RASA, RASA_PROJECT_ARGS, rasa_environment

pytestmark = pytest.mark.rasa


def rasa(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RASA), *args], cwd=ROOT, env=rasa_environment(), capture_output=True, text=True, timeout=timeout
    )


def test_data_validates() -> None:
    result = rasa("data", "validate", *RASA_PROJECT_ARGS, "--fail-on-warnings")
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
