"""End to end through the channel gateway: signed Twilio webhooks and Telegram updates,
over real HTTP, through the real Rasa and action servers; Twilio's and Telegram's own
servers are local fakes (outside our walls). Then: nobody past the gateway saw a number."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import secrets
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from channels.config import load_gateway_settings
from channels.core import build_gateway, emergency_page, gateway_text
from channels.registry import all_adapters
from hotline.sms import sms_segments
from scripts.stack import Stack
from tests.anonymity import leaks, log_bytes, stored_bytes
from tests.conftest import TELEGRAM_SECRET, channel_credentials
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import AUTH_TOKEN, FakeTwilio

pytestmark = pytest.mark.rasa

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def new_phone() -> str:
    return f"+5025{secrets.randbelow(10**7):07d}"


def twilio_post(
    client: httpx.Client, stack: Stack, channel: str, form: dict[str, str], sign: str = "valid"
) -> httpx.Response:
    url = f"{stack.gateway_url}/webhooks/twilio/{channel}"
    headers = {}
    if sign == "valid":
        headers["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    elif sign == "invalid":
        headers["X-Twilio-Signature"] = RequestValidator("not-the-token").compute_signature(url, form)
    return client.post(url, data=form, headers=headers)


def sms_form(phone: str, text: str, sid: str | None = None) -> dict[str, str]:
    return {"From": phone, "To": "+15005550006", "Body": text, "MessageSid": sid or "SM" + secrets.token_hex(16)}


def twiml_messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(("application/xml", "text/xml"))
    return [m.text or "" for m in ElementTree.fromstring(response.text).iter("Message")]


def pseudonym(stack: Stack, channel: str, address: str) -> str:
    key = base64.b64decode((stack.keys_dir / "gateway.key").read_text().strip())
    return hmac.new(key, f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()[:32]


def user_turns(client: httpx.Client, stack: Stack, sender: str) -> int:
    tracker = client.get(f"{stack.rasa_url}/conversations/{sender}/tracker", params=stack.rasa_params).json()
    return sum(1 for e in tracker["events"] if e["event"] == "user")


def wait_for(condition: object, timeout: float = 15.0) -> None:
    """Wait until an outbound call the gateway makes after answering has arrived."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling an observable condition, with a deadline


def test_a_signed_sms_gets_its_answer_as_twiml_folded_to_gsm7(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    messages = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "hola")))
    assert messages and "MENU" in messages[0]
    assert all(sms_segments(m) <= 2 and not set("áíóúÁÍÓÚ") & set(m) for m in messages)
    menu = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "menu")))
    assert "\n9 " in menu[0]
    job = twiml_messages(twilio_post(client, stack, "sms", sms_form(phone, "3")))  # the menu works by digit
    assert any("1/5" in m for m in job), job


def test_a_whatsapp_message_keeps_its_accents(client: httpx.Client, stack: Stack) -> None:
    form = {**sms_form("whatsapp:" + new_phone(), "¿qué es la trata?"), "WaId": "50255501234", "ProfileName": "Ana"}
    messages = twiml_messages(twilio_post(client, stack, "whatsapp", form))
    assert messages and any(set("áíóú") & set(m) for m in messages), messages


@pytest.mark.parametrize("sign", ["invalid", "missing"])
def test_a_forged_or_missing_signature_is_refused_and_nothing_processed(
    client: httpx.Client, stack: Stack, sign: str
) -> None:
    phone = new_phone()
    response = twilio_post(client, stack, "sms", sms_form(phone, "hola"), sign=sign)
    assert response.status_code == 403
    assert user_turns(client, stack, pseudonym(stack, "sms", phone)) == 0


def test_the_same_delivery_twice_is_answered_once(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    form = sms_form(phone, "que es la trata")
    assert twiml_messages(twilio_post(client, stack, "sms", form))
    assert twiml_messages(twilio_post(client, stack, "sms", form)) == []  # Twilio's retry: empty TwiML
    assert user_turns(client, stack, pseudonym(stack, "sms", phone)) == 1


def test_a_leading_slash_cannot_command_rasa(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    twilio_post(client, stack, "sms", sms_form(phone, "soy de honduras"))
    twilio_post(client, stack, "sms", sms_form(phone, "/restart"))
    url = f"{stack.rasa_url}/conversations/{pseudonym(stack, 'sms', phone)}/tracker"
    tracker = client.get(url, params=stack.rasa_params).json()
    assert not any(e["event"] == "restart" for e in tracker["events"])
    assert tracker["slots"]["country"] == "HN"


def test_bad_requests_get_4xx_never_500(client: httpx.Client, stack: Stack) -> None:
    url = f"{stack.gateway_url}/webhooks/twilio/sms"
    huge = client.post(
        url, content=b"Body=" + b"a" * 200_000, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert huge.status_code == 413
    form = sms_form(new_phone(), "hola")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    as_json = client.post(url, json=form, headers={"X-Twilio-Signature": signature})
    assert as_json.status_code in (400, 403)
    telegram = f"{stack.gateway_url}/webhooks/telegram"
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
    assert client.post(telegram, content=b"{not json", headers=headers).status_code == 400
    assert client.post(telegram, content=b"\xff\xfe\x00", headers=headers).status_code == 400
    half_a_poll = client.post(telegram, json={"update_id": 1, "poll": {"id": "1"}}, headers=headers)
    assert half_a_poll.status_code == 400
    member = json.loads((FIXTURES / "telegram" / "my_chat_member.json").read_text(encoding="utf-8"))
    assert client.post(telegram, json=member, headers=headers).status_code == 200  # a kind we ignore


def telegram_update(fixture: str, chat_id: int, update_id: int) -> dict[str, Any]:
    update: dict[str, Any] = json.loads((FIXTURES / "telegram" / fixture).read_text(encoding="utf-8"))
    update["update_id"] = update_id
    message = update.get("message") or update.get("callback_query", {}).get("message")
    message["chat"]["id"] = chat_id
    return update


def post_telegram(client: httpx.Client, stack: Stack, update: dict[str, Any], secret: str = TELEGRAM_SECRET) -> int:
    response = client.post(
        f"{stack.gateway_url}/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
    )
    return response.status_code


def sent_to(fake: FakeTelegram, chat_id: int, method: str = "sendMessage") -> list[dict[str, str]]:
    return [c.params for c in list(fake.calls) if c.method == method and c.params.get("chat_id") == str(chat_id)]


def test_telegram_text_commands_and_menu_buttons(
    client: httpx.Client, stack: Stack, fake_telegram: FakeTelegram
) -> None:
    chat = 424242000 + secrets.randbelow(10**5)
    assert post_telegram(client, stack, telegram_update("command_start.json", chat, 910001)) == 200
    wait_for(lambda: sent_to(fake_telegram, chat))
    assert "MENU" in sent_to(fake_telegram, chat)[0]["text"]
    assert post_telegram(client, stack, telegram_update("command_ayuda.json", chat, 910002)) == 200
    wait_for(lambda: len(sent_to(fake_telegram, chat)) >= 2)
    menu = sent_to(fake_telegram, chat)[1]
    keyboard = json.loads(menu["reply_markup"])["inline_keyboard"]
    assert [row[0]["callback_data"] for row in keyboard][:3] == ["1", "2", "3"]
    assert post_telegram(client, stack, telegram_update("callback_menu.json", chat, 910003)) == 200  # button 3
    wait_for(lambda: any("1/5" in m["text"] for m in sent_to(fake_telegram, chat)))
    assert post_telegram(client, stack, telegram_update("text_accents.json", chat, 910004), secret="wrong") == 403


def test_telegram_borrar_erases_and_deletes_the_chat(
    client: httpx.Client, stack: Stack, fake_telegram: FakeTelegram
) -> None:
    chat = 525252000 + secrets.randbelow(10**5)
    post_telegram(client, stack, telegram_update("text_accents.json", chat, 920001))
    wait_for(lambda: sent_to(fake_telegram, chat))
    assert post_telegram(client, stack, telegram_update("command_borrar.json", chat, 920002)) == 200
    wait_for(lambda: any("borramos" in m["text"] for m in sent_to(fake_telegram, chat)))
    wait_for(lambda: sent_to(fake_telegram, chat, "deleteMessage"))
    deleted = {m["message_id"] for m in sent_to(fake_telegram, chat, "deleteMessage")}
    assert "30" in deleted  # the person's own message (fixture message_id 30)
    sender = pseudonym(stack, "telegram", str(chat))
    assert user_turns(client, stack, sender) <= 1  # only the erase itself is left


def test_rasa_down_answers_at_once_keeps_the_message_and_answers_later(
    stack: Stack, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway in this process, first pointed at a closed port (Rasa down), then at the
    running Rasa: the kept message is answered through Twilio's API (the fake)."""
    env = {**channel_credentials(fake_twilio, fake_telegram), "HOTLINE_DATABASE_URL": stack.database_url}
    env.update(HOTLINE_KEYS_DIR=str(stack.keys_dir), HOTLINE_RASA_URLS="http://127.0.0.1:9")
    settings = load_gateway_settings(env)
    phone = new_phone()

    async def scenario() -> tuple[list[str], int]:
        gateway = build_gateway(settings, all_adapters(settings))
        try:
            from channels.base import InboundMessage

            inbound = InboundMessage("sms", phone, "que es la trata", delivery_id="SM" + secrets.token_hex(16))
            first = [r.text for r in await gateway.handle(inbound)]
            gateway.settings = load_gateway_settings({**env, "HOTLINE_RASA_URLS": stack.rasa_url})
            answered = await gateway.drain_pending()
            return first, answered
        finally:
            await gateway.http.aclose()

    before = len(fake_twilio.requests)
    first, answered = asyncio.run(scenario())
    assert first == [gateway_text("assistant_unavailable"), emergency_page()]
    assert answered in (0, 1)  # 0: the stack's own gateway (same database) drained it first

    def late() -> list[Any]:
        return [r for r in fake_twilio.requests[before:] if r.form.get("To") == [phone]]

    wait_for(lambda: late())
    assert len(late()) == 1 and "trata" in late()[0].form["Body"][0].lower()  # answered once, by one of them


def test_after_a_whole_conversation_no_number_is_past_the_gateway(client: httpx.Client, stack: Stack) -> None:
    phone = new_phone()
    for text in (
        "hola",
        "quiero denunciar",
        "En la bodega tienen a 3 muchachas",
        "listo",
        "guatemala",
        "saltar",
        "saltar",
        "saltar",
        "no",
        "1",
        "no",
        "si",
        "si",
    ):
        twilio_post(client, stack, "sms", sms_form(phone, text))
    places = {
        "reports database": stored_bytes(stack.database_url),
        "tracker store": stored_bytes(stack.tracker_url),
        "logs (rasa, actions, gateway)": log_bytes(stack),
    }
    assert leaks(places, [phone, phone.lstrip("+"), phone[-8:]]) == []
    assert b"gateway" in b"".join(
        p.name.encode() for p in Path(stack.log_dir).glob("*.log")
    )  # the gateway log was read


def test_a_photo_sent_while_reporting_is_kept_without_metadata(
    client: httpx.Client, stack: Stack, fake_twilio: FakeTwilio
) -> None:
    from PIL import Image

    from tests.reporting import opened, report_ids
    from tests.test_media import MAKE, photo_with_gps

    phone = "whatsapp:" + new_phone()
    outside = {
        **sms_form(phone, ""),
        "NumMedia": "1",
        "MediaUrl0": fake_twilio.add_media(photo_with_gps(), "image/jpeg"),
    }
    outside["MediaContentType0"] = "image/jpeg"
    assert twiml_messages(twilio_post(client, stack, "whatsapp", outside)) == [gateway_text("media_received")]
    before = report_ids(stack)
    for text in ("quiero denunciar", "Los tienen encerrados en esta casa"):
        twilio_post(client, stack, "whatsapp", sms_form(phone, text))
    photo = {**sms_form(phone, ""), "NumMedia": "1", "MediaUrl0": fake_twilio.add_media(photo_with_gps(), "image/jpeg")}
    photo["MediaContentType0"] = "image/jpeg"
    assert gateway_text("photo_kept") in twiml_messages(twilio_post(client, stack, "whatsapp", photo))
    for text in ("listo", "guatemala", "saltar", "saltar", "saltar", "no", "2", "no", "no", "si"):
        twilio_post(client, stack, "whatsapp", sms_form(phone, text))
    (report_id,) = [r for r in report_ids(stack) if r not in before]
    (attachment,) = opened(stack, report_id)["attachments"]
    kept = Image.open(io.BytesIO(attachment["content"]))
    assert kept.getexif().get(MAKE) is None and dict(kept.getexif()) == {}


def test_the_phone_simulator_takes_the_gateway_path(client: httpx.Client, stack: Stack) -> None:
    from channels.terminal import token_in

    page = client.get(f"{stack.gateway_url}/simulator")
    assert page.status_code == 200 and "/simulator/messages" in page.text
    url, token = f"{stack.gateway_url}/simulator/messages", {"X-Simulator-Token": token_in(page.text)}
    message = {"look": "sms", "phone": "+50255550000", "text": "¿qué es la trata?", "id": secrets.token_hex(8)}
    replies = client.post(url, json=message, headers=token).json()["replies"]
    assert replies and all(r["segments"] and r["segments"] <= 2 for r in replies)
    assert not set("áíóú") & set("".join(r["text"] for r in replies))  # as the SMS arrives
    assert client.post(url, json=message, headers=token).json()["replies"] == []  # the same message id again: once
    whatsapp = {**message, "look": "whatsapp", "id": secrets.token_hex(8)}
    assert any(set("áíóú") & set(r["text"]) for r in client.post(url, json=whatsapp, headers=token).json()["replies"])
    bad_json = {"Content-Type": "application/json", **token}
    assert client.post(url, content=b"\xff", headers=bad_json).status_code == 400
