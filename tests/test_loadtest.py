"""The load and fault test, short: `make loadtest` runs 200 conversations; this runs 30
through the same cluster (two Rasa replicas, two action servers, two gateways behind HAProxy,
private PostgreSQL and Redis) while a Rasa replica is killed, a gateway stopped, PostgreSQL
restarted and Redis restarted, and checks that nothing was lost, duplicated or crossed."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.loadtest import Plan, print_report, run_load

pytestmark = pytest.mark.rasa

FAULTS = [
    "Rasa replica killed and restarted",
    "gateway stopped and restarted",
    "PostgreSQL restarted",
    "Redis restarted (emptied)",
]


def test_thirty_conversations_through_four_faults_lose_nothing(tmp_path: Path) -> None:
    result = run_load(Plan(conversations=30, spread_seconds=30), log_dir=tmp_path)
    print_report(result)  # the table, in the test's output when it fails
    assert [fault.name for fault in result.faults] == FAULTS
    last_message = max(turn.sent_at for turn in result.turns)
    assert all(fault.recovered < last_message for fault in result.faults)  # each fault met traffic
    assert len(result.turns) >= 30 * 10
    assert (result.unanswered, result.failed) == (0, 0), result.problems
    assert (result.cross_talk, result.unknown_addresses) == (0, 0)
    assert result.reports_expected > 0 and result.reports_stored == result.reports_expected
    assert (result.reports_duplicated, result.codes_shown_twice, result.codes_wrong_report) == (0, 0, 0)
    assert result.emergencies > 0 and result.emergencies_late == 0
    assert result.trackers_checked > 0 and result.trackers_wrong == 0, result.problems
    assert result.ok
