"""The contract every channel module follows (courier's handler shape): verify the
request, parse it into inbound messages, render the replies for the channel, and send
outbound messages. The shared core (channels/core.py) does everything else: pseudonyms,
duplicates, rate limits, Rasa. Only channel modules and the core ever see an address."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def new_rasa_message_id() -> str:
    """A random id for a message in Rasa's tracker: it links to nothing outside it."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class Media:
    url: str
    content_type: str


@dataclass(frozen=True)
class InboundMessage:
    """One message as a channel delivered it. `address` (a phone number, a WhatsApp id,
    a Telegram chat id) never leaves the gateway: the core turns it into a pseudonym."""

    channel: str  # "sms", "whatsapp", "telegram", "simulator"
    address: str
    text: str  # "" for media without caption; commands already mapped to words ("/borrar" -> "borrar")
    delivery_id: str  # the provider's id for this delivery (MessageSid, update_id): duplicates are dropped
    media: tuple[Media, ...] = ()
    message_id: str | None = None  # the channel's id of the person's message (Telegram: deletable on /borrar)
    erase_request: bool = False  # an explicit erase command (/borrar): the core erases without asking again
    # Our id for the message in Rasa's tracker, kept with a message kept for later: sent
    # again (`sent_before`), Rasa answers it from the tracker if a first try was taken.
    rasa_message_id: str = field(default_factory=new_rasa_message_id, compare=False)
    sent_before: bool = False


@dataclass(frozen=True)
class Reply:
    """One message of the assistant. `options` are the numbered menu choices found in the
    text ("1 Tus derechos"...): a channel may show them as buttons, SMS keeps the text."""

    text: str
    options: tuple[tuple[str, str], ...] = ()  # (digit, label)


@dataclass(frozen=True)
class SendResult:
    provider_ids: tuple[str, ...] = field(default=())  # Twilio MessageSid / Telegram message_id of what was sent


class ChannelError(Exception):
    """Base of every error a channel raises; `code` is stable (tests check uniqueness)."""

    code = "channel_error"


class InvalidSignature(ChannelError):
    """Forged, missing or stale signature: answered 403, nothing processed."""

    code = "invalid_signature"


class BadRequest(ChannelError):
    """Malformed body, wrong content type, missing fields: answered 400."""

    code = "bad_request"


class SendError(ChannelError):
    code = "send_error"


class ConfigError(SendError):
    """Credentials or settings missing: never retried until fixed."""

    code = "config_error"


class ConnectionFailed(SendError):
    """Network error or provider 5xx: retried later."""

    code = "connection_failed"


class Throttled(SendError):
    """The provider asked us to slow down (429): retried later."""

    code = "throttled"


class ContactStopped(SendError):
    """The person opted out or blocked the bot (Twilio 21610, Telegram 403): never retried."""

    code = "contact_stopped"


class DiscreetWords(SendError):
    """A staff message with a sensitive word to a conversation in discreet mode: not sent
    (content/discreet.yml); the console shows staff the words to leave out."""

    code = "discreet_words"


class OutsideWindow(SendError):
    """WhatsApp refused a free-form message: the person has not written for 24 hours (Twilio
    63016). Not an opt-out: an approved template, or the person's next message, reopens it."""

    code = "outside_window"


class TemplateRefused(SendError):
    """The WhatsApp template in the settings cannot be used: unknown to Twilio
    (`template_unknown`), not approved by WhatsApp (`template_unapproved`), with a sensitive
    word (`template_not_discreet`), or none configured (`template_missing`). Not retried
    until the settings are fixed; the console tells staff why."""

    code = "template_refused"
    CODES = ("template_unknown", "template_unapproved", "template_not_discreet", "template_missing")

    def __init__(self, code: str, reason: str = "") -> None:
        if code not in self.CODES:
            raise ValueError(code)
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code


class ProviderRejected(SendError):
    """Any other refusal, with the provider's code."""

    code = "provider_rejected"

    def __init__(self, provider_code: str, reason: str) -> None:
        super().__init__(f"{provider_code}: {reason}")
        self.provider_code = provider_code


class ChannelAdapter(Protocol):
    """One module per channel with this shape (channels/twilio.py, channels/telegram.py)."""

    name: str  # the channel name used in InboundMessage.channel and pseudonyms
    answers_in_webhook: bool  # replies go back in the webhook's HTTP answer (TwiML), not through the API
    keeps_message_ids: bool  # ids of sent messages are remembered: the channel lets us delete them later

    def routes(self, webhook: Endpoint) -> list[Route]:
        """The channel's routes on the gateway; `webhook` is the shared endpoint (verify,
        parse, the core, render) built for this channel."""

    async def verify(self, request: Request, body: bytes) -> None:
        """Raise InvalidSignature unless the request is authentic (constant-time checks)."""

    async def parse_inbound(self, request: Request, body: bytes) -> list[InboundMessage]:
        """The person's messages in this request; [] for events we ignore (status
        callbacks, group chats, channel posts); BadRequest when malformed."""

    def render(self, inbound: InboundMessage | None, replies: list[Reply]) -> Response:
        """The webhook's HTTP answer: TwiML with the replies for Twilio; an empty 200 for
        Telegram, which sends them with `send` instead."""

    async def send(self, address: str, replies: list[Reply]) -> SendResult:
        """Send replies outside the webhook answer (late replies, Telegram, staff): the
        provider's API. Raises a SendError subclass."""

    async def fetch_media(self, media: Media) -> bytes:
        """Download a media file the person sent (for a photo kept with a report). Raises a
        SendError subclass; at most channels.media.MAX_DOWNLOAD_BYTES."""

    async def delete_messages(self, address: str, message_ids: list[str]) -> int:
        """Delete what the provider allows of a conversation on the person's phone (Telegram:
        the bot's and the person's messages of the last 48 hours); returns how many."""
