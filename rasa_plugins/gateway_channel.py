"""The only door for messages into the Rasa server: the channel gateway's webhook.

`POST /webhooks/gateway/webhook?token=...` takes the same body as Rasa's REST channel
({"sender", "message", "metadata"}) but only with the Rasa token (HOTLINE_RASA_TOKEN, held
by the gateway and Rasa alone), compared in constant time. Rasa's own REST channel is not
opened (credentials.yml), so nobody who merely reaches Rasa's port can talk as a sender.
Unlike Rasa's REST channel, a failure is logged without the message's text.
"""

from __future__ import annotations

import hmac
import logging
import os
from asyncio import CancelledError
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)
TOKEN_VARIABLE = "HOTLINE_RASA_TOKEN"
MAX_TEXT_CHARS = 10_000


class GatewayInput(InputChannel):
    """Messages from the channel gateway, authenticated by the Rasa token."""

    @classmethod
    def name(cls) -> str:
        return "gateway"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> InputChannel:
        return cls(str((credentials or {}).get("token") or os.environ.get(TOKEN_VARIABLE) or ""))

    def __init__(self, token: str) -> None:
        if len(token) < 32:
            raise ValueError(f"{TOKEN_VARIABLE} is missing or too short: the gateway channel needs the Rasa token")
        self.token = token

    def authentic(self, request: Request) -> bool:
        provided = str(request.args.get("token") or "")
        return hmac.compare_digest(provided.encode("utf-8"), self.token.encode("utf-8"))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("gateway_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.authentic(request):
                logger.warning("gateway webhook: request without the Rasa token refused")
                return response.json({"error": "forbidden"}, status=403)
            body = request.json if isinstance(request.json, dict) else {}
            sender, text = body.get("sender"), body.get("message")
            metadata = body.get("metadata")
            if not isinstance(sender, str) or not sender or not isinstance(text, str):
                return response.json({"error": "sender and message expected"}, status=400)
            collector = CollectingOutputChannel()
            message = UserMessage(
                text[:MAX_TEXT_CHARS],
                collector,
                sender,
                input_channel=self.name(),
                metadata=metadata if isinstance(metadata, dict) else None,
            )
            try:
                await on_new_message(message)
            except CancelledError:
                logger.error("gateway webhook: message handling cancelled")
            except Exception as error:  # the text stays out of the log, whatever went wrong
                logger.error("gateway webhook: message handling failed (%s)", type(error).__name__)
                if not collector.messages:  # nothing was said: the gateway keeps the message, sends it again
                    return response.json({"error": "not handled, send it again"}, status=503)
            return response.json(collector.messages)

        return webhook
