"""Shared fixtures. Tests marked `rasa` need the Rasa environment and the trained model
(`make test` prepares both); the stack fixture runs the real Rasa and action servers."""

from __future__ import annotations

import base64
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from channels.core import gateway_content
from hotline.edge import sign_metadata
from scripts.stack import MODEL, RASA, Stack, free_port, running_stack, sqlite_url
from tests.browser import browser  # noqa: F401  (fixture)
from tests.db_fixtures import database_url, engine, keyring, keys_dir  # noqa: F401  (fixtures)
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import ACCOUNT_SID as TWILIO_ACCOUNT_SID
from tests.fake_twilio import AUTH_TOKEN as TWILIO_AUTH_TOKEN
from tests.fake_twilio import TEMPLATE_SID, FakeTwilio

os.environ.setdefault("PTB_TIMEDELTA", "true")  # python-telegram-bot 22 warns without it (warnings are errors here)


@pytest.fixture(autouse=True)
def _rasa_is_ready(request: pytest.FixtureRequest) -> None:
    """Rasa tests without the Rasa environment or model fail, never skip."""
    missing = [str(p) for p in (RASA, MODEL) if not p.exists()]
    if missing and request.node.get_closest_marker("rasa"):
        pytest.fail(f"missing {missing}: run the tests with `make test` (or `make model` first)")


class Mailbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) keeping what it receives: the on-duty
    staff's inbox for urgent-report notifications."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[str] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        content = envelope.content
        with self._arrived:
            self.messages.append(content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[str]:
        """The inbox once it holds `count` messages (alerts go out after the tipster has the
        code, so they may arrive a moment after the conversation ends)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    with socket.socket() as probe:  # a free port for the SMTP server
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox(port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


TELEGRAM_TOKEN = "123456789:TEST-token-for-the-fake-bot-api"
TELEGRAM_SECRET = "test-webhook-secret-0123456789"


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    """Twilio's REST API, faked by a real local HTTP server (outside our walls), with the
    approved WhatsApp template of content/gateway.yml."""
    fake = FakeTwilio()
    fake.add_template(TEMPLATE_SID, gateway_content()["whatsapp_template"])
    fake.start()
    try:
        yield fake
    finally:
        fake.down()


@pytest.fixture(scope="session")
def fake_telegram() -> Iterator[FakeTelegram]:
    """Telegram's Bot API, faked by a real local HTTP server (outside our walls)."""
    with FakeTelegram(TELEGRAM_TOKEN) as fake:
        yield fake


def channel_credentials(fake_twilio: FakeTwilio, fake_telegram: FakeTelegram) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "TWILIO_SMS_FROM": "+15005550006",
        "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "HOTLINE_TWILIO_API_URL": fake_twilio.url,
        "HOTLINE_TWILIO_CONTENT_API_URL": fake_twilio.url,
        "TWILIO_WHATSAPP_TEMPLATE_SID": TEMPLATE_SID,
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "HOTLINE_TELEGRAM_API_URL": fake_telegram.url,
    }


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    smtp = {
        "HOTLINE_SMTP_HOST": "127.0.0.1",
        "HOTLINE_SMTP_FROM": "bot@hotline.test",
        "HOTLINE_SMTP_TO": "duty@hotline.test",
    }
    gateway_port = free_port()  # ports from the OS: another suite may run beside this one
    with running_stack(
        work / "logs",
        free_port(),
        free_port(),
        gateway_port,
        free_port(),
        tracker_url=sqlite_url(work / "tracker.db"),
        database_url=sqlite_url(work / "reports.db"),
        keys_dir=work / "keys",
        extra_env={
            **smtp,
            "HOTLINE_SMTP_PORT": str(mailbox.port),
            **channel_credentials(fake_twilio, fake_telegram),
            "HOTLINE_PUBLIC_URL": f"http://127.0.0.1:{gateway_port}",  # what the signatures are computed for
        },
        metrics_ports={name: free_port() for name in ("gateway", "actions", "console")},
    ) as running:
        yield running


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as http:
        yield http


class Conversation:
    """One phone user talking to the bot over Rasa's REST webhook."""

    def __init__(self, client: httpx.Client, stack: Stack, sender: str) -> None:
        self.client, self.stack, self.sender = client, stack, sender

    def say(self, text: str, metadata: dict[str, str] | None = None, signed: bool = True) -> list[str]:
        """One message as the gateway sends it: with the Rasa token and, when there is
        metadata (a sealed reply_to and the channel), the gateway's proof on it."""
        body: dict[str, object] = {"sender": self.sender, "message": text}
        if metadata:
            body["metadata"] = edge_signed(self.stack, self.sender, metadata) if signed else metadata
        response = self.client.post(self.stack.webhook, params=self.stack.rasa_params, json=body)
        assert response.status_code == 200, response.text
        return [m["text"] for m in response.json() if m.get("text")]  # custom-only messages: marks

    def tracker(self) -> dict[str, object]:
        response = self.client.get(
            f"{self.stack.rasa_url}/conversations/{self.sender}/tracker", params=self.stack.rasa_params
        )
        assert response.status_code == 200
        data: dict[str, object] = response.json()
        return data


def edge_signed(stack: Stack, sender: str, metadata: dict[str, str]) -> dict[str, str]:
    """Metadata as the gateway makes it (hotline.edge), with the stack's edge key."""
    key = base64.b64decode((stack.keys_dir / "edge.key").read_text().strip())
    return {**metadata, **sign_metadata(key, sender, metadata.get("channel", "sms"), metadata.get("reply_to", ""))}


@pytest.fixture
def conversation(request: pytest.FixtureRequest, client: httpx.Client, stack: Stack) -> Conversation:
    return Conversation(client, stack, f"test-{request.node.name}"[:64])


def log_text(stack: Stack) -> str:
    return "".join(p.read_text(errors="replace") for p in Path(stack.log_dir).glob("*.log"))
