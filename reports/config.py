"""The reports core's settings, read once from the environment (`HOTLINE_*`) at start-up.

Defaults suit a laptop: SQLite next to the code and the keyring in `keys/`. Secrets are
kept out of `repr`, so printing or logging the settings never shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
SMTP_TLS_MODES = ("starttls", "implicit", "none")  # implicit: TLS from the first byte (port 465)
SMTP_PORTS = {"starttls": 25, "implicit": 465, "none": 25}


@dataclass(frozen=True)
class Settings:
    database_url: str
    keys_dir: Path
    conversation_retention_days: int = 30
    closed_report_retention_days: int = 365
    followup_attempts_per_hour: int = 5
    console_url: str = "http://127.0.0.1:8100/console"
    tracker_url: str = f"sqlite:///{ROOT / 'rasa.db'}"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    smtp_to: tuple[str, ...] = ()
    smtp_user: str | None = field(default=None, repr=False)
    smtp_password: str | None = field(default=None, repr=False)
    smtp_tls: str = "none"  # "starttls", "implicit" (SMTPS) or "none": see SMTP_TLS_MODES
    smtp_ca_file: str | None = None  # a CA bundle for the SMTP server's certificate (a private CA)
    staff_telegram_token: str | None = field(default=None, repr=False)
    staff_telegram_chat: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # On call (reports/oncall.py): SMS to staff phones through Twilio's REST API, how long a
    # page waits for its acknowledgement before escalating, how long its link works.
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_api_url: str = "https://api.twilio.com"
    oncall_sms_from: str | None = None
    oncall_ack_minutes: int = 10
    oncall_link_hours: int = 24
    oncall_key: str | None = field(default=None, repr=False)  # base64, else keys_dir/oncall.key
    # Keyring overrides (base64), for deployments that inject keys instead of files.
    reports_public_key: str | None = field(default=None, repr=False)
    reports_private_key: str | None = field(default=None, repr=False)
    code_salt: str | None = field(default=None, repr=False)
    sender_key: str | None = field(default=None, repr=False)
    tracker_key: str | None = field(default=None, repr=False)
    gateway_key: str | None = field(default=None, repr=False)
    # Secrets of the internal hops (one per hop: a process holds only those of its own hops).
    edge_key: str | None = field(default=None, repr=False)
    relay_key: str | None = field(default=None, repr=False)
    rasa_token: str | None = field(default=None, repr=False)
    actions_token: str | None = field(default=None, repr=False)

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host and self.smtp_from and self.smtp_to)

    @property
    def telegram_configured(self) -> bool:
        return bool(self.staff_telegram_token and self.staff_telegram_chat)

    @property
    def sms_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.oncall_sms_from)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _smtp_tls(env: Mapping[str, str]) -> str:
    """HOTLINE_SMTP_TLS; by default STARTTLS whenever a password is to be sent, and never
    "none" with one: a password over a connection without TLS is readable on the way."""
    raw = (_text(env, "HOTLINE_SMTP_TLS") or "").lower()
    user = _text(env, "HOTLINE_SMTP_USER")
    if not raw:
        legacy = _bool(env, "HOTLINE_SMTP_STARTTLS")  # the older switch, still honoured
        return "starttls" if legacy or user else "none"
    if raw not in SMTP_TLS_MODES:
        raise ValueError(f"HOTLINE_SMTP_TLS must be one of {', '.join(SMTP_TLS_MODES)}, not {raw!r}")
    if raw == "none" and user:
        raise ValueError(
            "HOTLINE_SMTP_TLS=none with HOTLINE_SMTP_USER would send the SMTP password without TLS: "
            "use HOTLINE_SMTP_TLS=starttls or implicit (port 465), or a relay without a login"
        )
    return raw


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Settings from the environment; raises ValueError naming the bad variable."""
    return Settings(
        database_url=_text(env, "HOTLINE_DATABASE_URL") or f"sqlite:///{ROOT / 'hotline.db'}",
        keys_dir=Path(_text(env, "HOTLINE_KEYS_DIR") or ROOT / "keys"),
        conversation_retention_days=_int(env, "HOTLINE_CONVERSATION_RETENTION_DAYS", 30),
        closed_report_retention_days=_int(env, "HOTLINE_CLOSED_REPORT_RETENTION_DAYS", 365),
        followup_attempts_per_hour=_int(env, "HOTLINE_FOLLOWUP_ATTEMPTS_PER_HOUR", 5),
        console_url=(_text(env, "HOTLINE_CONSOLE_URL") or "http://127.0.0.1:8100/console").rstrip("/"),
        tracker_url=_text(env, "HOTLINE_TRACKER_URL") or f"sqlite:///{ROOT / 'rasa.db'}",
        smtp_host=_text(env, "HOTLINE_SMTP_HOST"),
        smtp_port=_int(env, "HOTLINE_SMTP_PORT", SMTP_PORTS[_smtp_tls(env)]),
        smtp_from=_text(env, "HOTLINE_SMTP_FROM"),
        smtp_to=tuple(a.strip() for a in env.get("HOTLINE_SMTP_TO", "").split(",") if a.strip()),
        smtp_user=_text(env, "HOTLINE_SMTP_USER"),
        smtp_password=_text(env, "HOTLINE_SMTP_PASSWORD"),
        smtp_tls=_smtp_tls(env),
        smtp_ca_file=_text(env, "HOTLINE_SMTP_CA_FILE"),
        staff_telegram_token=_text(env, "HOTLINE_STAFF_TELEGRAM_TOKEN"),
        staff_telegram_chat=_text(env, "HOTLINE_STAFF_TELEGRAM_CHAT"),
        telegram_api_url=(_text(env, "HOTLINE_TELEGRAM_API_URL") or "https://api.telegram.org").rstrip("/"),
        twilio_account_sid=_text(env, "TWILIO_ACCOUNT_SID"),
        twilio_auth_token=_text(env, "TWILIO_AUTH_TOKEN"),
        twilio_api_url=(_text(env, "HOTLINE_TWILIO_API_URL") or "https://api.twilio.com").rstrip("/"),
        oncall_sms_from=_text(env, "HOTLINE_ONCALL_SMS_FROM"),
        oncall_ack_minutes=_int(env, "HOTLINE_ONCALL_ACK_MINUTES", 10),
        oncall_link_hours=_int(env, "HOTLINE_ONCALL_LINK_HOURS", 24),
        oncall_key=_text(env, "HOTLINE_ONCALL_KEY"),
        reports_public_key=_text(env, "HOTLINE_REPORTS_PUBLIC_KEY"),
        reports_private_key=_text(env, "HOTLINE_REPORTS_PRIVATE_KEY"),
        code_salt=_text(env, "HOTLINE_CODE_SALT"),
        sender_key=_text(env, "HOTLINE_SENDER_KEY"),
        tracker_key=_text(env, "HOTLINE_TRACKER_KEY"),
        gateway_key=_text(env, "HOTLINE_GATEWAY_KEY"),
        edge_key=_text(env, "HOTLINE_EDGE_KEY"),
        relay_key=_text(env, "HOTLINE_RELAY_KEY"),
        rasa_token=_text(env, "HOTLINE_RASA_TOKEN"),
        actions_token=_text(env, "HOTLINE_ACTIONS_TOKEN"),
    )
