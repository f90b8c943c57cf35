"""Proofs between our own processes (Python 3.10-compatible: Rasa's environment imports it).

- Tokens: the keyring stores each internal token as base64 bytes (`keys/rasa.token`,
  `keys/actions.token`); processes use them as URL-safe text.
- Edge metadata: the channel gateway (the edge) signs what the actions trust about a
  message, its channel and the sealed reply address, with the edge key (`keys/edge.key`,
  held by the gateway and the action server only). A reply address that someone else
  made, for instance with the staff public key and a number of their choosing, has no
  valid proof and is refused: staff must never be led to text a stranger's number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROOF_VERSION = "v1"
MAX_AGE_SECONDS = 600  # a proof older than this is stale (a turn takes seconds; late answers minutes)
TRUSTED_FIELDS = ("channel", "reply_to")


class ForgedMetadata(ValueError):
    """A message claims a channel or reply address without the edge's valid proof."""


def token_text(raw: bytes) -> str:
    """A token as text that travels in a URL or a header unchanged."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def read_token(keys_dir: Path, filename: str, override_variable: str) -> str:
    """An internal token from its environment variable (base64) or the keyring file."""
    encoded = os.environ.get(override_variable, "").strip()
    if not encoded:
        encoded = (keys_dir / filename).read_text(encoding="ascii").strip()
    return token_text(base64.b64decode(encoded, validate=True))


def _proof(key: bytes, sender: str, channel: str, reply_to: str, issued: int) -> str:
    message = "\x1f".join((PROOF_VERSION, sender, channel, reply_to, str(issued)))
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_metadata(key: bytes, sender: str, channel: str, reply_to: str, now: float | None = None) -> dict[str, str]:
    """The metadata the gateway sends with a message: bound to the sender and the time."""
    issued = int(time.time() if now is None else now)
    return {
        "channel": channel,
        "reply_to": reply_to,
        "edge_issued": str(issued),
        "edge_proof": _proof(key, sender, channel, reply_to, issued),
    }


def verify_metadata(
    key: bytes, sender: str, metadata: Mapping[str, Any] | None, now: float | None = None
) -> dict[str, str]:
    """The channel and reply address the edge vouched for. {} when the message claims
    neither; ForgedMetadata when it claims them without a valid, fresh proof for this
    sender (checked in constant time)."""
    metadata = metadata or {}
    if not any(metadata.get(name) for name in TRUSTED_FIELDS):
        return {}
    channel, reply_to = str(metadata.get("channel") or ""), str(metadata.get("reply_to") or "")
    proof, issued_text = str(metadata.get("edge_proof") or ""), str(metadata.get("edge_issued") or "")
    if not key or not proof or not issued_text.isdigit():
        raise ForgedMetadata("no proof")
    issued = int(issued_text)
    if not hmac.compare_digest(proof, _proof(key, sender, channel, reply_to, issued)):
        raise ForgedMetadata("wrong proof")
    if abs((time.time() if now is None else now) - issued) > MAX_AGE_SECONDS:
        raise ForgedMetadata("stale proof")
    return {"channel": channel, "reply_to": reply_to}
