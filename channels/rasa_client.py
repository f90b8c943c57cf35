"""The gateway's client of the Rasa server: one sender always to the same replica, every
call with the Rasa token, and one mapping of every failure to RasaUnavailable (logged
without content: no text, no pseudonym)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from channels import metrics
from channels.base import Reply

logger = logging.getLogger("channels.rasa")

MENU_OPTION = re.compile(r"^([1-9]) (.+)$", re.MULTILINE)
MESSAGE_PATH = "/webhooks/gateway/webhook"  # rasa_plugins/gateway_channel.py


class RasaUnavailable(Exception):
    """Rasa could not be reached or answered with an error (the message is kept and sent
    again later), or took too long (`received`: it has the message and may still act on
    it, so sending it again could answer twice)."""

    def __init__(self, received: bool = False) -> None:
        super().__init__("received" if received else "not received")
        self.received = received


def replies_from_rasa(messages: list[dict[str, Any]]) -> list[Reply]:
    replies = []
    for message in messages:
        text = str(message.get("text") or "").strip()
        if text:
            options = tuple((m.group(1), m.group(2).strip()) for m in MENU_OPTION.finditer(text))
            replies.append(Reply(text=text, options=options if len(options) >= 2 else ()))
    return replies


def call_kind(path: str) -> str:
    """A Rasa call as a metrics label (the path holds a pseudonym: never a label itself)."""
    if path == MESSAGE_PATH:
        return "message"
    return "events" if path.endswith("/events") else "tracker"


@dataclass
class RasaClient:
    urls: tuple[str, ...]
    http: httpx.AsyncClient
    timeout_seconds: float
    token: str = field(repr=False)

    def url_for(self, pseudonym: str) -> str:
        """Always the same Rasa replica for a sender: Rasa 3.6's lock store is not enough
        to keep one conversation's turns in order across replicas (design.md)."""
        return self.urls[int(pseudonym[:8], 16) % len(self.urls)]

    async def call(self, method: str, pseudonym: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", self.timeout_seconds)
        params = {**kwargs.pop("params", {}), "token": self.token}
        started, outcome = time.monotonic(), "error"
        try:
            response = await self.http.request(method, f"{self.url_for(pseudonym)}{path}", params=params, **kwargs)
            outcome = "ok" if response.status_code == 200 else "error"
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

    async def message(
        self, pseudonym: str, text: str, metadata: dict[str, str], timeout: float | None = None
    ) -> list[Reply]:
        """One message through the gateway channel; Rasa's answers as replies."""
        body = {"sender": pseudonym, "message": text, "metadata": metadata}
        response = await self.call("POST", pseudonym, MESSAGE_PATH, json=body, timeout=timeout or self.timeout_seconds)
        try:
            return replies_from_rasa(response.json())
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
