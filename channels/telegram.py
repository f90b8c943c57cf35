"""Telegram: the webhook's updates in, the Bot API out (python-telegram-bot 22 types and Bot).

The webhook is checked against the secret Telegram sends back in a header (set with
`set-webhook`), then parsed with PTB's `Update.de_json`. Only private chats are read:
groups, channels and membership updates are ignored. The replies go out with `send`
(sendMessage, menus as inline buttons); the webhook's own answer carries at most the one
Bot API call Telegram allows there (answering a button press, or the notice that edits are
not read). Chat ids, names and texts never reach a log line; Bot API URLs carry the token,
so the `httpx` and `telegram` loggers are raised to WARNING.

    python -m channels.telegram set-webhook     # register <public_url>/webhooks/telegram with the secret
    python -m channels.telegram delete-webhook
    python -m channels.telegram poll            # long polling, for local use without a public URL
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import re
import signal
import sys
import traceback
from collections.abc import Awaitable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest as TelegramBadRequest
from telegram.error import ChatMigrated, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from channels.base import (
    BadRequest,
    ConfigError,
    ConnectionFailed,
    ContactStopped,
    Endpoint,
    InboundMessage,
    InvalidSignature,
    Media,
    ProviderRejected,
    Reply,
    SendError,
    SendResult,
    Throttled,
)
from channels.config import GatewaySettings, load_gateway_settings
from channels.media import MAX_DOWNLOAD_BYTES
from hotline.paths import CONTENT
from hotline.text import neutralise_command

logger = logging.getLogger("channels.telegram")

T = TypeVar("T")

WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
MAX_TEXT = 4096  # sendMessage: 1-4096 characters (counted here in UTF-16 units, as Telegram does)
MAX_CALLBACK_DATA = 64
NOISY_LOGGERS = ("httpx", "httpcore", "telegram")  # their URLs and debug lines carry the token and texts

# Commands mapped to the words the assistant understands; any other "/x" arrives as "x".
COMMANDS = {"start": "hola", "ayuda": "menu", "help": "menu", "borrar": "borrar mis datos", "salir": "borrar mis datos"}
ERASE_COMMANDS = frozenset({"borrar", "salir"})
# The quick exit for a watched phone (discreet mode): the word alone, no slash needed, erases
# the chat where the Bot API allows it (48 hours) and the conversation, at once.
QUICK_EXIT = "salir"
COMMAND = re.compile(r"/+([A-Za-z0-9_]+)(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)


@dataclass(frozen=True)
class WebhookAnswer:
    """The one Bot API call a webhook's HTTP answer may carry (Telegram does it, no result
    comes back): answerCallbackQuery for a button press, sendMessage for the edit notice."""

    delivery_id: str
    method: str
    params: Mapping[str, str | int]

    def body(self) -> dict[str, str | int]:
        return {"method": self.method, **self.params}


# Set by parse_inbound, taken by render: both run in the same request task (the webhook
# endpoint awaits one, then calls the other), so concurrent requests never see each other's.
_webhook_answer: ContextVar[WebhookAnswer | None] = ContextVar("telegram_webhook_answer", default=None)


class HandlesInbound(Protocol):
    """What `poll` needs of the gateway (channels.core.Gateway)."""

    async def handle(self, inbound: InboundMessage) -> list[Reply]: ...

    async def deliver(self, inbound: InboundMessage, replies: list[Reply]) -> None: ...


@lru_cache(maxsize=1)
def edited_notice() -> str:
    """The answer to an edited message (content/gateway.yml, texts.telegram_edited)."""
    data = yaml.safe_load((CONTENT / "gateway.yml").read_text(encoding="utf-8"))
    text = str(((data or {}).get("texts") or {}).get("telegram_edited") or "").strip()
    if not text:  # our bug, not the request's: a RuntimeError (500), never a 400
        raise RuntimeError("content/gateway.yml has no texts.telegram_edited")
    return text


def command_text(text: str) -> tuple[str, bool]:
    """A person's text as the assistant may read it, and whether it asks to erase: "/start"
    -> "hola", "/ayuda" -> "menu", "/borrar", "/salir" and "salir" -> erase; never a leading "/" (Rasa would run
    "/restart" as an intent command)."""
    if text.strip(" .!¡").lower() == QUICK_EXIT:
        return COMMANDS[QUICK_EXIT], True
    if neutralise_command(text) == text:
        return text, False
    match = COMMAND.fullmatch(text.strip())
    if match is None:
        return neutralise_command(text), False
    command, rest = match.group(1).lower(), (match.group(2) or "").strip()
    if command in COMMANDS:
        return COMMANDS[command], command in ERASE_COMMANDS
    return f"{command} {rest}".strip(), False


def no_slash(text: str) -> str:
    return neutralise_command(text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most `limit` UTF-16 units, cut at a line break, else at a space."""
    parts: list[str] = []
    rest = text.strip()
    while utf16_len(rest) > limit:
        end, units = 0, 0
        while units + utf16_len(rest[end]) <= limit:
            units += utf16_len(rest[end])
            end += 1
        window = rest[:end]
        cut = window.rfind("\n")
        if cut < limit // 2:
            cut = max(cut, window.rfind(" "))
        if cut <= 0:
            cut = end
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def keyboard(options: Sequence[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button a row, "1 Tus derechos"; pressing it sends the digit back."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(f"{d} {label}", callback_data=d)] for d, label in options])


def send_error(error: TelegramError) -> SendError:
    """PTB's exception as one of the gateway's typed send errors (no token, no text in it)."""
    if isinstance(error, Forbidden):
        return ContactStopped("the person blocked the bot or left the chat")
    if isinstance(error, RetryAfter):
        return Throttled("Telegram asked to slow down (429)")
    if isinstance(error, InvalidToken):
        return ConfigError("Telegram rejected the bot token")
    if isinstance(error, TelegramBadRequest):  # before NetworkError: PTB's BadRequest subclasses it
        return ProviderRejected("400", error.message)
    if isinstance(error, ChatMigrated):
        return ProviderRejected("chat_migrated", "the chat became a supergroup")
    if isinstance(error, Conflict):
        return ProviderRejected("409", error.message)
    if isinstance(error, NetworkError):  # also TimedOut and 5xx answers
        return ConnectionFailed(f"Telegram unreachable ({type(error).__name__})")
    return ProviderRejected("telegram", error.message)


async def mapped(call: Awaitable[T]) -> T:
    try:
        return await call
    except TelegramError as error:
        raise send_error(error) from None


def quiet_noisy_loggers() -> None:
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if noisy.level < logging.WARNING:  # NOTSET included: never inherit a DEBUG root
            noisy.setLevel(logging.WARNING)


class TelegramChannel:
    """The Telegram module of the gateway (channels.base.ChannelAdapter)."""

    name = "telegram"
    answers_in_webhook = False  # Telegram retries a slow webhook: answered at once, replies sent after
    keeps_message_ids = True  # a bot may delete messages of the last 48 hours (/borrar)

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._bot: Bot | None = None
        self._requests: tuple[HTTPXRequest, HTTPXRequest] | None = None
        quiet_noisy_loggers()

    def routes(self, webhook: Endpoint) -> list[Route]:
        return [Route("/webhooks/telegram", webhook, methods=["POST"])]

    # -- webhook in ------------------------------------------------------------------------

    # https://core.telegram.org/bots/api#setwebhook (secret_token)
    async def verify(self, request: Request, body: bytes) -> None:
        expected = self.settings.telegram_webhook_secret
        given = request.headers.get(SECRET_HEADER)
        if not expected or given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise InvalidSignature("missing or wrong Telegram secret token")

    # https://core.telegram.org/bots/api#update
    async def parse_inbound(self, request: Request, body: bytes) -> list[InboundMessage]:
        _webhook_answer.set(None)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise BadRequest("JSON expected")
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadRequest("invalid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("a JSON object expected")
        update_id = data.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise BadRequest("update_id expected")
        try:  # PTB is lenient (a message without its chat parses): a missing part fails here
            inbound, answer = self.read_update(Update.de_json(data, None))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BadRequest("not a Telegram update") from None
        _webhook_answer.set(answer)
        if not inbound and answer is None:
            kind = next((k for k in data if k != "update_id"), "none")
            logger.info("ignored update kind=%s update_id=%d", kind if len(kind) <= 40 else "?", update_id)
        return inbound

    def read_update(self, update: Update) -> tuple[list[InboundMessage], WebhookAnswer | None]:
        """The person's messages in one update, and the call to make in answer (webhook or poll)."""
        delivery_id = str(update.update_id)
        if update.callback_query is not None:
            return self._from_callback(delivery_id, update.callback_query)
        if update.message is not None:
            return self._from_message(delivery_id, update.message), None
        edited = update.edited_message
        if edited is not None and edited.chat.type == "private":
            notice: dict[str, str | int] = {"chat_id": edited.chat.id, "text": edited_notice()}
            return [], WebhookAnswer(delivery_id, "sendMessage", notice)
        return [], None  # groups' edits, channel posts, my_chat_member and the rest

    def _from_message(self, delivery_id: str, message: Message) -> list[InboundMessage]:
        if message.chat.type != "private":
            return []
        address, message_id = str(message.chat.id), str(message.message_id)
        if message.text is not None:
            text, erase = command_text(message.text)
            return [InboundMessage(self.name, address, text, delivery_id, message_id=message_id, erase_request=erase)]
        media = message_media(message)
        if media is None:
            return []  # service messages: pinned, joined, shared...
        caption = no_slash(message.caption or "")
        return [InboundMessage(self.name, address, caption, delivery_id, media=(media,), message_id=message_id)]

    def _from_callback(
        self, delivery_id: str, query: CallbackQuery
    ) -> tuple[list[InboundMessage], WebhookAnswer | None]:
        answer = WebhookAnswer(delivery_id, "answerCallbackQuery", {"callback_query_id": query.id})
        if query.message is None or query.message.chat.type != "private" or query.data is None:
            return [], answer
        text = no_slash(query.data[:MAX_CALLBACK_DATA])
        return [InboundMessage(self.name, str(query.message.chat.id), text, delivery_id)], answer

    # https://core.telegram.org/bots/api#making-requests-when-getting-updates
    def render(self, inbound: InboundMessage | None, replies: list[Reply]) -> Response:
        """An empty 200, or the one call parse_inbound left for this update. Replies never
        go in the answer (no result would come back): they go out with `send`."""
        answer = _webhook_answer.get()
        _webhook_answer.set(None)
        if answer is not None and (inbound is None or inbound.delivery_id == answer.delivery_id):
            return JSONResponse(answer.body())
        return Response(status_code=200)

    # -- Bot API out -----------------------------------------------------------------------

    def bot(self) -> Bot:
        """One Bot for the adapter's life, created in the running event loop on first use.
        No `initialize()`: it would call getMe, and its InvalidToken error quotes the token."""
        if self._bot is None:
            token = self.settings.telegram_bot_token
            if not token:
                raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
            self._requests = (HTTPXRequest(connection_pool_size=1), HTTPXRequest())
            self._bot = Bot(
                token,
                base_url=f"{self.settings.telegram_api_url}/bot",
                base_file_url=f"{self.settings.telegram_api_url}/file/bot",
                get_updates_request=self._requests[0],
                request=self._requests[1],
            )
        return self._bot

    async def aclose(self) -> None:
        if self._requests is not None:
            await asyncio.gather(*(r.shutdown() for r in self._requests))
        self._bot, self._requests = None, None

    # https://core.telegram.org/bots/api#sendmessage
    async def send(self, address: str, replies: list[Reply]) -> SendResult:
        bot = self.bot()
        chat_id = chat_id_of(address)
        sent: list[str] = []
        for reply in replies:
            parts = split_text(reply.text)
            for number, part in enumerate(parts, start=1):
                markup = keyboard(reply.options) if reply.options and number == len(parts) else None
                message = await mapped(bot.send_message(chat_id=chat_id, text=part, reply_markup=markup))
                sent.append(str(message.message_id))
        logger.info("sent %d message(s) channel=telegram", len(sent))
        return SendResult(tuple(sent))

    # https://core.telegram.org/bots/api#deletemessage
    async def fetch_media(self, media: Media) -> bytes:
        """https://core.telegram.org/bots/api#getfile: `media.url` holds the file_id; the file
        is read from the Bot API's file host (up to 20 MB there; we keep MAX_DOWNLOAD_BYTES)."""
        file = await mapped(self.bot().get_file(media.url))
        if file.file_size and file.file_size > MAX_DOWNLOAD_BYTES:
            raise ProviderRejected("too_large", "media over the size limit")
        content = bytes(await mapped(file.download_as_bytearray()))
        if len(content) > MAX_DOWNLOAD_BYTES:
            raise ProviderRejected("too_large", "media over the size limit")
        return content

    async def delete_messages(self, address: str, message_ids: list[str]) -> int:
        """Private chat, both sides, under 48 hours: what Telegram refuses is skipped."""
        bot = self.bot()
        chat_id = chat_id_of(address)
        deleted = 0
        for message_id in message_ids:
            if not message_id.isdigit():
                continue
            try:
                deleted += bool(await bot.delete_message(chat_id=chat_id, message_id=int(message_id)))
            except TelegramBadRequest:
                continue  # too old, already gone, or a kind that cannot be deleted
            except Forbidden:
                break  # the bot was blocked: nothing more can be deleted
            except TelegramError as error:
                raise send_error(error) from None
        logger.info("deleted %d of %d message(s) channel=telegram", deleted, len(message_ids))
        return deleted

    async def answer(self, answer: WebhookAnswer) -> None:
        """Make the webhook answer's call through the API (long polling has no webhook answer)."""
        bot, params = self.bot(), answer.params
        if answer.method == "answerCallbackQuery":
            await mapped(bot.answer_callback_query(str(params["callback_query_id"])))
        else:
            await mapped(bot.send_message(chat_id=params["chat_id"], text=str(params["text"])))

    async def process_update(self, update: Update, gateway: HandlesInbound) -> None:
        """One polled update: the same reading as the webhook, the gateway, then the replies."""
        inbound, answer = self.read_update(update)
        if answer is not None:
            try:
                await self.answer(answer)
            except SendError as error:  # e.g. a button pressed long ago: the message still counts
                logger.warning("%s not made (%s) update_id=%s", answer.method, error.code, answer.delivery_id)
        for message in inbound:
            replies = await gateway.handle(message)
            if replies:
                await gateway.deliver(message, replies)  # sends, and remembers the ids for /borrar


def chat_id_of(address: str) -> int:
    try:
        return int(address)
    except ValueError:
        raise ProviderRejected("invalid_address", "not a Telegram chat id") from None


def message_media(message: Message) -> Media | None:
    """What was sent instead of text. `url` holds Telegram's file_id (fetching the file needs
    getFile, whose URL carries the token); `content_type` is the MIME type Telegram gives."""
    if message.photo:
        return Media(message.photo[-1].file_id, "image/jpeg")
    if message.sticker is not None:
        sticker = message.sticker
        kind = "video/webm" if sticker.is_video else "application/x-tgsticker" if sticker.is_animated else "image/webp"
        return Media(sticker.file_id, kind)
    files = (
        (message.voice, "audio/ogg"),
        (message.audio, "audio/mpeg"),
        (message.video, "video/mp4"),
        (message.animation, "video/mp4"),
        (message.document, "application/octet-stream"),
    )
    for attachment, default_type in files:
        if attachment is not None:
            return Media(attachment.file_id, attachment.mime_type or default_type)
    if message.video_note is not None:
        return Media(message.video_note.file_id, "video/mp4")
    # Nothing to fetch, nothing kept (a shared contact carries a phone number).
    for kind in ("location", "venue", "contact", "poll", "dice"):
        if getattr(message, kind) is not None:
            return Media("", f"application/x-telegram-{kind}")
    return None


# -- command line ----------------------------------------------------------------------------


async def set_webhook(settings: GatewaySettings) -> str:
    """Register the webhook with the secret Telegram will send back; returns its URL."""
    secret = settings.telegram_webhook_secret
    if not secret or not SECRET_TOKEN.fullmatch(secret):
        raise ConfigError("TELEGRAM_WEBHOOK_SECRET must be set: 1-256 characters from A-Z a-z 0-9 _ -")
    if not settings.public_url.startswith("https://"):
        raise ConfigError("HOTLINE_PUBLIC_URL must start with https:// (Telegram only calls HTTPS webhooks)")
    url = settings.public_url + WEBHOOK_PATH
    channel = TelegramChannel(settings)
    try:
        await mapped(
            channel.bot().set_webhook(
                url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=False
            )
        )
    finally:
        await channel.aclose()
    return url


async def delete_webhook(settings: GatewaySettings) -> None:
    channel = TelegramChannel(settings)
    try:
        await mapped(channel.bot().delete_webhook(drop_pending_updates=False))
    finally:
        await channel.aclose()


async def serve_polling(settings: GatewaySettings, gateway: HandlesInbound, stop: asyncio.Event) -> None:
    """Long polling until `stop` is set (PTB Application, custom event loop): each update is
    read as the webhook reads it, handled by the gateway, and answered with `send`. Polling
    removes a registered webhook first (Telegram serves one or the other)."""
    from telegram.ext import Application, ContextTypes, TypeHandler

    token = settings.telegram_bot_token
    if not token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
    channel = TelegramChannel(settings)
    application = Application.builder().token(token).base_url(f"{settings.telegram_api_url}/bot").build()

    async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await channel.process_update(update, gateway)

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        where = traceback.extract_tb(error.__traceback__)[-1] if error and error.__traceback__ else None
        place = f"{where.filename}:{where.lineno}" if where else "?"
        code = error.code if isinstance(error, SendError) else type(error).__name__
        logger.error("update not handled: %s at %s", code, place)  # never the update's contents

    application.add_handler(TypeHandler(Update, on_update))
    application.add_error_handler(on_error)
    try:
        async with application:
            updater = application.updater
            if updater is None:  # the builder makes one unless told not to
                raise RuntimeError("no PTB updater")
            await updater.start_polling(allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=False)
            await application.start()
            try:
                await stop.wait()
            finally:
                await updater.stop()
                await application.stop()
    except InvalidToken:
        raise ConfigError("Telegram rejected the bot token") from None  # PTB's own message quotes it
    finally:
        await channel.aclose()


def poll(settings: GatewaySettings) -> None:
    """`serve_polling` with the real gateway, until Ctrl-C or SIGTERM."""
    from channels.core import build_gateway

    if not settings.telegram_bot_token:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
    gateway = build_gateway(settings)

    async def run() -> None:
        stop = asyncio.Event()
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(stop_signal, stop.set)
        await serve_polling(settings, gateway, stop)

    asyncio.run(run())


def main(argv: Sequence[str] | None = None, settings: GatewaySettings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m channels.telegram", description="Telegram webhook and polling")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("set-webhook", help="register HOTLINE_PUBLIC_URL/webhooks/telegram with the secret")
    commands.add_parser("delete-webhook", help="remove the webhook (pending updates are kept)")
    commands.add_parser("poll", help="long polling, for local use without a public URL")
    args = parser.parse_args(argv)
    settings = settings or load_gateway_settings()
    quiet_noisy_loggers()
    try:
        if args.command == "set-webhook":
            url = asyncio.run(set_webhook(settings))
            print(f"webhook set: {url} (updates: {', '.join(ALLOWED_UPDATES)})")
        elif args.command == "delete-webhook":
            asyncio.run(delete_webhook(settings))
            print("webhook deleted")
        else:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
            poll(settings)
    except SendError as error:
        print(f"telegram: {error.code}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
