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
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import httpx
import yaml
from nacl.secret import SecretBox
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from channels.base import ChannelAdapter, ConfigError, ContactStopped, InboundMessage, Reply, SendError
from channels.config import GatewaySettings
from channels.media import clean_photo, is_photo
from hotline.content import render_all
from hotline.danger import DangerLexicon
from hotline.paths import CONTENT
from hotline.text import fold_accents
from reports import handoffs
from reports.config import load_settings
from reports.crypto import seal_contact
from reports.db import make_engine, transaction
from reports.keys import Keys, load_gateway_key, load_keys
from reports.models import ChannelMessage, Delivery, Handoff, OptOut, PendingMessage, utcnow
from reports.service import keep_photo

logger = logging.getLogger("channels.core")

MENU_OPTION = re.compile(r"^([1-9]) (.+)$", re.MULTILINE)
PENDING_MAX_AGE = timedelta(hours=24)  # a kept message older than this is dropped, not answered late
DELIVERY_MAX_AGE = timedelta(days=7)
TELEGRAM_DELETE_WINDOW = timedelta(hours=48)
RATE_WINDOW_SECONDS = 60.0
MAX_PHOTOS_PER_MESSAGE = 3


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


def words(text: str) -> str:
    return " ".join(fold_accents(text.lower()).split()).strip(" .!¡?¿")


def safe_text(text: str) -> str:
    """What Rasa may receive: no leading "/" (Rasa would read it as an intent command,
    "/restart"), no NUL bytes."""
    text = text.replace("\x00", "")
    return text.lstrip("/ ") if text.lstrip().startswith("/") else text


def replies_from_rasa(messages: list[dict[str, Any]]) -> list[Reply]:
    replies = []
    for message in messages:
        text = str(message.get("text") or "").strip()
        if text:
            options = tuple((m.group(1), m.group(2).strip()) for m in MENU_OPTION.finditer(text))
            replies.append(Reply(text=text, options=options if len(options) >= 2 else ()))
    return replies


class RasaUnavailable(Exception):
    """Rasa could not be reached or answered with an error (the message is kept and sent
    again later), or took too long (`received`: it has the message and may still act on
    it, so sending it again could answer twice; the person is asked to write again)."""

    def __init__(self, received: bool = False) -> None:
        super().__init__("received" if received else "not received")
        self.received = received


class FloodGuard:
    """At most N messages a minute per sender, in memory (one gateway process per sender:
    the gateway routes each pseudonym to one place). An emergency always passes."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.seen: dict[str, deque[float]] = defaultdict(deque)

    def allows(self, pseudonym: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        window = self.seen[pseudonym]
        while window and now - window[0] > RATE_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.per_minute:
            return False
        window.append(now)
        return True


@dataclass
class Gateway:
    settings: GatewaySettings
    engine: Engine
    keys: Keys  # only the staff public key: to seal reply addresses for reports
    gateway_key: bytes
    http: httpx.AsyncClient
    adapters: Mapping[str, ChannelAdapter]

    def __post_init__(self) -> None:
        self.box = SecretBox(self.gateway_key)
        self.flood = FloodGuard(self.settings.messages_per_minute)
        self.danger = DangerLexicon.from_file()

    # -- identities --------------------------------------------------------------------

    def pseudonym(self, channel: str, address: str) -> str:
        """The sender as everything past the gateway knows it (Rasa, actions, logs)."""
        return hmac.new(self.gateway_key, f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()[:32]

    def rasa_url(self, pseudonym: str) -> str:
        """Always the same Rasa replica for a sender: Rasa 3.6's lock store is not enough
        to keep one conversation's turns in order across replicas (design.md)."""
        urls = self.settings.rasa_urls
        return urls[int(pseudonym[:8], 16) % len(urls)]

    # -- the pipeline ------------------------------------------------------------------

    async def handle(self, inbound: InboundMessage) -> list[Reply]:
        """The replies for one inbound message ([] for a duplicate or an opted-out sender)."""
        if not await self._first_delivery(inbound):
            logger.info("duplicate delivery dropped channel=%s", inbound.channel)
            return []
        pseudonym = self.pseudonym(inbound.channel, inbound.address)
        if inbound.message_id:
            await self._remember_message(pseudonym, inbound.message_id)
        text = words(inbound.text)
        if text in gateway_content()["opt_out_words"]:
            await self._set_opt_out(pseudonym, True)
            return [Reply(gateway_text("opted_out"))]
        if text in gateway_content()["opt_in_words"]:
            await self._set_opt_out(pseudonym, False)
            return [Reply(gateway_text("opted_in"))]
        if await self._is_opted_out(pseudonym):
            logger.info("message from an opted-out sender ignored sender=%s", pseudonym)
            return []
        if not self.flood.allows(pseudonym) and not self.danger.is_danger(inbound.text):
            return [Reply(gateway_text("rate_limited"))]
        replies: list[Reply] = []
        if inbound.media:
            replies.append(await self.take_media(pseudonym, inbound))
            if not inbound.text.strip():
                return replies
        if inbound.erase_request:
            return replies + await self.erase(inbound, pseudonym)
        danger = self.danger.is_danger(inbound.text)
        held = await asyncio.to_thread(self._handoff_inbound, pseudonym, inbound.text, danger)
        if held.live:  # an emergency is answered first in every state, a hand-off too
            first = [Reply(emergency_page())] if danger else []
            return replies + first + await self.tell_paused_rasa(pseudonym, inbound)
        if held.notice:
            replies.append(Reply(gateway_text("handoff_ended_idle")))
        try:
            replies += await self.ask_rasa(pseudonym, inbound, safe_text(inbound.text))
        except RasaUnavailable as unavailable:
            replies += await self.unavailable_answer(pseudonym, inbound, unavailable)
        return replies

    async def unavailable_answer(
        self, pseudonym: str, inbound: InboundMessage, unavailable: RasaUnavailable
    ) -> list[Reply]:
        """At once, whatever happened: what we do about the message, and the emergency numbers."""
        if unavailable.received:
            return [Reply(gateway_text("assistant_slow")), Reply(emergency_page())]
        await self._keep_pending(pseudonym, inbound)
        return [Reply(gateway_text("assistant_unavailable")), Reply(emergency_page())]

    async def ask_rasa(self, pseudonym: str, inbound: InboundMessage, text: str) -> list[Reply]:
        metadata = {"reply_to": seal_contact(self.keys.public_key, inbound.channel, inbound.address)}
        metadata["channel"] = inbound.channel
        started = time.monotonic()
        try:
            response = await self.http.post(
                f"{self.rasa_url(pseudonym)}/webhooks/rest/webhook",
                json={"sender": pseudonym, "message": text, "metadata": metadata},
                timeout=self.settings.rasa_timeout_seconds,
            )
        except (httpx.ReadTimeout, httpx.WriteTimeout) as error:
            logger.warning("rasa too slow (%s) sender=%s", type(error).__name__, pseudonym)
            raise RasaUnavailable(received=True) from None
        except httpx.HTTPError as error:
            logger.warning("rasa unavailable (%s) sender=%s", type(error).__name__, pseudonym)
            raise RasaUnavailable from None
        if response.status_code != 200:
            logger.warning("rasa answered %d sender=%s", response.status_code, pseudonym)
            raise RasaUnavailable
        logger.info(
            "answered channel=%s sender=%s ms=%.0f", inbound.channel, pseudonym, (time.monotonic() - started) * 1000
        )
        return replies_from_rasa(response.json())

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
                logger.warning("photo not downloaded (%s) sender=%s", error.code, pseudonym)
                continue
            clean = await clean_photo(content)  # decoded in a keyless worker process, or refused
            if clean is None:
                continue
            try:
                await asyncio.to_thread(self._keep_photo, pseudonym, clean)
            except ValueError:
                continue
            kept += 1
        logger.info("photos kept with a report in progress: %d sender=%s", kept, pseudonym)
        return Reply(gateway_text("photo_kept" if kept else "media_received"))

    async def writing_report(self, pseudonym: str) -> bool:
        """Whether this sender is inside the report form (Rasa's tracker says so)."""
        try:
            response = await self.http.get(
                f"{self.rasa_url(pseudonym)}/conversations/{pseudonym}/tracker",
                params={"include_events": "NONE"},
                timeout=self.settings.rasa_timeout_seconds,
            )
            loop = response.json().get("active_loop") or {} if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
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
        adapter = self.adapters.get(inbound.channel)
        if adapter and ids:
            try:
                deleted = await adapter.delete_messages(inbound.address, ids)
                logger.info("erase: %d message(s) deleted on the phone sender=%s", deleted, pseudonym)
            except SendError as error:
                logger.warning("erase: deleting messages failed (%s)", error.code)
        return replies

    async def deliver(self, inbound: InboundMessage, replies: list[Reply]) -> None:
        """Send replies through the channel's API (Telegram; late answers)."""
        await self.send_to(inbound.channel, inbound.address, replies)

    async def send_to(self, channel: str, address: str, replies: list[Reply]) -> None:
        """Send through the channel's API (late answers, Telegram, staff). Raises a
        SendError subclass; ContactStopped also opts the person out, and nothing is sent
        to someone who opted out."""
        adapter = self.adapters.get(channel)
        if adapter is None:
            raise ConfigError(f"no channel {channel!r}")
        pseudonym = self.pseudonym(channel, address)
        if await self._is_opted_out(pseudonym):
            raise ContactStopped("the person opted out")
        try:
            result = await adapter.send(address, replies)
        except ContactStopped:
            await self._set_opt_out(pseudonym, True)  # blocked the bot or STOP at the carrier: never retry
            raise
        for message_id in result.provider_ids:
            if channel == "telegram":
                await self._remember_message(pseudonym, message_id)

    # -- live hand-off (console/handoff.py) ----------------------------------------------

    async def pause(self, pseudonym: str) -> None:
        """Rasa stops answering this conversation (its `pause` event); it still logs it."""
        await self._append_events(pseudonym, [{"event": "pause"}])

    async def resume(self, pseudonym: str) -> None:
        """Rasa answers again; `action_listen` leaves the tracker waiting for the person."""
        await self._append_events(pseudonym, [{"event": "resume"}, {"event": "action", "name": "action_listen"}])

    async def _append_events(self, pseudonym: str, events: list[dict[str, str]]) -> None:
        try:
            response = await self.http.post(
                f"{self.rasa_url(pseudonym)}/conversations/{pseudonym}/tracker/events",
                params={"include_events": "NONE"},
                json=events,
                timeout=self.settings.rasa_timeout_seconds,
            )
        except httpx.HTTPError as error:
            logger.warning("rasa events not sent (%s) sender=%s", type(error).__name__, pseudonym)
            raise RasaUnavailable from None
        if response.status_code != 200:
            logger.warning("rasa events refused (%d) sender=%s", response.status_code, pseudonym)
            raise RasaUnavailable

    async def history(self, pseudonym: str, limit: int = 12) -> list[tuple[bool, str]]:
        """The conversation's last messages in Rasa's tracker, as (from the person?, text):
        what the staff member reads before taking it over. [] when Rasa cannot say."""
        try:
            response = await self.http.get(
                f"{self.rasa_url(pseudonym)}/conversations/{pseudonym}/tracker",
                timeout=self.settings.rasa_timeout_seconds,
            )
            events = response.json().get("events") or [] if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError, AttributeError):
            return []
        said = [
            (e.get("event") == "user", str(e.get("text")))
            for e in events
            if isinstance(e, dict) and e.get("event") in ("user", "bot") and e.get("text")
        ]
        return said[-limit:]

    async def tell_paused_rasa(self, pseudonym: str, inbound: InboundMessage) -> list[Reply]:
        """A held conversation: Rasa keeps the message and answers nothing (it is paused);
        the staff member already has it, so a Rasa that is down changes nothing for the person."""
        try:
            replies = await self.ask_rasa(pseudonym, inbound, safe_text(inbound.text))
        except RasaUnavailable:
            return []
        if replies:
            logger.warning("rasa answered a conversation a staff member holds sender=%s", pseudonym)
        return replies

    def _handoff_inbound(self, pseudonym: str, text: str, danger: bool) -> handoffs.InboundResult:
        with transaction(self.engine) as session:
            return handoffs.record_inbound(session, pseudonym, text, danger, self.keys, utcnow())

    def _forget_handoffs(self, pseudonym: str) -> bool:
        """Erasure: the conversation's hand-offs go; True when one was live (Rasa paused)."""
        with transaction(self.engine) as session:
            current = handoffs.open_handoff(session, pseudonym)
            live = current is not None and current.state == "live"
            handoffs.forget_conversation(session, pseudonym)
            return live

    async def sweep_handoffs(self) -> int:
        """Hand back held conversations whose person went quiet (before Rasa's session
        expiry would drop the pause unseen; the person is told at their next message), and
        let requests nobody took lapse. Returns how many were handed back."""
        idle = await asyncio.to_thread(self._idle_handoffs)
        returned = 0
        for handoff_id, pseudonym in idle:
            try:
                await self.resume(pseudonym)
            except RasaUnavailable:
                break
            await asyncio.to_thread(self._close_idle, handoff_id)
            returned += 1
        return returned

    def _idle_handoffs(self) -> list[tuple[int, str]]:
        with transaction(self.engine) as session:
            handoffs.expire_waiting(session, utcnow())
            return [(h.id, h.conversation_id) for h in handoffs.idle_live(session, utcnow())]

    def _close_idle(self, handoff_id: int) -> None:
        with transaction(self.engine) as session:
            if session.get(Handoff, handoff_id) is not None:
                handoffs.close(session, handoff_id, "idle", utcnow(), person_told=False)

    # -- kept messages (Rasa was down) --------------------------------------------------

    async def drain_pending(self) -> int:
        """Answer the kept messages, oldest first, while Rasa answers; returns how many."""
        answered = 0
        rows = await asyncio.to_thread(self._pending_rows)
        for row_id, pseudonym, channel, sealed in rows:
            payload = json.loads(self.box.decrypt(sealed))
            inbound = InboundMessage(channel, payload["address"], payload["text"], delivery_id=f"pending-{row_id}")
            try:
                replies = await self.ask_rasa(pseudonym, inbound, safe_text(inbound.text))
            except RasaUnavailable:
                break
            try:
                await self.deliver(inbound, replies)
            except SendError as error:
                logger.warning("late answer not sent (%s) sender=%s", error.code, pseudonym)
            await asyncio.to_thread(self._delete_pending, row_id)
            answered += 1
        return answered

    def _pending_rows(self) -> list[tuple[int, str, str, bytes]]:
        with transaction(self.engine) as session:
            session.execute(delete(PendingMessage).where(PendingMessage.received_at < utcnow() - PENDING_MAX_AGE))
            rows = session.execute(
                select(
                    PendingMessage.id, PendingMessage.pseudonym, PendingMessage.channel, PendingMessage.sealed
                ).order_by(PendingMessage.id)
            ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _delete_pending(self, row_id: int) -> None:
        with transaction(self.engine) as session:
            session.execute(delete(PendingMessage).where(PendingMessage.id == row_id))

    async def _keep_pending(self, pseudonym: str, inbound: InboundMessage) -> None:
        sealed = self.box.encrypt(json.dumps({"address": inbound.address, "text": inbound.text}).encode())

        def insert() -> None:
            with transaction(self.engine) as session:
                session.add(
                    PendingMessage(
                        pseudonym=pseudonym, channel=inbound.channel, sealed=bytes(sealed), received_at=utcnow()
                    )
                )

        await asyncio.to_thread(insert)
        logger.info("message kept until the assistant is back sender=%s", pseudonym)

    # -- small stores ------------------------------------------------------------------

    async def _first_delivery(self, inbound: InboundMessage) -> bool:
        key = hmac.new(self.gateway_key, f"{inbound.channel}:{inbound.delivery_id}".encode(), hashlib.sha256)

        def insert() -> bool:
            try:
                with transaction(self.engine) as session:
                    session.add(Delivery(delivery_hash=key.hexdigest(), received_at=utcnow()))
            except IntegrityError:
                return False
            return True

        return await asyncio.to_thread(insert)

    async def _set_opt_out(self, pseudonym: str, opted_out: bool) -> None:
        def update() -> None:
            with transaction(self.engine) as session:
                session.execute(delete(OptOut).where(OptOut.pseudonym == pseudonym))
                if opted_out:
                    session.add(OptOut(pseudonym=pseudonym, opted_out_at=utcnow()))

        await asyncio.to_thread(update)

    async def _is_opted_out(self, pseudonym: str) -> bool:
        def query() -> bool:
            with transaction(self.engine) as session:
                return session.get(OptOut, pseudonym) is not None

        return await asyncio.to_thread(query)

    async def _remember_message(self, pseudonym: str, message_id: str) -> None:
        def insert() -> None:
            with transaction(self.engine) as session:
                session.add(ChannelMessage(pseudonym=pseudonym, message_id=message_id, sent_at=utcnow()))

        await asyncio.to_thread(insert)

    async def _forget_messages(self, pseudonym: str) -> list[str]:
        def take() -> list[str]:
            with transaction(self.engine) as session:
                recent = utcnow() - TELEGRAM_DELETE_WINDOW
                ids = session.scalars(
                    select(ChannelMessage.message_id).where(
                        ChannelMessage.pseudonym == pseudonym, ChannelMessage.sent_at > recent
                    )
                ).all()
                session.execute(delete(ChannelMessage).where(ChannelMessage.pseudonym == pseudonym))
                return list(ids)

        return await asyncio.to_thread(take)

    def purge(self) -> None:
        """Forget what is no longer needed: old deliveries, undeletable message ids."""
        with transaction(self.engine) as session:
            session.execute(delete(Delivery).where(Delivery.received_at < utcnow() - DELIVERY_MAX_AGE))
            session.execute(delete(ChannelMessage).where(ChannelMessage.sent_at < utcnow() - TELEGRAM_DELETE_WINDOW))


def build_gateway(settings: GatewaySettings, adapters: Mapping[str, ChannelAdapter] | None = None) -> Gateway:
    """The gateway with its database, keys and adapters (created here, never at import)."""
    reports_settings = load_settings(
        {"HOTLINE_DATABASE_URL": settings.database_url, "HOTLINE_KEYS_DIR": str(settings.keys_dir)}
    )
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
    )
