"""`python -m rasa_plugins.serve [rasa run arguments]`: the Rasa server with its secrets.

Rasa takes its HTTP API token only as `--auth-token` on the command line, which every local
user can read (`ps`). This launcher reads the secrets Rasa needs from the environment or the
keyring (HOTLINE_KEYS_DIR), puts them where Rasa reads them (its own argument list after
start, and this process's environment for `${...}` in endpoints.yml and credentials.yml),
and starts `rasa run`. The Rasa process holds: the Rasa token (gateway -> Rasa), the actions
token (Rasa -> action server) and the tracker store key. Nothing else.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

from hotline.edge import read_token

ROOT = Path(__file__).resolve().parent.parent


def load_secrets(keys_dir: Path) -> dict[str, str]:
    """The environment variables Rasa's configuration files name, from the keyring."""
    secrets = {
        "HOTLINE_RASA_TOKEN": read_token(keys_dir, "rasa.token", "HOTLINE_RASA_TOKEN"),
        "HOTLINE_ACTIONS_TOKEN": read_token(keys_dir, "actions.token", "HOTLINE_ACTIONS_TOKEN"),
    }
    tracker_key = os.environ.get("HOTLINE_TRACKER_KEY", "").strip()
    if not tracker_key:
        tracker_key = (keys_dir / "tracker.key").read_text(encoding="ascii").strip()
    base64.b64decode(tracker_key, validate=True)  # fails here, clearly, rather than inside Rasa
    secrets["HOTLINE_TRACKER_KEY"] = tracker_key
    return secrets


def check_endpoints(argv: list[str]) -> None:
    """A cluster's endpoints file needs HOTLINE_REDIS_URL (the lock store): without it, or
    with a malformed one, stop now with a clear message rather than inside Rasa."""
    if "--endpoints" not in argv:
        return
    endpoints = Path(argv[argv.index("--endpoints") + 1])
    if "HOTLINE_REDIS_URL" not in endpoints.read_text(encoding="utf-8"):
        return
    from rasa_plugins.lock_store import redis_connection

    try:
        redis_connection(os.environ.get("HOTLINE_REDIS_URL", ""))
    except ValueError as error:
        raise SystemExit(f"{endpoints}: {error}") from None


def fail_turns_when_the_tracker_store_fails() -> None:
    """Rasa wraps every tracker store in FailSafeTrackerStore, which on a database error
    goes on with an EMPTY conversation (retrieve) or keeps the turn in memory only (save):
    a report form half filled would start again, and the stored conversation would lose
    turns. Its error callback re-raises here instead: the turn fails, the gateway keeps the
    message and sends it again when the database is back (channels/core.py)."""
    from rasa.core.tracker_store import FailSafeTrackerStore

    def reraise(error: Exception) -> None:
        raise error

    original = FailSafeTrackerStore.__init__

    def init(self: Any, tracker_store: Any, on_tracker_store_error: Any = None, fallback: Any = None) -> None:
        original(self, tracker_store, on_tracker_store_error or reraise, fallback)

    FailSafeTrackerStore.__init__ = init  # type: ignore[method-assign]


def rasa_arguments(argv: list[str], token: str) -> list[str]:
    """`rasa run` with the token; "=" because a token may begin with "-", which argparse
    would otherwise read as an option (and refuse to start)."""
    return ["rasa", "run", *argv, f"--auth-token={token}"]


def main(argv: list[str]) -> None:
    keys_dir = Path(os.environ.get("HOTLINE_KEYS_DIR") or ROOT / "keys")
    secrets = load_secrets(keys_dir)
    check_endpoints(argv)
    os.environ.update(secrets)
    sys.argv = rasa_arguments(argv, secrets["HOTLINE_RASA_TOKEN"])
    fail_turns_when_the_tracker_store_fails()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main(sys.argv[1:])
