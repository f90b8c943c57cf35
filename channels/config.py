"""The gateway's settings, read once at start-up from the environment (HOTLINE_ prefix,
channel credentials under their vendors' usual names). Secrets never appear in a repr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reports.config import ROOT, Settings, load_settings

MODES = ("production", "development")


@dataclass(frozen=True)
class GatewaySettings:
    public_url: str  # HOTLINE_PUBLIC_URL: what Twilio and Telegram call (signatures are checked against it)
    rasa_urls: tuple[str, ...]  # HOTLINE_RASA_URLS: one or more Rasa servers; a sender always goes to the same one
    database_url: str
    keys_dir: Path
    rasa_timeout_seconds: float = 8.0  # Twilio gives a webhook 15 s; the person must get an answer
    answer_budget_seconds: float = 10.0  # the whole pipeline (database, Rasa): then the fallback answer
    messages_per_minute: int = 20  # per sender; emergencies always pass
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_sms_from: str | None = None  # TWILIO_SMS_FROM: the hotline's SMS number (or a Messaging Service SID)
    twilio_whatsapp_from: str | None = None  # TWILIO_WHATSAPP_FROM: "whatsapp:+1..."
    twilio_api_url: str = "https://api.twilio.com"  # tests point it at a local fake
    # TWILIO_WHATSAPP_TEMPLATE_SID: the approved WhatsApp template ("HX...", Twilio's Content
    # API) that tells a person silent for 24 hours that a message waits for them (neutral
    # wording, docs/channels.md); HOTLINE_TWILIO_CONTENT_API_URL: where it is checked.
    twilio_whatsapp_template_sid: str | None = None
    twilio_content_api_url: str = "https://content.twilio.com"
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org"  # tests point it at a local fake
    # HOTLINE_MODE: "development" (`make run`, the test stack) adds the phone simulator;
    # in "production", the default, its routes do not exist.
    mode: str = "production"
    host: str = "127.0.0.1"  # HOTLINE_GATEWAY_HOST / HOTLINE_GATEWAY_PORT: where uvicorn listens
    port: int = 8000
    # HOTLINE_REDIS_URL: state shared by several gateways (channels/shared.py); None keeps it
    # in this process (one gateway: `make run`). HOTLINE_REDIS_PREFIX keeps deployments (or
    # test runs) sharing one Redis apart; HOTLINE_REDIS_TIMEOUT_SECONDS bounds every call.
    redis_url: str | None = field(default=None, repr=False)  # it may carry a password
    redis_prefix: str = "hotline:"
    redis_timeout_seconds: float = 0.5
    # The keyring and database settings read with these (reports/config.py), so nothing
    # rebuilds an environment to load a key; None for settings made in code (tests).
    reports: Settings | None = field(default=None, repr=False)

    @property
    def development(self) -> bool:
        return self.mode == "development"

    def keyring(self) -> Settings:
        """Where this gateway's keys are, with any HOTLINE_* key overrides it was started with."""
        return self.reports or Settings(database_url=self.database_url, keys_dir=self.keys_dir)


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _mode(env: Mapping[str, str]) -> str:
    """A typo ("dev", "prod") stops the start-up rather than silently meaning either mode."""
    mode = env.get("HOTLINE_MODE", "").strip().lower() or "production"
    if mode not in MODES:
        raise ValueError(f"HOTLINE_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def load_gateway_settings(env: Mapping[str, str] = os.environ) -> GatewaySettings:
    rasa_urls = tuple(u.strip().rstrip("/") for u in env.get("HOTLINE_RASA_URLS", "").split(",") if u.strip())
    return GatewaySettings(
        public_url=(_text(env, "HOTLINE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
        rasa_urls=rasa_urls or ("http://127.0.0.1:5005",),
        database_url=_text(env, "HOTLINE_DATABASE_URL") or f"sqlite:///{ROOT / 'hotline.db'}",
        keys_dir=Path(_text(env, "HOTLINE_KEYS_DIR") or ROOT / "keys"),
        rasa_timeout_seconds=float(env.get("HOTLINE_RASA_TIMEOUT_SECONDS", "8")),
        answer_budget_seconds=float(env.get("HOTLINE_ANSWER_BUDGET_SECONDS", "10")),
        messages_per_minute=int(env.get("HOTLINE_MESSAGES_PER_MINUTE", "20")),
        twilio_account_sid=_text(env, "TWILIO_ACCOUNT_SID"),
        twilio_auth_token=_text(env, "TWILIO_AUTH_TOKEN"),
        twilio_sms_from=_text(env, "TWILIO_SMS_FROM"),
        twilio_whatsapp_from=_text(env, "TWILIO_WHATSAPP_FROM"),
        twilio_api_url=(_text(env, "HOTLINE_TWILIO_API_URL") or "https://api.twilio.com").rstrip("/"),
        twilio_whatsapp_template_sid=_text(env, "TWILIO_WHATSAPP_TEMPLATE_SID"),
        twilio_content_api_url=(_text(env, "HOTLINE_TWILIO_CONTENT_API_URL") or "https://content.twilio.com").rstrip(
            "/"
        ),
        telegram_bot_token=_text(env, "TELEGRAM_BOT_TOKEN"),
        telegram_webhook_secret=_text(env, "TELEGRAM_WEBHOOK_SECRET"),
        telegram_api_url=(_text(env, "HOTLINE_TELEGRAM_API_URL") or "https://api.telegram.org").rstrip("/"),
        mode=_mode(env),
        host=_text(env, "HOTLINE_GATEWAY_HOST") or "127.0.0.1",
        port=int(env.get("HOTLINE_GATEWAY_PORT", "8000")),
        redis_url=_text(env, "HOTLINE_REDIS_URL"),
        redis_prefix=_text(env, "HOTLINE_REDIS_PREFIX") or "hotline:",
        redis_timeout_seconds=float(env.get("HOTLINE_REDIS_TIMEOUT_SECONDS", "0.5")),
        reports=load_settings(env),
    )
