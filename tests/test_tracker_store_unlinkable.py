"""Nothing in the tracker table links a report to its sender: no intent or action name in
clear, no time finer than the day, no write order in the row ids, no pseudonym in clear,
and the sealed rows all look alike. Once on Rasa's own classes (the Rasa environment, a
real SQLite file) and once end to end: a report filed through the running stack, then the
tracker store's file read column by column."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from reports.models import Report
from scripts.stack import ROOT, Stack, rasa_environment
from tests.conftest import Conversation
from tests.reporting import file_by_chat, report_ids, reports_session

pytestmark = pytest.mark.rasa

DAY = 86400
COLUMNS = "id, sender_id, type_name, timestamp, intent_name, action_name, data"
FLOW_NAMES = ("report", "affirm", "report_form", "action_submit_report", "utter_report_code")

# Runs in the Rasa environment: a report flow saved turn by turn, then filed (forget_history),
# then another sender's turns, then the first sender's next turn. The filing goes through a
# second store on the same database (another Rasa replica): what the first one remembers of
# rows must not matter. Prints the table and what Rasa loads back.
SCRIPT = """
import asyncio, base64, json, os, sqlite3, sys, time
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, ActiveLoop, BotUttered, SessionStarted,
    SlotSet, UserUttered)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa_plugins.tracker_store import BoundedSQLTrackerStore

path = sys.argv[1]
slot = lambda kind: {"type": kind, "influence_conversation": False, "mappings": [{"type": "custom"}]}
domain = Domain.from_dict({
    "intents": ["report", "affirm", "greet"],
    "slots": {"country": slot("text"), "report_what": slot("text"), "forget_history": slot("bool")},
    "actions": ["action_submit_report"],
    "responses": {"utter_report_code": [{"text": "x"}], "utter_greet": [{"text": "x"}]},
    "forms": {"report_form": {"required_slots": ["report_what"]}},
})
key = base64.b64encode(os.urandom(32)).decode()
store = BoundedSQLTrackerStore(domain=domain, database_url="sqlite:///" + path, encryption_key=key)
replica = BoundedSQLTrackerStore(domain=domain, database_url="sqlite:///" + path, encryption_key=key)

def intent(name):
    return {"name": name, "confidence": 1.0}

async def turn(sender, events, on=store):
    tracker = await on.retrieve(sender) or DialogueStateTracker(sender, domain.slots)
    for event in events:
        tracker.update(event)
    await on.save(tracker)

async def main():
    start = [ActionExecuted("action_session_start"), SessionStarted(), SlotSet("country", "GT"),
             ActionExecuted("action_listen")]
    await turn("tipster", start + [UserUttered("quiero denunciar", intent("report")),
        ActionExecuted("report_form"), ActiveLoop("report_form"), ActionExecuted("action_listen")])
    await turn("tipster", [UserUttered("tienen encerradas a unas muchachas", intent("report")),
        SlotSet("report_what", "tienen encerradas a unas muchachas"), ActionExecuted("report_form"),
        ActiveLoop(None), ActionExecuted("action_listen")])
    await turn("tipster", [UserUttered("si", intent("affirm")), ActionExecuted("action_submit_report"),
        SlotSet("report_what", None), SlotSet("forget_history", True), BotUttered("TRT-7K4M-Q2XH-5"),
        ActionExecuted("utter_report_code"), ActionExecuted("action_listen")], on=replica)
    filed_at = time.time()
    for n in range(10):
        await turn("other", (start if n == 0 else []) + [UserUttered("hola", intent("greet")),
            ActionExecuted("utter_greet"), ActionExecuted("action_listen")])
    after_filing = await store.retrieve("tipster")
    await turn("tipster", [UserUttered("gracias", intent("greet"), timestamp=filed_at - 7200),
        ActionExecuted("utter_greet"), ActionExecuted("action_listen")])
    later = await store.retrieve("tipster")
    db = sqlite3.connect(path)
    rows = db.execute("SELECT id, sender_id, type_name, timestamp, intent_name, action_name, data "
                      "FROM events").fetchall()
    print(json.dumps({
        "filed_at": filed_at,
        "rows": rows,
        "after_filing": {"slots": after_filing.current_slot_values(),
                         "latest_action": after_filing.latest_action_name,
                         "timestamps": [e.timestamp for e in after_filing.events],
                         "names": [getattr(e, "action_name", None) for e in after_filing.events]},
        "later": {"texts": [e.text for e in later.events if isinstance(e, UserUttered)],
                  "user_times": [e.timestamp for e in later.events if isinstance(e, UserUttered)],
                  "country": later.get_slot("country"),
                  "session_starts": sum(isinstance(e, SessionStarted) for e in later.events)},
    }))

asyncio.run(main())
"""


def run_store_script(tmp_path: Path) -> dict[str, object]:
    done = subprocess.run(
        [str(ROOT / ".venv-rasa" / "bin" / "python"), "-c", SCRIPT, str(tmp_path / "tracker.db")],
        cwd=ROOT,
        env=rasa_environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def assert_nothing_links(rows: list[list[object]], pseudonyms: list[str]) -> None:
    """The clear columns of every row: a keyed sender reference, a constant type, a day."""
    for _id, sender_id, type_name, timestamp, intent_name, action_name, data in rows:
        assert intent_name is None and action_name is None, (intent_name, action_name)
        assert type_name == "event", type_name
        assert isinstance(timestamp, float) and timestamp % DAY == 0, timestamp  # a day, no hour
        assert sender_id not in pseudonyms  # the gateway's pseudonym is not what the table keys on
        assert not any(name in str(data) for name in FLOW_NAMES)


def test_the_tracker_table_keeps_no_name_no_time_and_no_order(tmp_path: Path) -> None:
    result = run_store_script(tmp_path)
    rows: list[list[object]] = result["rows"]  # type: ignore[assignment]
    assert_nothing_links(rows, ["tipster", "other"])
    ids: dict[str, list[int]] = {}
    for row in rows:
        ids.setdefault(str(row[1]), []).append(int(str(row[0])))
    assert len(ids) == 2
    # The rows written when the report was filed are not the lowest ids, with the other
    # sender's later rows above them: ids are random, not a clock.
    first, second = ids.values()
    assert not max(first) < min(second) and not max(second) < min(first)
    # Sealed rows of small events all have one length: no action name guessed from a size.
    assert len({len(str(r[6])) for r in rows}) == 1

    after = result["after_filing"]
    assert isinstance(after, dict)
    filed_at = float(result["filed_at"])  # type: ignore[arg-type]
    # Rasa loads the state it needs (the country stays, the report is gone), waiting for input...
    assert after["slots"]["country"] == "GT" and after["slots"]["report_what"] is None
    assert after["latest_action"] == "action_listen"
    # ...with every carried event stamped at the start of the day, even inside the seal.
    assert all(t % DAY == 0 and t <= filed_at for t in after["timestamps"]), after["timestamps"]
    later = result["later"]
    assert isinstance(later, dict)
    assert later["texts"] == ["gracias"] and later["country"] == "GT" and later["session_starts"] == 1
    # A user message keeps its real time inside the seal: Rasa's session expiry reads it.
    assert later["user_times"] == [filed_at - 7200]


def sender_reference(key: bytes, sender: str) -> str:
    """What the table keys a conversation on: a keyed hash of Rasa's sender id (the gateway's
    pseudonym), under a key derived from the tracker key (rasa_plugins/tracker_store.py)."""
    subkey = hmac.new(key, b"hotline tracker sender reference", hashlib.sha256).digest()
    return hmac.new(subkey, sender.encode(), hashlib.sha256).hexdigest()


def test_after_filing_through_the_stack_the_table_cannot_be_joined_to_the_report(
    conversation: Conversation, stack: Stack
) -> None:
    before = report_ids(stack)
    code, _ = file_by_chat(conversation, "En la finca no les pagan y les quitaron los papeles")
    with reports_session(stack) as session:
        created = [
            r.created_at for r in session.scalars(select(Report).where(Report.id.not_in(before))) if r is not None
        ]
    assert len(created) == 1 and isinstance(created[0], datetime)
    tracker_file = stack.tracker_url.removeprefix("sqlite:///")
    with sqlite3.connect(tracker_file) as db:
        rows = [
            list(r)
            for r in db.execute(
                "SELECT id, sender_id, type_name, timestamp, intent_name, action_name, data FROM events"
            )
        ]
    key = base64.b64decode((stack.keys_dir / "tracker.key").read_text().strip())
    mine = [r for r in rows if r[1] == sender_reference(key, conversation.sender)]
    assert mine  # the conversation is there, sealed: the checks below look at real rows
    assert_nothing_links(rows, [conversation.sender])
    report_time = created[0].timestamp()
    assert all(report_time - float(r[3]) < DAY for r in mine)  # only "active that day" remains
    # Rasa still serves the conversation: the state is loaded and the next message answered.
    assert conversation.tracker()["latest_action_name"] == "action_listen"
    assert conversation.say(f"seguimiento {code}")
