"""The keyring: files in `keys/` (or HOTLINE_* base64 overrides) and its command line.

    python -m reports.keys init [--dir D]   create missing files; never overwrites
    python -m reports.keys show             fingerprints and presence, never secrets
    python -m reports.keys rotate           new report key pair; re-seals the database

Files: reports.pub (staff public key), reports.key (staff private key, only on the console
host in production), code.salt (case-code hash salt), sender.key (sender pseudonyms),
tracker.key (the Rasa tracker store's AES-GCM key). The code salt cannot be rotated: every
case code would stop working.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from nacl.public import PrivateKey, PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from hotline.edge import token_text
from reports import crypto
from reports.config import Settings, load_settings
from reports.db import make_engine, transaction
from reports.models import (
    CaseNote,
    Handoff,
    HandoffMessage,
    Report,
    ReportAddition,
    ReportAttachment,
    StatusChange,
    TipsterMessage,
)

PUBLIC_FILE = "reports.pub"
PRIVATE_FILE = "reports.key"
SALT_FILE = "code.salt"
SENDER_FILE = "sender.key"
TRACKER_FILE = "tracker.key"
GATEWAY_FILE = "gateway.key"  # the channel gateway's: sender pseudonyms (HMAC) and its pending-message box
# One secret per internal hop, so each process holds only those of the hops it is part of.
EDGE_FILE = "edge.key"  # gateway -> action server: proof that a message's reply_to and channel came from the edge
RELAY_FILE = "relay.key"  # console -> gateway: the internal relay (staff messages, pause/resume, history)
RASA_TOKEN_FILE = "rasa.token"  # gateway -> Rasa: HTTP API token and the message webhook's secret
ACTIONS_TOKEN_FILE = "actions.token"  # Rasa -> action server
ONCALL_FILE = "oncall.key"  # console (writes) and jobs (send): staff contacts for on-call alerts
CODE_SALT_BYTES = 16
NEW_SUFFIX = ".new"  # a rotation's key pair before the database is re-sealed to it

# Every column sealed to the staff key (tipster copies are sealed to tipster keys: not here).
SealedModel = (
    Report | ReportAddition | StatusChange | TipsterMessage | CaseNote | ReportAttachment | Handoff | HandoffMessage
)
SEALED_COLUMNS: tuple[tuple[type[SealedModel], str], ...] = (
    (Report, "sealed_body"),
    (Report, "contact_sealed"),
    (ReportAddition, "sealed_body"),
    (StatusChange, "note_sealed"),
    (TipsterMessage, "sealed_for_staff"),
    (CaseNote, "sealed_body"),
    (ReportAttachment, "sealed_content"),
    (Handoff, "reply_sealed"),  # an open hand-off's reply address: staff answer through it
    (HandoffMessage, "sealed_body"),
)


class KeyringError(RuntimeError):
    """A key is missing, malformed or does not match its pair."""


@dataclass(frozen=True)
class Keys:
    """What the processes that take reports hold: no private key."""

    public_key: PublicKey
    code_salt: bytes = field(repr=False)
    sender_key: bytes = field(repr=False)


def _read(settings: Settings, filename: str, override: str | None, min_size: int, max_size: int) -> bytes:
    if override:
        value = crypto.b64decode(override, filename)
    else:
        path = settings.keys_dir / filename
        if not path.exists():
            raise KeyringError(f"{path} is missing: create the keyring with `make keys`")
        value = crypto.b64decode(path.read_text(encoding="ascii"), str(path))
    if not min_size <= len(value) <= max_size:
        raise KeyringError(f"{filename} has {len(value)} bytes, expected {min_size}-{max_size}")
    return value


def load_keys(settings: Settings) -> Keys:
    """Public key, code salt and sender key; deliberately not the private key."""
    public = _read(settings, PUBLIC_FILE, settings.reports_public_key, crypto.KEY_BYTES, crypto.KEY_BYTES)
    salt = _read(settings, SALT_FILE, settings.code_salt, crypto.MIN_SALT_BYTES, 64)
    sender = _read(settings, SENDER_FILE, settings.sender_key, crypto.KEY_BYTES, crypto.KEY_BYTES)
    return Keys(public_key=PublicKey(public), code_salt=salt, sender_key=sender)


def load_private_key(settings: Settings) -> PrivateKey:
    """The staff private key (console, rotation, tests), checked against the public key."""
    raw = _read(settings, PRIVATE_FILE, settings.reports_private_key, crypto.KEY_BYTES, crypto.KEY_BYTES)
    private = PrivateKey(raw)
    if bytes(private.public_key) != bytes(load_keys(settings).public_key):
        raise KeyringError("reports.key does not match reports.pub")
    return private


def load_gateway_key(settings: Settings) -> bytes:
    """The channel gateway's 32-byte key: pseudonyms and pending messages."""
    return _read(settings, GATEWAY_FILE, settings.gateway_key, crypto.KEY_BYTES, crypto.KEY_BYTES)


def load_edge_key(settings: Settings) -> bytes:
    """Gateway and action server: the HMAC key of the edge's proof on message metadata."""
    return _read(settings, EDGE_FILE, settings.edge_key, crypto.KEY_BYTES, crypto.KEY_BYTES)


def load_relay_key(settings: Settings) -> bytes:
    """Console and gateway: the HMAC key that authenticates the console's relay calls."""
    return _read(settings, RELAY_FILE, settings.relay_key, crypto.KEY_BYTES, crypto.KEY_BYTES)


def load_rasa_token(settings: Settings) -> str:
    """Gateway and Rasa: the token of Rasa's HTTP API and of its message webhook (url-safe text)."""
    return token_text(_read(settings, RASA_TOKEN_FILE, settings.rasa_token, crypto.KEY_BYTES, 64))


def load_actions_token(settings: Settings) -> str:
    """Rasa and the action server: the token Rasa sends with every action call (url-safe text)."""
    return token_text(_read(settings, ACTIONS_TOKEN_FILE, settings.actions_token, crypto.KEY_BYTES, 64))


def load_oncall_key(settings: Settings) -> bytes:
    """Console and jobs: the 32-byte SecretBox key of staff contacts for on-call alerts."""
    return _read(settings, ONCALL_FILE, settings.oncall_key, crypto.KEY_BYTES, crypto.KEY_BYTES)


def load_tracker_key(settings: Settings) -> bytes:
    """The 32-byte AES-GCM key of the Rasa tracker store's encryption."""
    return _read(settings, TRACKER_FILE, settings.tracker_key, crypto.KEY_BYTES, crypto.KEY_BYTES)


# -- files -------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create path with data and mode; fails if it exists (never overwrites a key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(crypto.b64encode(data) + "\n")
    os.chmod(path, mode)  # the umask may have narrowed or widened it


def init_keyring(directory: Path) -> list[str]:
    """Create the missing keyring files in directory; returns the names created.
    A public key without its private key is left alone: that is a host that only seals."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created: list[str] = []
    public, private = directory / PUBLIC_FILE, directory / PRIVATE_FILE
    if not public.exists() and not private.exists():
        key = crypto.generate_private_key()
        _write_new(private, bytes(key), 0o600)
        _write_new(public, bytes(key.public_key), 0o644)
        created += [PRIVATE_FILE, PUBLIC_FILE]
    elif not public.exists():
        key = PrivateKey(crypto.b64decode(private.read_text(encoding="ascii"), str(private)))
        _write_new(public, bytes(key.public_key), 0o644)
        created.append(PUBLIC_FILE)
    secrets = (
        (SALT_FILE, CODE_SALT_BYTES),
        (SENDER_FILE, crypto.KEY_BYTES),
        (TRACKER_FILE, crypto.KEY_BYTES),
        (GATEWAY_FILE, crypto.KEY_BYTES),
        (EDGE_FILE, crypto.KEY_BYTES),
        (RELAY_FILE, crypto.KEY_BYTES),
        (RASA_TOKEN_FILE, crypto.KEY_BYTES),
        (ACTIONS_TOKEN_FILE, crypto.KEY_BYTES),
        (ONCALL_FILE, crypto.KEY_BYTES),
    )
    for name, size in secrets:
        if not (directory / name).exists():
            _write_new(directory / name, crypto.random_secret(size), 0o600)
            created.append(name)
    return created


def _private_keys_on_disk(directory: Path) -> dict[bytes, PrivateKey]:
    """Every staff private key kept in directory (current, old, a rotation's new), by fingerprint."""
    found: dict[bytes, PrivateKey] = {}
    for path in sorted(directory.glob(f"{PRIVATE_FILE}*")):
        key = PrivateKey(crypto.b64decode(path.read_text(encoding="ascii"), str(path)))
        found[crypto.key_fingerprint(key.public_key)] = key
    return found


# -- rotation ----------------------------------------------------------------------------


def reseal_all(session: Session, private_keys: Mapping[bytes, PrivateKey], new_public: PublicKey) -> int:
    """Re-seal every staff-sealed value to new_public; returns how many changed. Values under
    a key not in private_keys stop the rotation (KeyringError) before anything is lost."""
    target = crypto.key_fingerprint(new_public)
    changed = 0
    for model, name in SEALED_COLUMNS:
        column: InstrumentedAttribute[bytes | None] = getattr(model, name)
        rows = session.execute(select(model.id, column).where(column.is_not(None))).all()
        for row_id, blob in rows:
            if blob is None:
                continue
            fingerprint = crypto.blob_fingerprint(blob)
            if fingerprint == target:
                continue
            key = private_keys.get(fingerprint)
            if key is None:
                raise KeyringError(f"{model.__tablename__}.{name} holds values sealed to an unknown key")
            fresh = crypto.seal(new_public, crypto.unseal(key, blob))
            session.execute(update(model).where(model.id == row_id).values({name: fresh}))
            changed += 1
    return changed


@dataclass(frozen=True)
class Rotation:
    old_fingerprint: str
    new_fingerprint: str
    resealed: int
    old_key_file: str


def rotate_keys(settings: Settings, now: datetime | None = None) -> Rotation:
    """New staff key pair: written beside the old one first, then the database is re-sealed in
    one transaction, then the files are swapped. A rotation stopped half-way resumes with the
    same new key. Restart the processes that hold the public key afterwards."""
    if settings.reports_public_key or settings.reports_private_key:
        raise KeyringError("the report keys come from the environment: rotate them where they are kept")
    directory = settings.keys_dir
    current = load_private_key(settings)
    new_private_path = directory / (PRIVATE_FILE + NEW_SUFFIX)
    new_public_path = directory / (PUBLIC_FILE + NEW_SUFFIX)
    if new_private_path.exists():
        new = PrivateKey(crypto.b64decode(new_private_path.read_text(encoding="ascii"), str(new_private_path)))
    else:
        new = crypto.generate_private_key()
        _write_new(new_private_path, bytes(new), 0o600)
    new_public_path.unlink(missing_ok=True)
    _write_new(new_public_path, bytes(new.public_key), 0o644)

    engine = make_engine(settings.database_url)
    try:
        with transaction(engine) as session:
            resealed = reseal_all(session, _private_keys_on_disk(directory), new.public_key)
    finally:
        engine.dispose()

    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    old_file = f"{PRIVATE_FILE}.{stamp}.old"
    os.replace(directory / PRIVATE_FILE, directory / old_file)
    os.replace(new_private_path, directory / PRIVATE_FILE)
    os.replace(new_public_path, directory / PUBLIC_FILE)
    old_fingerprint = crypto.key_fingerprint(current.public_key).hex()
    return Rotation(old_fingerprint, crypto.key_fingerprint(new.public_key).hex(), resealed, old_file)


# -- command line ------------------------------------------------------------------------


def as_bytes(secret: bytes | str) -> bytes:
    return secret.encode("ascii") if isinstance(secret, str) else secret


# Each process holds only some of these (deploy/README.md): "missing" may be right for it.
SHOWN_SECRETS: tuple[tuple[str, Callable[[Settings], bytes | str]], ...] = (
    ("tracker key", load_tracker_key),
    ("gateway key", load_gateway_key),
    ("edge key", load_edge_key),
    ("relay key", load_relay_key),
    ("on-call key", load_oncall_key),
    ("rasa token", load_rasa_token),
    ("actions token", load_actions_token),
)


def describe(settings: Settings) -> list[str]:
    """What `show` prints: fingerprints and presence, nothing that helps an attacker."""
    lines = [f"keyring: {settings.keys_dir}"]
    try:
        keys = load_keys(settings)
    except (KeyringError, ValueError) as error:
        return [*lines, f"not usable: {error}"]
    lines.append(f"report public key  {crypto.key_fingerprint(keys.public_key).hex()}")
    try:
        load_private_key(settings)
        lines.append("report private key present, matches")
    except KeyringError as error:
        lines.append(f"report private key not here ({error})")
    lines.append(f"code salt          {crypto.secret_fingerprint(keys.code_salt)}")
    lines.append(f"sender key         {crypto.secret_fingerprint(keys.sender_key)}")
    for label, load in SHOWN_SECRETS:
        try:
            lines.append(f"{label:<19}{crypto.secret_fingerprint(as_bytes(load(settings)))}")
        except KeyringError as error:
            lines.append(f"{label:<19}missing ({error})")
    old = sorted(settings.keys_dir.glob(f"{PRIVATE_FILE}.*.old"))
    lines.append(f"old private keys   {len(old)}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.keys", description="The reports keyring.")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the missing keyring files (never overwrites)")
    init.add_argument("--dir", type=Path, help="keyring directory (default: HOTLINE_KEYS_DIR or keys/)")
    sub.add_parser("show", help="fingerprints of the keys in use")
    sub.add_parser("rotate", help="new report key pair; re-seals every sealed value in the database")
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        if args.command == "init":
            directory = args.dir or settings.keys_dir
            created = init_keyring(directory)
            print(f"created in {directory}: {', '.join(created)}" if created else f"keyring complete in {directory}")
        elif args.command == "show":
            print("\n".join(describe(settings)))
        else:
            rotation = rotate_keys(settings)
            print(
                f"report key {rotation.old_fingerprint} -> {rotation.new_fingerprint}; "
                f"{rotation.resealed} sealed values re-sealed; old private key kept as {rotation.old_key_file}. "
                "Restart the action server and gateway so they seal to the new key."
            )
    except KeyringError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
