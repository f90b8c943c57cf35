"""The Telegram channel: recorded updates in (table-driven, each with a valid, a wrong and a
missing secret), the Bot API out against a real local fake server (tests/fake_telegram.py),
the command line, and a log capture that must hold no token, chat id or text."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from starlette.requests import Request
from starlette.responses import Response
from telegram import Update

from channels.base import (
    BadRequest,
    ChannelError,
    ConfigError,
    ConnectionFailed,
    ContactStopped,
    InboundMessage,
    InvalidSignature,
    Media,
    ProviderRejected,
    Reply,
    SendError,
    Throttled,
)
from channels.config import GatewaySettings
from channels.telegram import (
    MAX_TEXT,
    SECRET_HEADER,
    TelegramChannel,
    command_text,
    edited_notice,
    main,
    serve_polling,
    split_text,
    utf16_len,
)
from hotline.paths import CONTENT
from tests.fake_telegram import Call, FakeTelegram

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "telegram"
TOKEN = "7000000001:AAHf4ke-T0ken_for-tests_0123456789"
SECRET = "hotline-test_secret-0123456789"
CHAT = "424242001"  # the person's private chat in every fixture
TEXT = "¿Dónde está mi pasaporte? ¡Me lo quitó el jefe! Mañana 😢🙏"
PATH = f"/bot{TOKEN}"
MENU = Reply(
    "¿Sobre qué quieres saber?\n1 Tus derechos\n2 Trabajo\n3 Documentos",
    options=(("1", "Tus derechos"), ("2", "Trabajo"), ("3", "Documentos")),
)


def make_settings(api_url: str = "http://127.0.0.1:9", **changes: Any) -> GatewaySettings:
    base = GatewaySettings(
        public_url="https://hotline.example.org",
        rasa_urls=("http://127.0.0.1:5105",),
        database_url="sqlite://",
        keys_dir=Path("/nonexistent"),
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=SECRET,
        telegram_api_url=api_url,
    )
    return replace(base, **changes)


def make_request(body: bytes, headers: dict[str, str]) -> Request:
    """A Starlette request from raw bytes, as the webhook route receives it (no network)."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/telegram",
        "raw_path": b"/webhooks/telegram",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("149.154.167.220", 44321),
        "server": ("hotline.example.org", 443),
        "scheme": "https",
        "root_path": "",
        "http_version": "1.1",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def webhook_headers(secret: str | None = SECRET, content_type: str = "application/json") -> dict[str, str]:
    headers = {"content-type": content_type}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return headers


async def receive(
    channel: TelegramChannel, body: bytes, headers: dict[str, str]
) -> tuple[list[InboundMessage], Response]:
    """What the webhook route does in one request: verify, parse, then the HTTP answer."""
    request = make_request(body, headers)
    await channel.verify(request, body)
    messages = await channel.parse_inbound(request, body)
    return messages, channel.render(messages[0] if messages else None, [])


def answer_of(response: Response) -> Any:
    return json.loads(bytes(response.body))


def with_channel(settings: GatewaySettings, action: Callable[[TelegramChannel], Awaitable[T]]) -> T:
    async def run() -> T:
        channel = TelegramChannel(settings)
        try:
            return await action(channel)
        finally:
            await channel.aclose()

    return asyncio.run(run())


def inbound(text: str, update_id: int, message_id: int | None, **extra: Any) -> InboundMessage:
    return InboundMessage(
        "telegram", CHAT, text, str(update_id), message_id=None if message_id is None else str(message_id), **extra
    )


# -- inbound: recorded updates -------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    fixture: str
    expected: list[InboundMessage] | type[ChannelError]
    answer: dict[str, Any] | None = None  # the Bot API call in the webhook's answer
    content_type: str = "application/json"


EDITED_ANSWER = {"method": "sendMessage", "chat_id": int(CHAT), "text": "<edited notice>"}
CALLBACK_ANSWER = {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"}

CASES = [
    Case("text with accents and emoji", "text_accents.json", [inbound(TEXT, 900000101, 30)]),
    Case("/start", "command_start.json", [inbound("hola", 900000102, 31)]),
    Case("/start@Bot with a payload", "command_start_payload.json", [inbound("hola", 900000122, 31)]),
    Case("/ayuda", "command_ayuda.json", [inbound("menu", 900000103, 31)]),
    Case("/help", "command_help.json", [inbound("menu", 900000104, 31)]),
    Case("/borrar", "command_borrar.json", [inbound("borrar mis datos", 900000105, 31, erase_request=True)]),
    Case(
        "/borrar@HotlineBot",
        "command_borrar_botname.json",
        [inbound("borrar mis datos", 900000106, 31, erase_request=True)],
    ),
    Case("/restart arrives without the slash", "command_restart.json", [inbound("restart", 900000107, 31)]),
    Case("menu button 3", "callback_menu.json", [inbound("3", 900000108, None)], answer=CALLBACK_ANSWER),
    Case(
        "photo with caption",
        "photo_caption.json",
        [
            inbound(
                "Esta es la oferta de trabajo, ¿es real?",
                900000109,
                32,
                media=(Media("AgACAgQAAxkBAAIBZ2large", "image/jpeg"),),
            )
        ],
    ),
    Case("voice", "voice.json", [inbound("", 900000110, 33, media=(Media("AwACAgQAAxkBAAIBaFvoice", "audio/ogg"),))]),
    Case(
        "sticker",
        "sticker.json",
        [inbound("", 900000111, 34, media=(Media("CAACAgIAAxkBAAIBaWsticker", "image/webp"),))],
    ),
    Case(
        "document",
        "document.json",
        [inbound("", 900000112, 35, media=(Media("BQACAgQAAxkBAAIBanddoc", "application/pdf"),))],
    ),
    Case(
        "video with a slash caption",
        "video.json",
        [inbound("mira esto", 900000113, 36, media=(Media("BAACAgQAAxkBAAIBa2video", "video/mp4"),))],
    ),
    Case(
        "shared location",
        "location.json",
        [inbound("", 900000123, 38, media=(Media("", "application/x-telegram-location"),))],
    ),
    Case("edited message", "edited_message.json", [], answer=EDITED_ANSWER),
    Case("edited group message", "edited_group_message.json", []),
    Case("group message", "group_message.json", []),
    Case("supergroup command", "supergroup_message.json", []),
    Case(
        "button in a group",
        "callback_group.json",
        [],
        answer={**CALLBACK_ANSWER, "callback_query_id": "4382bfdwdsb323b2e0"},
    ),
    Case("channel post", "channel_post.json", []),
    Case("bot blocked (my_chat_member)", "my_chat_member.json", []),
    Case("malformed JSON", "malformed.txt", BadRequest),
    Case("JSON without update_id", "no_update_id.json", BadRequest),
    Case("JSON list", "not_an_object.json", BadRequest),
    Case("message without its chat", "message_without_chat.json", BadRequest),
    Case("form instead of JSON", "text_accents.json", BadRequest, content_type="application/x-www-form-urlencoded"),
    Case("no content type", "text_accents.json", BadRequest, content_type=""),
]

SIGNS = {"valid": SECRET, "wrong": SECRET[:-1] + "X", "missing": None, "empty": ""}


@pytest.mark.parametrize("sign", list(SIGNS))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
def test_inbound(case: Case, sign: str) -> None:
    channel = TelegramChannel(make_settings())
    headers = webhook_headers(SIGNS[sign], case.content_type)
    run = receive(channel, fixture(case.fixture), headers)
    if sign != "valid":
        with pytest.raises(InvalidSignature):
            asyncio.run(run)
        return
    if not isinstance(case.expected, list):
        with pytest.raises(case.expected):
            asyncio.run(run)
        return
    messages, response = asyncio.run(run)
    assert messages == case.expected
    assert response.status_code == 200
    if case.answer is None:
        assert response.body == b""
    else:
        expected = {k: edited_notice() if v == "<edited notice>" else v for k, v in case.answer.items()}
        assert response.headers["content-type"] == "application/json"
        assert answer_of(response) == expected


@pytest.mark.parametrize("header", [None, "", SECRET, "anything"])
def test_no_secret_configured_rejects_everything(header: str | None) -> None:
    channel = TelegramChannel(make_settings(telegram_webhook_secret=None))
    body = fixture("text_accents.json")
    with pytest.raises(InvalidSignature):
        asyncio.run(channel.verify(make_request(body, webhook_headers(header)), body))


def test_json_with_charset_is_accepted() -> None:
    channel = TelegramChannel(make_settings())
    messages, _ = asyncio.run(
        receive(channel, fixture("text_accents.json"), webhook_headers(content_type="application/json; charset=utf-8"))
    )
    assert [m.text for m in messages] == [TEXT]


def test_answer_belongs_to_its_own_request() -> None:
    """Two webhook requests at once: each gets its own answer (the callback's, the edit notice)."""
    channel = TelegramChannel(make_settings())
    callback_parsed, edited_done = asyncio.Event(), asyncio.Event()

    async def callback_request() -> Response:
        request_body = fixture("callback_menu.json")
        request = make_request(request_body, webhook_headers())
        messages = await channel.parse_inbound(request, request_body)
        callback_parsed.set()
        await edited_done.wait()  # the other request parses and answers in between
        return channel.render(messages[0], [Reply("ignored: replies go out with send")])

    async def edited_request() -> Response:
        await callback_parsed.wait()
        _, response = await receive(channel, fixture("edited_message.json"), webhook_headers())
        edited_done.set()
        return response

    async def both() -> tuple[Response, Response]:
        return await asyncio.gather(callback_request(), edited_request())

    callback, edited = asyncio.run(both())
    assert answer_of(callback) == CALLBACK_ANSWER
    assert answer_of(edited) == {"method": "sendMessage", "chat_id": int(CHAT), "text": edited_notice()}


def test_answer_is_given_once_and_only_for_its_update() -> None:
    channel = TelegramChannel(make_settings())
    body = fixture("callback_menu.json")

    async def run() -> tuple[bytes, bytes, bytes]:
        messages = await channel.parse_inbound(make_request(body, webhook_headers()), body)
        other = channel.render(replace(messages[0], delivery_id="1"), [])
        await channel.parse_inbound(make_request(body, webhook_headers()), body)
        first = channel.render(messages[0], [])
        again = channel.render(messages[0], [])
        return bytes(other.body), bytes(first.body), bytes(again.body)

    other, first, again = asyncio.run(run())
    assert (other, again) == (b"", b"")
    assert json.loads(first) == CALLBACK_ANSWER


def test_a_failed_parse_leaves_no_answer_behind() -> None:
    channel = TelegramChannel(make_settings())

    async def run() -> bytes:
        body = fixture("edited_message.json")
        await channel.parse_inbound(make_request(body, webhook_headers()), body)
        broken = fixture("malformed.txt")
        with pytest.raises(BadRequest):
            await channel.parse_inbound(make_request(broken, webhook_headers()), broken)
        return bytes(channel.render(None, []).body)

    assert asyncio.run(run()) == b""


def test_edited_notice_comes_from_gateway_content() -> None:
    edited_notice.cache_clear()
    texts = yaml.safe_load((CONTENT / "gateway.yml").read_text(encoding="utf-8"))["texts"]
    assert "telegram_edited" in texts, "content/gateway.yml needs texts.telegram_edited"
    assert edited_notice() == texts["telegram_edited"].strip()
    assert "mensaje nuevo" in edited_notice()


def test_missing_edited_notice_is_our_bug_not_a_bad_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gateway.yml").write_text("texts:\n  media_received: hola\n", encoding="utf-8")
    monkeypatch.setattr("channels.telegram.CONTENT", tmp_path)
    edited_notice.cache_clear()
    channel = TelegramChannel(make_settings())
    try:
        with pytest.raises(RuntimeError, match="telegram_edited"):
            asyncio.run(receive(channel, fixture("edited_message.json"), webhook_headers()))
    finally:
        edited_notice.cache_clear()


@pytest.mark.parametrize(
    ("text", "expected", "erase"),
    [
        ("/start", "hola", False),
        ("/START", "hola", False),
        ("/ayuda@HotlineBot", "menu", False),
        ("/borrar", "borrar mis datos", True),
        ("/borrar@HotlineBot ya", "borrar mis datos", True),
        ("/restart", "restart", False),
        ("//restart", "restart", False),
        (" /restart", "restart", False),
        ("/ restart", "restart", False),
        ("/¿qué?", "¿qué?", False),
        ("/menu@HotlineBot 2", "menu 2", False),
        ("/", "", False),
        ("hola /start", "hola /start", False),
        ("borrar", "borrar", False),
    ],
)
def test_command_text(text: str, expected: str, erase: bool) -> None:
    assert command_text(text) == (expected, erase)
    assert not command_text(text)[0].startswith("/")


# -- splitting -------------------------------------------------------------------------------

SPANISH = "Tienes derecho a un contrato por escrito, a cobrar el salario mínimo y a descansar. "


def test_split_long_reply_at_word_boundaries() -> None:
    text = (SPANISH * 60)[:5000]
    parts = split_text(text)
    assert len(parts) == 2
    assert all(0 < utf16_len(p) <= MAX_TEXT for p in parts)
    assert " ".join(parts).split() == text.split()  # no word cut in two
    assert utf16_len(parts[0]) > MAX_TEXT - 40  # cut at the last space, not earlier


def test_split_prefers_a_line_break() -> None:
    text = "a" * 3000 + "\n" + "palabra " * 200
    assert split_text(text)[0] == "a" * 3000


def test_split_counts_emoji_as_two_units() -> None:
    parts = split_text("😢" * 3000)
    assert [len(p) for p in parts] == [2048, 952]


def test_short_text_is_one_part() -> None:
    assert split_text("  ¡Hola!  ") == ["¡Hola!"]
    assert split_text("") == []


# -- outbound: the fake Bot API --------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    # PTB 22 warns on int time periods (RetryAfter) unless opted in; the suite turns warnings into errors.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    with FakeTelegram(TOKEN) as server:
        yield server


def send_message(text: str, reply_markup: dict[str, Any] | None = None, chat_id: str = CHAT) -> Call:
    params = {"chat_id": chat_id, "text": text}
    if reply_markup is not None:
        params["reply_markup"] = json.dumps(reply_markup)
    return Call("sendMessage", f"{PATH}/sendMessage", params)


def delete_message(message_id: str) -> Call:
    return Call("deleteMessage", f"{PATH}/deleteMessage", {"chat_id": CHAT, "message_id": message_id})


def normalised(calls: list[Call]) -> list[Call]:
    """reply_markup re-encoded so key order does not matter."""
    out = []
    for call in calls:
        params = dict(call.params)
        if "reply_markup" in params:
            params["reply_markup"] = json.dumps(json.loads(params["reply_markup"]), sort_keys=True)
        out.append(Call(call.method, call.path, params))
    return out


MENU_KEYBOARD = {
    "inline_keyboard": [
        [{"text": "1 Tus derechos", "callback_data": "1"}],
        [{"text": "2 Trabajo", "callback_data": "2"}],
        [{"text": "3 Documentos", "callback_data": "3"}],
    ]
}


def test_send_text_and_menu(fake: FakeTelegram) -> None:
    result = with_channel(make_settings(fake.url), lambda c: c.send(CHAT, [Reply(TEXT), MENU]))
    assert result.provider_ids == ("501", "502")
    assert normalised(fake.calls) == normalised([send_message(TEXT), send_message(MENU.text, MENU_KEYBOARD)])


def test_send_splits_a_5000_character_reply(fake: FakeTelegram) -> None:
    text = (SPANISH * 60)[:5000].strip()
    long_menu = Reply(text, options=(("1", "Sí"), ("2", "No")))
    result = with_channel(make_settings(fake.url), lambda c: c.send(CHAT, [long_menu]))
    parts = split_text(text)
    keyboard = {"inline_keyboard": [[{"text": "1 Sí", "callback_data": "1"}], [{"text": "2 No", "callback_data": "2"}]]}
    assert normalised(fake.calls) == normalised([send_message(parts[0]), send_message(parts[1], keyboard)])
    assert all(len(call.params["text"]) <= MAX_TEXT for call in fake.calls)
    assert result.provider_ids == ("501", "502")


def test_send_reuses_one_bot(fake: FakeTelegram) -> None:
    async def twice(channel: TelegramChannel) -> bool:
        await channel.send(CHAT, [Reply("uno")])
        first = channel.bot()
        await channel.send(CHAT, [Reply("dos")])
        return channel.bot() is first

    assert with_channel(make_settings(fake.url), twice)
    assert fake.calls == [send_message("uno"), send_message("dos")]


@pytest.mark.parametrize(
    ("status", "description", "retry_after", "error", "provider_code"),
    [
        (403, "Forbidden: bot was blocked by the user", None, ContactStopped, None),
        (403, "Forbidden: user is deactivated", None, ContactStopped, None),
        (429, "Too Many Requests: retry after 17", 17, Throttled, None),
        (400, "Bad Request: chat not found", None, ProviderRejected, "400"),
        (401, "Unauthorized", None, ConfigError, None),
        (500, "Internal Server Error", None, ConnectionFailed, None),
        (502, "Bad Gateway", None, ConnectionFailed, None),
    ],
    ids=["blocked", "deactivated", "429", "400", "401", "500", "502"],
)
def test_send_error_mapping(
    fake: FakeTelegram,
    status: int,
    description: str,
    retry_after: int | None,
    error: type[SendError],
    provider_code: str | None,
) -> None:
    fake.fail("sendMessage", status, description, retry_after=retry_after)
    with pytest.raises(error) as raised:
        with_channel(make_settings(fake.url), lambda c: c.send(CHAT, [Reply("hola"), Reply("no llega")]))
    assert type(raised.value) is error
    assert fake.calls == [send_message("hola")]  # stopped at the first refusal
    if provider_code is not None:
        assert isinstance(raised.value, ProviderRejected)
        assert raised.value.provider_code == provider_code
        assert description.split(": ", 1)[-1].lower() in str(raised.value).lower()  # PTB drops "Bad Request: "
    assert TOKEN not in str(raised.value)


def test_send_when_telegram_is_down(fake: FakeTelegram) -> None:
    settings = make_settings(fake.url)
    fake.stop()
    with pytest.raises(ConnectionFailed) as raised:
        with_channel(settings, lambda c: c.send(CHAT, [Reply("hola")]))
    assert fake.calls == []
    assert TOKEN not in str(raised.value)


def test_send_without_token_is_a_config_error(fake: FakeTelegram) -> None:
    with pytest.raises(ConfigError):
        with_channel(make_settings(fake.url, telegram_bot_token=None), lambda c: c.send(CHAT, [Reply("hola")]))
    assert fake.calls == []


def test_send_to_a_non_telegram_address(fake: FakeTelegram) -> None:
    with pytest.raises(ProviderRejected):
        with_channel(make_settings(fake.url), lambda c: c.send("whatsapp:+34600000000", [Reply("hola")]))
    assert fake.calls == []


def test_delete_messages_skips_what_telegram_refuses(fake: FakeTelegram) -> None:
    fake.fail("deleteMessage", 400, "Bad Request: message can't be deleted for everyone", message_id="512")
    deleted = with_channel(make_settings(fake.url), lambda c: c.delete_messages(CHAT, ["30", "512", "513", "x1"]))
    assert deleted == 2
    assert fake.calls == [delete_message("30"), delete_message("512"), delete_message("513")]


def test_delete_messages_stops_when_the_bot_is_blocked(fake: FakeTelegram) -> None:
    fake.fail("deleteMessage", 403, "Forbidden: bot was blocked by the user")
    deleted = with_channel(make_settings(fake.url), lambda c: c.delete_messages(CHAT, ["30", "31"]))
    assert deleted == 0
    assert fake.calls == [delete_message("30")]


@pytest.mark.parametrize(
    ("status", "retry_after", "error"), [(429, 5, Throttled), (500, None, ConnectionFailed), (401, None, ConfigError)]
)
def test_delete_messages_raises_what_is_not_a_refusal(
    fake: FakeTelegram, status: int, retry_after: int | None, error: type[SendError]
) -> None:
    fake.fail("deleteMessage", status, "error", retry_after=retry_after)
    with pytest.raises(error):
        with_channel(make_settings(fake.url), lambda c: c.delete_messages(CHAT, ["30", "31"]))
    assert fake.calls == [delete_message("30")]


# -- command line ----------------------------------------------------------------------------


def test_set_webhook(fake: FakeTelegram, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["set-webhook"], make_settings(fake.url)) == 0
    assert fake.calls == [
        Call(
            "setWebhook",
            f"{PATH}/setWebhook",
            {
                "url": "https://hotline.example.org/webhooks/telegram",
                "secret_token": SECRET,
                "allowed_updates": json.dumps(["message", "edited_message", "callback_query"]),
                "drop_pending_updates": "false",
            },
        )
    ]
    out = capsys.readouterr()
    assert "https://hotline.example.org/webhooks/telegram" in out.out
    assert TOKEN not in out.out + out.err
    assert SECRET not in out.out + out.err


def test_delete_webhook(fake: FakeTelegram) -> None:
    assert main(["delete-webhook"], make_settings(fake.url)) == 0
    assert fake.calls == [Call("deleteWebhook", f"{PATH}/deleteWebhook", {"drop_pending_updates": "false"})]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"telegram_webhook_secret": None}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"telegram_webhook_secret": "with spaces and ¿?"}, "TELEGRAM_WEBHOOK_SECRET"),
        ({"public_url": "http://127.0.0.1:8000"}, "https://"),
        ({"telegram_bot_token": None}, "TELEGRAM_BOT_TOKEN"),
    ],
    ids=["no secret", "bad secret", "not https", "no token"],
)
def test_set_webhook_refuses_unsafe_settings(
    fake: FakeTelegram, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], message: str
) -> None:
    assert main(["set-webhook"], make_settings(fake.url, **changes)) == 1
    assert fake.calls == []
    assert message in capsys.readouterr().err


def test_set_webhook_refused_by_telegram(fake: FakeTelegram, capsys: pytest.CaptureFixture[str]) -> None:
    fake.fail("setWebhook", 400, "Bad Request: bad webhook: Failed to resolve host")
    assert main(["set-webhook"], make_settings(fake.url)) == 1
    assert [c.method for c in fake.calls] == ["setWebhook"]
    err = capsys.readouterr().err
    assert "provider_rejected" in err and "failed to resolve host" in err
    assert TOKEN not in err


# -- long polling: the same reading, the gateway, then send ----------------------------------


class FakeGateway:
    """Stands in for channels.core.Gateway in the adapter's own tests: answers with fixed
    replies and delivers them through the channel under test."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.handled: list[InboundMessage] = []
        self.channel: TelegramChannel | None = None

    def bound(self, channel: TelegramChannel) -> FakeGateway:
        self.channel = channel
        return self

    async def handle(self, inbound: InboundMessage) -> list[Reply]:
        self.handled.append(inbound)
        return self.replies

    async def deliver(self, inbound: InboundMessage, replies: list[Reply]) -> None:
        assert self.channel is not None
        await self.channel.send(inbound.address, replies)


def polled(name: str) -> Update:
    return Update.de_json(json.loads(fixture(name)), None)


def test_poll_text_goes_through_the_gateway(fake: FakeTelegram) -> None:
    gateway = FakeGateway([Reply("Hola, te escucho."), MENU])
    with_channel(make_settings(fake.url), lambda c: c.process_update(polled("text_accents.json"), gateway.bound(c)))
    assert gateway.handled == [inbound(TEXT, 900000101, 30)]
    assert normalised(fake.calls) == normalised(
        [send_message("Hola, te escucho."), send_message(MENU.text, MENU_KEYBOARD)]
    )


def test_poll_button_is_answered_then_handled(fake: FakeTelegram) -> None:
    gateway = FakeGateway([Reply("Documentos: ...")])
    with_channel(make_settings(fake.url), lambda c: c.process_update(polled("callback_menu.json"), gateway.bound(c)))
    assert gateway.handled == [inbound("3", 900000108, None)]
    assert fake.calls == [
        Call("answerCallbackQuery", f"{PATH}/answerCallbackQuery", {"callback_query_id": "4382bfdwdsb323b2d9"}),
        send_message("Documentos: ..."),
    ]


def test_poll_edit_gets_the_notice_only(fake: FakeTelegram) -> None:
    gateway = FakeGateway([Reply("no")])
    with_channel(make_settings(fake.url), lambda c: c.process_update(polled("edited_message.json"), gateway.bound(c)))
    assert gateway.handled == []
    assert fake.calls == [send_message(edited_notice())]


def test_poll_button_still_counts_when_the_answer_fails(fake: FakeTelegram) -> None:
    fake.fail("answerCallbackQuery", 400, "Bad Request: query is too old and response timeout expired")
    gateway = FakeGateway([Reply("Documentos: ...")])
    with_channel(make_settings(fake.url), lambda c: c.process_update(polled("callback_menu.json"), gateway.bound(c)))
    assert gateway.handled == [inbound("3", 900000108, None)]
    assert [c.method for c in fake.calls] == ["answerCallbackQuery", "sendMessage"]


@pytest.mark.parametrize("name", ["group_message.json", "channel_post.json", "my_chat_member.json"])
def test_poll_ignores_what_is_not_a_private_chat(fake: FakeTelegram, name: str) -> None:
    gateway = FakeGateway([Reply("no")])
    with_channel(make_settings(fake.url), lambda c: c.process_update(polled(name), gateway.bound(c)))
    assert gateway.handled == []
    assert fake.calls == []


def test_poll_without_answer_from_the_gateway_sends_nothing(fake: FakeTelegram) -> None:
    gateway = FakeGateway([])
    with_channel(make_settings(fake.url), lambda c: c.process_update(polled("command_borrar.json"), gateway.bound(c)))
    assert gateway.handled == [inbound("borrar mis datos", 900000105, 31, erase_request=True)]
    assert fake.calls == []


def test_serve_polling_end_to_end(fake: FakeTelegram) -> None:
    """The real PTB Application against the fake: getUpdates, the same reading, the gateway, send."""
    names = ("text_accents.json", "callback_menu.json", "edited_message.json", "group_message.json")
    fake.push_updates(*(json.loads(fixture(name)) for name in names))
    gateway = FakeGateway([Reply("Te escucho.")])

    async def run() -> bool:
        gateway.bound(TelegramChannel(make_settings(fake.url)))  # the gateway delivers through its own adapter
        stop = asyncio.Event()
        server = asyncio.create_task(serve_polling(make_settings(fake.url), gateway, stop))
        answered = await asyncio.to_thread(fake.wait_for, "sendMessage", 3)
        stop.set()
        await server
        assert gateway.channel is not None
        await gateway.channel.aclose()
        return answered

    assert asyncio.run(run())
    assert gateway.handled == [inbound(TEXT, 900000101, 30), inbound("3", 900000108, None)]
    assert [c for c in fake.calls if c.method != "getUpdates"] == [
        Call("getMe", f"{PATH}/getMe", {}),
        Call("deleteWebhook", f"{PATH}/deleteWebhook", {"drop_pending_updates": "false"}),
        send_message("Te escucho."),
        Call("answerCallbackQuery", f"{PATH}/answerCallbackQuery", {"callback_query_id": "4382bfdwdsb323b2d9"}),
        send_message("Te escucho."),
        send_message(edited_notice()),
    ]
    polls = [c for c in fake.calls if c.method == "getUpdates"]
    assert all(c.json("allowed_updates") == ["message", "edited_message", "callback_query"] for c in polls)
    assert polls[-1].params["offset"] == "900000116"  # the last update marked as read on the way out


def test_serve_polling_without_token(fake: FakeTelegram) -> None:
    with pytest.raises(ConfigError):
        asyncio.run(serve_polling(make_settings(fake.url, telegram_bot_token=None), FakeGateway([]), asyncio.Event()))
    assert fake.calls == []


def test_serve_polling_with_a_rejected_token(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    fake.fail("getMe", 401, "Unauthorized")
    with pytest.raises(ConfigError) as raised:
        asyncio.run(serve_polling(make_settings(fake.url), FakeGateway([]), asyncio.Event()))
    assert TOKEN not in str(raised.value) + caplog.text
    assert [c.method for c in fake.calls] == ["getMe"]


# -- logs --------------------------------------------------------------------------------------


def test_logs_hold_no_token_chat_id_name_or_text(fake: FakeTelegram, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("httpx", "httpcore", "telegram"):  # as in a fresh process: the adapter must quiet them itself
        logging.getLogger(name).setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)
    settings = make_settings(fake.url)

    async def conversation(channel: TelegramChannel) -> None:
        for name in ("text_accents.json", "callback_menu.json", "edited_message.json", "group_message.json"):
            await receive(channel, fixture(name), webhook_headers())
        await channel.send(CHAT, [Reply(TEXT), MENU])
        await channel.delete_messages(CHAT, ["30", "501"])
        fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
        with pytest.raises(ContactStopped):
            await channel.send(CHAT, [Reply(TEXT)])

    with_channel(settings, conversation)
    assert main(["set-webhook"], settings) == 0
    assert [c.method for c in fake.calls] == ["sendMessage"] * 2 + ["deleteMessage"] * 2 + ["sendMessage", "setWebhook"]
    assert any(r.name == "channels.telegram" for r in caplog.records), "the capture must see the adapter's lines"
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for secret in (
        TOKEN,
        TOKEN.split(":")[1],
        SECRET,
        CHAT,
        TEXT,
        "Dónde está",
        "María",
        "mariajose_99",
        "Tus derechos",
    ):
        assert secret not in logged, secret
