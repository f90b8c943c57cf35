"""The gateway's shared core: everything between a channel module and the assistant.

For each inbound message: drop a duplicate delivery, turn the address into a pseudonym
(keyed HMAC, the only form in which a sender leaves this module), honour opt-out words,
limit floods (never an emergency), forward the text to Rasa under the pseudonym with the
reply address sealed for the report form (`reply_to`), and turn Rasa's answers into
replies. When Rasa is down or slow the person gets a short answer with emergency numbers
at once, and the message is kept (sealed with the gateway key) and answered when Rasa is
back. Addresses and texts never reach a log line.

Live hand-off: while a staff member holds a conversation (console/handoff.py), Rasa is
paused with its own `pause` event; the person's messages still go to Rasa (which keeps them
and answers nothing) and are kept sealed for the staff member; one the danger lexicon reads
as an emergency still gets the emergency numbers at once; staff messages go out
through the channel's API. A held conversation whose person stays silent is handed back.

WhatsApp's 24-hour window: WhatsApp takes a free-form message only within 24 hours of the
person's last message (the gateway notes its time, per pseudonym). A staff message after
that is held (sealed with the gateway key) and an approved template tells the person that a
message waits (neutral words: a watched phone shows nothing of the line); their next
message reopens the window and the held messages go out. Each staff send says which path
it took (SEND_PATHS); Twilio's own "outside the window" (63016) also takes the template path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
import yaml
from nacl.secret import SecretBox
from sqlalchemy import Engine

from channels import metrics
from channels.base import (
    ChannelAdapter,
    ConfigError,
    ContactStopped,
    DiscreetWords,
    InboundMessage,
    OutsideWindow,
    Reply,
    SendError,
    new_rasa_message_id,
)
from channels.config import GatewaySettings
from channels.media import clean_photo, is_photo
from channels.rasa_client import RasaClient, RasaUnavailable, ReplicaHealth, menu_options
from channels.shared import MemoryState, SharedState, SharedUnavailable, call, shared_state
from channels.state import GatewayStore, PendingRow
from hotline.content import render_all
from hotline.danger import DangerLexicon
from hotline.discreet import gateway_notice, hide_sensitive, rephrase, sensitive_words_in
from hotline.edge import sign_metadata
from hotline.paths import CONTENT
from hotline.text import folded_words, neutralise_command
from reports import handoffs
from reports.crypto import seal_contact
from reports.db import make_engine, transaction
from reports.keys import Keys, load_edge_key, load_gateway_key, load_keys, load_rasa_token
from reports.models import utcnow
from reports.questions import QuestionTally
from reports.service import keep_photo

logger = logging.getLogger("channels.core")
# An opaque id per inbound message for the log lines it causes (never the pseudonym).
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the lines one message causes can be followed
    (late answers too: their task keeps the context) without naming its sender."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


LATE_ANSWER_SECONDS = 120.0  # how long a slow Rasa answer is still awaited, to send it late
RATE_WINDOW_SECONDS = 60.0
MAX_PHOTOS_PER_MESSAGE = 3
KEPT_ANSWERED, KEPT_RECEIVED, KEPT_STILL_DOWN = "answered", "received", "still_down"
DELIVERY_MARK_SECONDS = 24 * 3600.0  # the shared fast path; the database remembers 400 days
# How a staff message went: "direct" on a channel without a reply window (SMS, Telegram);
# on WhatsApp "session" (the window is open), "template" (a template told the person a
# message waits; the text goes when they write) or "held" (a template already told them).
PATH_DIRECT, PATH_SESSION, PATH_TEMPLATE, PATH_HELD = "direct", "session", "template", "held"
SEND_PATHS = (PATH_DIRECT, PATH_SESSION, PATH_TEMPLATE, PATH_HELD)


@lru_cache(maxsize=1)
def gateway_content() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "gateway.yml").read_text(encoding="utf-8"))
    return data


def gateway_text(key: str) -> str:
    return str(gateway_content()["texts"][key])


@lru_cache(maxsize=1)
def emergency_page() -> str:
    """The region's emergency numbers, as the assistant says them (content/topics)."""
    return render_all()["utter_emergency"]["default"][0].text


@lru_cache(maxsize=1)
def emergency_pages() -> frozenset[str]:
    """Every variant of the emergency answer (each country's and the region's), in both
    modes (the discreet twin is the normal text rephrased: hotline/build.py)."""
    normal = {pages[0].text for pages in render_all()["utter_emergency"].values() if pages}
    return frozenset(normal | {rephrase(text) for text in normal})


def is_emergency_page(text: str) -> bool:
    return text in emergency_pages()


FALLBACK_KEYS = ("assistant_slow", "assistant_unavailable", "assistant_failed")
DISCREET_LOOKUP_SECONDS = 1.0  # past this the mode counts as discreet: an answer is never held up


@lru_cache(maxsize=1)
def notice_twins() -> dict[str, str]:
    """The gateway's notices (content/gateway.yml) -> what a discreet conversation gets."""
    return {
        text: gateway_notice(key) or hide_sensitive(text)
        for key, text in ((key, gateway_text(key)) for key in gateway_content()["texts"])
    }


def discreet_reply(reply: Reply) -> Reply:
    """A reply as a watched phone may show it: a notice's discreet twin, or the text with
    sensitive words rephrased (hidden when no rephrasing applies). Rasa's discreet twins
    pass unchanged; this is the guard for slot values and staff messages shown in them."""
    text = notice_twins().get(reply.text) or hide_sensitive(reply.text)
    if text == reply.text:
        return reply
    return Reply(text=text, options=menu_options(text) if reply.options else ())


def refuse_sensitive_staff_text(replies: list[Reply]) -> None:
    """A staff message to a discreet conversation: a gateway notice goes as its twin, any
    other text with a sensitive word is refused (the console tells staff which words)."""
    for reply in replies:
        if reply.text in notice_twins():
            continue
        found = sensitive_words_in(reply.text)
        if found:
            raise DiscreetWords(f"{len(found)} sensitive word(s)")


@lru_cache(maxsize=1)
def fallback_texts() -> frozenset[str]:
    """What the gateway says by itself when the assistant could not answer."""
    return frozenset(gateway_text(key) for key in FALLBACK_KEYS)


def emergency_how(danger: bool, replies: list[Reply], added: bool) -> str | None:
    """How an answer carried the emergency numbers, for the metrics (channels/metrics.py):
    "lexicon" when the gateway added them, "rasa" when Rasa's answer had them, "fallback"
    when the assistant could not answer a message read as an emergency; None otherwise (a
    fallback to an ordinary message carries them too, and is counted as a fallback only)."""
    if added:
        return "lexicon"
    if not any(is_emergency_page(r.text) for r in replies):
        return None
    if any(r.text in fallback_texts() for r in replies):
        return "fallback" if danger else None
    return "rasa"


def sender_pseudonym(gateway_key: bytes, channel: str, address: str) -> str:
    """A keyed hash of the channel and address: the only form in which a sender leaves the gateway."""
    return hmac.new(gateway_key, f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()[:32]


def words(text: str) -> str:
    return folded_words(text)


def safe_text(text: str) -> str:
    """What Rasa may receive: never an intent command ("/restart" after any spaces, line
    breaks or zero-width characters: hotline.text.neutralise_command), no NUL bytes."""
    return neutralise_command(text.replace("\x00", ""))


def kept_inbound(row: PendingRow, payload: dict[str, Any]) -> InboundMessage:
    """A kept message, sent to Rasa again under the id of its first try (rows kept before
    ids existed get a new one: Rasa cannot have taken them under it)."""
    kept_id = payload.get("message_id")
    message_id = kept_id if isinstance(kept_id, str) and kept_id else None
    return InboundMessage(
        row.channel,
        payload["address"],
        payload["text"],
        delivery_id=f"p-{row.row_id}",
        rasa_message_id=message_id or new_rasa_message_id(),
        sent_before=message_id is not None,
    )


@dataclass
class Outcome:
    """What the pipeline made of a message: the replies, and whether the message was held
    back (a flood, an opted-out sender) rather than taken to the assistant."""

    replies: list[Reply]
    held_back: bool = False


class FloodGuard:
    """At most N messages a minute per sender. Notices about it (and the emergency page of a
    flooded sender) go out at most once a minute. Counted in the gateways' shared state
    (channels/shared.py): with several gateways, whichever gets a message counts it. When
    that state cannot answer, messages pass and notices go out (fail open)."""

    def __init__(self, per_minute: int, shared: SharedState | None = None) -> None:
        self.per_minute = per_minute
        self.shared = shared or MemoryState()

    def first_notice(self, key: str, now: float | None = None) -> bool:
        """True once a minute per key: whether a notice may be sent now."""
        try:
            return self.shared.first_mark(f"notice:{key}", RATE_WINDOW_SECONDS, now)
        except SharedUnavailable:
            return True

    def allows(self, pseudonym: str, now: float | None = None) -> bool:
        try:
            return self.shared.hit(f"flood:{pseudonym}", self.per_minute, RATE_WINDOW_SECONDS, now)
        except SharedUnavailable:
            return True


@dataclass
class Gateway:
    settings: GatewaySettings
    engine: Engine
    keys: Keys  # only the staff public key: to seal reply addresses for reports
    gateway_key: bytes
    http: httpx.AsyncClient
    adapters: Mapping[str, ChannelAdapter]
    edge_key: bytes = field(default=b"", repr=False)  # signs message metadata for the actions
    rasa_token: str = field(default="", repr=False)  # Rasa's HTTP API and message webhook
    clock: Callable[[], datetime] = utcnow  # WhatsApp's window is measured with it (tests set it)

    def __post_init__(self) -> None:
        self.late_answers: set[asyncio.Future[None]] = set()
        self.store = GatewayStore(self.engine, self.gateway_key)
        self.box = SecretBox(self.gateway_key)
        s = self.settings
        self.shared = shared_state(s.redis_url, self.gateway_key, s.redis_prefix, s.redis_timeout_seconds)
        self.flood = FloodGuard(s.messages_per_minute, self.shared)
        for adapter in self.adapters.values():
            attach = getattr(adapter, "attach_shared", None)
            if attach is not None:  # the simulator's outbox and token
                attach(self.shared)
        self.replicas = ReplicaHealth()  # Rasa replicas that refused connections lately
        self.danger = DangerLexicon.from_file()
        self.questions = QuestionTally()  # topics answered, added to the database each round

    # -- identities --------------------------------------------------------------------

    def pseudonym(self, channel: str, address: str) -> str:
        """The sender as everything past the gateway knows it (Rasa, actions, logs)."""
        return sender_pseudonym(self.gateway_key, channel, address)

    @property
    def rasa(self) -> RasaClient:
        """The Rasa client for the current settings (cheap: it shares the HTTP pool)."""
        settings = self.settings
        return RasaClient(settings.rasa_urls, self.http, settings.rasa_timeout_seconds, self.rasa_token, self.replicas)

    def rasa_url(self, pseudonym: str) -> str:
        return self.rasa.url_for(pseudonym)

    # -- the pipeline ------------------------------------------------------------------

    async def handle(self, inbound: InboundMessage) -> list[Reply]:
        """The replies for one inbound message, as its phone may show them: discreet when
        the conversation was in discreet mode before or after this message (the answer that
        erases a conversation, and with it the mode, is still discreet)."""
        pseudonym = self.pseudonym(inbound.channel, inbound.address)
        before = asyncio.ensure_future(self._discreet_or_unknown(pseudonym))
        try:
            replies = await self._answer(inbound)
        finally:
            was_discreet = await before
        if replies and (was_discreet or await self._discreet_or_unknown(pseudonym)):
            return [discreet_reply(reply) for reply in replies]
        return replies

    async def _discreet_or_unknown(self, pseudonym: str) -> bool:
        try:
            return await asyncio.wait_for(self._is_discreet(pseudonym), DISCREET_LOOKUP_SECONDS)
        except Exception as error:  # TimeoutError, a database error: the safe side
            logger.warning("discreet mode unknown (%s): sent as discreet", type(error).__name__)
            return True

    async def _answer(self, inbound: InboundMessage) -> list[Reply]:
        """The replies for one inbound message ([] for a duplicate or an opted-out sender).

        Whether the message is an emergency is decided first, from its text alone. Whatever
        fails or is slow after that (the database, Rasa, a bug), the person gets an answer
        within the answer budget (inside Twilio's 15 s), and an emergency always carries the
        emergency numbers."""
        danger = self.danger.is_danger(inbound.text)
        label = metrics.channel(inbound.channel)
        metrics.MESSAGES_IN.labels(label).inc()
        request = REQUEST_ID.set(secrets.token_hex(4))
        try:
            outcome = await asyncio.wait_for(self._pipeline(inbound, danger), self.settings.answer_budget_seconds)
        except TimeoutError:
            logger.warning("answer budget spent channel=%s", inbound.channel)
            return self.fallback(danger, "assistant_slow", label)
        except Exception as error:  # the person is answered whatever broke; the error's text may hold input
            logger.error("pipeline failed channel=%s: %s", inbound.channel, type(error).__name__)
            metrics.ERRORS.labels("pipeline").inc()
            return self.fallback(danger, "assistant_failed", label)
        finally:
            REQUEST_ID.reset(request)
        if outcome is None:  # a duplicate delivery: answered the first time
            metrics.DUPLICATES.labels(label).inc()
            return []
        replies = outcome.replies
        page_missing = danger and not any(is_emergency_page(r.text) for r in replies)
        added = page_missing and await self._emergency_due(inbound, outcome)
        if added:
            replies.insert(0, Reply(emergency_page()))
        how = emergency_how(danger, replies, added)
        if how:
            metrics.EMERGENCY_ANSWERS.labels(label, how).inc()
        return replies

    def fallback(self, danger: bool, problem: str, channel: str) -> list[Reply]:
        """The answer when the pipeline could not finish: the emergency numbers first for an
        emergency, and what happened."""
        metrics.FALLBACK_ANSWERS.labels(metrics.channel(channel), problem.removeprefix("assistant_")).inc()
        if danger:
            metrics.EMERGENCY_ANSWERS.labels(metrics.channel(channel), "fallback").inc()
            return [Reply(emergency_page()), Reply(gateway_text(problem))]
        return [Reply(gateway_text(problem)), Reply(emergency_page())]

    async def _emergency_due(self, inbound: InboundMessage, outcome: Outcome) -> bool:
        """At most one emergency page a minute to a sender whose messages are held back (a
        flood, an opt-out): alarming words sent in a loop must not cost an SMS each."""
        if not outcome.held_back:
            return True
        pseudonym = self.pseudonym(inbound.channel, inbound.address)
        return await call(self.shared, self.flood.first_notice, f"emergency:{pseudonym}")

    async def _pipeline(self, inbound: InboundMessage, danger: bool) -> Outcome | None:
        if not await self._first_delivery(inbound):
            logger.info("duplicate delivery dropped channel=%s", inbound.channel)
            return None
        pseudonym = self.pseudonym(inbound.channel, inbound.address)
        if inbound.message_id:
            await self._remember_message(pseudonym, inbound.message_id)
        windowed = self._window(inbound.channel) is not None  # WhatsApp: staff replies need its time
        if windowed:
            await asyncio.to_thread(self.store.note_inbound, pseudonym, self.clock())
        text = words(inbound.text)
        if text in gateway_content()["opt_out_words"]:
            await self._set_opt_out(pseudonym, True)
            return Outcome([Reply(gateway_text("opted_out"))])
        if text in gateway_content()["opt_in_words"]:
            await self._set_opt_out(pseudonym, False)
            return Outcome([Reply(gateway_text("opted_in"))])
        if await self._is_opted_out(pseudonym):
            logger.info("message from an opted-out sender not forwarded")
            metrics.HELD_BACK.labels(metrics.channel(inbound.channel), "opted_out").inc()
            return Outcome([], held_back=True)  # an emergency still gets the numbers (handle)
        if windowed and not inbound.erase_request:
            self._release_held(inbound, pseudonym)
        if not await call(self.shared, self.flood.allows, pseudonym):
            logger.info("flood guard held a message back")
            metrics.HELD_BACK.labels(metrics.channel(inbound.channel), "flood").inc()
            if danger or not await call(self.shared, self.flood.first_notice, f"limited:{pseudonym}"):
                return Outcome([], held_back=True)  # an emergency gets the numbers (handle), once a minute
            return Outcome([Reply(gateway_text("rate_limited"))], held_back=True)
        replies: list[Reply] = []
        if inbound.media:
            replies.append(await self.take_media(pseudonym, inbound))
            if not inbound.text.strip():
                return Outcome(replies)
        if inbound.erase_request:
            return Outcome(replies + await self.erase(inbound, pseudonym))
        held = await asyncio.to_thread(self._handoff_inbound, pseudonym, inbound.text, danger)
        if held.live:  # an emergency is answered first in every state, a hand-off too (handle)
            return Outcome(replies + await self.tell_paused_rasa(pseudonym, inbound))
        if held.notice:
            replies.append(Reply(gateway_text("handoff_ended_idle")))
        try:
            replies += await self.ask_rasa(pseudonym, inbound, safe_text(inbound.text))
        except RasaUnavailable as unavailable:
            replies += await self.unavailable_answer(pseudonym, inbound, unavailable, danger)
        return Outcome(replies)

    async def unavailable_answer(
        self, pseudonym: str, inbound: InboundMessage, unavailable: RasaUnavailable, danger: bool = False
    ) -> list[Reply]:
        """At once, whatever happened: what we do about the message, and the emergency numbers."""
        reason = "slow" if unavailable.received else "unavailable"
        metrics.FALLBACK_ANSWERS.labels(metrics.channel(inbound.channel), reason).inc()
        if unavailable.received:
            told = [Reply(gateway_text("assistant_slow")), Reply(emergency_page())]
        else:
            await self._keep_pending(pseudonym, inbound)
            told = [Reply(gateway_text("assistant_unavailable")), Reply(emergency_page())]
        return told[::-1] if danger else told

    async def ask_rasa(self, pseudonym: str, inbound: InboundMessage, text: str) -> list[Reply]:
        """Rasa's answer within `rasa_timeout_seconds`. When Rasa is slower, the request is
        not abandoned: its answer (a case code, say) goes to the person through the
        channel's API when it comes, and RasaUnavailable(received=True) is raised now."""
        request = asyncio.ensure_future(self._post_to_rasa(pseudonym, inbound, text))
        try:
            return await asyncio.wait_for(asyncio.shield(request), self.settings.rasa_timeout_seconds)
        except TimeoutError:
            self._deliver_late(request, inbound)
            raise RasaUnavailable(received=True) from None
        except asyncio.CancelledError:  # the answer budget ran out while Rasa was working
            self._deliver_late(request, inbound)
            raise

    async def _post_to_rasa(self, pseudonym: str, inbound: InboundMessage, text: str) -> list[Reply]:
        started = time.monotonic()
        metadata = self.edge_metadata(pseudonym, inbound)
        answer = await self.rasa.message(
            pseudonym,
            text,
            metadata,
            timeout=LATE_ANSWER_SECONDS,
            message_id=inbound.rasa_message_id,
            retry=inbound.sent_before,
        )
        logger.info("answered channel=%s ms=%.0f", inbound.channel, (time.monotonic() - started) * 1000)
        self.questions.add(answer.topics)
        if answer.discreet is not None:  # DISCRETO, NORMAL, or the conversation erased
            await self._set_discreet(pseudonym, answer.discreet)
        return answer.replies

    def edge_metadata(self, pseudonym: str, inbound: InboundMessage) -> dict[str, str]:
        """What the actions may trust about a message: its channel and the sealed reply
        address, signed with the edge key (hotline.edge) so that nobody else can make them."""
        reply_to = seal_contact(self.keys.public_key, inbound.channel, inbound.address)
        return sign_metadata(self.edge_key, pseudonym, inbound.channel, reply_to)

    def _deliver_late(self, request: asyncio.Future[list[Reply]], inbound: InboundMessage) -> None:
        """When the abandoned request finishes, send its replies through the channel's API."""

        async def deliver_when_done() -> None:
            try:
                replies = await request
                if replies:
                    await self.deliver(inbound, replies)
                    logger.info("late answer delivered channel=%s", inbound.channel)
            except RasaUnavailable:
                logger.warning("late answer never came channel=%s", inbound.channel)
            except SendError as error:
                logger.warning("late answer not sent channel=%s: %s", inbound.channel, error.code)
                metrics.ERRORS.labels("send").inc()

        task = asyncio.ensure_future(deliver_when_done())
        self.late_answers.add(task)
        task.add_done_callback(self.late_answers.discard)

    async def take_media(self, pseudonym: str, inbound: InboundMessage) -> Reply:
        """A photo sent while the person is writing a report is kept with it (metadata
        stripped, sealed); anything else (another format, over a cap, a worker that
        failed) gets a polite answer and is not kept."""
        photos = [m for m in inbound.media if is_photo(m.content_type)][:MAX_PHOTOS_PER_MESSAGE]
        adapter = self.adapters.get(inbound.channel)
        if not photos or adapter is None or not await self.writing_report(pseudonym):
            return Reply(gateway_text("media_received"))
        kept = 0
        for media in photos:
            try:
                content = await adapter.fetch_media(media)
            except SendError as error:
                logger.warning("photo not downloaded (%s)", error.code)
                continue
            clean = await clean_photo(content)  # decoded in a keyless worker process, or refused
            if clean is None:
                continue
            try:
                await asyncio.to_thread(self._keep_photo, pseudonym, clean)
            except ValueError:
                continue
            kept += 1
        logger.info("photos kept with a report in progress: %d", kept)
        return Reply(gateway_text("photo_kept" if kept else "media_received"))

    async def writing_report(self, pseudonym: str) -> bool:
        """Whether this sender is inside the report form (Rasa's tracker says so)."""
        try:
            loop = (await self.rasa.tracker(pseudonym, include_events="NONE")).get("active_loop") or {}
        except (RasaUnavailable, AttributeError):
            return False
        return bool(loop.get("name") == "report_form")

    def _keep_photo(self, pseudonym: str, content: bytes) -> None:
        with transaction(self.engine) as session:
            keep_photo(session, pseudonym, content, "image/jpeg", self.keys)

    async def erase(self, inbound: InboundMessage, pseudonym: str) -> list[Reply]:
        """An explicit erase command (/borrar): the assistant's erasure without asking
        again (the command is the confirmation), then the chat's messages on the phone
        where the channel allows it."""
        if await asyncio.to_thread(self._forget_handoffs, pseudonym):
            try:
                await self.resume(pseudonym)  # a paused Rasa would not run the erasure
            except RasaUnavailable as unavailable:
                return await self.unavailable_answer(pseudonym, inbound, unavailable)
        try:
            await self.ask_rasa(pseudonym, inbound, "/delete_my_data")
            replies = await self.ask_rasa(pseudonym, inbound, "/affirm")
        except RasaUnavailable as unavailable:
            return await self.unavailable_answer(pseudonym, inbound, unavailable)
        ids = await self._forget_messages(pseudonym)
        await asyncio.to_thread(self.store.forget_window, pseudonym)
        adapter = self.adapters.get(inbound.channel)
        if adapter and ids:
            try:
                deleted = await adapter.delete_messages(inbound.address, ids)
                logger.info("erase: %d message(s) deleted on the phone", deleted)
            except SendError as error:
                logger.warning("erase: deleting messages failed (%s)", error.code)
        return replies

    async def deliver(self, inbound: InboundMessage, replies: list[Reply]) -> None:
        """Send replies through the channel's API (Telegram; late answers)."""
        await self.send_to(inbound.channel, inbound.address, replies)

    async def send_to(self, channel: str, address: str, replies: list[Reply], from_staff: bool = False) -> str:
        """Send through the channel's API (late answers, Telegram, staff); returns the path
        taken (SEND_PATHS). Raises a SendError subclass; ContactStopped also opts the person
        out, and nothing is sent to someone who opted out. In discreet mode a staff text with
        a sensitive word is refused (DiscreetWords), and anything else goes as the phone may
        show it. A staff message on WhatsApp outside the 24-hour window is held and
        announced by the template (TemplateRefused when the template cannot be used)."""
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise ConfigError(f"no channel {channel!r}")
        pseudonym = self.pseudonym(channel, address)
        if await self._is_opted_out(pseudonym):
            raise ContactStopped("the person opted out")
        if await self._discreet_or_unknown(pseudonym):
            if from_staff:
                refuse_sensitive_staff_text(replies)
            replies = [discreet_reply(reply) for reply in replies]
        window = self._window(channel)
        if window is None or not from_staff:
            await self._send_now(adapter, pseudonym, address, replies)
            return PATH_DIRECT
        return await self._send_in_window(adapter, pseudonym, address, replies, window)

    def _window(self, channel: str) -> timedelta | None:
        """The channel's reply window (WhatsApp: 24 hours), None for a channel without one."""
        window = getattr(self.adapters.get(channel), "session_window", None)
        return window if isinstance(window, timedelta) else None

    async def _send_now(self, adapter: ChannelAdapter, pseudonym: str, address: str, replies: list[Reply]) -> None:
        try:
            result = await adapter.send(address, replies)
        except ContactStopped:
            await self._set_opt_out(pseudonym, True)  # blocked the bot or STOP at the carrier: never retry
            raise
        metrics.MESSAGES_OUT.labels(metrics.channel(adapter.name), "api").inc(len(replies))
        if adapter.keeps_message_ids:
            for message_id in result.provider_ids:
                await self._remember_message(pseudonym, message_id)

    async def _send_in_window(
        self, adapter: ChannelAdapter, pseudonym: str, address: str, replies: list[Reply], window: timedelta
    ) -> str:
        """A staff message on a channel with a reply window: as written while it is open;
        else held behind a template (one template until the person writes again)."""
        now = self.clock()
        last = await asyncio.to_thread(self.store.last_inbound, pseudonym)
        if await asyncio.to_thread(self.store.has_held, pseudonym, now):
            await self._hold(pseudonym, adapter.name, replies, now)
            logger.info("staff message held behind an earlier template channel=%s", adapter.name)
            return PATH_HELD
        if last is not None and now - last < window:
            try:
                await self._send_now(adapter, pseudonym, address, replies)
                return PATH_SESSION
            except OutsideWindow:  # Twilio's clock says the window closed: the template path
                logger.info("outside the window by the provider's answer channel=%s", adapter.name)
        return await self._send_template(adapter, pseudonym, address, replies, now)

    async def _send_template(
        self, adapter: ChannelAdapter, pseudonym: str, address: str, replies: list[Reply], now: datetime
    ) -> str:
        """Hold the text, then send the template; a template that cannot go takes the held
        text back (the console keeps the staff member's draft and says why)."""
        send_template = getattr(adapter, "send_template", None)
        if send_template is None:
            raise ConfigError(f"no templates on {adapter.name}")
        row_id = await self._hold(pseudonym, adapter.name, replies, now)
        try:
            await send_template(address)
        except BaseException:
            await asyncio.to_thread(self.store.unhold, row_id)
            raise
        metrics.MESSAGES_OUT.labels(metrics.channel(adapter.name), "template").inc()
        logger.info("staff message held, template sent channel=%s", adapter.name)
        return PATH_TEMPLATE

    async def _hold(self, pseudonym: str, channel: str, replies: list[Reply], now: datetime) -> int:
        sealed = self.box.encrypt(json.dumps([[r.text, [list(o) for o in r.options]] for r in replies]).encode())
        return await asyncio.to_thread(self.store.hold, pseudonym, channel, bytes(sealed), now)

    def _release_held(self, inbound: InboundMessage, pseudonym: str) -> None:
        """The person wrote: the window is open again and held staff messages go out, after
        this message's own answer has started (a task, like late answers)."""

        async def release() -> None:
            held = await asyncio.to_thread(self.store.take_held, pseudonym)
            for n, (channel, sealed) in enumerate(held):
                said = json.loads(self.box.decrypt(sealed))
                replies = [Reply(text, tuple((str(d), str(o)) for d, o in options)) for text, options in said]
                if await self._discreet_or_unknown(pseudonym):
                    replies = [discreet_reply(reply) for reply in replies]
                try:
                    await self._send_now(self.adapters[channel], pseudonym, inbound.address, replies)
                except SendError as error:
                    logger.warning("held staff message not sent (%s)", error.code)
                    if not isinstance(error, ContactStopped):  # kept for the next message
                        await asyncio.to_thread(self.store.put_back_held, pseudonym, held[n:], self.clock())
                    return
            if held:
                logger.info("held staff messages delivered channel=%s count=%d", inbound.channel, len(held))

        task = asyncio.ensure_future(release())
        self.late_answers.add(task)
        task.add_done_callback(self.late_answers.discard)

    # -- live hand-off (console/handoff.py, through channels/relay.py) --------------------

    async def pause(self, pseudonym: str) -> None:
        await self.rasa.pause(pseudonym)

    async def resume(self, pseudonym: str) -> None:
        await self.rasa.resume(pseudonym)

    async def history(self, pseudonym: str, limit: int = 12) -> list[tuple[bool, str]]:
        return await self.rasa.history(pseudonym, limit)

    async def tell_paused_rasa(self, pseudonym: str, inbound: InboundMessage) -> list[Reply]:
        """A held conversation: Rasa keeps the message and answers nothing (it is paused);
        the staff member already has it, so a Rasa that is down changes nothing for the person."""
        try:
            replies = await self.ask_rasa(pseudonym, inbound, safe_text(inbound.text))
        except RasaUnavailable:
            return []
        if replies:
            logger.warning("rasa answered a conversation a staff member holds")
        return replies

    def _handoff_inbound(self, pseudonym: str, text: str, danger: bool) -> handoffs.InboundResult:
        return self.store.handoff_inbound(pseudonym, text, danger, self.keys)

    def _forget_handoffs(self, pseudonym: str) -> bool:
        return self.store.forget_handoffs(pseudonym)

    async def sweep_handoffs(self) -> int:
        """Hand back held conversations whose person went quiet (before Rasa's session
        expiry would drop the pause unseen; the person is told at their next message), and
        let requests nobody took lapse. Returns how many were handed back."""
        idle = await asyncio.to_thread(self.store.idle_handoffs)
        returned = 0
        for handoff_id, pseudonym in idle:
            try:
                await self.resume(pseudonym)
            except RasaUnavailable:
                break
            await asyncio.to_thread(self.store.close_idle_handoff, handoff_id)
            returned += 1
        return returned

    # -- kept messages (Rasa was down) --------------------------------------------------

    async def drain_pending(self) -> int:
        """Answer the kept messages, oldest first, while Rasa answers; returns how many.
        Each message is claimed first (channels/state.py), so that two gateways draining
        at once answer it once: the other skips it."""
        answered = 0
        for row in await asyncio.to_thread(self.store.pending_rows):
            claim = await asyncio.to_thread(self.store.claim_pending, row.row_id)
            if claim is None:  # another drainer has it (or answered it already)
                continue
            try:
                outcome = await self._answer_kept(row)
            except BaseException:
                await asyncio.to_thread(claim.release)
                raise
            await asyncio.to_thread(claim.release if outcome == KEPT_STILL_DOWN else claim.done)
            if outcome != KEPT_ANSWERED:  # Rasa is down or slow: the rest waits for the next round
                break
            answered += 1
        return answered

    async def _answer_kept(self, row: PendingRow) -> str:
        """Ask Rasa and send its answer. KEPT_RECEIVED: Rasa has it but is slow (its answer
        goes out when it comes: never asked twice); KEPT_STILL_DOWN: kept for later."""
        payload = json.loads(self.box.decrypt(row.sealed))
        inbound = kept_inbound(row, payload)
        request = REQUEST_ID.set(secrets.token_hex(4))  # its log lines can be followed, as a webhook's
        try:
            try:
                replies = await self.ask_rasa(row.pseudonym, inbound, safe_text(inbound.text))
            except RasaUnavailable as unavailable:
                return KEPT_RECEIVED if unavailable.received else KEPT_STILL_DOWN
            try:
                await self.deliver(inbound, replies)
            except SendError as error:
                logger.warning("late answer not sent (%s)", error.code)
            return KEPT_ANSWERED
        finally:
            REQUEST_ID.reset(request)

    async def _keep_pending(self, pseudonym: str, inbound: InboundMessage) -> None:
        kept = {"address": inbound.address, "text": inbound.text, "message_id": inbound.rasa_message_id}
        sealed = self.box.encrypt(json.dumps(kept).encode())
        await asyncio.to_thread(self.store.keep_pending, pseudonym, inbound.channel, bytes(sealed))
        logger.info("message kept until the assistant is back")

    # -- the gateway's own state (channels/state.py), from the event loop ----------------

    async def _first_delivery(self, inbound: InboundMessage) -> bool:
        """The database decides; with gateways sharing Redis, a mark set there first drops a
        delivery sent to two gateways at once without a database call."""
        mark = f"delivery:{inbound.channel}:{inbound.delivery_id}"
        marked = False
        if self.shared.distributed:
            try:
                if not await call(self.shared, self.shared.first_mark, mark, DELIVERY_MARK_SECONDS):
                    return False
                marked = True
            except SharedUnavailable:
                pass  # the database alone decides
        try:
            return await asyncio.to_thread(self.store.first_delivery, inbound.channel, inbound.delivery_id)
        except BaseException:
            if marked:  # not recorded: a retry of this delivery must not be dropped
                with contextlib.suppress(SharedUnavailable):
                    await call(self.shared, self.shared.forget_mark, mark)
            raise

    async def _set_opt_out(self, pseudonym: str, opted_out: bool) -> None:
        await asyncio.to_thread(self.store.set_opt_out, pseudonym, opted_out)

    async def _is_opted_out(self, pseudonym: str) -> bool:
        return await asyncio.to_thread(self.store.is_opted_out, pseudonym)

    async def _set_discreet(self, pseudonym: str, discreet: bool) -> None:
        await asyncio.to_thread(self.store.set_discreet, pseudonym, discreet)

    async def _is_discreet(self, pseudonym: str) -> bool:
        return await asyncio.to_thread(self.store.is_discreet, pseudonym)

    async def _remember_message(self, pseudonym: str, message_id: str) -> None:
        await asyncio.to_thread(self.store.remember_message, pseudonym, message_id)

    async def _forget_messages(self, pseudonym: str) -> list[str]:
        return await asyncio.to_thread(self.store.forget_messages, pseudonym)

    def purge(self) -> None:
        """Forget what is no longer needed: old deliveries, undeletable message ids."""
        self.store.purge()

    def close_shared(self) -> None:
        """Close the shared state's connections (the app's shutdown)."""
        self.shared.close()


def build_gateway(settings: GatewaySettings, adapters: Mapping[str, ChannelAdapter] | None = None) -> Gateway:
    """The gateway with its database, keys and adapters (created here, never at import)."""
    reports_settings = settings.keyring()
    if adapters is None:
        from channels.registry import all_adapters

        adapters = all_adapters(settings)
    return Gateway(
        settings=settings,
        engine=make_engine(settings.database_url),
        keys=load_keys(reports_settings),
        gateway_key=load_gateway_key(reports_settings),
        http=httpx.AsyncClient(),
        adapters=adapters,
        edge_key=load_edge_key(reports_settings),
        rasa_token=load_rasa_token(reports_settings),
    )
