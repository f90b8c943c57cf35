"""The Rasa launcher (rasa_plugins/serve.py) in Rasa's own environment: Rasa's argument
parser takes every token the keyring can hold, including those beginning with "-" (a
URL-safe token does when its first byte is 0xF8-0xFB: one start in 64 once failed so)."""

from __future__ import annotations

import json
import subprocess

import pytest

from hotline.edge import token_text
from scripts.stack import RASA_PYTHON, ROOT, rasa_environment

pytestmark = pytest.mark.rasa

PARSE = """
import json, sys
from rasa.__main__ import create_argument_parser
from rasa_plugins.serve import rasa_arguments
tokens = json.loads(sys.argv[1])
for token in tokens:
    args = create_argument_parser().parse_args(rasa_arguments(["--enable-api", "-p", "5005"], token)[1:])
    assert args.auth_token == token, (token, args.auth_token)
print(len(tokens))
"""


def in_rasa_environment(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` run by Rasa's Python 3.10 with our plugins importable."""
    command = [str(RASA_PYTHON), "-c", script, *args]
    return subprocess.run(command, cwd=ROOT, env=rasa_environment(), capture_output=True, text=True, timeout=300)


def test_rasa_takes_every_token_the_keyring_can_hold() -> None:
    tokens = [token_text(bytes([first]) + bytes(31)) for first in (0xF8, 0xFB, 0x00, 0xFF)]
    assert tokens[0].startswith("-") and tokens[1].startswith("-")
    result = in_rasa_environment(PARSE, json.dumps(tokens))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("4")


FAILING_STORE = """
import asyncio
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker


class DatabaseDown(InMemoryTrackerStore):  # what the SQL store raises while PostgreSQL restarts
    async def retrieve(self, sender_id):
        raise ConnectionError("database down")

    async def save(self, tracker):
        raise ConnectionError("database down")


def outcome(call, otherwise):
    try:
        asyncio.run(call)
    except ConnectionError:
        return "failed"
    return otherwise


if __name__ == "__main__":
    import sys
    if sys.argv[1] == "launcher":
        from rasa_plugins.serve import fail_turns_when_the_tracker_store_fails
        fail_turns_when_the_tracker_store_fails()
    store = FailSafeTrackerStore(DatabaseDown(Domain.empty()))
    read = outcome(store.retrieve("x"), "empty conversation")
    written = outcome(store.save(DialogueStateTracker("x", [])), "kept in memory only")
    print(read, "/", written)
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [("plain", "empty conversation / kept in memory only"), ("launcher", "failed / failed")],
)
def test_a_failing_tracker_store_fails_the_turn_under_the_launcher(how: str, expected: str) -> None:
    """Plain Rasa goes on with an empty conversation when its store fails (a report form
    would start over) and keeps the turn in memory only; under the launcher the turn fails,
    and the gateway keeps the message to send it again."""
    result = in_rasa_environment(FAILING_STORE, how)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected
