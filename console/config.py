"""The console's settings (HOTLINE_CONSOLE_*), on top of the reports core's."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from reports.config import Settings, _bool, _int, _text, load_settings
from reports.models import utcnow

MODES = ("production", "development")


@dataclass(frozen=True)
class ConsoleSettings:
    database_url: str
    keys_dir: Path
    mode: str = "production"
    idle_minutes: int = 15
    max_session_hours: int = 12
    insecure_cookies: bool = False
    cookie_path: str = "/console"
    secret: str | None = field(default=None, repr=False)
    console_key: str | None = field(default=None, repr=False)  # base64, else keys_dir/console.key
    host: str = "127.0.0.1"  # HOTLINE_CONSOLE_HOST / _PORT: where `python -m console.app` listens
    port: int = 8100
    gateway_url: str = "http://127.0.0.1:8000"  # HOTLINE_GATEWAY_URL: the gateway's relay (channels/relay.py)
    relay_key: str | None = field(default=None, repr=False)  # base64, else keys_dir/relay.key
    public_url: str = "/cifras/"  # HOTLINE_PUBLIC_URL: the public figures page (reports/public_figures.py)
    clock: Callable[[], datetime] = field(default=utcnow, repr=False, compare=False)
    # The keyring and database settings read with these (reports/config.py), so nothing
    # rebuilds an environment to load a key; None for settings made in code (tests).
    reports: Settings | None = field(default=None, repr=False, compare=False)

    @property
    def production(self) -> bool:
        return self.mode == "production"

    def keyring(self) -> Settings:
        """Where the console's keys are, with any HOTLINE_* key overrides it was started with."""
        if self.reports is not None:
            return replace(self.reports, database_url=self.database_url, keys_dir=self.keys_dir)
        return Settings(database_url=self.database_url, keys_dir=self.keys_dir, relay_key=self.relay_key)


def load_console_settings(env: Mapping[str, str] = os.environ) -> ConsoleSettings:
    """Settings from the environment; raises ValueError naming the bad variable."""
    base = load_settings(env)
    mode = (_text(env, "HOTLINE_CONSOLE_MODE") or "production").lower()
    if mode not in MODES:
        raise ValueError(f"HOTLINE_CONSOLE_MODE must be one of {', '.join(MODES)}, not {mode!r}")
    return ConsoleSettings(
        database_url=base.database_url,
        keys_dir=base.keys_dir,
        mode=mode,
        idle_minutes=_int(env, "HOTLINE_CONSOLE_IDLE_MINUTES", 15),
        insecure_cookies=_bool(env, "HOTLINE_CONSOLE_INSECURE_COOKIES"),
        secret=_text(env, "HOTLINE_CONSOLE_SECRET"),
        console_key=_text(env, "HOTLINE_CONSOLE_KEY"),
        host=_text(env, "HOTLINE_CONSOLE_HOST") or "127.0.0.1",
        port=_int(env, "HOTLINE_CONSOLE_PORT", 8100),
        gateway_url=(_text(env, "HOTLINE_GATEWAY_URL") or "http://127.0.0.1:8000").rstrip("/"),
        relay_key=base.relay_key,
        public_url=_text(env, "HOTLINE_PUBLIC_URL") or "/cifras/",
        reports=base,
    )
