"""The only door for messages into the Rasa server: the channel gateway's webhook.

`POST /webhooks/gateway/webhook?token=...` takes the same body as Rasa's REST channel
({"sender", "message", "metadata"}) but only with the Rasa token (HOTLINE_RASA_TOKEN, held
by the gateway and Rasa alone), compared in constant time. Rasa's own REST channel is not
opened (credentials.yml), so nobody who merely reaches Rasa's port can talk as a sender.
Unlike Rasa's REST channel, a failure is logged without the message's text.

Sending a message again is safe. The gateway gives each message an id of its own (random,
`message_id`), and when it sends a kept message again (`"retry": true`: the first try's
connection dropped, perhaps after this or another replica had already answered and saved
the turn) the message is looked up in the tracker under the conversation's lock: when it
is there, the answer saved after it is sent again and the message is not taken a second
time; when it is not, it is handled now, inside the same lock.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from asyncio import CancelledError
from typing import Any, Awaitable, Callable, Dict, List, Optional

from rasa.core.agent import Agent
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)
TOKEN_VARIABLE = "HOTLINE_RASA_TOKEN"
MAX_TEXT_CHARS = 10_000
MESSAGE_ID = re.compile(r"^[0-9a-f]{32}$")  # the gateway's id of a message (channels/base.py)


def message_id_of(body: Dict[str, Any]) -> Optional[str]:
    """The gateway's id of the message, when it sent a well-formed one."""
    value = body.get("message_id")
    return value if isinstance(value, str) and MESSAGE_ID.match(value) else None


def answer_saved_for(tracker: Optional[DialogueStateTracker], message_id: str) -> Optional[List[BotUttered]]:
    """What the assistant said after the user message with this id, or None when the
    tracker does not have that message (it was never handled, or its history was forgotten)."""
    answer: Optional[List[BotUttered]] = None
    for event in tracker.events if tracker else ():
        if isinstance(event, UserUttered):
            if answer is not None:
                break
            if event.message_id == message_id:
                answer = []
        elif answer is not None and isinstance(event, BotUttered):
            answer.append(event)
    return answer


async def handle_once(agent: Agent, message: UserMessage, collector: CollectingOutputChannel) -> None:
    """A message sent again: its saved answer when the tracker has it, else handled now. The
    lock is Rasa's own (Redis across replicas): a replica still working on the first try
    finishes and saves before this one looks."""
    async with agent.lock_store.lock(message.sender_id):
        tracker = await agent.tracker_store.retrieve_full_tracker(message.sender_id)
        saved = answer_saved_for(tracker, str(message.message_id))
        if saved is None:
            await agent.processor.handle_message(message)
            return
        logger.info("gateway webhook: a message sent again was already answered; its answer sent again")
        for event in saved:  # as Rasa's processor sends them (MessageProcessor._send_bot_messages)
            await collector.send_response(message.sender_id, event.message())


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
            message_id = message_id_of(body)
            message = UserMessage(
                text[:MAX_TEXT_CHARS],
                collector,
                sender,
                input_channel=self.name(),
                message_id=message_id,
                metadata=metadata if isinstance(metadata, dict) else None,
            )
            agent = getattr(request.app.ctx, "agent", None)
            try:
                if message_id and body.get("retry") is True and agent is not None and agent.is_ready():
                    await handle_once(agent, message, collector)
                else:
                    await on_new_message(message)
            except CancelledError:
                logger.error("gateway webhook: message handling cancelled")
            except Exception as error:  # the text stays out of the log, whatever went wrong
                logger.error("gateway webhook: message handling failed (%s)", type(error).__name__)
                if not collector.messages:  # nothing was said: the gateway keeps the message, sends it again
                    return response.json({"error": "not handled, send it again"}, status=503)
            return response.json(collector.messages)

        return webhook
