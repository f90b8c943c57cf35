"""The console's side of the gateway relay (channels/relay.py): the console, the only process
with the staff private key, asks the internet-facing gateway over HTTP to pause or resume
Rasa for a conversation, to send a staff message through the person's channel, and for a
conversation's last messages. Every call is signed with the relay key.

Errors keep the meanings the console's pages show: `RelayUnavailable` (the gateway cannot be
reached or refuses the console: "not connected to the gateway"), `RasaUnavailable` (pause or
resume not done), a `SendError` with the channel's code (the message was not sent)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

from channels.base import ConfigError, ConnectionFailed, ContactStopped, DiscreetWords, Reply, SendError, Throttled
from channels.core import SEND_PATHS
from channels.relay import NONCE_HEADER, PREFIX, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

TIMEOUT_SECONDS = 20.0  # a send waits for the channel's API (Twilio, Telegram) behind the gateway
SEND_ERRORS: dict[str, type[SendError]] = {
    cls.code: cls for cls in (ConfigError, ConnectionFailed, Throttled, ContactStopped, DiscreetWords)
}


class RelayUnavailable(Exception):
    """The gateway did not take the call (down, unreachable, wrong relay key)."""


class RasaUnavailable(Exception):
    """The gateway could not reach Rasa: the conversation was not paused or resumed."""


def send_error(code: str) -> SendError:
    """The channel's refusal as the gateway named it (the same codes as channels/base.py)."""
    known = SEND_ERRORS.get(code)
    if known is not None:
        return known(code)
    error = SendError(code)
    error.code = code[:40]  # provider_rejected and any code added later: shown to staff as is
    return error


class GatewayRelay:
    """What console/handoff.py calls its `Relay`, over signed HTTP calls to the gateway."""

    def __init__(
        self, gateway_url: str, key: bytes, http: httpx.AsyncClient, clock: Callable[[], float] = time.time
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self._key = key
        self.http = http
        self.clock = clock

    async def _call(self, name: str, payload: dict[str, Any]) -> httpx.Response:
        path = f"{PREFIX}/{name}"
        body = json.dumps(payload).encode()
        timestamp, nonce = str(int(self.clock())), secrets.token_urlsafe(24)
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: signature(self._key, "POST", path, timestamp, nonce, body),
        }
        try:
            response = await self.http.post(
                f"{self.gateway_url}{path}", content=body, headers=headers, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as error:
            raise RelayUnavailable(type(error).__name__) from None
        if response.status_code in (401, 403, 404, 405) or (response.status_code >= 500 and not _error(response)):
            raise RelayUnavailable(f"gateway answered {response.status_code}")
        return response

    async def pause(self, pseudonym: str) -> None:
        await self._events("pause", pseudonym)

    async def resume(self, pseudonym: str) -> None:
        await self._events("resume", pseudonym)

    async def _events(self, name: str, pseudonym: str) -> None:
        response = await self._call(name, {"conversation": pseudonym})
        if response.status_code == 503:
            raise RasaUnavailable
        if response.status_code != 200:
            raise RelayUnavailable(f"gateway answered {response.status_code}")

    async def send_to(self, channel: str, address: str, replies: list[Reply]) -> str:
        """The path the message took (channels.core.SEND_PATHS: "direct", "session",
        "template", "held"); a SendError with the gateway's code when it was not sent."""
        payload = {
            "channel": channel,
            "address": address,
            "replies": [{"text": r.text, "options": [list(o) for o in r.options]} for r in replies],
        }
        response = await self._call("send", payload)
        if response.status_code == 502:
            raise send_error(_error(response) or SendError.code)
        if response.status_code != 200:
            raise RelayUnavailable(f"gateway answered {response.status_code}")
        return _path(response)

    async def history(self, pseudonym: str, limit: int = 12) -> list[tuple[bool, str]]:
        """The conversation's last messages; [] when the gateway or Rasa cannot say (as before)."""
        try:
            response = await self._call("history", {"conversation": pseudonym, "limit": limit})
            messages = response.json().get("messages", []) if response.status_code == 200 else []
        except (RelayUnavailable, ValueError, AttributeError):
            return []
        return [(bool(m[0]), str(m[1])) for m in messages if isinstance(m, list) and len(m) == 2]

    async def aclose(self) -> None:
        await self.http.aclose()


def _path(response: httpx.Response) -> str:
    """The path a sent message took; "direct" from a gateway that does not say."""
    try:
        path = response.json().get("path")
    except (ValueError, AttributeError):
        return "direct"
    return path if isinstance(path, str) and path in SEND_PATHS else "direct"


def _error(response: httpx.Response) -> str | None:
    """The error code of a gateway answer ({"error": code}), else None."""
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None
