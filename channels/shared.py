"""State the gateway processes share: flood counters, "at most once a minute" marks, the
relay's nonces, a fast path for duplicate deliveries, the simulator's outbox.

One small interface, two backends. `MemoryState` (the default: `make run`, one gateway)
keeps it in this process, as before. `RedisState` (HOTLINE_REDIS_URL) keeps it in Redis,
so that any gateway behind the load balancer can serve any message. In Redis no key holds
a pseudonym, a number, an id or a text in clear: each name is a keyed HMAC (a key derived
from the gateway key), and values (the simulator's replies) are sealed with it.

Redis down (or slow) never crashes or blocks a gateway: every call has a short timeout and
raises `SharedUnavailable`, and for a moment after a failure no call is tried at all. Each
caller decides what an outage means (the flood guard lets messages pass, the relay refuses
its calls, duplicates are left to the database). One warning per outage, no content.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol, TypeVar

import redis
from nacl.secret import SecretBox
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger("channels.shared")

MAX_MARKS = 100_000  # memory backend: past this, expired marks go, then the oldest half
MAX_LISTS = 1000  # memory backend: lists (simulated phones' outboxes) kept at most
RETRY_AFTER_SECONDS = 1.0  # after a Redis failure, calls fail at once for this long

T = TypeVar("T")

# A sliding window (the guard's rule: at most `limit` hits in `window` seconds), atomically.
SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2])))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class SharedUnavailable(Exception):
    """The shared store did not answer (in time); the caller decides what that means."""


class SharedState(Protocol):
    """Names are "kind:rest": the kind is a constant word, the rest may be anything."""

    distributed: bool  # True when other processes see the same state (calls may block)

    def hit(self, name: str, limit: int, window: float, now: float | None = None) -> bool:
        """Count one hit unless `limit` were counted in the last `window` seconds."""
        ...

    def first_mark(self, name: str, ttl: float, now: float | None = None) -> bool:
        """Set a mark for `ttl` seconds; False when it was already set."""
        ...

    def forget_mark(self, name: str) -> None: ...

    def push(self, name: str, values: list[bytes], keep: int, ttl: float) -> None:
        """Append to a list (its last `keep` values kept, for `ttl` seconds)."""
        ...

    def take(self, name: str) -> list[bytes]:
        """The list's values, and the list is gone."""
        ...

    def first_value(self, name: str, value: bytes) -> bytes:
        """The value stored under name: `value` unless another process stored one first."""
        ...

    def close(self) -> None: ...


async def call(state: SharedState, operation: Callable[..., T], *args: object) -> T:
    """Run a state operation from the event loop: in a thread when it may block (Redis)."""
    if state.distributed:
        return await asyncio.to_thread(operation, *args)
    return operation(*args)


class MemoryState:
    """This process's memory (one gateway): what the gateway did before Redis."""

    distributed = False

    def __init__(self) -> None:
        self.windows: dict[str, deque[float]] = {}
        self.marks: dict[str, float] = {}  # name -> when it expires
        self.lists: OrderedDict[str, deque[bytes]] = OrderedDict()
        self.values: dict[str, bytes] = {}

    def hit(self, name: str, limit: int, window: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        hits = self.windows.setdefault(name, deque())
        while hits and now - hits[0] > window:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True

    def first_mark(self, name: str, ttl: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        expires = self.marks.get(name)
        if expires is not None and now < expires:
            return False
        self.marks[name] = now + ttl
        if len(self.marks) > MAX_MARKS:
            self._forget_old_marks(now)
        return True

    def _forget_old_marks(self, now: float) -> None:
        """Bounded: expired marks go first, then the oldest half."""
        self.marks = {n: e for n, e in self.marks.items() if e > now}
        if len(self.marks) > MAX_MARKS:
            for old in sorted(self.marks, key=self.marks.__getitem__)[: MAX_MARKS // 2]:
                del self.marks[old]

    def forget_mark(self, name: str) -> None:
        self.marks.pop(name, None)

    def push(self, name: str, values: list[bytes], keep: int, ttl: float) -> None:
        box = self.lists.pop(name, None) or deque(maxlen=keep)
        box.extend(values)
        self.lists[name] = box
        while len(self.lists) > MAX_LISTS:
            self.lists.popitem(last=False)

    def take(self, name: str) -> list[bytes]:
        return list(self.lists.pop(name, ()))

    def first_value(self, name: str, value: bytes) -> bytes:
        return self.values.setdefault(name, value)

    def close(self) -> None:
        """Nothing to close: the memory goes with the process."""


class RedisState:
    """Redis (HOTLINE_REDIS_URL), shared by every gateway; keys under `prefix`, hashed."""

    distributed = True

    def __init__(self, url: str, gateway_key: bytes, prefix: str = "hotline:", timeout: float = 0.5) -> None:
        self.prefix = prefix
        self._name_key = hmac.new(gateway_key, b"shared-state names", hashlib.sha256).digest()
        self._box = SecretBox(hmac.new(gateway_key, b"shared-state values", hashlib.sha256).digest())
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # one try: the caller has a fallback, never a wait
            health_check_interval=0,
        )
        self._window = self.client.register_script(SLIDING_WINDOW)
        self._lock = threading.Lock()
        self._down_until: float | None = None  # set while Redis is failing

    def key(self, name: str) -> str:
        """prefix + kind + ":" + keyed hash of the name (a dump tells no pseudonym or id)."""
        kind = name.split(":", 1)[0] if ":" in name else "x"
        digest = hmac.new(self._name_key, name.encode(), hashlib.sha256).hexdigest()[:40]
        return f"{self.prefix}{kind}:{digest}"

    def _run(self, operation: Callable[[redis.Redis], T]) -> T:
        """One Redis operation; SharedUnavailable at once while Redis is known to be down."""
        with self._lock:
            if self._down_until is not None and time.monotonic() < self._down_until:
                raise SharedUnavailable("redis is down")
        try:
            result = operation(self.client)
        except (redis.RedisError, OSError) as error:
            self._failed(error)
            raise SharedUnavailable(type(error).__name__) from None
        self._answered()
        return result

    def _failed(self, error: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
        if first:  # once per outage; the error's type only (never a key or value)
            logger.warning("shared state (redis) unavailable: %s", type(error).__name__)

    def _answered(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            logger.warning("shared state (redis) answers again")

    def hit(self, name: str, limit: int, window: float, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        args: list[str | int | float] = [now, window, limit, f"{now}:{secrets.token_hex(6)}", math.ceil(window * 1000)]
        return bool(self._run(lambda client: self._window(keys=[self.key(name)], args=args, client=client)))

    def first_mark(self, name: str, ttl: float, now: float | None = None) -> bool:
        milliseconds = max(1, math.ceil(ttl * 1000))
        return bool(self._run(lambda client: client.set(self.key(name), b"1", nx=True, px=milliseconds)))

    def forget_mark(self, name: str) -> None:
        self._run(lambda client: client.delete(self.key(name)))

    def push(self, name: str, values: list[bytes], keep: int, ttl: float) -> None:
        key = self.key(name)
        sealed = [bytes(self._box.encrypt(value)) for value in values]

        def append(client: redis.Redis) -> None:
            with client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, *sealed)
                pipe.ltrim(key, -keep, -1)
                pipe.pexpire(key, math.ceil(ttl * 1000))
                pipe.execute()

        if sealed:
            self._run(append)

    def take(self, name: str) -> list[bytes]:
        key = self.key(name)

        def pop_all(client: redis.Redis) -> list[bytes]:
            with client.pipeline(transaction=True) as pipe:
                pipe.lrange(key, 0, -1)
                pipe.delete(key)
                values, _ = pipe.execute()
            return list(values)

        return [self._box.decrypt(value) for value in self._run(pop_all)]

    def first_value(self, name: str, value: bytes) -> bytes:
        key = self.key(name)

        def set_or_get(client: redis.Redis) -> bytes:
            with client.pipeline(transaction=True) as pipe:
                pipe.set(key, bytes(self._box.encrypt(value)), nx=True)
                pipe.get(key)
                _, stored = pipe.execute()
            return bytes(stored)

        return self._box.decrypt(self._run(set_or_get))

    def close(self) -> None:
        self.client.close()


def shared_state(redis_url: str | None, gateway_key: bytes, prefix: str, timeout: float) -> SharedState:
    """Redis when a URL is set, else this process's memory."""
    if redis_url:
        return RedisState(redis_url, gateway_key, prefix, timeout)
    return MemoryState()
