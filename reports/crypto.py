"""All of the reports core's cryptography behind one facade (as GlobaLeaks utils/crypto.py).

- Sealed boxes (X25519 + XSalsa20-Poly1305, libsodium): anyone with the staff public key can
  seal; only the private key opens. Every blob starts with the 4-byte fingerprint of the key
  it was sealed to, so key rotation knows which key opens it.
- Case codes: one Argon2id hash of the code gives both the lookup hash stored on the report
  and the seed of the tipster's key pair (staff messages for the tipster are sealed to it).
- Sender pseudonyms: a keyed HMAC, so a sender id is never stored as given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass, field

from argon2.low_level import Type, hash_secret_raw
from nacl.bindings import crypto_box_SEALBYTES
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

FINGERPRINT_BYTES = 4
SEAL_OVERHEAD = FINGERPRINT_BYTES + crypto_box_SEALBYTES  # bytes a sealed value adds to its content
KEY_BYTES = 32
MIN_SALT_BYTES = 16

# Argon2id for case codes. A code carries 40 random bits and the salt is shared by every
# report (a lookup must find the row from the code alone), so the hash cost is what stops a
# stolen database plus salt from being searched: 2^40 guesses x ~0.15 s is ~5,000 CPU-years.
# Changing any of these changes every lookup hash: existing codes would stop working.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 65536  # 64 MiB per hash
ARGON2_PARALLELISM = 1
ARGON2_HASH_BYTES = 32

# At most one slow hash per CPU at a time: 50 simultaneous reports must not take 50 x 64 MiB.
_HASH_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))

_FINGERPRINT_PERSON = b"hotline-keyfp"
_LOOKUP_PERSON = b"hotline-lookup"
_TIPSTER_PERSON = b"hotline-tipster"


class SealError(ValueError):
    """A blob this key cannot open: sealed to another key, or damaged."""


# -- keys and encodings ------------------------------------------------------------------


def generate_private_key() -> PrivateKey:
    return PrivateKey.generate()


def random_secret(size: int = KEY_BYTES) -> bytes:
    return os.urandom(size)


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, what: str) -> bytes:
    """Standard base64 as stored in key files and HOTLINE_* variables; errors name the value, not its content."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def key_fingerprint(public_key: PublicKey) -> bytes:
    """4 bytes naming a key pair; not secret (derived from the public key)."""
    return hashlib.blake2b(bytes(public_key), digest_size=FINGERPRINT_BYTES, person=_FINGERPRINT_PERSON).digest()


def blob_fingerprint(blob: bytes) -> bytes:
    """The fingerprint of the key a blob was sealed to."""
    return blob[:FINGERPRINT_BYTES]


def secret_fingerprint(secret: bytes) -> str:
    """8 hex characters to tell secrets apart in `keys show`, revealing nothing about them."""
    return hashlib.blake2b(secret, digest_size=4, person=_FINGERPRINT_PERSON).hexdigest()


# -- sealed boxes ------------------------------------------------------------------------


def seal(public_key: PublicKey, data: bytes) -> bytes:
    """Fingerprint of the key, then the sealed box of data."""
    return key_fingerprint(public_key) + SealedBox(public_key).encrypt(data)


def unseal(private_key: PrivateKey, blob: bytes) -> bytes:
    """Open a blob made by `seal`; SealError if this key cannot."""
    if blob_fingerprint(blob) != key_fingerprint(private_key.public_key):
        raise SealError("sealed to another key")
    try:
        return SealedBox(private_key).decrypt(bytes(blob[FINGERPRINT_BYTES:]))
    except CryptoError:
        raise SealError("damaged sealed value") from None


def seal_text(public_key: PublicKey, text: str) -> bytes:
    return seal(public_key, text.encode("utf-8"))


def unseal_text(private_key: PrivateKey, blob: bytes) -> str:
    return unseal(private_key, blob).decode("utf-8")


def seal_contact(public_key: PublicKey, channel: str, address: str) -> str:
    """A reply address only the staff console can read: url-safe base64 text, what the channel
    gateway puts into Rasa message metadata as `reply_to`."""
    data = json.dumps({"channel": channel, "address": address}, ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(seal(public_key, data)).decode("ascii")


def contact_blob(reply_to: str) -> bytes:
    """The stored form (bytes) of a `seal_contact` text; ValueError if it cannot be one."""
    try:
        blob = base64.urlsafe_b64decode(reply_to.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError("reply_to is not a sealed contact") from None
    if len(blob) <= SEAL_OVERHEAD:
        raise ValueError("reply_to is not a sealed contact")
    return blob


def open_contact(private_key: PrivateKey, blob: bytes | str) -> tuple[str, str]:
    """(channel, address) from a sealed contact, stored bytes or `reply_to` text."""
    raw = contact_blob(blob) if isinstance(blob, str) else blob
    data = json.loads(unseal(private_key, raw))
    return str(data["channel"]), str(data["address"])


# -- case codes --------------------------------------------------------------------------


def slow_hash(code_body: str, salt: bytes) -> bytes:
    """Argon2id of the code's 8 symbols: the one slow step of filing and of each lookup."""
    if len(salt) < MIN_SALT_BYTES:
        raise ValueError(f"the code salt must have at least {MIN_SALT_BYTES} bytes")
    with _HASH_SLOTS:
        return hash_secret_raw(
            code_body.encode("ascii"),
            salt,
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
            hash_len=ARGON2_HASH_BYTES,
            type=Type.ID,
        )


def lookup_hash(slow: bytes) -> str:
    """64 hex characters stored (unique) on the report: finds it from the code."""
    return hashlib.blake2b(slow, digest_size=32, person=_LOOKUP_PERSON).hexdigest()


def tipster_seed(slow: bytes) -> bytes:
    """Seed of the tipster's key pair; kept in memory only, never stored."""
    return hashlib.blake2b(slow, digest_size=32, person=_TIPSTER_PERSON).digest()


def tipster_private_key(seed: bytes) -> PrivateKey:
    return PrivateKey.from_seed(seed)


def code_hash_prefix(lookup: str) -> str:
    """What staff see to tell reports apart in notifications: not enough to find the code."""
    return lookup[:8]


@dataclass(frozen=True)
class CodeSecrets:
    lookup_hash: str
    tipster_seed: bytes = field(repr=False)

    @property
    def tipster_public_key(self) -> bytes:
        return bytes(tipster_private_key(self.tipster_seed).public_key)


def code_secrets(code_body: str, salt: bytes) -> CodeSecrets:
    """Both derived values from one slow hash."""
    slow = slow_hash(code_body, salt)
    return CodeSecrets(lookup_hash(slow), tipster_seed(slow))


# -- sender pseudonyms -------------------------------------------------------------------


def sender_ref(sender_key: bytes, sender_id: str) -> str:
    """HMAC-SHA256 hex of a sender id: links a sender's rows without storing the id."""
    return hmac.new(sender_key, sender_id.encode("utf-8"), hashlib.sha256).hexdigest()
