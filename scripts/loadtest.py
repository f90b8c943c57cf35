"""`make loadtest`: many people at once through the cluster while its parts fail.

A cluster as `make cluster` runs it (scripts/cluster.py), on its own PostgreSQL and Redis
(scripts/services.py: they are restarted during the run, which must not touch the machine's
own), with Twilio's and Telegram's servers faked on loopback. Conversations of 10 or more
turns each arrive as signed Twilio SMS and Telegram updates through HAProxy: content
questions, the job-offer checklist, full report filings followed by a lookup of the code,
emergencies and a request for a person. Providers retry a webhook that failed (Twilio's
connection overrides, Telegram's own retries) with the same message id, and so does this
client. During the run: one Rasa replica is killed (SIGKILL) and started again, one gateway
is stopped (SIGTERM, what a rollout sends) and started again, PostgreSQL is restarted, and
Redis is restarted (losing everything it held).

At the end it checks and prints: every message answered, or held and answered later; no
reply sent to another conversation; every report stored once with its code shown once;
every emergency answered with the numbers within Twilio's 15 s; each conversation's tracker
complete and in order. Then latency per kind of turn, messages per second, and what each
fault cost. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bench.latency import percentile
from bench.results import replace_section
from channels.core import sender_pseudonym
from hotline.content import load_facts
from hotline.report_codes import code_body, normalize_code
from hotline.text import fold_accents
from reports import crypto
from reports.config import Settings
from reports.db import make_engine, transaction
from reports.keys import load_gateway_key, load_keys, load_private_key
from reports.models import Report
from reports.service import open_report
from scripts.cluster import Cluster, running_cluster
from scripts.services import PrivatePostgres, PrivateRedis, private_postgres, private_redis
from scripts.stack import ROOT
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

TELEGRAM_TOKEN = "123456789:LOAD-token-for-the-fake-bot-api"
TELEGRAM_SECRET = "load-webhook-secret-0123456789"
TWILIO_NUMBER = "+15005550006"
CODE = re.compile(r"TRT-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]")
EMERGENCY_FACT = "mx.emergency"  # a number every emergency page for the region carries (content/facts.yml)
HELD = ("no se perdio", "llega en unos minutos")  # content/gateway.yml: kept, or slow; answered later
FAILED = "no pudimos leer tu mensaje"  # content/gateway.yml: assistant_failed (nothing kept)
LATE_ANSWER_WAIT_SECONDS = 150.0
TELEGRAM_FIRST_REPLY_SECONDS = 60.0
TELEGRAM_QUIET_SECONDS = 0.6  # the replies of one turn come one after the other
TWILIO_DEADLINE_SECONDS = 15.0
PROVIDER_RETRIES = 5
REPORT_ANSWERS = ("guatemala", "{place}", "ayer en la noche", "como 5", "si", "1", "no", "no")


# -- conversations --------------------------------------------------------------------------


@dataclass
class Turn:
    text: str
    kind: str  # content, checklist, report, lookup, emergency, handoff
    sent_at: float = 0.0
    first_reply_at: float | None = None
    replies: list[str] = field(default_factory=list)
    held: bool = False  # the gateway kept it (or Rasa was slow): answered later
    failed: bool = False
    retries: int = 0
    late_replies: int = 0


@dataclass
class Conversation:
    index: int
    kind: str
    channel: str  # sms or telegram
    address: str  # phone number or chat id
    turns: list[Turn]
    marker: str = ""  # the report's unique place: shows cross-talk
    code: str | None = None

    @property
    def tracked_texts(self) -> list[str]:
        return [turn.text for turn in self.turns]


def script(index: int, rng: random.Random) -> Conversation:
    """One conversation of 10+ turns; the mix repeats every 20 conversations."""
    slot = index % 20
    channel = "telegram" if index % 3 == 0 else "sms"
    address = str(8_000_000_000 + index) if channel == "telegram" else f"+5025{index:07d}"
    greet = rng.choice(["hola", "buenas", "hola buenas tardes"])
    if slot < 7:
        kind = "content"
        texts = [greet, "menu", "que es la trata", "y el trafico de personas?", "mis derechos como migrante"]
        texts += ["necesito papeles", "viajo con mi hijo", "hay albergues?", "gracias", "adios"]
        turns = [Turn(t, "content") for t in texts]
    elif slot < 11:
        kind = "checklist"
        turns = [Turn(greet, "content"), Turn("me ofrecen chamba en cancun con todo pagado, es real?", "checklist")]
        turns += [Turn(a, "checklist") for a in ("si", "no", "no", "no", "si")]
        turns += [Turn(t, "content") for t in ("gracias", "menu", "adios")]
    elif slot < 16:
        kind = "report"
        place = f"rancho LT{index:04d}"
        texts = ["quiero denunciar", "Tienen encerrados a unos trabajadores en un rancho", "listo"]
        texts += [a.format(place=place) for a in REPORT_ANSWERS] + ["si"]
        turns = [Turn(greet, "content"), *(Turn(t, "report") for t in texts)]
        conversation = Conversation(index, kind, channel, address, turns, marker=f"LT{index:04d}")
        return conversation  # the lookup turn is added once the code is known
    elif slot < 19:
        kind = "emergency"
        texts = [greet, "menu", "que es la trata"]
        turns = [Turn(t, "content") for t in texts] + [Turn("me van a matar ayudenme", "emergency")]
        turns += [Turn(t, "content") for t in ("estoy escondida", "gracias", "menu", "mis derechos", "adios", "hola")]
    else:
        kind = "handoff"
        texts = [greet, "menu", "que es la trata", "mis derechos", "necesito papeles", "hay albergues?"]
        turns = [Turn(t, "content") for t in texts] + [Turn("quiero hablar con una persona", "handoff")]
        turns += [Turn(t, "content") for t in ("gracias", "sigo aqui", "adios")]
    return Conversation(index, kind, channel, address, turns)


# -- the outside world: providers and what they record -----------------------------------------


class Outbox:
    """What the gateways sent through Twilio's and Telegram's APIs, by address, with the time
    each message was seen (read from the fakes every 20 ms)."""

    def __init__(self, twilio: FakeTwilio, telegram: FakeTelegram) -> None:
        self.twilio, self.telegram = twilio, telegram
        self.by_address: dict[str, list[tuple[float, str]]] = {}
        self._seen_twilio = 0
        self._seen_telegram = 0
        self.unknown: list[str] = []  # sent to an address no conversation has

    def collect(self, known: set[str]) -> None:
        now = time.monotonic()
        twilio = self.twilio.requests[self._seen_twilio :]
        self._seen_twilio += len(twilio)
        for request in twilio:
            if request.method == "POST" and request.path.endswith("/Messages.json"):
                to = request.form.get("To", [""])[0].removeprefix("whatsapp:")
                self._add(to, request.form["Body"][0], now, known)
        telegram = self.telegram.calls[self._seen_telegram :]
        self._seen_telegram += len(telegram)
        for call in telegram:
            if call.method == "sendMessage":
                self._add(call.params["chat_id"], call.params["text"], now, known)

    def _add(self, address: str, text: str, now: float, known: set[str]) -> None:
        if address not in known:
            self.unknown.append(address)
        self.by_address.setdefault(address, []).append((now, text))

    def count(self, address: str) -> int:
        return len(self.by_address.get(address, []))

    def since(self, address: str, start: int) -> list[tuple[float, str]]:
        return self.by_address.get(address, [])[start:]

    async def run(self, known: set[str], stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.collect(known)
            await asyncio.sleep(0.02)  # reading what the fakes recorded, not waiting on a race
        self.collect(known)


@lru_cache(maxsize=1)
def emergency_number() -> str:
    """Mexico's emergency number as content/facts.yml states it (never written here)."""
    return str(load_facts()[EMERGENCY_FACT].value)


def folded(text: str) -> str:
    return fold_accents(text.lower())


def is_held(text: str) -> bool:
    return any(mark in folded(text) for mark in HELD)


@dataclass
class Client:
    cluster: Cluster
    http: httpx.AsyncClient
    outbox: Outbox
    update_ids: Iterator[int]

    async def post_with_retries(self, turn: Turn, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
        """As Twilio (connection overrides) and Telegram do: a failed webhook is sent again."""
        for attempt in range(PROVIDER_RETRIES + 1):
            try:
                response = await send()
                if response.status_code < 500:
                    return response
            except httpx.TransportError:
                pass
            turn.retries += 1
            await asyncio.sleep(0.5 * (attempt + 1))  # the provider's back-off between retries
        raise RuntimeError("the provider gave up")

    async def sms(self, conversation: Conversation, turn: Turn) -> None:
        url = f"{self.cluster.gateway_url}/webhooks/twilio/sms"
        form = {"From": conversation.address, "To": TWILIO_NUMBER, "Body": turn.text}
        number = conversation.turns.index(turn)
        form["MessageSid"] = f"SM{conversation.index:08d}{number:04d}{random.getrandbits(80):020x}"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
        before = self.outbox.count(conversation.address)
        response = await self.post_with_retries(
            turn, lambda: self.http.post(url, data=form, headers={"X-Twilio-Signature": signature})
        )
        turn.first_reply_at = time.monotonic()
        turn.replies = [m.text or "" for m in ElementTree.fromstring(response.text).iter("Message")]
        if any(is_held(r) for r in turn.replies):
            turn.held = True
            await self.wait_late(conversation, turn, before)

    async def telegram(self, conversation: Conversation, turn: Turn) -> None:
        url = f"{self.cluster.gateway_url}/webhooks/telegram"
        chat = int(conversation.address)
        update = {
            "update_id": next(self.update_ids),
            "message": {
                "message_id": 100 + conversation.turns.index(turn),
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "Ana"},
                "from": {"id": chat, "is_bot": False, "first_name": "Ana"},
                "text": turn.text,
            },
        }
        before = self.outbox.count(conversation.address)
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        await self.post_with_retries(turn, lambda: self.http.post(url, json=update, headers=headers))
        replies = await self.wait_replies(conversation.address, before, TELEGRAM_FIRST_REPLY_SECONDS)
        if replies:
            turn.first_reply_at = replies[0][0]
        turn.replies = [text for _, text in replies]
        if any(is_held(r) for r in turn.replies):
            turn.held = True
            await self.wait_late(conversation, turn, before + len(replies))

    async def wait_replies(self, address: str, start: int, first_within: float) -> list[tuple[float, str]]:
        """The messages sent to `address` after the first `start`: once one has come, until
        none comes for a moment (one turn's replies go out one after the other)."""
        deadline = time.monotonic() + first_within
        while self.outbox.count(address) <= start:
            if time.monotonic() > deadline:
                return []
            await asyncio.sleep(0.02)
        count = self.outbox.count(address)
        while True:
            await asyncio.sleep(TELEGRAM_QUIET_SECONDS)
            if self.outbox.count(address) == count:
                return self.outbox.since(address, start)
            count = self.outbox.count(address)

    async def wait_late(self, conversation: Conversation, turn: Turn, start: int) -> None:
        """A held or slow message: its answer comes later through the channel's API."""
        late = await self.wait_replies(conversation.address, start, LATE_ANSWER_WAIT_SECONDS)
        turn.late_replies = len(late)
        turn.replies += [text for _, text in late]


async def after(first: asyncio.Task[Any] | None, then: Awaitable[None]) -> None:
    """`then` once `first` has finished."""
    if first is not None:
        await asyncio.wait([first])
    await then


async def talk(client: Client, conversation: Conversation, start_after: float, rng: random.Random) -> None:
    await asyncio.sleep(start_after)  # conversations arrive spread over the fault window
    turns = list(conversation.turns)
    while turns:
        turn = turns.pop(0)
        turn.sent_at = time.monotonic()
        try:
            if conversation.channel == "sms":
                await client.sms(conversation, turn)
            else:
                await client.telegram(conversation, turn)
        except RuntimeError:
            turn.failed = True
        if any(FAILED in folded(r) for r in turn.replies):
            turn.failed = True
        if conversation.kind == "report" and turn.text == "si" and turn is conversation.turns[-1]:
            found = CODE.search(" ".join(turn.replies))
            if found:
                conversation.code = found.group(0)
                lookup = Turn(f"seguimiento {conversation.code}", "lookup")
                conversation.turns.append(lookup)
                turns.append(lookup)
        await asyncio.sleep(rng.uniform(0.3, 1.5))  # a person reads and types


# -- faults ---------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    started: float
    recovered: float = 0.0


async def break_things(cluster: Cluster, postgres: PrivatePostgres, redis_server: PrivateRedis) -> list[Fault]:
    """The four faults one after the other, each while conversations run."""
    faults: list[Fault] = []

    async def fault(name: str, action: Callable[[], None], settle: float) -> None:
        await asyncio.sleep(settle)
        record = Fault(name, time.monotonic())
        await asyncio.to_thread(action)
        record.recovered = time.monotonic()
        faults.append(record)

    def rasa_down_and_up() -> None:
        cluster.kill("rasa-2")
        time.sleep(5)  # the replica stays dead a while, as after a crash
        cluster.start("rasa-2")
        cluster.wait_ready(["rasa-2"])

    def gateway_down_and_up() -> None:
        import signal

        cluster.kill("gateway-1", signal.SIGTERM)
        time.sleep(3)  # one gateway fewer for a while
        cluster.start("gateway-1")
        cluster.wait_ready(["gateway-1"])

    await fault("Rasa replica killed and restarted", rasa_down_and_up, 5)
    await fault("gateway stopped and restarted", gateway_down_and_up, 3)
    await fault("PostgreSQL restarted", postgres.restart, 3)
    await fault("Redis restarted (emptied)", redis_server.restart, 3)
    return faults


# -- checks ---------------------------------------------------------------------------------


@dataclass
class Result:
    conversations: list[Conversation]
    faults: list[Fault]
    seconds: float
    unanswered: int = 0
    failed: int = 0
    cross_talk: int = 0
    unknown_addresses: int = 0
    reports_expected: int = 0
    reports_stored: int = 0
    reports_duplicated: int = 0
    codes_shown_twice: int = 0
    codes_wrong_report: int = 0
    emergencies: int = 0
    emergencies_late: int = 0
    trackers_checked: int = 0
    trackers_wrong: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def turns(self) -> list[Turn]:
        return [turn for c in self.conversations for turn in c.turns]

    @property
    def ok(self) -> bool:
        bad = [self.unanswered, self.failed, self.cross_talk, self.unknown_addresses, self.reports_duplicated]
        bad += [self.codes_shown_twice, self.codes_wrong_report, self.emergencies_late, self.trackers_wrong]
        return not any(bad) and self.reports_stored == self.reports_expected


def check(cluster: Cluster, conversations: list[Conversation], faults: list[Fault], seconds: float) -> Result:
    result = Result(conversations, faults, seconds)
    for conversation in conversations:
        check_turns(result, conversation)
    check_reports(result, cluster, [c for c in conversations if c.kind == "report"])
    check_trackers(result, cluster, [c for c in conversations if c.kind != "report"])
    return result


def check_turns(result: Result, conversation: Conversation) -> None:
    for turn in conversation.turns:
        answered = [r for r in turn.replies if not is_held(r)]
        if turn.failed:
            result.failed += 1
        elif not answered:
            result.unanswered += 1
            result.problems.append(f"conversation {conversation.index}: no answer to {turn.text!r}")
        for reply in turn.replies:
            for marker in re.findall(r"LT\d{4}", reply):
                if marker != conversation.marker:
                    result.cross_talk += 1
        if turn.kind == "emergency":
            result.emergencies += 1
            numbers = [r for r in turn.replies if emergency_number() in r]
            waited = (turn.first_reply_at or float("inf")) - turn.sent_at
            if not numbers or waited > TWILIO_DEADLINE_SECONDS:
                result.emergencies_late += 1
                result.problems.append(f"emergency in conversation {conversation.index} after {waited:.1f}s")


def check_reports(result: Result, cluster: Cluster, filed: list[Conversation]) -> None:
    """Each filing conversation: one report with its place, the code shown once, and the
    code opening that report (not another)."""
    settings = Settings(database_url=cluster.database_url, keys_dir=cluster.keys_dir)
    keys, private_key = load_keys(settings), load_private_key(settings)
    engine = make_engine(cluster.database_url)
    result.reports_expected = len(filed)
    try:
        with transaction(engine) as session:
            places: dict[str, list[str]] = {}
            for report_id in session.scalars(select(Report.id)):
                body = open_report(session, report_id, private_key)["body"]
                for marker in re.findall(r"LT\d{4}", str(body.get("place", ""))):
                    places.setdefault(marker, []).append(report_id)
            for conversation in filed:
                stored = places.get(conversation.marker, [])
                result.reports_stored += min(len(stored), 1)
                result.reports_duplicated += max(len(stored) - 1, 0)
                reports = [" ".join(turn.replies) for turn in conversation.turns if turn.kind == "report"]
                shown = [code for text in reports for code in CODE.findall(text)]
                if len(shown) > 1:
                    result.codes_shown_twice += 1
                if conversation.code and stored:
                    code = normalize_code(conversation.code) or ""
                    lookup_hash = crypto.code_secrets(code_body(code), keys.code_salt).lookup_hash
                    found = session.scalar(select(Report.id).where(Report.lookup_hash == lookup_hash))
                    if found not in stored:
                        result.codes_wrong_report += 1
                elif stored:
                    result.problems.append(f"conversation {conversation.index}: report stored, no code seen")
                if not stored:
                    result.problems.append(f"conversation {conversation.index}: no report stored")
    finally:
        engine.dispose()


def check_trackers(result: Result, cluster: Cluster, conversations: list[Conversation]) -> None:
    """Every message of the conversation in Rasa's tracker, once, in the order sent."""
    gateway_key = load_gateway_key(Settings(database_url=cluster.database_url, keys_dir=cluster.keys_dir))
    with httpx.Client(timeout=30) as http:
        for conversation in conversations:
            sender = sender_pseudonym(gateway_key, conversation.channel, conversation.address)
            tracker = http.get(
                f"{cluster.rasa_url}/conversations/{sender}/tracker",
                params={**cluster.rasa_params, "include_events": "ALL"},
            ).json()
            said = [e.get("text") for e in tracker.get("events", []) if e.get("event") == "user"]
            result.trackers_checked += 1
            if said != conversation.tracked_texts:
                result.trackers_wrong += 1
                result.problems.append(f"conversation {conversation.index}: tracker {said} != sent")


# -- the report -------------------------------------------------------------------------------


def fault_costs(result: Result) -> list[tuple[str, float, int, int]]:
    """(fault, seconds with errors or held answers, messages held, provider retries) in the
    window from the fault's start to the next fault's start (or the end)."""
    costs = []
    starts = [f.started for f in result.faults] + [float("inf")]
    for fault, end in zip(result.faults, starts[1:], strict=True):
        window = [t for t in result.turns if fault.started <= t.sent_at < end]
        troubled = [t for t in window if t.held or t.retries or t.failed]
        span = (max(t.sent_at for t in troubled) - min(t.sent_at for t in troubled)) if troubled else 0.0
        costs.append((fault.name, span, sum(t.held for t in window), sum(t.retries for t in window)))
    return costs


def print_report(result: Result) -> None:
    print(report_text(result))


def report_text(result: Result) -> str:
    """The counts, latencies and fault costs as Markdown tables (printed; `--record` puts
    them in bench/RESULTS.md)."""
    lines: list[str] = []
    out = lines.append
    turns = result.turns
    out(f"{len(result.conversations)} conversations, {len(turns)} messages, through HAProxy")
    rate = len(turns) / result.seconds
    out(f"{rate:.1f} messages/s over {result.seconds:.0f} s (the client shares the cores)")
    out("\n| check | count |\n|---|---|")
    rows = [
        ("messages unanswered (neither answered nor held and answered later)", result.unanswered),
        ("messages answered 'we could not read it' (nothing kept)", result.failed),
        ("messages held and answered later", sum(t.held for t in turns)),
        ("webhooks retried by the provider (5xx or connection)", sum(t.retries for t in turns)),
        ("replies to another conversation (cross-talk)", result.cross_talk),
        ("API messages to an address nobody used", result.unknown_addresses),
        ("reports expected / stored once", f"{result.reports_expected} / {result.reports_stored}"),
        ("reports stored twice", result.reports_duplicated),
        ("codes shown twice / opening another report", f"{result.codes_shown_twice} / {result.codes_wrong_report}"),
        ("emergencies / answered after 15 s or without numbers", f"{result.emergencies} / {result.emergencies_late}"),
        ("trackers checked / incomplete or out of order", f"{result.trackers_checked} / {result.trackers_wrong}"),
    ]
    for name, value in rows:
        out(f"| {name} | {value} |")
    out("\n| turn kind | n | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|")
    for kind in ("content", "checklist", "report", "lookup", "emergency", "handoff"):
        waits = [(t.first_reply_at - t.sent_at) * 1000 for t in turns if t.kind == kind and t.first_reply_at]
        if waits:
            p50, p95, p99 = (percentile(waits, s) for s in (0.5, 0.95, 0.99))
            out(f"| {kind} | {len(waits)} | {p50:.0f} | {p95:.0f} | {p99:.0f} |")
    out("\n| fault | took s | s with errors or held answers | messages held | retries |\n|---|---|---|---|---|")
    for (name, span, held, retries), fault in zip(fault_costs(result), result.faults, strict=True):
        out(f"| {name} | {fault.recovered - fault.started:.1f} | {span:.1f} | {held} | {retries} |")
    for problem in result.problems[:20]:
        out(f"  ! {problem}")
    out("\nPASS" if result.ok else "\nFAIL")
    return "\n".join(lines)


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def fakes() -> Iterator[tuple[FakeTwilio, FakeTelegram]]:
    twilio = FakeTwilio()
    twilio.start()
    try:
        with FakeTelegram(TELEGRAM_TOKEN) as telegram:
            yield twilio, telegram
    finally:
        twilio.down()


def provider_settings(twilio: FakeTwilio, telegram: FakeTelegram) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_SMS_FROM": TWILIO_NUMBER,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "HOTLINE_TWILIO_API_URL": twilio.url,
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "HOTLINE_TELEGRAM_API_URL": telegram.url,
    }


@dataclass
class Plan:
    """What to run: how many conversations, arriving over how long, with or without faults."""

    conversations: int
    spread_seconds: float
    faults: bool = True
    seed: int = 7


async def drive(
    cluster: Cluster, outbox: Outbox, postgres: PrivatePostgres, redis_server: PrivateRedis, plan: Plan
) -> Result:
    rng = random.Random(plan.seed)
    count = plan.conversations
    conversations = [script(i, rng) for i in range(count)]
    known = {c.address for c in conversations}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        client = Client(cluster, http, outbox, iter(range(1, 10**9)))
        watcher = asyncio.create_task(outbox.run(known, stop))
        breaker = asyncio.create_task(break_things(cluster, postgres, redis_server)) if plan.faults else None
        # Most conversations arrive over the spread; the last fifth after the last fault, so
        # that traffic meets every fault and the cluster is seen working after them all.
        last = count - count // 5 if breaker else count
        starts = [plan.spread_seconds * i / last for i in range(last)]
        talks = [talk(client, c, start, rng) for c, start in zip(conversations[:last], starts, strict=True)]
        talks += [after(breaker, talk(client, c, 0.5 * i, rng)) for i, c in enumerate(conversations[last:])]
        await asyncio.gather(*talks)
        broken = await breaker if breaker else []
        stop.set()
        await watcher
    seconds = time.monotonic() - started
    result = await asyncio.to_thread(check, cluster, conversations, broken, seconds)
    result.unknown_addresses = len(outbox.unknown)
    return result


def run_load(plan: Plan, log_dir: Path | None = None) -> Result:
    """Start private PostgreSQL and Redis, the fakes and the cluster; drive the plan's
    conversations; check and return the result."""
    work = log_dir or Path(tempfile.mkdtemp(prefix="hotline-load-"))
    with fakes() as (twilio, telegram), private_postgres() as postgres, private_redis() as redis_server:  # noqa: SIM117
        with running_cluster(
            work / "logs",
            keys_dir=work / "keys",
            admin_url=postgres.admin_url,
            redis_url=redis_server.url,
            extra_env=provider_settings(twilio, telegram),
        ) as cluster:  # started once the services it needs are up
            return asyncio.run(drive(cluster, Outbox(twilio, telegram), postgres, redis_server, plan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which conversations start")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--log-dir", type=Path, default=Path("build") / "loadtest")
    parser.add_argument("--record", action="store_true", help="write the tables into bench/RESULTS.md")
    args = parser.parse_args(argv)
    print(f"==> {args.conversations} conversations through a cluster on private PostgreSQL and Redis")
    result = run_load(Plan(args.conversations, args.spread, not args.no_faults), log_dir=args.log_dir)
    text = report_text(result)
    print(text)
    if args.record:
        intro = (
            f"`make loadtest`, {date.today()}, {platform.machine()} ({os.cpu_count()} cores), everything on this "
            "machine: the cluster of deploy/cluster.yml (2 Rasa, 2 action servers, 2 gateways behind HAProxy, "
            "console, 2 job runners) on a private PostgreSQL and Redis, the client and the fake Twilio and "
            "Telegram servers. Faults during the run: a Rasa server killed (SIGKILL) and started again, a gateway "
            "stopped (SIGTERM) and started again, PostgreSQL restarted (fast), Redis restarted (emptied).\n\n"
        )
        replace_section(ROOT / "bench" / "RESULTS.md", "Load and fault test (issue 11)", intro + text)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
