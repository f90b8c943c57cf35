"""The crypto facade, the keyring and the settings: sealing, code hashing, pseudonyms,
files that are never overwritten and secrets that are never printed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nacl.public import PrivateKey, PublicKey

from hotline.paths import ROOT
from reports import crypto
from reports.config import load_settings
from reports.keys import (
    PRIVATE_FILE,
    PUBLIC_FILE,
    KeyringError,
    init_keyring,
    load_keys,
    load_private_key,
    load_tracker_key,
)
from tests.db_fixtures import Keyring, settings_for

SECRET_FILES = (
    "reports.key",
    "code.salt",
    "sender.key",
    "tracker.key",
    "gateway.key",
    "edge.key",
    "relay.key",
    "rasa.token",
    "actions.token",
    "oncall.key",
)


def test_seal_opens_only_with_its_private_key(keyring: Keyring) -> None:
    blob = crypto.seal(keyring.keys.public_key, b"secreto")
    assert crypto.blob_fingerprint(blob) == crypto.key_fingerprint(keyring.keys.public_key)
    assert b"secreto" not in blob
    assert crypto.unseal(keyring.private_key, blob) == b"secreto"
    with pytest.raises(crypto.SealError):
        crypto.unseal(PrivateKey.generate(), blob)
    damaged = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(crypto.SealError):
        crypto.unseal(keyring.private_key, damaged)


def test_sealing_twice_gives_different_blobs(keyring: Keyring) -> None:
    one, two = (crypto.seal_text(keyring.keys.public_key, "igual") for _ in range(2))
    assert one != two
    assert crypto.unseal_text(keyring.private_key, one) == crypto.unseal_text(keyring.private_key, two) == "igual"


def test_sealed_contact_is_url_safe_text_only_the_console_opens(keyring: Keyring) -> None:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "whatsapp", "whatsapp:+50255551234")
    assert reply_to.isascii() and "+" not in reply_to and "/" not in reply_to
    assert "5555" not in reply_to
    assert crypto.open_contact(keyring.private_key, reply_to) == ("whatsapp", "whatsapp:+50255551234")
    assert crypto.open_contact(keyring.private_key, crypto.contact_blob(reply_to))[1] == "whatsapp:+50255551234"
    for bad in ("", "no es base64 ***", "YWJj"):
        with pytest.raises(ValueError):
            crypto.contact_blob(bad)


def test_code_hash_is_deterministic_salted_and_gives_two_independent_values() -> None:
    salt_a, salt_b = b"a" * 16, b"b" * 16
    first = crypto.code_secrets("7K4MQ2XH", salt_a)
    assert first == crypto.code_secrets("7K4MQ2XH", salt_a)
    assert first.lookup_hash != crypto.code_secrets("7K4MQ2XH", salt_b).lookup_hash
    assert first.lookup_hash != crypto.code_secrets("7K4MQ2XJ", salt_a).lookup_hash
    assert len(first.lookup_hash) == 64 and int(first.lookup_hash, 16) >= 0
    assert first.tipster_seed.hex() != first.lookup_hash[: len(first.tipster_seed) * 2]
    assert crypto.code_hash_prefix(first.lookup_hash) == first.lookup_hash[:8]
    assert "tipster_seed" not in repr(first)
    with pytest.raises(ValueError):
        crypto.slow_hash("7K4MQ2XH", b"short")


def test_slow_hash_is_argon2id_with_the_documented_cost() -> None:
    started = time.perf_counter()
    raw = crypto.slow_hash("7K4MQ2XH", b"s" * 16)
    elapsed = time.perf_counter() - started
    assert len(raw) == crypto.ARGON2_HASH_BYTES
    assert (crypto.ARGON2_TIME_COST, crypto.ARGON2_MEMORY_KIB, crypto.ARGON2_PARALLELISM) == (3, 65536, 1)
    assert elapsed > 0.01, "Argon2id at 64 MiB cannot be this fast: the parameters are not applied"


def test_sender_ref_is_a_keyed_hmac() -> None:
    ref = crypto.sender_ref(b"k" * 32, "+50255551234")
    assert ref == crypto.sender_ref(b"k" * 32, "+50255551234")
    assert ref != crypto.sender_ref(b"j" * 32, "+50255551234")
    assert len(ref) == 64 and "5555" not in ref


def test_init_creates_the_keyring_with_private_files_and_never_overwrites(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    created = init_keyring(directory)
    assert sorted(created) == sorted([PUBLIC_FILE, *SECRET_FILES])
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    for name in SECRET_FILES:
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    assert init_keyring(directory) == []
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


def test_a_host_with_only_the_public_key_gets_no_new_key_pair(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    init_keyring(directory)
    public = (directory / PUBLIC_FILE).read_bytes()
    (directory / PRIVATE_FILE).unlink()
    assert init_keyring(directory) == []
    assert (directory / PUBLIC_FILE).read_bytes() == public
    assert not (directory / PRIVATE_FILE).exists()


def test_load_keys_never_needs_the_private_key(keys_dir: Path) -> None:
    settings = settings_for("sqlite://", keys_dir)
    with_private = load_keys(settings)
    (keys_dir / PRIVATE_FILE).rename(keys_dir.parent / "elsewhere.key")
    keys = load_keys(settings)
    assert bytes(keys.public_key) == bytes(with_private.public_key)
    assert not any(isinstance(value, PrivateKey) for value in vars(keys).values())
    assert keys.code_salt.hex() not in repr(keys) and keys.sender_key.hex() not in repr(keys)
    with pytest.raises(KeyringError, match="missing"):
        load_private_key(settings)


def test_environment_overrides_the_files(keys_dir: Path, tmp_path: Path) -> None:
    other = PrivateKey.generate()
    env = {
        "HOTLINE_KEYS_DIR": str(keys_dir),
        "HOTLINE_REPORTS_PUBLIC_KEY": crypto.b64encode(bytes(other.public_key)),
        "HOTLINE_REPORTS_PRIVATE_KEY": crypto.b64encode(bytes(other)),
        "HOTLINE_CODE_SALT": crypto.b64encode(b"x" * 16),
        "HOTLINE_TRACKER_KEY": crypto.b64encode(b"t" * 32),
    }
    settings = load_settings(env)
    keys = load_keys(settings)
    assert bytes(keys.public_key) == bytes(other.public_key)
    assert keys.code_salt == b"x" * 16
    assert bytes(load_private_key(settings)) == bytes(other)
    assert load_tracker_key(settings) == b"t" * 32
    with pytest.raises(ValueError, match=r"code\.salt is not valid base64"):
        load_keys(load_settings({**env, "HOTLINE_CODE_SALT": "%%%"}))


def test_mismatched_private_key_is_refused(keys_dir: Path) -> None:
    (keys_dir / PRIVATE_FILE).unlink()
    (keys_dir / PRIVATE_FILE).write_text(crypto.b64encode(bytes(PrivateKey.generate())))
    with pytest.raises(KeyringError, match="does not match"):
        load_private_key(settings_for("sqlite://", keys_dir))


def _cli(*args: str, keys_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLINE_KEYS_DIR": str(keys_dir)}
    return subprocess.run(
        [sys.executable, "-m", "reports.keys", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_keys_command_line_is_idempotent_and_prints_no_secret(tmp_path: Path) -> None:
    directory = tmp_path / "cli-keys"
    first = _cli("init", "--dir", str(directory), keys_dir=tmp_path / "unused")
    assert first.returncode == 0, first.stderr
    assert "reports.key" in first.stdout and "code.salt" in first.stdout
    second = _cli("init", "--dir", str(directory), keys_dir=tmp_path / "unused")
    assert second.returncode == 0 and "complete" in second.stdout
    shown = _cli("show", keys_dir=directory)
    assert shown.returncode == 0, shown.stderr
    public = crypto.b64decode((directory / PUBLIC_FILE).read_text(), "pub")
    assert crypto.key_fingerprint(PrivateKey.generate().public_key).hex() not in shown.stdout
    assert crypto.key_fingerprint(PublicKey(public)).hex() in shown.stdout
    output = first.stdout + second.stdout + shown.stdout + first.stderr + shown.stderr
    for name in (*SECRET_FILES, PUBLIC_FILE):
        content = (directory / name).read_text().strip()
        assert content not in output, name
        assert crypto.b64decode(content, name).hex() not in output, name


def test_settings_defaults_parsing_and_hidden_secrets() -> None:
    defaults = load_settings({})
    assert defaults.database_url == f"sqlite:///{ROOT / 'hotline.db'}"
    assert defaults.keys_dir == ROOT / "keys"
    assert (defaults.conversation_retention_days, defaults.closed_report_retention_days) == (30, 365)
    assert defaults.followup_attempts_per_hour == 5 and defaults.smtp_port == 25
    assert defaults.telegram_api_url == "https://api.telegram.org"
    settings = load_settings(
        {
            "HOTLINE_SMTP_TO": " a@example.org, b@example.org ,",
            "HOTLINE_SMTP_STARTTLS": "yes",
            "HOTLINE_SMTP_PASSWORD": "smtp-secret-value",
            "HOTLINE_STAFF_TELEGRAM_TOKEN": "123:telegram-secret",
            "HOTLINE_SENDER_KEY": "c2VuZGVyLXNlY3JldA==",
            "HOTLINE_CONSOLE_URL": "https://staff.example.org/console/",
        }
    )
    assert settings.smtp_to == ("a@example.org", "b@example.org") and settings.smtp_tls == "starttls"
    assert settings.console_url == "https://staff.example.org/console"
    for secret in ("smtp-secret-value", "telegram-secret", "c2VuZGVyLXNlY3JldA=="):
        assert secret not in repr(settings) and secret not in str(settings)
    with pytest.raises(ValueError, match="HOTLINE_SMTP_PORT"):
        load_settings({"HOTLINE_SMTP_PORT": "veinticinco"})
    with pytest.raises(ValueError, match="HOTLINE_SMTP_STARTTLS"):
        load_settings({"HOTLINE_SMTP_STARTTLS": "quizas"})
