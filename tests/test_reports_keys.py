"""Rotating the staff key pair re-seals every sealed value in one transaction; the old key
no longer opens anything, the new one opens everything, and tipster messages still open
with the case code."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nacl.public import PrivateKey
from sqlalchemy import Engine, select

from hotline.paths import ROOT
from reports import crypto, handoffs
from reports.db import transaction
from reports.keys import (
    ONCALL_FILE,
    PRIVATE_FILE,
    PUBLIC_FILE,
    SEALED_COLUMNS,
    KeyringError,
    Keys,
    load_keys,
    load_private_key,
    reseal_all,
    rotate_keys,
)
from reports.models import Handoff, HandoffMessage, StaffAccount
from reports.service import (
    ReportDraft,
    add_information,
    change_status,
    file_report,
    leave_message_for_tipster,
    look_up_code,
    open_report,
    tipster_view,
)
from tests.db_fixtures import Keyring, settings_for

NOW = datetime(2026, 9, 1, tzinfo=UTC)


def populate(engine: Engine, keyring: Keyring) -> tuple[str, str]:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "sms", "+5215512345678")
    draft = ReportDraft(
        "Los obligan a pedir dinero", "MX", "Centro", "hoy", "3", True, "begging", False, True, reply_to
    )
    with transaction(engine) as session:
        filed = file_report(session, draft, keyring.keys, NOW, notify_channels=())
        add_information(session, filed.report_id, "Son tres niños", keyring.keys, NOW)
        change_status(session, filed.report_id, "in_review", actor="staff-1", note="Urgente revisar", keys=keyring.keys)
        leave_message_for_tipster(session, filed.report_id, "Gracias por avisar", keys=keyring.keys, now=NOW)
    return filed.report_id, filed.code


def all_sealed(engine: Engine) -> list[bytes]:
    with transaction(engine) as session:
        return [
            blob
            for model, name in SEALED_COLUMNS
            for blob in session.scalars(select(getattr(model, name)))
            if blob is not None
        ]


def test_rotation_reseals_everything_to_the_new_key(engine: Engine, keyring: Keyring, database_url: str) -> None:
    report_id, code = populate(engine, keyring)
    settings = settings_for(database_url, keyring.directory)
    before = open_report_with(engine, report_id, keyring.private_key)
    assert len(all_sealed(engine)) == 5

    rotation = rotate_keys(settings, now=NOW)

    new_private = load_private_key(settings)
    assert bytes(new_private) != bytes(keyring.private_key)
    assert bytes(load_keys(settings).public_key) == bytes(new_private.public_key)
    assert rotation.resealed == 5
    old_file = keyring.directory / "reports.key.20260901T000000Z.old"
    assert rotation.old_key_file == old_file.name and old_file.exists()
    assert oct(old_file.stat().st_mode & 0o777) == "0o600"
    assert not list(keyring.directory.glob("*.new"))
    for blob in all_sealed(engine):
        assert crypto.blob_fingerprint(blob) == crypto.key_fingerprint(new_private.public_key)
        with pytest.raises(crypto.SealError):
            crypto.unseal(keyring.private_key, blob)
    assert open_report_with(engine, report_id, new_private) == before
    with transaction(engine) as session:
        found = look_up_code(session, code, "s", load_keys(settings), now=NOW)
        assert found.tipster_key is not None
        assert tipster_view(session, report_id, found.tipster_key).messages == ("Gracias por avisar",)


def open_report_with(engine: Engine, report_id: str, key: PrivateKey) -> dict[str, object]:
    with transaction(engine) as session:
        report = open_report(session, report_id, key)
    report.pop("updated_at")
    return report


def test_a_value_under_an_unknown_key_stops_the_rotation_and_changes_nothing(
    engine: Engine, keyring: Keyring, database_url: str
) -> None:
    report_id, _ = populate(engine, keyring)
    stranger = PrivateKey.generate()
    with transaction(engine) as session:
        add_information(session, report_id, "de otra llave", load_keys_for(stranger, keyring), NOW)
    settings = settings_for(database_url, keyring.directory)
    public_before = (keyring.directory / PUBLIC_FILE).read_bytes()
    sealed_before = sorted(all_sealed(engine))

    with pytest.raises(KeyringError, match="unknown key"):
        rotate_keys(settings, now=NOW)

    assert sorted(all_sealed(engine)) == sealed_before
    assert (keyring.directory / PUBLIC_FILE).read_bytes() == public_before
    assert bytes(load_private_key(settings)) == bytes(keyring.private_key)
    # The prepared key pair is kept: a rerun resumes with it once the stray value is dealt with.
    assert (keyring.directory / (PRIVATE_FILE + ".new")).exists()


def load_keys_for(private: PrivateKey, keyring: Keyring) -> Keys:
    return Keys(public_key=private.public_key, code_salt=keyring.keys.code_salt, sender_key=keyring.keys.sender_key)


def test_reseal_all_uses_every_known_key(engine: Engine, keyring: Keyring) -> None:
    populate(engine, keyring)
    target = PrivateKey.generate()
    known = {crypto.key_fingerprint(keyring.keys.public_key): keyring.private_key}
    with transaction(engine) as session:
        assert reseal_all(session, known, target.public_key) == 5
        assert reseal_all(session, known, target.public_key) == 0  # already under the target
    assert all(crypto.unseal(target, blob) for blob in all_sealed(engine))


def test_rotate_command_line(engine: Engine, keyring: Keyring, database_url: str) -> None:
    populate(engine, keyring)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLINE_DATABASE_URL": database_url}
    env["HOTLINE_KEYS_DIR"] = str(keyring.directory)
    done = subprocess.run(
        [sys.executable, "-m", "reports.keys", "rotate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "5 sealed values re-sealed" in done.stdout
    new_key = (keyring.directory / PRIVATE_FILE).read_text().strip()
    assert new_key not in done.stdout and crypto.b64encode(bytes(keyring.private_key)) not in done.stdout


def test_rotation_reseals_live_handoffs_so_staff_can_still_answer(
    engine: Engine, keyring: Keyring, database_url: str
) -> None:
    reply_to = crypto.seal_contact(keyring.keys.public_key, "sms", "+50255501234")
    with transaction(engine) as session:
        session.add(StaffAccount(id=1, username="staff1", password_hash="x", role="agent", created_at=NOW))
        handoff = handoffs.request_handoff(session, "c" * 32, "sms", "asked", reply_to, NOW)
        session.flush()
        handoffs.take(session, handoff.id, 1, NOW)
        handoffs.record_inbound(session, "c" * 32, "necesito hablar con alguien", False, keyring.keys, NOW)
        handoffs.record_outbound(session, handoff.id, 1, "Aquí estoy", keyring.keys, NOW)
        handoff_id = handoff.id

    rotate_keys(settings_for(database_url, keyring.directory), now=NOW)

    new_private = load_private_key(settings_for(database_url, keyring.directory))
    with transaction(engine) as session:
        stored = session.get(Handoff, handoff_id)
        assert stored is not None and stored.reply_sealed is not None
        assert crypto.open_contact(new_private, stored.reply_sealed) == ("sms", "+50255501234")
        bodies = session.scalars(select(HandoffMessage.sealed_body).order_by(HandoffMessage.id)).all()
    assert [crypto.unseal_text(new_private, body) for body in bodies] == ["necesito hablar con alguien", "Aquí estoy"]


def keys_show(keys_dir: Path, database_url: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLINE_DATABASE_URL": database_url}
    env["HOTLINE_KEYS_DIR"] = str(keys_dir)
    done = subprocess.run(
        [sys.executable, "-m", "reports.keys", "show"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_show_names_every_secret_of_the_keyring_by_fingerprint_only(keyring: Keyring, tmp_path: Path) -> None:
    shown = keys_show(keyring.directory, f"sqlite:///{tmp_path / 'r.db'}")
    for label in ("tracker key", "gateway key", "edge key", "relay key", "on-call key", "rasa token", "actions token"):
        assert re.search(rf"^{label} +[0-9a-f]{{8}}$", shown, re.MULTILINE), (label, shown)
    for secret_file in keyring.directory.iterdir():
        if secret_file.name != PUBLIC_FILE:
            assert secret_file.read_text().strip() not in shown, secret_file.name

    # A process's keyring holds only its own secrets (the gateway has no on-call key): said so.
    gateway_only = tmp_path / "gateway-keys"
    shutil.copytree(keyring.directory, gateway_only)
    (gateway_only / ONCALL_FILE).unlink()
    shown = keys_show(gateway_only, f"sqlite:///{tmp_path / 'r.db'}")
    assert re.search(r"^on-call key +missing", shown, re.MULTILINE) and re.search(
        r"^relay key +[0-9a-f]{8}$", shown, re.M
    )
