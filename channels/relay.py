"""The gateway's internal relay for the staff console: send a staff message to a person,
pause or resume Rasa for a conversation, read a conversation's last messages. The console
runs in its own process (it alone holds the staff private key) and calls these routes.

Every call is signed with the relay key (keys/relay.key, HMAC-SHA256) over the method, the
path, a timestamp, a nonce and the body. A missing or wrong signature, a timestamp more than
`MAX_AGE_SECONDS` away, or a nonce already seen (by any gateway sharing Redis) gets 403
and nothing is done; when the shared state cannot tell, 503 (fail closed). Bodies (they
carry addresses, pseudonyms and staff text) are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from channels.base import Reply, SendError
from channels.core import Gateway
from channels.rasa_client import RasaUnavailable
from channels.shared import MemoryState, SharedState, SharedUnavailable, call

logger = logging.getLogger("channels.relay")

MAX_AGE_SECONDS = 60
MAX_BODY_BYTES = 16 * 1024
HISTORY_MAX = 50
TIMESTAMP_HEADER = "x-hotline-timestamp"
NONCE_HEADER = "x-hotline-nonce"
SIGNATURE_HEADER = "x-hotline-signature"
PREFIX = "/internal/relay"
PSEUDONYM = re.compile(r"[0-9a-f]{8,64}")


def signature(key: bytes, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) of one relay call; the console signs, the gateway checks."""
    head = f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode()
    return hmac.new(key, head + body, hashlib.sha256).hexdigest()


class NonceMemory:
    """Nonces of the calls accepted lately: a captured call cannot be replayed while fresh,
    to this gateway or another (the gateways' shared state, channels/shared.py)."""

    def __init__(self, shared: SharedState | None = None) -> None:
        self.shared = shared or MemoryState()

    def first_time(self, nonce: str) -> bool:
        """Raises SharedUnavailable when the shared state cannot say: the call is refused."""
        return self.shared.first_mark(f"nonce:{nonce}", 2 * MAX_AGE_SECONDS)


def authentic(key: bytes | None, request: Request, body: bytes, now: float) -> bool:
    """True when the call is signed with the relay key and fresh. Every check runs whatever
    the others gave, and the signature comparison is constant-time."""
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    nonce = request.headers.get(NONCE_HEADER, "")
    sent = request.headers.get(SIGNATURE_HEADER, "")
    expected = signature(key or b"\0" * 32, request.method, request.url.path, timestamp, nonce, body)
    matches = hmac.compare_digest(sent.encode("ascii", "replace"), expected.encode("ascii"))
    fresh = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
    fresh = fresh and abs(now - int(timestamp)) <= MAX_AGE_SECONDS
    return key is not None and matches and fresh and 16 <= len(nonce) <= 128


async def _body(request: Request) -> bytes | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return body


def _text_field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ValueError(name)
    return value


def _conversation(payload: dict[str, Any]) -> str:
    """A pseudonym as the gateway makes them (hex), the only conversation ids it relays for."""
    value = _text_field(payload, "conversation")
    if not PSEUDONYM.fullmatch(value):
        raise ValueError("conversation")
    return value


def _replies(payload: dict[str, Any]) -> list[Reply]:
    raw = payload.get("replies")
    if not isinstance(raw, list) or not raw:
        raise ValueError("replies")
    replies = []
    for item in raw:
        text = item.get("text") if isinstance(item, dict) else None
        options = item.get("options", []) if isinstance(item, dict) else None
        if not isinstance(text, str) or not text or not isinstance(options, list):
            raise ValueError("replies")
        replies.append(Reply(text, tuple((str(d), str(label)) for d, label in options)))
    return replies


Handler = Callable[[Gateway, dict[str, Any]], Awaitable[Response]]


async def _send(gateway: Gateway, payload: dict[str, Any]) -> Response:
    channel, address = _text_field(payload, "channel"), _text_field(payload, "address")
    try:
        path = await gateway.send_to(channel, address, _replies(payload), from_staff=True)
    except SendError as error:
        logger.info("relay: send refused (%s)", error.code)
        return JSONResponse({"error": error.code}, status_code=502)
    return JSONResponse({"sent": True, "path": path})


def _events(name: str) -> Handler:
    async def handle(gateway: Gateway, payload: dict[str, Any]) -> Response:
        try:
            await getattr(gateway, name)(_conversation(payload))
        except RasaUnavailable:
            return JSONResponse({"error": "rasa_unavailable"}, status_code=503)
        return JSONResponse({"done": True})

    return handle


async def _history(gateway: Gateway, payload: dict[str, Any]) -> Response:
    limit = payload.get("limit", 12)
    if not isinstance(limit, int) or not 1 <= limit <= HISTORY_MAX:
        raise ValueError("limit")
    said = await gateway.history(_conversation(payload), limit)
    return JSONResponse({"messages": [[inbound, text] for inbound, text in said]})


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return PlainTextResponse("body too large", status_code=413)
        state = request.app.state
        if not authentic(state.relay_key, request, body, time.time()):
            logger.warning("relay: refused an unauthenticated call to %s", request.url.path)
            return PlainTextResponse("forbidden", status_code=403)
        nonces: NonceMemory = state.relay_nonces
        try:
            fresh = await call(nonces.shared, nonces.first_time, request.headers[NONCE_HEADER])
        except SharedUnavailable:  # fail closed: a replay could not be told apart
            logger.warning("relay: refused a call, the shared state cannot check its nonce")
            return PlainTextResponse("shared state unavailable", status_code=503)
        if not fresh:
            logger.warning("relay: refused an unauthenticated call to %s", request.url.path)
            return PlainTextResponse("forbidden", status_code=403)
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("payload")
            return await handler(state.gateway, payload)
        except ValueError:
            return PlainTextResponse("bad request", status_code=400)

    return endpoint


def routes() -> list[Route]:
    """The relay's routes; the app's state holds `gateway`, `relay_key` (None: every call is
    refused) and `relay_nonces`."""
    return [
        Route(f"{PREFIX}/send", _endpoint(_send), methods=["POST"]),
        Route(f"{PREFIX}/pause", _endpoint(_events("pause")), methods=["POST"]),
        Route(f"{PREFIX}/resume", _endpoint(_events("resume")), methods=["POST"]),
        Route(f"{PREFIX}/history", _endpoint(_history), methods=["POST"]),
    ]
