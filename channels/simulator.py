"""A phone simulator for development without credentials: the page at /simulator (SMS or
WhatsApp look) posts here, and each message takes the same gateway path as a real one
(pseudonym, duplicates, flood guard, Rasa), then comes back as the phone would show it.
What is sent outside a webhook answer (a staff member's messages in a live hand-off, late
answers) waits in a small outbox the page polls (the gateways' shared state: this process's
memory, or Redis when several gateways run).

Its routes exist only in development mode (HOTLINE_MODE=development, set by `make run`);
in production they are never registered. No client address is trusted (behind a reverse
proxy every caller is 127.0.0.1): binding to 127.0.0.1 is the operator's part, and every
request must carry this process's random token, which only the page served from here
holds (another site in the browser cannot read it, so it cannot post: no CSRF), under a
host name of this machine (a site rebinding its own name to 127.0.0.1 is refused). Anyone
who can load the page can still invent phones, each with its own flood and lookup limits:
that is why it is for development only."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from channels.base import (
    BadRequest,
    ConfigError,
    ConnectionFailed,
    Endpoint,
    InboundMessage,
    InvalidSignature,
    Media,
    Reply,
    SendResult,
)
from channels.shared import MemoryState, SharedState, SharedUnavailable, call
from hotline.sms import sms_segments, to_gsm7

logger = logging.getLogger("channels.simulator")

LOOPBACK_NAMES = {"127.0.0.1", "::1", "localhost"}
TOKEN_HEADER = "X-Simulator-Token"
TOKEN_PLACEHOLDER = "{{simulator_token}}"
PAGE = Path(__file__).resolve().parent / "static" / "simulator.html"
LOOKS = ("sms", "whatsapp")
MAX_TEXT_CHARS = 10_000
OUTBOX_PER_PHONE = 50
OUTBOX_SECONDS = 3600.0  # what no page fetched within an hour is gone


def simulator_address(look: object, phone: object) -> str:
    """The address of a simulated phone ("sms:+502..."); BadRequest when malformed."""
    if look not in LOOKS or not isinstance(phone, str) or not 0 < len(phone) <= 32:
        raise BadRequest("look (sms|whatsapp) and phone expected")
    return f"{look}:{phone}"


def on_this_machine(request: Request) -> bool:
    """The host name the browser asked for (not the client address) names this machine."""
    return request.url.hostname in LOOPBACK_NAMES


class SimulatorChannel:
    name = "simulator"
    answers_in_webhook = True
    keeps_message_ids = False

    def routes(self, webhook: Endpoint) -> list[Route]:
        """Only registered in development mode (the registry leaves the simulator out otherwise)."""
        return simulator_routes(webhook)

    def __init__(self, shared: SharedState | None = None) -> None:
        self.shared: SharedState = shared or MemoryState()
        self.token = secrets.token_urlsafe(32)  # only the page served by these gateways holds it

    def attach_shared(self, shared: SharedState) -> None:
        """The gateways' shared state (channels/shared.py) keeps the outbox, and with Redis
        one token for every gateway, so that any of them serves the page's next call."""
        self.shared = shared
        if shared.distributed:
            try:
                self.token = shared.first_value("simulator:token", self.token.encode()).decode()
            except SharedUnavailable:
                logger.warning("simulator: shared state unavailable, this gateway's own token")

    async def verify(self, request: Request, body: bytes) -> None:
        """The page's token and a host name of this machine; never the client address."""
        token = request.headers.get(TOKEN_HEADER, "")
        if not on_this_machine(request) or not hmac.compare_digest(token.encode(), self.token.encode()):
            raise InvalidSignature("the simulator answers only its own page")

    async def parse_inbound(self, request: Request, body: bytes) -> list[InboundMessage]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise BadRequest("JSON expected")
        try:
            data = json.loads(body.decode("utf-8", "replace"))
        except json.JSONDecodeError:
            raise BadRequest("invalid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("a JSON object expected")
        look, phone, text, message_id = (data.get(k) for k in ("look", "phone", "text", "id"))
        if not isinstance(text, str) or not isinstance(message_id, str) or not 0 < len(message_id) <= 64:
            raise BadRequest("look (sms|whatsapp), phone, text and id expected")
        address = simulator_address(look, phone)
        return [InboundMessage(self.name, address, text[:MAX_TEXT_CHARS], delivery_id=message_id)]

    def render(self, inbound: InboundMessage | None, replies: list[Reply]) -> Response:
        """The replies as the phone shows them: an SMS folded to GSM-7 with its segment count."""
        return JSONResponse({"replies": self.shown(inbound.address if inbound else "", replies)})

    @staticmethod
    def shown(address: str, replies: list[Reply]) -> list[dict[str, object]]:
        sms = address.startswith("sms:")
        texts = [to_gsm7(r.text) if sms else r.text for r in replies]
        return [{"text": t, "segments": sms_segments(t) if sms else None} for t in texts]

    async def send(self, address: str, replies: list[Reply]) -> SendResult:
        """Kept for the page to fetch (GET /simulator/outbox), a bounded number per phone."""
        values = [json.dumps({"text": r.text, "options": r.options}).encode() for r in replies]
        try:
            await call(self.shared, self.shared.push, f"outbox:{address}", values, OUTBOX_PER_PHONE, OUTBOX_SECONDS)
        except SharedUnavailable:
            raise ConnectionFailed("the simulator's outbox is unavailable") from None
        return SendResult()

    def take_outbox(self, address: str) -> list[Reply]:
        """What waits for this phone, taken once (SharedUnavailable when it cannot be read)."""
        return [reply_of(json.loads(value)) for value in self.shared.take(f"outbox:{address}")]

    async def fetch_media(self, media: Media) -> bytes:
        raise ConfigError("the simulator sends no media")

    async def delete_messages(self, address: str, message_ids: list[str]) -> int:
        return 0


def reply_of(data: dict[str, object]) -> Reply:
    options = data.get("options")
    pairs = tuple((str(o[0]), str(o[1])) for o in options) if isinstance(options, list) else ()
    return Reply(str(data.get("text", "")), pairs)


@lru_cache(maxsize=1)
def page_template() -> str:
    return PAGE.read_text(encoding="utf-8")


def simulator_of(request: Request) -> SimulatorChannel | None:
    simulator = request.app.state.gateway.adapters.get("simulator")
    return simulator if isinstance(simulator, SimulatorChannel) else None


async def simulator_page(request: Request) -> Response:
    """The page, with this process's token in it (never cached, never framed)."""
    simulator = simulator_of(request)
    if simulator is None:
        return PlainTextResponse("not found", status_code=404)
    if not on_this_machine(request):
        return PlainTextResponse("forbidden", status_code=403)
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": "frame-ancestors 'none'"}
    return HTMLResponse(page_template().replace(TOKEN_PLACEHOLDER, simulator.token), headers=headers)


async def simulator_outbox(request: Request) -> Response:
    """What was sent to a simulated phone outside a webhook answer (staff, late answers)."""
    simulator = simulator_of(request)
    if simulator is None:
        return PlainTextResponse("not found", status_code=404)
    try:
        await simulator.verify(request, b"")
        address = simulator_address(request.query_params.get("look"), request.query_params.get("phone"))
    except InvalidSignature:
        return PlainTextResponse("forbidden", status_code=403)
    except BadRequest:
        return PlainTextResponse("bad request", status_code=400)
    try:
        replies = await call(simulator.shared, simulator.take_outbox, address)
    except SharedUnavailable:
        return PlainTextResponse("outbox unavailable", status_code=503)
    return JSONResponse({"replies": simulator.shown(address, replies)})


def simulator_routes(messages: Callable[[Request], Awaitable[Response]]) -> list[Route]:
    """Registered only in development mode; `messages` is the gateway's webhook for it."""
    return [
        Route("/simulator/messages", messages, methods=["POST"]),
        Route("/simulator/outbox", simulator_outbox, methods=["GET"]),
        Route("/simulator", simulator_page, methods=["GET"]),
    ]
