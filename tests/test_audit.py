"""The content audit lists what staff must re-check, with the answers that show it."""

from __future__ import annotations

from datetime import date

import pytest

from hotline import audit as audit_module
from hotline.audit import audit, main
from hotline.content import load_facts


def rows_by_id(today: date, max_age_days: int = 180) -> dict[str, audit_module.AuditRow]:
    return {row.fact.id: row for row in audit(today, max_age_days)}


def test_every_fact_that_is_not_verified_is_listed() -> None:
    rows = rows_by_id(date(2026, 11, 29))
    for fact in load_facts().values():
        if fact.confidence != "verified":
            assert fact.id in rows, fact.id


def test_shown_facts_name_the_answers_that_show_them() -> None:
    row = rows_by_id(date(2026, 11, 29))["hn.trafficking_145"]
    assert "utter_emergency[HN]" in row.shown_in
    assert any("secondary" in reason for reason in row.reasons)


def test_a_recent_call_clears_only_the_age_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    fact = load_facts()["us.emergency"]
    assert fact.confidence == "verified"
    assert "never confirmed by a call" in rows_by_id(date(2026, 11, 29))["us.emergency"].reasons
    monkeypatch.setitem(fact.raw, "verified_on", "2026-11-01")
    assert "us.emergency" not in rows_by_id(date(2026, 11, 29))
    assert "last confirmed 2026-11-01" in rows_by_id(date(2027, 11, 29))["us.emergency"].reasons


def test_command_prints_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--shown-only"]) == 0
    out = capsys.readouterr().out
    assert "facts to re-check" in out
    assert "hn.trafficking_145 145" in out
