"""The console key: 32 bytes that seal TOTP secrets (PyNaCl SecretBox) and, unless
HOTLINE_CONSOLE_SECRET is set, sign the session cookie (a derived key, never the key itself).

Read from HOTLINE_CONSOLE_KEY (base64) or `<keys_dir>/console.key`, created (mode 0600) on
first use. Losing the file means every account must enrol its second factor again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils

CONSOLE_KEY_FILE = "console.key"
KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE


class ConsoleKeyError(RuntimeError):
    """The console key is missing, malformed or does not open what it should."""


def load_console_key(keys_dir: Path, env: Mapping[str, str] = os.environ) -> bytes:
    """The key from the environment, else from the keyring directory (created if missing)."""
    raw = env.get("HOTLINE_CONSOLE_KEY", "").strip()
    if raw:
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ConsoleKeyError("HOTLINE_CONSOLE_KEY must be base64") from None
    else:
        path = keys_dir / CONSOLE_KEY_FILE
        if not path.exists():
            _create(path)
        key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConsoleKeyError(f"the console key must be {KEY_BYTES} bytes, not {len(key)}")
    return key


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(nacl.utils.random(KEY_BYTES))
    os.chmod(path, 0o600)


def derive(key: bytes, purpose: str) -> bytes:
    """A separate key for one purpose (HMAC-SHA256 of the purpose under the console key)."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


def seal(key: bytes, plaintext: bytes) -> bytes:
    return bytes(nacl.secret.SecretBox(key).encrypt(plaintext))


def unseal(key: bytes, sealed: bytes) -> bytes:
    try:
        return nacl.secret.SecretBox(key).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise ConsoleKeyError("a sealed value does not open with the console key") from None
