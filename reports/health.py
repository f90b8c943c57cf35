"""Readiness: which of a process's dependencies answer, for `/ready` on the gateway, the
action server and the console (`/health` stays liveness: the process is up).

Each check has READY_TIMEOUT_SECONDS and all run at once, so `/ready` answers within about
a second even when a dependency hangs; a check that blocks a thread (the database, Redis)
is not started again while an earlier one still hangs. The answer names dependencies
only ("database", "rasa", "redis", "gateway"): never a URL (it may hold a password), a
host or an error's text. 200 when all are "ok", else 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from sqlalchemy import Engine, text

logger = logging.getLogger("reports.health")

READY_TIMEOUT_SECONDS = 0.8
Probe = Callable[[], Awaitable[None]]  # returns when the dependency answers, raises otherwise


class Readiness:
    """The named checks of one process; remembers each one's last state to log changes only
    (an orchestrator asks every few seconds)."""

    def __init__(self, probes: Mapping[str, Probe], timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.probes = dict(probes)
        self.timeout = timeout
        self.last: dict[str, str] = {}

    async def states(self) -> dict[str, str]:
        names = list(self.probes)
        found = await asyncio.gather(*(self._state(name) for name in names))
        return dict(zip(names, found, strict=True))

    async def _state(self, name: str) -> str:
        try:
            await asyncio.wait_for(self.probes[name](), self.timeout)
            state, why = "ok", ""
        except Exception as error:  # TimeoutError, a refused connection, a bad answer
            state, why = "down", type(error).__name__
        if self.last.get(name) != state:
            log = logger.info if state == "ok" else logger.warning
            log("dependency %s is %s%s", name, state, f" ({why})" if why else "")
            self.last[name] = state
        return state


def ready_answer(states: Mapping[str, str]) -> tuple[int, dict[str, str]]:
    """(HTTP status, body) of `/ready`."""
    return (200 if all(state == "ok" for state in states.values()) else 503), dict(states)


def in_thread(check: Callable[[], Any]) -> Probe:
    """A blocking check run in a thread; while one still runs (a hung connection), later
    calls wait on it instead of starting another."""
    running: asyncio.Future[Any] | None = None

    async def probe() -> None:
        nonlocal running
        if running is None or running.done():
            running = asyncio.ensure_future(asyncio.to_thread(check))
            running.add_done_callback(_retrieve)
        await asyncio.shield(running)

    return probe


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A check's result read even when nobody waits for it any more (no asyncio warning)."""
    if not future.cancelled():
        future.exception()


def database_probe(engine: Callable[[], Engine]) -> Probe:
    def select_one() -> None:
        with engine().connect() as connection:
            connection.execute(text("SELECT 1"))

    return in_thread(select_one)


def http_probe(
    url: str, params: Mapping[str, str] | None = None, accept: Callable[[httpx.Response], bool] | None = None
) -> Probe:
    """GET url (with params: a token stays out of any log line); ok on 200 and `accept`."""

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=READY_TIMEOUT_SECONDS) as client:
            response = await client.get(url, params=params)
        if response.status_code != 200 or (accept is not None and not accept(response)):
            raise ConnectionError(f"answered {response.status_code}")

    return probe


def rasa_loaded(response: httpx.Response) -> bool:
    """Rasa's /status names the model file once a model is loaded."""
    try:
        return bool(response.json().get("model_file"))
    except (ValueError, AttributeError):
        return False


def redis_url(env: Mapping[str, str] = os.environ) -> str | None:
    """HOTLINE_REDIS_URL: only processes that share state through Redis check it."""
    return env.get("HOTLINE_REDIS_URL", "").strip() or None


def redis_probe(url: str) -> Probe:
    import redis  # only where Redis is configured

    timeout = READY_TIMEOUT_SECONDS
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return in_thread(client.ping)


def with_redis(probes: dict[str, Probe], env: Mapping[str, str] = os.environ) -> dict[str, Probe]:
    """`probes` and, when HOTLINE_REDIS_URL is set, "redis"."""
    url = redis_url(env)
    return {**probes, "redis": redis_probe(url)} if url else probes
