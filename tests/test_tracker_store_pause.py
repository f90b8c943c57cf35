"""The tracker store's session restart (bounded sessions, forgetting) keeps a paused
conversation paused: a staff member holds it in a live hand-off. Runs in the Rasa
environment (Python 3.10) on Rasa's own tracker classes."""

from __future__ import annotations

import json
import subprocess

import pytest

from scripts.stack import ROOT, rasa_environment

pytestmark = pytest.mark.rasa

SCRIPT = """
import json
from rasa.shared.core.events import ActionExecuted, ConversationPaused, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_plugins.tracker_store import BoundedSQLTrackerStore

def restarted(paused, carry_slots):
    tracker = DialogueStateTracker("s", [])
    for event in [ActionExecuted("action_listen"), UserUttered("hola"),
                  ActionExecuted("utter_greet"), ActionExecuted("action_listen")]:
        tracker.update(event)
    if paused:
        tracker.update(ConversationPaused())
    fresh = DialogueStateTracker("s", [])
    for event in BoundedSQLTrackerStore.session_restart_events(tracker, carry_slots=carry_slots):
        fresh.update(event)
    return [tracker.is_paused(), fresh.is_paused(), fresh.latest_action_name]

print(json.dumps({"paused": restarted(True, True), "not_paused": restarted(False, True),
                  "erased": restarted(True, False)}))
"""


def test_a_restarted_session_keeps_the_pause_and_erasure_does_not() -> None:
    done = subprocess.run(
        [str(ROOT / ".venv-rasa" / "bin" / "python"), "-c", SCRIPT],
        cwd=ROOT,
        env=rasa_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["paused"] == [True, True, "action_listen"]  # still held by staff, waiting
    assert result["not_paused"] == [False, False, "action_listen"]
    assert result["erased"] == [True, False, "action_listen"]  # an erased conversation starts clean
