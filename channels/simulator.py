"""A phone simulator for local use without credentials: the page at /simulator (SMS or
WhatsApp look) posts here, and each message takes the same gateway path as a real one
(pseudonym, duplicates, flood guard, Rasa), then comes back as the phone would show it.
What is sent outside a webhook answer (a staff member's messages in a live hand-off, late
answers) waits in a small in-memory outbox the page polls. Only from this machine, and off
when HOTLINE_SIMULATOR=off (production)."""

from __future__ import annotations

import json
import os
from collections import OrderedDict, deque

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from channels.base import BadRequest, ConfigError, InboundMessage, InvalidSignature, Media, Reply, SendResult
from hotline.sms import sms_segments, to_gsm7

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "testclient"}
LOOKS = ("sms", "whatsapp")
MAX_TEXT_CHARS = 10_000
OUTBOX_PER_PHONE = 50
OUTBOX_PHONES = 1000


def simulator_enabled() -> bool:
    return os.environ.get("HOTLINE_SIMULATOR", "on").strip().lower() not in ("off", "0", "false", "no")


def simulator_address(look: object, phone: object) -> str:
    """The address of a simulated phone ("sms:+502..."); BadRequest when malformed."""
    if look not in LOOKS or not isinstance(phone, str) or not 0 < len(phone) <= 32:
        raise BadRequest("look (sms|whatsapp) and phone expected")
    return f"{look}:{phone}"


class SimulatorChannel:
    name = "simulator"

    def __init__(self) -> None:
        self.outbox: OrderedDict[str, deque[Reply]] = OrderedDict()

    async def verify(self, request: Request, body: bytes) -> None:
        host = request.client.host if request.client else ""
        if not simulator_enabled() or host not in LOCAL_HOSTS:
            raise InvalidSignature("the simulator only answers this machine")

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
        box = self.outbox.pop(address, None) or deque(maxlen=OUTBOX_PER_PHONE)
        box.extend(replies)
        self.outbox[address] = box
        while len(self.outbox) > OUTBOX_PHONES:
            self.outbox.popitem(last=False)
        return SendResult()

    def take_outbox(self, address: str) -> list[Reply]:
        return list(self.outbox.pop(address, ()))

    async def fetch_media(self, media: Media) -> bytes:
        raise ConfigError("the simulator sends no media")

    async def delete_messages(self, address: str, message_ids: list[str]) -> int:
        return 0
