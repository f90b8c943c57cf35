"""The set-up finds a Python 3.10 for Rasa, or says clearly what to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hotline.paths import ROOT

SCRIPT = ROOT / "scripts" / "find-python310.sh"


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_no_python310_explains_what_to_install() -> None:
    result = run({"PATH": "/nonexistent", "HOME": "/nonexistent"})
    assert result.returncode == 1
    assert result.stdout == ""
    assert "pyenv install 3.10" in result.stderr
    assert "RASA_PYTHON" in result.stderr


def test_rasa_python_that_is_not_310_is_refused() -> None:
    result = run({"PATH": "/nonexistent", "HOME": "/nonexistent", "RASA_PYTHON": sys.executable})
    assert result.returncode == 1  # this interpreter is 3.11+, not 3.10


@pytest.mark.rasa
def test_finds_the_environment_interpreter() -> None:
    rasa_python = ROOT / ".venv-rasa" / "bin" / "python"
    result = run({"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "RASA_PYTHON": str(rasa_python)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(rasa_python)
