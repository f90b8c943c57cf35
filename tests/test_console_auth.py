"""Console accounts below the web layer: Argon2id, TOTP steps, back-off, the append-only
audit log (SQLite and PostgreSQL), the console key and the accounts command line."""

from __future__ import annotations

import ast
import importlib
import os
import string
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from console import auth, keys
from console.labels import LabelError, console_labels, label, label_map
from reports.db import make_engine, transaction, upgrade
from reports.models import AuditEntry, StaffAccount

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
CONSOLE_MODULES = sorted((ROOT / "console").glob("*.py"))
SPANISH_MARKS = set("¿¡«»—")


def test_passwords_are_argon2id_and_verified() -> None:
    stored = auth.hash_password("una contraseña larga")
    assert stored.startswith("$argon2id$")
    assert auth.verify_password(stored, "una contraseña larga")
    assert not auth.verify_password(stored, "otra contraseña larga")
    assert not auth.verify_password("not a hash", "x")


def test_lock_backs_off_from_one_minute_doubling_up_to_an_hour() -> None:
    assert [auth.lock_duration(n) for n in range(1, 5)] == [None] * 4
    assert auth.lock_duration(5) == timedelta(minutes=1)
    assert auth.lock_duration(6) == timedelta(minutes=2)
    assert auth.lock_duration(8) == timedelta(minutes=8)
    assert auth.lock_duration(11) == timedelta(hours=1) and auth.lock_duration(40) == timedelta(hours=1)


def test_totp_accepts_one_step_either_side_and_each_code_once() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    counter = totp.timecode(NOW)
    assert auth.matching_counter(secret, totp.at(NOW), NOW, None) == counter
    assert auth.matching_counter(secret, totp.at(NOW), NOW, counter) is None  # reused
    assert auth.matching_counter(secret, totp.at(NOW - timedelta(seconds=30)), NOW, None) == counter - 1
    assert auth.matching_counter(secret, totp.at(NOW + timedelta(seconds=30)), NOW, counter) == counter + 1
    assert auth.matching_counter(secret, totp.at(NOW - timedelta(seconds=90)), NOW, None) is None
    assert auth.matching_counter(secret, "12345x", NOW, None) is None


def test_roles_are_ordered() -> None:
    assert auth.has_role("admin", "supervisor") and auth.has_role("supervisor", "agent")
    assert not auth.has_role("agent", "supervisor") and not auth.has_role("supervisor", "admin")
    assert not auth.has_role("root", "agent")
    with pytest.raises(ValueError):
        auth.requires("root")


def test_audit_log_refuses_update_and_delete(engine: Engine) -> None:
    auth.audit(engine, "login", NOW, actor="ana", detail="contraseña y TOTP")
    for statement in ("UPDATE audit_log SET actor = 'eve'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with transaction(engine) as session:
        (entry,) = session.scalars(select(AuditEntry)).all()
    assert entry.actor == "ana" and entry.action == "login" and entry.at == NOW


def test_accounts_are_validated_and_unique(engine: Engine) -> None:
    auth.create_account(engine, "ana", "admin", "x" * 12, NOW, created_by=None)
    for username, role, password in (
        ("ana", "agent", "x" * 12),
        ("<b>", "agent", "x" * 12),
        ("a" * 65, "agent", "x" * 12),
        ("bo", "root", "x" * 12),
        ("bo", "agent", "short"),
    ):
        with pytest.raises(auth.AccountError):
            auth.create_account(engine, username, role, password, NOW, created_by=None)
    with transaction(engine) as session:
        assert session.scalars(select(StaffAccount.username)).all() == ["ana"]


def test_console_key_is_made_once_private_and_seals(tmp_path: Path) -> None:
    key = keys.load_console_key(tmp_path, {})
    assert len(key) == 32 and keys.load_console_key(tmp_path, {}) == key
    assert (tmp_path / keys.CONSOLE_KEY_FILE).stat().st_mode & 0o777 == 0o600
    sealed = keys.seal(key, b"JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in sealed and keys.unseal(key, sealed) == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(keys.ConsoleKeyError):
        keys.unseal(bytes(32), sealed)
    with pytest.raises(keys.ConsoleKeyError):
        keys.load_console_key(tmp_path, {"HOTLINE_CONSOLE_KEY": "c2hvcnQ="})


def test_accounts_command_line_creates_lists_and_disables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    upgrade(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOTLINE_DATABASE_URL": url, "HOTLINE_KEYS_DIR": str(tmp_path)}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "console.accounts", *args]
        return subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, timeout=60)

    created = run("create", "--username", "ana", "--role", "admin", "--password-stdin", "--totp", stdin="s" * 14 + "\n")
    assert created.returncode == 0, created.stderr
    assert "otpauth://totp/" in created.stdout and "ana" in created.stdout
    assert run("create", "--username", "ana", "--role", "agent", "--password-stdin", stdin="s" * 14).returncode == 2
    listed = run("list")
    assert "ana\tadmin\tactiva" in listed.stdout
    assert run("disable", "--username", "ana").returncode == 0
    assert run("disable", "--username", "nadie").returncode == 1
    engine = make_engine(url)
    try:
        with transaction(engine) as session:
            account = session.scalars(select(StaffAccount)).one()
            actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert account.disabled and account.totp_secret_sealed is not None
        assert auth.verify_password(account.password_hash, "s" * 14)
        assert actions == ["account_created", "account_disabled"]
    finally:
        engine.dispose()


def _label_calls() -> list[tuple[str, tuple[str, ...], tuple[str, ...] | None]]:
    """(function, path, keys) of every label()/label_map() call in console/*.py whose path is
    all literals (the others run at module level, when the module is imported); keys is None
    when they are not literal."""
    calls = []
    for path in CONSOLE_MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if node.func.id not in ("label", "label_map") or len(args) != len(node.args):
                continue
            keys: tuple[str, ...] | None = ()
            for keyword in node.keywords:
                try:
                    keys = tuple(ast.literal_eval(keyword.value))
                except ValueError:
                    keys = None
            calls.append((node.func.id, tuple(args), keys))
    return calls


def test_every_label_the_console_names_is_in_content_console_yml() -> None:
    for path in CONSOLE_MODULES:  # lookups at import: a missing key fails here
        importlib.import_module(f"console.{path.stem}")
    calls = _label_calls()
    assert len(calls) > 30
    for function, label_path, wanted in calls:
        if function == "label":
            texts = [label(*label_path)]
        elif wanted is None:  # checked against a tuple of the code at import
            assert isinstance(console_labels()[label_path[0]], dict)
            continue
        else:
            texts = list(label_map(*label_path, keys=wanted).values())
        for value in texts:
            assert value.strip(), label_path
            list(string.Formatter().parse(value))  # raises ValueError on a stray brace
    with pytest.raises(LabelError, match=r"cases\.no_such_label"):
        label("cases", "no_such_label")
    with pytest.raises(LabelError, match=r"cases\.statuses\.gone"):
        label_map("cases", "statuses", keys=("received", "gone"))
    with pytest.raises(LabelError, match="is not text"):
        label("common", "roles")
    assert {"common", "auth", "accounts", "cases", "stats", "facts"} <= set(console_labels())


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_the_console_python_has_no_spanish_text() -> None:
    """Spanish belongs in content/console.yml (and the templates): no string in console/*.py
    (docstrings aside) has an accented letter or Spanish punctuation."""
    offending = []
    for path in CONSOLE_MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in docstrings:
                continue
            if any(c in SPANISH_MARKS or (ord(c) > 127 and unicodedata.category(c)[0] == "L") for c in node.value):
                offending.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert offending == []
