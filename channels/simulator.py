"""A phone simulator for local use without credentials: the page at /simulator (SMS or
WhatsApp look) posts here, and each message takes the same gateway path as a real one
(pseudonym, duplicates, flood guard, Rasa), then comes back as the phone would show it.
Only from this machine, and off when HOTLINE_SIMULATOR=off (production)."""

from __future__ import annotations

import json
import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from channels.base import BadRequest, ConfigError, InboundMessage, InvalidSignature, Media, Reply, SendResult
from hotline.sms import sms_segments, to_gsm7

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "testclient"}
LOOKS = ("sms", "whatsapp")
MAX_TEXT_CHARS = 10_000


def simulator_enabled() -> bool:
    return os.environ.get("HOTLINE_SIMULATOR", "on").strip().lower() not in ("off", "0", "false", "no")


class SimulatorChannel:
    name = "simulator"

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
        if (
            look not in LOOKS
            or not isinstance(phone, str)
            or not isinstance(text, str)
            or not isinstance(message_id, str)
        ):
            raise BadRequest("look (sms|whatsapp), phone, text and id expected")
        if not 0 < len(phone) <= 32 or not 0 < len(message_id) <= 64:
            raise BadRequest("phone or id too long")
        return [InboundMessage(self.name, f"{look}:{phone}", text[:MAX_TEXT_CHARS], delivery_id=message_id)]

    def render(self, inbound: InboundMessage | None, replies: list[Reply]) -> Response:
        """The replies as the phone shows them: an SMS folded to GSM-7 with its segment count."""
        sms = inbound is not None and inbound.address.startswith("sms:")
        shown = [to_gsm7(r.text) if sms else r.text for r in replies]
        return JSONResponse({"replies": [{"text": t, "segments": sms_segments(t) if sms else None} for t in shown]})

    async def send(self, address: str, replies: list[Reply]) -> SendResult:
        raise ConfigError("the simulator cannot receive late answers")

    async def fetch_media(self, media: Media) -> bytes:
        raise ConfigError("the simulator sends no media")

    async def delete_messages(self, address: str, message_ids: list[str]) -> int:
        return 0
