"""Every dependency has a lower bound above its releases with known vulnerabilities and an
upper bound at its next major version; the environment in use satisfies them."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from hotline.paths import ROOT

FILES = ("requirements/app.txt", "requirements/dev.txt", "requirements/rasa.txt")
# The last vulnerable release of each: the lower bound must exclude it (see the comments in the files).
VULNERABLE = {
    "starlette": "1.3.0",
    "python-multipart": "0.0.31",
    "pillow": "12.3.0",
    "jinja2": "3.1.5",
    "h11": "0.15.0",
    "pynacl": "1.6.1",
    "aiosmtpd": "1.4.5",
    "urllib3": "2.6.3",
    "requests": "2.33.0",
    "fonttools": "4.60.1",
}


def requirements(name: str) -> list[Requirement]:
    found = []
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text and not text.startswith("-r"):
            found.append(Requirement(text))
    return found


def bounds(specifier: SpecifierSet) -> tuple[bool, bool]:
    """(has a lower bound, has an upper bound)."""
    operators = {spec.operator for spec in specifier}
    return bool(operators & {">=", ">", "==", "~="}), bool(operators & {"<", "<=", "==", "~="})


@pytest.mark.parametrize("name", FILES)
def test_every_requirement_has_both_bounds(name: str) -> None:
    found = requirements(name)
    assert found
    for requirement in found:
        assert bounds(requirement.specifier) == (True, True), f"{name}: {requirement}"


def test_known_vulnerable_releases_are_excluded() -> None:
    specified = {r.name.lower(): r.specifier for name in FILES for r in requirements(name)}
    for package, vulnerable in VULNERABLE.items():
        assert package in specified, package
        assert not specified[package].contains(vulnerable, prereleases=True), (package, vulnerable)


@pytest.mark.parametrize("name", FILES[:2])
def test_the_installed_versions_satisfy_the_bounds(name: str) -> None:
    for requirement in requirements(name):
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (requirement, installed)
