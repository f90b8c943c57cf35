"""A message sent to Rasa again is taken once. When Rasa's connection drops after the
request went out (a replica killed after it saved the turn, say), the gateway cannot tell
whether the turn was taken: it keeps the message and sends it again later under the same
id, and the gateway channel answers it from the tracker instead of taking it twice.

Over real HTTP with the real Rasa and action server; the dropped connection is a small TCP
relay between the gateway and Rasa that passes the request on, waits for Rasa's whole
answer, and closes the gateway's connection without it."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from channels.base import InboundMessage
from channels.config import load_gateway_settings
from channels.core import build_gateway, emergency_page, gateway_text
from channels.registry import all_adapters
from scripts.stack import Stack
from tests.conftest import channel_credentials
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import FakeTwilio
from tests.test_e2e_gateway import new_phone, wait_for

pytestmark = pytest.mark.rasa

QUESTION = "que es la trata"
CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")


def user_texts(client: httpx.Client, stack: Stack, sender: str) -> list[str]:
    tracker = client.get(f"{stack.rasa_url}/conversations/{sender}/tracker", params=stack.rasa_params).json()
    return [str(e.get("text")) for e in tracker["events"] if e["event"] == "user"]


def send(client: httpx.Client, stack: Stack, sender: str, message_id: object, retry: bool) -> list[dict[str, Any]]:
    body = {"sender": sender, "message": QUESTION, "message_id": message_id, "retry": retry}
    response = client.post(stack.webhook, params=stack.rasa_params, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer, list)
    return answer


def texts_of(answer: list[dict[str, Any]]) -> list[str]:
    return [str(m["text"]) for m in answer if m.get("text")]


def test_a_message_sent_again_gets_its_saved_answer_and_is_taken_once(client: httpx.Client, stack: Stack) -> None:
    sender = "resend-" + secrets.token_hex(4)
    message_id = secrets.token_hex(16)
    first = send(client, stack, sender, message_id, retry=False)
    assert texts_of(first) and "trata" in " ".join(texts_of(first)).lower()

    again = send(client, stack, sender, message_id, retry=True)
    assert again == first  # the same messages, custom marks included (topics, mode)
    assert user_texts(client, stack, sender) == [QUESTION]

    unseen = send(client, stack, sender, secrets.token_hex(16), retry=True)  # never taken: taken now
    assert texts_of(unseen) == texts_of(first)
    assert user_texts(client, stack, sender) == [QUESTION, QUESTION]


@pytest.mark.parametrize("message_id", ["../../etc", "A" * 32, 12345, None, "0" * 33])
def test_a_malformed_message_id_is_ignored_and_the_message_taken(
    client: httpx.Client, stack: Stack, message_id: object
) -> None:
    sender = "resend-bad-" + secrets.token_hex(4)
    assert texts_of(send(client, stack, sender, message_id, retry=True))
    assert texts_of(send(client, stack, sender, message_id, retry=True))  # no id to match: taken again
    assert user_texts(client, stack, sender) == [QUESTION, QUESTION]


class DropAfterRasaAnswered:
    """A TCP relay to Rasa that loses every answer: the request reaches Rasa and Rasa saves
    the turn, then the caller's connection closes with nothing sent back."""

    def __init__(self, rasa_url: str) -> None:
        target = urlsplit(rasa_url)
        self.host, self.port = str(target.hostname), int(target.port or 80)
        self.answers_lost = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.relay, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    @staticmethod
    async def read_http(reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = CONTENT_LENGTH.search(head)
        return head + await reader.readexactly(int(length.group(1)) if length else 0)

    async def relay(self, caller: asyncio.StreamReader, caller_writer: asyncio.StreamWriter) -> None:
        try:
            request = await self.read_http(caller)
            rasa, rasa_writer = await asyncio.open_connection(self.host, self.port)
            rasa_writer.write(request)
            await rasa_writer.drain()
            await self.read_http(rasa)  # Rasa answered: the turn is saved
            self.answers_lost += 1
            rasa_writer.close()
        finally:
            caller_writer.close()


def test_an_answer_lost_on_the_way_back_is_sent_once_and_the_turn_taken_once(
    client: httpx.Client, stack: Stack, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> None:
    """The gateway in this process reaches Rasa through the relay; Rasa takes the turn and
    the answer is lost. The person is told at once (and given the emergency numbers); the
    kept message is then sent again to Rasa directly: the saved answer comes back and goes
    out once through Twilio's API (the fake), and the tracker holds the message once."""
    env = {**channel_credentials(fake_twilio, fake_telegram), "HOTLINE_DATABASE_URL": stack.database_url}
    env.update(HOTLINE_KEYS_DIR=str(stack.keys_dir))
    phone = new_phone()
    relay = DropAfterRasaAnswered(stack.rasa_url)

    async def scenario() -> tuple[list[str], str]:
        settings = load_gateway_settings({**env, "HOTLINE_RASA_URLS": await relay.start()})
        gateway = build_gateway(settings, all_adapters(settings))
        try:
            inbound = InboundMessage("sms", phone, QUESTION, delivery_id="SM" + secrets.token_hex(16))
            first = [r.text for r in await gateway.handle(inbound)]
            gateway.settings = load_gateway_settings({**env, "HOTLINE_RASA_URLS": stack.rasa_url})
            await gateway.drain_pending()  # or the stack's own gateway (same database) drains it first
            return first, gateway.pseudonym("sms", phone)
        finally:
            await gateway.http.aclose()
            await relay.close()

    before = len(fake_twilio.requests)
    first, sender = asyncio.run(scenario())
    assert relay.answers_lost == 1
    assert first == [gateway_text("assistant_unavailable"), emergency_page()]

    def late() -> list[Any]:
        return [r for r in fake_twilio.requests[before:] if r.form.get("To") == [phone]]

    wait_for(late, timeout=20.0)
    assert len(late()) == 1 and "trata" in late()[0].form["Body"][0].lower()
    assert user_texts(client, stack, sender) == [QUESTION]  # taken once, though sent twice
