"""Rasa's Redis lock store, made atomic, without conversation ids in Redis.

Several Rasa replicas share one tracker store; Rasa's ticket locks in Redis are meant to make
sure no two of them handle one conversation at a time (a replica waits for the other's
ticket). Two things are changed here:
- Atomic tickets. Rasa 3.6's RedisLockStore reads a lock, changes it and writes it back with
  nothing in between: two replicas issuing a ticket at the same moment both read "no lock",
  both take ticket 0 and both handle the conversation, and one overwrites the other's turn
  in the tracker store (tests/test_cluster.py lost 2 of 20 such messages). Every
  read-change-write here runs under a short Redis mutex per conversation (redis-py's Lock).
- No pseudonyms. Rasa keys each lock, and writes inside it, the conversation id: the
  gateway's pseudonym of the sender. Here both are the keyed hash the tracker store already
  shows (rasa_plugins/tracker_store.EventCipher.sender_reference), so a Redis dump lists no
  pseudonym. Configured in deploy/rasa/endpoints.yml from HOTLINE_REDIS_URL
(redis://[:password@]host:port/db); the launcher (rasa_plugins/serve.py) checks the URL.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig
from redis.exceptions import RedisError

from rasa_plugins.tracker_store import EventCipher

REDIS_SCHEMES = ("redis", "rediss")
SOCKET_TIMEOUT_SECONDS = 2.0  # a Redis that hangs fails a turn quickly; the gateway answers
MUTEX_SECONDS = 5.0  # the longest a read-change-write of one lock may hold its mutex
MUTEX_WAIT_SECONDS = 5.0


def redis_connection(url: str) -> dict[str, Any]:
    """RedisLockStore's arguments from a redis:// URL; ValueError with a clear message."""
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES or not parts.hostname:
        raise ValueError("HOTLINE_REDIS_URL must look like redis://host:6379/0")
    path = parts.path.strip("/") or "0"
    if not path.isdigit():
        raise ValueError("HOTLINE_REDIS_URL's database must be a number (redis://host:6379/0)")
    return {
        "host": parts.hostname,
        "port": parts.port or 6379,
        "db": int(path),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "use_ssl": parts.scheme == "rediss",
    }


class PrivateRedisLockStore(RedisLockStore):
    """RedisLockStore keyed and filled with the sender reference, not the sender id."""

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None) -> None:
        kwargs = dict(endpoint_config.kwargs) if endpoint_config else {}
        url = str(kwargs.pop("redis_url", "") or os.environ.get("HOTLINE_REDIS_URL", ""))
        key = str(kwargs.pop("encryption_key", "") or os.environ.get("HOTLINE_TRACKER_KEY", ""))
        self.cipher = EventCipher(key)
        super().__init__(
            **redis_connection(url),
            key_prefix=str(kwargs.get("key_prefix") or "hotline"),
            socket_timeout=float(kwargs.get("socket_timeout") or SOCKET_TIMEOUT_SECONDS),
        )

    def _key(self, conversation_id: str) -> str:
        return self.key_prefix + self.cipher.sender_reference(conversation_id)

    def _mutex(self, conversation_id: str) -> Any:
        """The conversation's lock is read, changed and written by one replica at a time."""
        return self.red.lock(
            self._key(conversation_id) + ":mutex",
            timeout=MUTEX_SECONDS,
            blocking_timeout=MUTEX_WAIT_SECONDS,
            sleep=0.005,
        )

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        try:
            with self._mutex(conversation_id):
                return super().issue_ticket(conversation_id, lock_lifetime)
        except RedisError as error:  # the mutex itself could not be had
            raise LockError(f"Error while acquiring lock: {type(error).__name__}") from None

    def update_lock(self, conversation_id: str) -> None:
        with self._mutex(conversation_id):
            super().update_lock(conversation_id)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        with self._mutex(conversation_id):
            super().finish_serving(conversation_id, ticket_number)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Our ticket done: the lock goes when nobody else waits, in one step (Rasa's
        version checks and deletes apart, and could delete a ticket just issued)."""
        with self._mutex(conversation_id):
            lock = self.get_lock(conversation_id)
            if lock is None:
                return
            lock.remove_ticket_for(ticket_number)
            if lock.is_someone_waiting():
                self.save_lock(lock)
            else:
                self.delete_lock(conversation_id)

    def get_lock(self, conversation_id: str) -> Optional[TicketLock]:
        stored = self.red.get(self._key(conversation_id))
        if not stored:
            return None
        lock = TicketLock.from_dict(json.loads(stored))
        lock.conversation_id = conversation_id  # stored as its reference
        return lock

    def delete_lock(self, conversation_id: str) -> None:
        deleted = self.red.delete(self._key(conversation_id))
        self._log_deletion(self.cipher.sender_reference(conversation_id), bool(deleted))

    def save_lock(self, lock: TicketLock) -> None:
        stored = TicketLock(self.cipher.sender_reference(lock.conversation_id), lock.tickets)
        self.red.set(self._key(lock.conversation_id), stored.dumps())
