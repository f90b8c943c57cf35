"""`make attack` against the test stack: every attack of issue 10 is refused (or, for the
emergency under a locked database, answered as promised), and the run says so."""

from __future__ import annotations

import pytest

from scripts import attack
from scripts.stack import Stack

pytestmark = pytest.mark.rasa


def test_every_attack_is_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    target = attack.Target(
        gateway=stack.gateway_url,
        rasa=stack.rasa_url,
        actions=stack.actions_url,
        console=stack.console_url,
        keys_dir=stack.keys_dir,
        log_dir=stack.log_dir,
        database_url=stack.database_url,
        tracker_url=stack.tracker_url,
    )
    results = attack.run(target)
    printed = capsys.readouterr().out
    assert len(results) == len(attack.ATTACKS)
    assert [name for name, outcome in results if outcome.result not in (attack.REFUSED, attack.ANSWERED)] == []
    assert printed.count("\n") == len(attack.ATTACKS)
    assert "emergency numbers first: True" in printed
