"""Rasa's tracker store through a PostgreSQL restart (Rasa's environment, Python 3.10, on a
private PostgreSQL this test may stop): a turn written while the database is down for a
moment waits for it and is stored, instead of failing and being lost (the load test once
lost a turn so)."""

from __future__ import annotations

import base64
import os
import subprocess
import threading

import pytest

from scripts.services import private_postgres
from scripts.stack import RASA_PYTHON, ROOT, rasa_environment

pytestmark = pytest.mark.rasa

SCRIPT = """
import asyncio, sys, time
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_plugins.tracker_store import BoundedSQLTrackerStore

store = BoundedSQLTrackerStore(Domain.empty(), database_url=sys.argv[1], encryption_key=sys.argv[2])
tracker = DialogueStateTracker("restart-test", [])
tracker.update(ActionExecuted("action_listen"))
tracker.update(UserUttered("antes"))
asyncio.run(store.save(tracker))
print("saved before", flush=True)
sys.stdin.readline()  # the test stops PostgreSQL, then says go
started = time.monotonic()
tracker.update(ActionExecuted("action_listen"))
tracker.update(UserUttered("durante"))
asyncio.run(store.save(tracker))
texts = [e.text for e in asyncio.run(store.retrieve("restart-test")).events if isinstance(e, UserUttered)]
print("saved during", round(time.monotonic() - started, 1), texts, flush=True)
"""


def test_a_turn_written_while_postgresql_restarts_is_stored() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    with private_postgres() as postgres:
        url = postgres.admin_url  # the tracker's table in the server's default database
        process = subprocess.Popen(
            [str(RASA_PYTHON), "-c", SCRIPT, url, key],
            cwd=ROOT,
            env=rasa_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None and process.stdin is not None
            assert process.stdout.readline().strip() == "saved before"
            postgres.stop()
            restart = threading.Timer(1.5, postgres.start)  # down for 1.5 s, as in a restart
            restart.start()
            process.stdin.write("go\n")
            process.stdin.flush()
            out, err = process.communicate(timeout=60)
            restart.join()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, err[-2000:]
        waited = float(out.split()[2])
        assert 1.0 <= waited < 5.0, out  # it waited for PostgreSQL, then wrote
        assert "['antes', 'durante']" in out, out
