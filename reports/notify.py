"""Staff alerts for urgent reports, by e-mail (SMTP) and a Telegram staff chat.

`file_report` adds a pending Notification row per configured channel in the filing
transaction; after commit the action server calls `notify_report` (blocking: run it in a
thread), and `python -m reports.jobs notify-pending` retries what is left. An alert carries
only the case's hash prefix, priority, country, triage reasons and the console link: never
report text, never the code. Errors stored on the row are short and carry no secrets (the
Telegram URL holds the bot token, so neither it nor httpx's request log is ever written).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import lru_cache
from typing import Any

import httpx
import yaml
from sqlalchemy import ColumnElement, Engine, and_, or_, select

from hotline.countries import country_names
from hotline.paths import CONTENT
from reports import crypto
from reports.config import Settings
from reports.db import transaction
from reports.models import Notification, Report, utcnow
from reports.triage import priority_label, reason_labels

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 8  # then the row stays "failed" for a person to look at
PENDING_GRACE = timedelta(minutes=2)  # fresh rows belong to the action server's own send
ERROR_CHARS = 200
CASE_PATH = "/casos/"  # the console's case page (console/cases.py), below HOTLINE_CONSOLE_URL


class NotifyError(Exception):
    """A send failed; the message is safe to store (no URL, no token, no report text)."""


@dataclass(frozen=True)
class Alert:
    """What one notification says, from the report's plain columns only."""

    notification_id: int
    channel: str
    report_id: str
    hash_prefix: str
    priority: str
    country: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class NotifyCounts:
    sent: int = 0
    failed: int = 0


def configured_channels(settings: Settings) -> tuple[str, ...]:
    """The staff channels with complete settings, for `file_report(notify_channels=...)`."""
    channels = []
    if settings.email_configured:
        channels.append("email")
    if settings.telegram_configured:
        channels.append("telegram")
    return tuple(channels)


@lru_cache(maxsize=1)
def _templates() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "notifications.yml").read_text(encoding="utf-8"))
    return data


def _fields(alert: Alert, settings: Settings) -> dict[str, str]:
    templates = _templates()
    names = country_names()
    country = templates["country_unknown"]
    if alert.country:
        country = f"{names[alert.country]} ({alert.country})" if alert.country in names else alert.country
    return {
        "hash_prefix": alert.hash_prefix,
        "priority": priority_label(alert.priority),
        "country": country,
        "reasons": ", ".join(reason_labels(alert.reasons)) or templates["no_reasons"],
        "link": f"{settings.console_url}{CASE_PATH}{alert.report_id}",
    }


def render_email(alert: Alert, settings: Settings) -> tuple[str, str]:
    """(subject, body) of the staff e-mail."""
    fields, template = _fields(alert, settings), _templates()["email"]
    return template["subject"].format(**fields), template["body"].format(**fields)


def render_telegram(alert: Alert, settings: Settings) -> str:
    return str(_templates()["telegram"]["text"].format(**_fields(alert, settings)))


def _scrub(text: str, settings: Settings) -> str:
    """Defence in depth: no configured secret ever reaches a stored error."""
    for secret in (settings.smtp_password, settings.staff_telegram_token, settings.twilio_auth_token):
        if secret:
            text = text.replace(secret, "***")
    return text[:ERROR_CHARS]


def send_email(alert: Alert, settings: Settings) -> None:
    """One message to every HOTLINE_SMTP_TO address."""
    if not settings.email_configured:
        raise NotifyError("e-mail is not configured")
    subject, body = render_email(alert, settings)
    deliver_email(settings, settings.smtp_to, subject, body)


def deliver_email(settings: Settings, recipients: tuple[str, ...], subject: str, body: str) -> None:
    """One plain-text message to `recipients` over the configured SMTP server."""
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = subject, settings.smtp_from, ", ".join(recipients)
    message.set_content(body)
    send_message(message, settings)


def send_message(message: EmailMessage, settings: Settings) -> None:
    """Hands a message to the configured SMTP server (HOTLINE_SMTP_*; a referral to an
    institution goes the same way). The password is sent only over TLS (STARTTLS or
    implicit): a server that does not offer it gets nothing."""
    if settings.smtp_host is None or settings.smtp_from is None:
        raise NotifyError("e-mail is not configured")
    if settings.smtp_user and settings.smtp_tls not in ("starttls", "implicit"):
        raise NotifyError("refusing to send the SMTP password without TLS (set HOTLINE_SMTP_TLS)")
    context = ssl.create_default_context(cafile=settings.smtp_ca_file)
    try:
        with _connect(settings.smtp_host, settings, context) as smtp:
            if settings.smtp_tls == "starttls":
                smtp.starttls(context=context)  # raises when the server does not offer it: nothing is sent
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise NotifyError(_scrub(f"{type(error).__name__}: {error}", settings)) from None


def _connect(host: str, settings: Settings, context: ssl.SSLContext) -> smtplib.SMTP:
    if settings.smtp_tls == "implicit":
        return smtplib.SMTP_SSL(host, settings.smtp_port, timeout=TIMEOUT_SECONDS, context=context)
    return smtplib.SMTP(host, settings.smtp_port, timeout=TIMEOUT_SECONDS)


def send_telegram(alert: Alert, settings: Settings) -> None:
    """sendMessage to the staff chat. https://core.telegram.org/bots/api#sendmessage"""
    if not settings.telegram_configured or settings.staff_telegram_chat is None:
        raise NotifyError("the Telegram staff chat is not configured")
    post_telegram(settings, settings.staff_telegram_chat, render_telegram(alert, settings))


def post_telegram(settings: Settings, chat: str, text: str) -> None:
    """sendMessage with the staff bot to `chat` (the staff chat, or one person's)."""
    if not settings.staff_telegram_token:
        raise NotifyError("the staff Telegram bot is not configured")
    for name in ("httpx", "httpcore"):  # their INFO/DEBUG lines show the URL, which holds the token
        logging.getLogger(name).setLevel(logging.WARNING)
    url = f"{settings.telegram_api_url}/bot{settings.staff_telegram_token}/sendMessage"
    payload = {"chat_id": chat, "text": text}
    try:
        response = httpx.post(url, json=payload, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise NotifyError(f"{type(error).__name__} reaching the Telegram API") from None
    if response.status_code != 200:
        try:
            description = str(response.json().get("description", ""))
        except ValueError:
            description = ""
        raise NotifyError(_scrub(f"Telegram API answered {response.status_code} {description}".strip(), settings))


SENDERS: dict[str, Callable[[Alert, Settings], None]] = {"email": send_email, "telegram": send_telegram}


def _due(engine: Engine, condition: ColumnElement[bool]) -> list[Alert]:
    with transaction(engine) as session:
        rows = session.execute(
            select(Notification, Report).join(Report, Notification.report_id == Report.id).where(condition)
        ).all()
        return [
            Alert(
                notification_id=notification.id,
                channel=notification.channel,
                report_id=report.id,
                hash_prefix=crypto.code_hash_prefix(report.lookup_hash),
                priority=report.priority,
                country=report.country,
                reasons=tuple(report.triage_reasons),
            )
            for notification, report in rows
        ]


def _deliver(engine: Engine, alerts: list[Alert], settings: Settings, now: datetime | None) -> NotifyCounts:
    """Send each alert outside any transaction (network waits hold no connection), then record."""
    results: dict[int, str | None] = {}
    for alert in alerts:
        sender = SENDERS.get(alert.channel)
        try:
            if sender is None:
                raise NotifyError(f"unknown channel {alert.channel}")
            sender(alert, settings)
            results[alert.notification_id] = None
        except NotifyError as error:
            results[alert.notification_id] = str(error)
            log.warning("notification %s (%s) failed: %s", alert.notification_id, alert.channel, error)
        except Exception as error:  # a bug must not lose the other alerts; its text may hold anything
            results[alert.notification_id] = f"unexpected {type(error).__name__}"
            log.error("notification %s (%s) failed: unexpected %s", alert.notification_id, alert.channel, type(error))
    with transaction(engine) as session:
        for notification_id, problem in results.items():
            row = session.get(Notification, notification_id)
            if row is None:  # the report was purged meanwhile
                continue
            row.attempts += 1
            row.status = "failed" if problem else "sent"
            row.error = problem
            row.sent_at = None if problem else (now or utcnow())
    return NotifyCounts(
        sent=sum(1 for e in results.values() if e is None), failed=sum(1 for e in results.values() if e)
    )


def notify_report(engine: Engine, report_id: str, settings: Settings, now: datetime | None = None) -> NotifyCounts:
    """Send a just-filed report's pending notifications (call after the filing commit)."""
    condition = and_(Notification.report_id == report_id, Notification.status == "pending")
    return _deliver(engine, _due(engine, condition), settings, now)


def notify_pending(engine: Engine, settings: Settings, now: datetime | None = None) -> NotifyCounts:
    """Retry failed notifications (up to MAX_ATTEMPTS) and pending ones older than a grace
    period (their filing process died before sending)."""
    now = now or utcnow()
    condition = and_(
        Notification.attempts < MAX_ATTEMPTS,
        or_(
            Notification.status == "failed",
            and_(Notification.status == "pending", Notification.created_at <= now - PENDING_GRACE),
        ),
    )
    return _deliver(engine, _due(engine, condition), settings, now)
