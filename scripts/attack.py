"""`make attack`: try the attacks of issue 10 against a running hotline and print, for each,
whether it was refused (or, for the promises we keep under pressure, answered as promised).

Run `make run` in another terminal first (development mode: the phone simulator is how
messages get in without Twilio credentials). Loopback only, bounded in count and time.
The run observes results as the operator can: with the keyring (Rasa token, to read a
tracker) and the reports database. Exit status 0 when every attack was refused.

    python -m scripts.attack [--gateway URL] [--rasa URL] [--actions URL] [--console URL]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sqlite3
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from channels.terminal import simulator_token
from hotline.danger import DangerLexicon
from hotline.edge import read_token
from reports.config import load_settings
from reports.crypto import seal_contact
from reports.db import make_engine, transaction
from reports.keys import load_keys
from reports.models import AuditEntry, Handoff

ROOT = Path(__file__).resolve().parent.parent
ALARM = "me van a matar ayudenme"
TWILIO_LIMIT_SECONDS = 15.0

REFUSED, ANSWERED, FAILED, SKIPPED = "refused", "answered as promised", "NOT REFUSED", "not tried"


@dataclass(frozen=True)
class Target:
    gateway: str
    rasa: str
    actions: str
    console: str
    keys_dir: Path
    log_dir: Path
    database_url: str
    tracker_url: str

    @property
    def rasa_token(self) -> str:
        return read_token(self.keys_dir, "rasa.token", "HOTLINE_RASA_TOKEN")


@dataclass(frozen=True)
class Outcome:
    result: str
    detail: str


class Phone:
    """A made-up phone writing through the gateway's simulator, as an SMS."""

    def __init__(self, client: httpx.Client, target: Target) -> None:
        self.client, self.target = client, target
        self.number = f"+5025{secrets.randbelow(10**7):07d}"
        self.url = f"{target.gateway}/simulator/messages"
        self.token = simulator_token(client, self.url)

    def send(self, text: str, message_id: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"look": "sms", "phone": self.number, "text": text, "id": message_id or secrets.token_hex(8)}
        return self.client.post(self.url, json=body, headers={"X-Simulator-Token": self.token, **(headers or {})})

    def says(self, text: str, message_id: str | None = None) -> list[str]:
        response = self.send(text, message_id)
        response.raise_for_status()
        return [str(r["text"]) for r in response.json()["replies"]]

    def pseudonym_events(self) -> list[dict[str, Any]]:
        """The conversation's events in Rasa (the operator's view, with the Rasa token)."""
        import base64
        import hashlib
        import hmac

        key = base64.b64decode((self.target.keys_dir / "gateway.key").read_text().strip())
        sender = hmac.new(key, f"simulator:sms:{self.number}".encode(), hashlib.sha256).hexdigest()[:32]
        tracker = self.client.get(
            f"{self.target.rasa}/conversations/{sender}/tracker", params={"token": self.target.rasa_token}
        ).json()
        events: list[dict[str, Any]] = tracker.get("events") or []
        return events


def status_is(response: httpx.Response, *codes: int) -> Outcome:
    result = REFUSED if response.status_code in codes else FAILED
    return Outcome(result, f"HTTP {response.status_code}")


# -- the attacks ---------------------------------------------------------------------------


def console_in_the_gateway(client: httpx.Client, target: Target) -> Outcome:
    return status_is(client.get(f"{target.gateway}/console/login"), 404)


def rasa_api_without_token(client: httpx.Client, target: Target) -> Outcome:
    codes = [
        client.get(f"{target.rasa}/conversations/someone/tracker").status_code,
        client.put(f"{target.rasa}/model", json={"model_file": "/tmp/x.tar.gz"}).status_code,
        client.post(f"{target.rasa}/conversations/someone/tracker/events", json=[{"event": "pause"}]).status_code,
    ]
    return Outcome(REFUSED if set(codes) == {401} else FAILED, f"HTTP {codes}")


def rasa_webhooks_without_token(client: httpx.Client, target: Target) -> Outcome:
    body = {"sender": "attacker", "message": "hola"}
    rest = client.post(f"{target.rasa}/webhooks/rest/webhook", json=body).status_code
    gateway = client.post(f"{target.rasa}/webhooks/gateway/webhook", json=body).status_code
    return Outcome(REFUSED if (rest, gateway) == (404, 403) else FAILED, f"REST {rest}, gateway channel {gateway}")


def action_server_without_token(client: httpx.Client, target: Target) -> Outcome:
    call = {"next_action": "action_submit_report", "sender_id": "x", "tracker": {"sender_id": "x"}, "domain": {}}
    return status_is(client.post(f"{target.actions}/webhook", json=call), 403)


def listening_on_every_interface(client: httpx.Client, target: Target) -> Outcome:
    wide = []
    for name, url in (("rasa", target.rasa), ("actions", target.actions)):
        port = int(url.rsplit(":", 1)[1])
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port and local.split(":")[0] != "0100007F":
                wide.append(name)
    return Outcome(FAILED if wide else REFUSED, f"not on loopback only: {wide}" if wide else "loopback only")


def confidence(event: dict[str, Any]) -> object:
    parse = event.get("parse_data") or {}
    return (parse.get("intent") or {}).get("confidence")


def intent_injection(client: httpx.Client, target: Target) -> Outcome:
    phone = Phone(client, target)
    for text in ("\n/restart", "\u00a0/ session_start", "\u200b/human_handoff", '\t/inform_country{"country":"US"}'):
        phone.says(text)
    said = [e for e in phone.pseudonym_events() if e.get("event") == "user"]
    commands = [e for e in said if str(e.get("text", "")).strip().startswith("/")]
    full = [e for e in said if confidence(e) == 1.0]
    bad = len(commands) + len(full)
    return Outcome(FAILED if bad or not said else REFUSED, f"{len(said)} messages read as words, {bad} as commands")


def user_text_in_logs(client: httpx.Client, target: Target) -> Outcome:
    words = f"Ana {secrets.randbelow(9000) + 1000}-{secrets.randbelow(9000) + 1000}"
    Phone(client, target).says(f"\n/hola me llamo {words}")
    logs = "".join(p.read_text(errors="replace") for p in target.log_dir.glob("*.log"))
    return Outcome(FAILED if words in logs else REFUSED, "not in any log" if words not in logs else "found in a log")


def forged_reply_address(client: httpx.Client, target: Target) -> Outcome:
    """An insider with the Rasa token but not the edge key asks for a person, with a reply
    address sealed to a number of their choosing."""
    settings = load_settings({**os.environ, "HOTLINE_KEYS_DIR": str(target.keys_dir)})
    reply_to = seal_contact(load_keys(settings).public_key, "sms", "+50255500000")
    sender = "forger-" + secrets.token_hex(6)
    body = {"sender": sender, "message": "quiero hablar con una persona", "metadata": {"reply_to": reply_to}}
    client.post(f"{target.rasa}/webhooks/gateway/webhook", params={"token": target.rasa_token}, json=body)
    engine = make_engine(target.database_url)
    try:
        with transaction(engine) as session:
            handoff = session.scalars(select(Handoff).where(Handoff.conversation_id == sender)).first()
            audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "forged_metadata")).first()
    finally:
        engine.dispose()
    if handoff is None:
        return Outcome(FAILED, "the request for a person was not recorded at all")
    kept = handoff.reply_sealed is not None
    return Outcome(FAILED if kept or audited is None else REFUSED, "address dropped, audited" if not kept else "kept")


def simulator_without_its_token(client: httpx.Client, target: Target) -> Outcome:
    body = {"look": "sms", "phone": "+50255511111", "text": "hola", "id": secrets.token_hex(8)}
    spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Simulator-Token": "guess"}
    codes = {client.post(f"{target.gateway}/simulator/messages", json=body, headers=spoofed).status_code}
    codes.add(client.post(f"{target.gateway}/simulator/messages", json=body).status_code)
    return Outcome(REFUSED if codes <= {403, 404} else FAILED, f"HTTP {sorted(codes)}")


def emergency_with_the_database_locked(client: httpx.Client, target: Target) -> Outcome:
    if not target.database_url.startswith("sqlite:///"):
        return Outcome(SKIPPED, "the lock is tried on the SQLite database of `make run`")
    phone = Phone(client, target)
    lock = sqlite3.connect(target.database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        replies = phone.says(ALARM)
        elapsed = time.monotonic() - started
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    numbers = bool(replies) and "911" in replies[0]
    kept = numbers and elapsed < TWILIO_LIMIT_SECONDS
    return Outcome(ANSWERED if kept else FAILED, f"emergency numbers first: {numbers}, in {elapsed:.1f} s")


def flood_of_alarms(client: httpx.Client, target: Target) -> Outcome:
    phone = Phone(client, target)
    pages = sum(1 for _ in range(30) for reply in phone.says(f"{ALARM} {_}") if "911" in reply)
    limit = 20 + 1  # the flood guard's default per minute, then once a minute
    return Outcome(REFUSED if pages <= limit else FAILED, f"{pages} emergency pages for 30 messages")


def replayed_delivery(client: httpx.Client, target: Target) -> Outcome:
    phone = Phone(client, target)
    message_id = secrets.token_hex(8)
    phone.says("hola", message_id)
    again = phone.says("hola", message_id)
    return Outcome(REFUSED if again == [] else FAILED, f"{len(again)} replies to the replay")


def world_readable_files(client: httpx.Client, target: Target) -> Outcome:
    databases = [Path(url.removeprefix("sqlite:///")) for url in (target.database_url, target.tracker_url)]
    paths = [p for p in (*databases, *target.log_dir.glob("*.log")) if p.exists()]
    readable = [p.name for p in paths if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    return Outcome(FAILED if readable else REFUSED, f"readable by others: {readable}" if readable else "owner only")


def login_flood_with_a_password_as_name(client: httpx.Client, target: Target) -> Outcome:
    """30 logins for a name nobody has, typed as people sometimes do (their password in the
    name field): the console must neither keep the typed text nor hash each one."""
    typed = "Clave-" + secrets.token_hex(6)
    refused = 0
    with httpx.Client(timeout=30.0) as browser:
        page = browser.get(f"{target.console}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        if token is None:
            return Outcome(FAILED, "no login form")
        for _ in range(30):
            form = {"csrf": token.group(1), "username": typed, "password": "x" * 12}
            refused += browser.post(f"{target.console}/login", data=form).status_code in (401, 403, 429)
    engine = make_engine(target.database_url)
    try:
        with transaction(engine) as session:
            rows = session.scalars(select(AuditEntry)).all()
            kept = [r for r in rows if typed in f"{r.actor} {r.target} {r.detail}"]
    finally:
        engine.dispose()
    return Outcome(FAILED if kept or refused < 30 else REFUSED, f"{refused} refused, typed name kept {len(kept)} times")


def report_linked_by_tracker_metadata(client: httpx.Client, target: Target) -> Outcome:
    """After a report is filed, the tracker store's clear columns name no intent or action
    (once `action_submit_report` stamped at the second of filing joined it to a sender)."""
    if not target.tracker_url.startswith("sqlite:///"):
        return Outcome(SKIPPED, "read on the SQLite tracker store of `make run`")
    phone = Phone(client, target)
    for text in ("quiero denunciar", "En el bar tienen a unas muchachas", "listo", "guatemala"):
        phone.says(text)
    for _ in range(5):
        phone.says("saltar")
    replies = phone.says("no") + phone.says("no") + phone.says("si")  # danger now, contact, send
    filed = any("TRT-" in r for r in replies)
    tracker = sqlite3.connect(target.tracker_url.removeprefix("sqlite:///"))
    try:
        names = tracker.execute("SELECT DISTINCT intent_name, action_name, type_name FROM events").fetchall()
    finally:
        tracker.close()
    clear = sorted({str(n) for row in names for n in row[:2] if n} | {str(row[2]) for row in names} - {"event"})
    return Outcome(FAILED if clear or not filed else REFUSED, f"report filed: {filed}; names in clear: {clear[:4]}")


def danger_lexicon_loaded(client: httpx.Client, target: Target) -> Outcome:
    """Not an attack: a sanity check that the run's alarm phrase is one the lexicon reads."""
    return Outcome(REFUSED if DangerLexicon.from_file().is_danger(ALARM) else FAILED, "alarm phrase recognised")


ATTACKS: list[tuple[str, Callable[[httpx.Client, Target], Outcome]]] = [
    ("the staff console inside the internet-facing gateway", console_in_the_gateway),
    ("Rasa's HTTP API without its token (tracker, PUT /model, pause)", rasa_api_without_token),
    ("Rasa's REST webhook / the gateway channel without the token", rasa_webhooks_without_token),
    ("the action server without the actions token", action_server_without_token),
    ("Rasa or the action server listening beyond loopback", listening_on_every_interface),
    ("intent commands after spaces, zero-width and no-break spaces", intent_injection),
    ("a command carrying a name and number into Rasa's log", user_text_in_logs),
    ("a forged reply address (hand-off to a number of our choosing)", forged_reply_address),
    ("the simulator without its token, or claiming 127.0.0.1", simulator_without_its_token),
    ("an emergency while the reports database is locked", emergency_with_the_database_locked),
    ("30 alarming messages in a minute (each an SMS)", flood_of_alarms),
    ("the same delivery replayed", replayed_delivery),
    ("databases and logs readable by other users", world_readable_files),
    ("30 console logins with a password typed as the name", login_flood_with_a_password_as_name),
    ("joining a report to a sender through the tracker store's clear columns", report_linked_by_tracker_metadata),
    ("(check) the alarm phrase is one the danger lexicon reads", danger_lexicon_loaded),
]


def run(target: Target) -> list[tuple[str, Outcome]]:
    results = []
    with httpx.Client(timeout=30.0) as client:
        for name, attack in ATTACKS:
            try:
                outcome = attack(client, target)
            except Exception as error:  # an attack that breaks the run is a finding, not a crash
                outcome = Outcome(FAILED, f"the attempt broke: {type(error).__name__}: {error}"[:200])
            results.append((name, outcome))
            print(f"  {outcome.result:22} {name}  ({outcome.detail})", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--rasa", default="http://127.0.0.1:5005")
    parser.add_argument("--actions", default="http://127.0.0.1:5055")
    parser.add_argument("--console", default="http://127.0.0.1:8100/console")
    parser.add_argument("--keys-dir", type=Path, default=Path(os.environ.get("HOTLINE_KEYS_DIR") or ROOT / "keys"))
    parser.add_argument("--log-dir", type=Path, default=ROOT / "build" / "logs")
    parser.add_argument(
        "--database-url", default=os.environ.get("HOTLINE_DATABASE_URL", f"sqlite:///{ROOT / 'hotline.db'}")
    )
    parser.add_argument("--tracker-url", default=os.environ.get("HOTLINE_TRACKER_URL", f"sqlite:///{ROOT / 'rasa.db'}"))
    args = parser.parse_args(argv)
    target = Target(
        args.gateway,
        args.rasa,
        args.actions,
        args.console,
        args.keys_dir,
        args.log_dir,
        args.database_url,
        args.tracker_url,
    )
    print(f"==> Attacks against the hotline at {target.gateway} (loopback only)")
    results = run(target)
    failed = [name for name, outcome in results if outcome.result == FAILED]
    print(f"==> {len(results) - len(failed)} of {len(results)} refused or answered as promised")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
