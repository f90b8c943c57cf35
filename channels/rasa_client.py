"""The gateway's client of the Rasa server: one sender always to the same replica while it
is up (the next one, in a fixed order, when it refuses connections), every call with the
Rasa token, and one mapping of every failure to RasaUnavailable (logged without content:
no text, no pseudonym)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from channels import metrics
from channels.base import Reply
from reports.questions import TopicMark

logger = logging.getLogger("channels.rasa")

MENU_OPTION = re.compile(r"^([1-9]) (.+)$", re.MULTILINE)
MESSAGE_PATH = "/webhooks/gateway/webhook"  # rasa_plugins/gateway_channel.py
DOWN_FOR_SECONDS = 5.0  # a replica that refused a connection is skipped this long
# Failures that prove the request never reached Rasa: another replica may take it.
NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RasaUnavailable(Exception):
    """Rasa could not be reached or answered with an error (the message is kept and sent
    again later), or took too long (`received`: it has the message and may still act on
    it, so sending it again could answer twice)."""

    def __init__(self, received: bool = False) -> None:
        super().__init__("received" if received else "not received")
        self.received = received


@dataclass(frozen=True)
class RasaAnswer:
    """Rasa's answer to one message: what to send, and the conversation's mode when the
    answer switched it (content/discreet.yml `switches`: True discreet, False normal)."""

    replies: list[Reply]
    discreet: bool | None = None
    topics: tuple[TopicMark, ...] = ()


def _hotline_custom(message: dict[str, Any]) -> dict[str, Any]:
    custom = message.get("custom")
    hotline = custom.get("hotline") if isinstance(custom, dict) else None
    return hotline if isinstance(hotline, dict) else {}


def mode_switch(messages: list[dict[str, Any]]) -> bool | None:
    """The discreet mode an answer switched to ({"custom": {"hotline": {"discreet": ...}}})."""
    switch = None
    for message in messages:
        discreet = _hotline_custom(message).get("discreet")
        if isinstance(discreet, bool):
            switch = discreet
    return switch


def topic_marks(messages: list[dict[str, Any]]) -> tuple[TopicMark, ...]:
    """The topics an answer was about ({"custom": {"hotline": {"topic", "country"}}}, put
    on each topic's first page by the content build): counted for the public figures."""
    marks = []
    for message in messages:
        hotline = _hotline_custom(message)
        topic, country = hotline.get("topic"), hotline.get("country")
        if isinstance(topic, str) and topic:
            marks.append(TopicMark(topic, country if isinstance(country, str) and len(country) == 2 else None))
    return tuple(marks)


def menu_options(text: str) -> tuple[tuple[str, str], ...]:
    """The numbered choices in a text ("1 Tus derechos"...), as (digit, label)."""
    return tuple((m.group(1), m.group(2).strip()) for m in MENU_OPTION.finditer(text))


def replies_from_rasa(messages: list[dict[str, Any]]) -> list[Reply]:
    replies = []
    for message in messages:
        text = str(message.get("text") or "").strip()
        if text:
            options = menu_options(text)
            replies.append(Reply(text=text, options=options if len(options) >= 2 else ()))
    return replies


def call_kind(path: str) -> str:
    """A Rasa call as a metrics label (the path holds a pseudonym: never a label itself)."""
    if path == MESSAGE_PATH:
        return "message"
    return "events" if path.endswith("/events") else "tracker"


@dataclass
class ReplicaHealth:
    """Which Rasa replicas refused a connection in the last few seconds (one per gateway
    process, shared by its calls): they are tried last until then."""

    down_for_seconds: float = DOWN_FOR_SECONDS
    down_until: dict[str, float] = field(default_factory=dict)

    def mark_down(self, url: str) -> None:
        self.down_until[url] = time.monotonic() + self.down_for_seconds

    def is_up(self, url: str) -> bool:
        return self.down_until.get(url, 0.0) <= time.monotonic()


@dataclass
class RasaClient:
    urls: tuple[str, ...]
    http: httpx.AsyncClient
    timeout_seconds: float
    token: str = field(repr=False)
    health: ReplicaHealth = field(default_factory=ReplicaHealth)

    def urls_for(self, pseudonym: str) -> list[str]:
        """The sender's own replica first, then the others in a fixed order; replicas that
        refused a connection lately go last. Sticky routing keeps a conversation's tracker
        warm in one replica; Rasa's Redis lock store (deploy/rasa/endpoints.yml) makes the
        failover safe: two replicas never handle one conversation at once."""
        start = int(pseudonym[:8], 16) % len(self.urls)
        ordered = self.urls[start:] + self.urls[:start]
        return sorted(ordered, key=lambda url: not self.health.is_up(url))  # stable: order kept

    def url_for(self, pseudonym: str) -> str:
        return self.urls_for(pseudonym)[0]

    async def call(self, method: str, pseudonym: str, path: str, **kwargs: Any) -> httpx.Response:
        """The call on the sender's replica, or on the next one when a replica cannot be
        reached at all (nothing was received: no turn can be taken twice)."""
        kwargs.setdefault("timeout", self.timeout_seconds)
        params = {**kwargs.pop("params", {}), "token": self.token}
        for url in self.urls_for(pseudonym):
            started, outcome = time.monotonic(), "error"
            try:
                response = await self.http.request(method, f"{url}{path}", params=params, **kwargs)
                outcome = "ok" if response.status_code == 200 else "error"
            except NOT_CONNECTED as error:
                logger.warning("rasa replica unreachable (%s); trying the next", type(error).__name__)
                outcome = "unavailable"
                self.health.mark_down(url)
                continue
            except (httpx.ReadTimeout, httpx.WriteTimeout) as error:
                logger.warning("rasa too slow (%s)", type(error).__name__)
                outcome = "timeout"
                raise RasaUnavailable(received=True) from None
            except httpx.HTTPError as error:
                logger.warning("rasa unavailable (%s)", type(error).__name__)
                outcome = "unavailable"
                raise RasaUnavailable from None
            finally:
                metrics.RASA_SECONDS.labels(call_kind(path), outcome).observe(time.monotonic() - started)
            if response.status_code != 200:
                logger.warning("rasa answered %d", response.status_code)
                raise RasaUnavailable
            return response
        raise RasaUnavailable

    async def message(
        self,
        pseudonym: str,
        text: str,
        metadata: dict[str, str],
        timeout: float | None = None,
        message_id: str | None = None,
        retry: bool = False,
    ) -> RasaAnswer:
        """One message through the gateway channel; Rasa's answers as replies. A message
        sent again (`retry`, same `message_id`) is answered from the tracker when a first
        try reached Rasa before its connection dropped (rasa_plugins/gateway_channel.py)."""
        body: dict[str, Any] = {"sender": pseudonym, "message": text, "metadata": metadata}
        if message_id:
            body.update(message_id=message_id, retry=retry)
        response = await self.call("POST", pseudonym, MESSAGE_PATH, json=body, timeout=timeout or self.timeout_seconds)
        try:
            messages = response.json()
            return RasaAnswer(replies_from_rasa(messages), mode_switch(messages), topic_marks(messages))
        except (ValueError, AttributeError):
            logger.warning("rasa answered something that is not a list of messages")
            raise RasaUnavailable(received=True) from None

    async def append_events(self, pseudonym: str, events: list[dict[str, str]]) -> None:
        path = f"/conversations/{pseudonym}/tracker/events"
        await self.call("POST", pseudonym, path, params={"include_events": "NONE"}, json=events)

    async def tracker(self, pseudonym: str, include_events: str = "AFTER_RESTART") -> dict[str, Any]:
        """The conversation's tracker; RasaUnavailable when Rasa cannot say."""
        response = await self.call(
            "GET", pseudonym, f"/conversations/{pseudonym}/tracker", params={"include_events": include_events}
        )
        try:
            data = response.json()
        except ValueError:
            raise RasaUnavailable from None
        if not isinstance(data, dict):
            raise RasaUnavailable
        return data

    # -- live hand-off: Rasa's own pause and resume events ----------------------------------

    async def pause(self, pseudonym: str) -> None:
        """Rasa stops answering this conversation (its `pause` event); it still logs it."""
        await self.append_events(pseudonym, [{"event": "pause"}])

    async def resume(self, pseudonym: str) -> None:
        """Rasa answers again; `action_listen` leaves the tracker waiting for the person."""
        await self.append_events(pseudonym, [{"event": "resume"}, {"event": "action", "name": "action_listen"}])

    async def history(self, pseudonym: str, limit: int = 12) -> list[tuple[bool, str]]:
        """The conversation's last messages in Rasa's tracker, as (from the person?, text):
        what the staff member reads before taking it over. [] when Rasa cannot say."""
        try:
            events = (await self.tracker(pseudonym)).get("events") or []
        except (RasaUnavailable, AttributeError):
            return []
        said = [
            (e.get("event") == "user", str(e.get("text")))
            for e in events
            if isinstance(e, dict) and e.get("event") in ("user", "bot") and e.get("text")
        ]
        return said[-limit:]
