"""Staff alerts for urgent reports against a real local SMTP server and a local fake of the
Telegram Bot API: what arrives carries the hash prefix, priority, country, reasons and the
console link, and never the report text, the code or the bot token."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from sqlalchemy import Engine, select

from hotline.report_codes import code_body
from reports import crypto
from reports.config import Settings, load_settings
from reports.db import transaction
from reports.models import Notification
from reports.notify import MAX_ATTEMPTS, NotifyCounts, configured_channels, notify_pending, notify_report
from reports.service import FiledReport, ReportDraft, file_report
from tests.db_fixtures import Keyring, settings_for

NOW = datetime(2026, 7, 7, 7, 7, tzinfo=UTC)
WHAT = "Hay niñas encerradas en el Hotel Palmeras, cuarto 12"
PLACE = "Avenida Reforma 99, Ciudad Hidalgo"
ADDRESS = "+5219621234567"
TOKEN = "987654:AAH-secret-bot-token"
CHAT = "-1001234567890"


class Inbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.envelopes:
            assert isinstance(envelope.content, bytes)
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


class EphemeralController(Controller):
    """Controller on port 0: learns the port the OS chose before its start-up check."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = EphemeralController(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


class FakeTelegram:
    """A real HTTP server on 127.0.0.1 that answers like the Bot API and records requests."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                fake.requests.append((self.path, json.loads(self.rfile.read(length))))
                ok = fake.status == 200
                body = {"ok": True, "result": {"message_id": 1}} if ok else {"ok": False, "description": "Unauthorized"}
                data = json.dumps(body).encode()
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTelegram:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def email_settings(database_url: str, keyring: Keyring, port: int) -> Settings:
    return settings_for(
        database_url,
        keyring.directory,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_from="linea@example.org",
        smtp_to=("guardia@example.org", "coordinacion@example.org"),
        console_url="https://staff.example.org/console",
    )


def telegram_settings(database_url: str, keyring: Keyring, api_url: str) -> Settings:
    return settings_for(
        database_url,
        keyring.directory,
        staff_telegram_token=TOKEN,
        staff_telegram_chat=CHAT,
        telegram_api_url=api_url,
        console_url="https://staff.example.org/console",
    )


def file_urgent(engine: Engine, keyring: Keyring, channels: tuple[str, ...]) -> FiledReport:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "sms", ADDRESS)
    draft = ReportDraft(WHAT, "MX", PLACE, "ahorita", "4", True, "sexual", True, True, reply_to, "s-1", "sms")
    with transaction(engine) as session:
        return file_report(session, draft, keyring.keys, NOW, notify_channels=channels)


def rows(engine: Engine) -> list[Notification]:
    with transaction(engine) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def secrets_of(filed: FiledReport) -> list[str]:
    return [WHAT, "Palmeras", PLACE, "Reforma", ADDRESS, filed.code, code_body(filed.code), "ahorita", TOKEN]


def test_email_reaches_staff_with_only_what_they_need(
    engine: Engine, keyring: Keyring, database_url: str, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    settings = email_settings(database_url, keyring, port)
    filed = file_urgent(engine, keyring, configured_channels(settings))

    assert notify_report(engine, filed.report_id, settings, now=NOW) == NotifyCounts(sent=1)

    (envelope,) = inbox.envelopes
    assert sorted(envelope.rcpt_tos) == ["coordinacion@example.org", "guardia@example.org"]
    (message,) = inbox.messages()
    subject, body = str(message["Subject"]), message.get_content()
    assert filed.hash_prefix in subject and "URGENTE" in subject
    for expected in (filed.hash_prefix, "México (MX)", "Peligro ahora", "Hay menores", "Lugar conocido", "Reciente"):
        assert expected in body
    assert f"https://staff.example.org/console/casos/{filed.report_id}" in body
    raw = bytes(envelope.content) if isinstance(envelope.content, bytes) else b""
    for secret in secrets_of(filed):
        assert secret not in subject and secret not in body, secret
        assert secret.encode() not in raw, secret
    (row,) = rows(engine)
    assert (row.channel, row.status, row.attempts, row.error, row.sent_at) == ("email", "sent", 1, None, NOW)


def test_telegram_staff_chat_gets_the_alert_and_the_token_is_never_logged(
    engine: Engine, keyring: Keyring, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeTelegram() as telegram:
        settings = telegram_settings(database_url, keyring, telegram.url)
        filed = file_urgent(engine, keyring, configured_channels(settings))
        assert notify_report(engine, filed.report_id, settings, now=NOW) == NotifyCounts(sent=1)

    ((path, payload),) = telegram.requests
    assert path == f"/bot{TOKEN}/sendMessage"
    assert payload["chat_id"] == CHAT
    assert filed.hash_prefix in payload["text"] and "URGENTE" in payload["text"]
    assert f"https://staff.example.org/console/casos/{filed.report_id}" in payload["text"]
    for secret in secrets_of(filed)[:-1]:
        assert secret not in json.dumps(payload, ensure_ascii=False), secret
    assert TOKEN not in caplog.text and "secret-bot" not in caplog.text
    assert rows(engine)[0].status == "sent"


def test_both_channels_are_sent_and_recorded_separately(
    engine: Engine, keyring: Keyring, database_url: str, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    with FakeTelegram() as telegram:
        settings = email_settings(database_url, keyring, port)
        settings = replace(
            settings, staff_telegram_token=TOKEN, staff_telegram_chat=CHAT, telegram_api_url=telegram.url
        )
        assert configured_channels(settings) == ("email", "telegram")
        filed = file_urgent(engine, keyring, configured_channels(settings))
        assert notify_report(engine, filed.report_id, settings, now=NOW) == NotifyCounts(sent=2)
    assert len(inbox.envelopes) == 1 and len(telegram.requests) == 1
    assert [(r.channel, r.status) for r in rows(engine)] == [("email", "sent"), ("telegram", "sent")]


def test_smtp_down_marks_the_row_failed_and_the_job_retries_it(
    engine: Engine,
    keyring: Keyring,
    database_url: str,
    smtp_server: tuple[Inbox, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, port = smtp_server
    down = email_settings(database_url, keyring, closed_port())
    filed = file_urgent(engine, keyring, ("email",))

    assert notify_report(engine, filed.report_id, down, now=NOW) == NotifyCounts(failed=1)

    (row,) = rows(engine)
    assert (row.status, row.attempts, row.sent_at) == ("failed", 1, None)
    assert row.error and "refused" in row.error.lower() and len(row.error) <= 500
    assert all(secret not in row.error for secret in secrets_of(filed))
    assert filed.report_id not in caplog.text and WHAT not in caplog.text

    assert notify_pending(engine, email_settings(database_url, keyring, port), now=NOW) == NotifyCounts(sent=1)
    (row,) = rows(engine)
    assert (row.status, row.attempts, row.error) == ("sent", 2, None)
    assert len(inbox.envelopes) == 1
    assert notify_pending(engine, email_settings(database_url, keyring, port), now=NOW) == NotifyCounts()


def test_telegram_errors_are_recorded_without_the_token(
    engine: Engine, keyring: Keyring, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    filed = file_urgent(engine, keyring, ("telegram",))
    with FakeTelegram(status=401) as telegram:
        rejected = telegram_settings(database_url, keyring, telegram.url)
        assert notify_report(engine, filed.report_id, rejected, now=NOW) == NotifyCounts(failed=1)
    (row,) = rows(engine)
    assert row.status == "failed" and row.error == "Telegram API answered 401 Unauthorized"

    unreachable = telegram_settings(database_url, keyring, f"http://127.0.0.1:{closed_port()}")
    assert notify_pending(engine, unreachable, now=NOW) == NotifyCounts(failed=1)
    (row,) = rows(engine)
    assert row.attempts == 2 and row.error == "ConnectError reaching the Telegram API"
    assert TOKEN not in caplog.text and "secret-bot" not in caplog.text


def test_the_job_leaves_fresh_pending_rows_and_gives_up_after_max_attempts(
    engine: Engine, keyring: Keyring, database_url: str, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    settings = email_settings(database_url, keyring, port)
    file_urgent(engine, keyring, ("email",))
    assert notify_pending(engine, settings, now=NOW + timedelta(seconds=30)) == NotifyCounts()
    assert notify_pending(engine, settings, now=NOW + timedelta(minutes=3)) == NotifyCounts(sent=1)
    assert len(inbox.envelopes) == 1

    file_urgent(engine, keyring, ("email",))
    down = email_settings(database_url, keyring, closed_port())
    for _ in range(MAX_ATTEMPTS):
        notify_pending(engine, down, now=NOW + timedelta(minutes=3))
    assert rows(engine)[-1].attempts == MAX_ATTEMPTS
    assert notify_pending(engine, settings, now=NOW + timedelta(minutes=3)) == NotifyCounts()


def test_a_channel_that_is_no_longer_configured_fails_cleanly(
    engine: Engine, keyring: Keyring, database_url: str
) -> None:
    filed = file_urgent(engine, keyring, ("email", "pager"))
    unconfigured = settings_for(database_url, keyring.directory)
    assert configured_channels(unconfigured) == ()
    assert notify_report(engine, filed.report_id, unconfigured, now=NOW) == NotifyCounts(failed=2)
    assert [r.error for r in rows(engine)] == ["e-mail is not configured", "unknown channel pager"]


# -- TLS: the SMTP password never travels without it


class Logins:
    """What an aiosmtpd authenticator saw: (mechanism, user, password, over TLS)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, bool]] = []

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        login, password = (bytes(part).decode() for part in (data.login, data.password))
        transport = server.transport
        over_tls = session.ssl is not None or (transport is not None and transport.get_extra_info("ssl_object"))
        self.seen.append((mechanism, login, password, bool(over_tls)))
        return AuthResult(success=True)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), trusted by the client as its CA."""
    cert, key = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    names = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *names, *files],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@contextmanager
def smtp_with_login(**kwargs: Any) -> Iterator[tuple[Inbox, Logins, int]]:
    """A real SMTP server that accepts any login, recording it."""
    inbox, logins = Inbox(), Logins()
    controller = EphemeralController(inbox, hostname="127.0.0.1", port=0, authenticator=logins, **kwargs)
    controller.start()
    try:
        yield inbox, logins, controller.port
    finally:
        controller.stop()


def login_settings(database_url: str, keyring: Keyring, port: int, cert: Path, **env: str) -> Settings:
    values = {
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_KEYS_DIR": str(keyring.directory),
        "HOTLINE_SMTP_HOST": "127.0.0.1",
        "HOTLINE_SMTP_PORT": str(port),
        "HOTLINE_SMTP_FROM": "linea@example.org",
        "HOTLINE_SMTP_TO": "guardia@example.org",
        "HOTLINE_SMTP_USER": "linea",
        "HOTLINE_SMTP_PASSWORD": SMTP_PASSWORD,
        "HOTLINE_SMTP_CA_FILE": str(cert),
    }
    return load_settings({**values, **env})


SMTP_PASSWORD = "smtp-password-never-in-clear"


def test_a_password_is_never_sent_to_a_server_without_tls(
    engine: Engine, keyring: Keyring, database_url: str, certificate: tuple[Path, Path]
) -> None:
    with smtp_with_login(auth_require_tls=False) as (inbox, logins, port):  # offers AUTH in clear, no STARTTLS
        settings = login_settings(database_url, keyring, port, certificate[0])
        filed = file_urgent(engine, keyring, configured_channels(settings))
        assert notify_report(engine, filed.report_id, settings, now=NOW) == NotifyCounts(failed=1)
    assert logins.seen == [] and inbox.envelopes == []
    (row,) = rows(engine)
    assert row.status == "failed" and row.error is not None and "STARTTLS" in row.error
    assert SMTP_PASSWORD not in row.error


def test_starttls_comes_before_the_login(
    engine: Engine, keyring: Keyring, database_url: str, certificate: tuple[Path, Path]
) -> None:
    with smtp_with_login(tls_context=server_context(certificate)) as (inbox, logins, port):
        settings = login_settings(database_url, keyring, port, certificate[0])
        assert settings.smtp_tls == "starttls" and settings.smtp_port == port
        filed = file_urgent(engine, keyring, configured_channels(settings))
        assert notify_report(engine, filed.report_id, settings, now=NOW) == NotifyCounts(sent=1)
    assert [(user, password, tls) for _, user, password, tls in logins.seen] == [("linea", SMTP_PASSWORD, True)]
    assert len(inbox.envelopes) == 1


def test_implicit_tls_on_the_smtps_port(
    engine: Engine, keyring: Keyring, database_url: str, certificate: tuple[Path, Path]
) -> None:
    assert load_settings({"HOTLINE_SMTP_TLS": "implicit"}).smtp_port == 465
    # aiosmtpd offers AUTH only after its own STARTTLS unless told: here TLS is there from the first byte.
    with smtp_with_login(ssl_context=server_context(certificate), auth_require_tls=False) as (inbox, logins, port):
        settings = login_settings(database_url, keyring, port, certificate[0], HOTLINE_SMTP_TLS="implicit")
        filed = file_urgent(engine, keyring, configured_channels(settings))
        assert notify_report(engine, filed.report_id, settings, now=NOW) == NotifyCounts(sent=1)
    assert [(user, password, tls) for _, user, password, tls in logins.seen] == [("linea", SMTP_PASSWORD, True)]
    assert len(inbox.envelopes) == 1


def test_tls_none_with_a_user_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="HOTLINE_SMTP_TLS=none with HOTLINE_SMTP_USER"):
        load_settings({"HOTLINE_SMTP_TLS": "none", "HOTLINE_SMTP_USER": "linea"})
    with pytest.raises(ValueError, match="HOTLINE_SMTP_TLS must be one of"):
        load_settings({"HOTLINE_SMTP_TLS": "ssl"})
    assert load_settings({"HOTLINE_SMTP_TLS": "none"}).smtp_tls == "none"  # a relay without a login
    assert load_settings({}).smtp_tls == "none" and load_settings({"HOTLINE_SMTP_USER": "x"}).smtp_tls == "starttls"
