"""Login limits that hold under parallel and flooding requests: the lock counts every
password check even when guesses arrive together, a TOTP code is accepted once even when
sent twice at the same moment (SQLite and PostgreSQL), and over real HTTP a flood of login
posts costs bounded Argon2 work and leaves no typed text in the audit log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pyotp
from sqlalchemy import Engine, select

from console import auth, keys
from reports.db import transaction
from reports.models import AuditEntry, StaffAccount
from tests.test_console_web import PASSWORD, Console, password_step, serve

NOW = datetime(2026, 11, 29, 12, 0, 10, tzinfo=UTC)
PARALLEL = 12
T = TypeVar("T")


def together(count: int, call: Callable[[], T]) -> list[T]:
    """`count` calls released at the same moment from their own threads."""
    start = threading.Barrier(count)

    def one() -> T:
        start.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


def login_failures(engine: Engine) -> list[AuditEntry]:
    with transaction(engine) as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")))


def test_parallel_wrong_passwords_get_no_more_checks_than_the_lock_allows(engine: Engine) -> None:
    auth.create_account(engine, "ana", "agent", PASSWORD, NOW, created_by=None)

    results = together(PARALLEL, lambda: auth.check_password(engine, "ana", "adivinanza equivocada", NOW))

    assert results == [None] * PARALLEL
    details = sorted(str(entry.detail) for entry in login_failures(engine))
    checked = [d for d in details if d.startswith(auth.FAILURES["wrong_password"])]
    assert len(checked) == auth.FAILURES_BEFORE_LOCK, details  # only these reached Argon2 with the real hash
    assert details.count(auth.FAILURES["locked"]) == PARALLEL - auth.FAILURES_BEFORE_LOCK
    with transaction(engine) as session:
        account = session.scalars(select(StaffAccount)).one()
    assert account.failed_logins == auth.FAILURES_BEFORE_LOCK and account.locked_until == NOW + auth.FIRST_LOCK
    assert auth.check_password(engine, "ana", PASSWORD, NOW) is None  # locked, even with the right password


def test_a_right_password_gives_its_attempt_back(engine: Engine) -> None:
    auth.create_account(engine, "ana", "agent", PASSWORD, NOW, created_by=None)
    for _ in range(auth.FAILURES_BEFORE_LOCK - 1):
        assert auth.check_password(engine, "ana", "adivinanza equivocada", NOW) is None
    assert auth.check_password(engine, "ana", PASSWORD, NOW) is not None  # the fifth attempt: no lock
    with transaction(engine) as session:
        account = session.scalars(select(StaffAccount)).one()
    assert account.failed_logins == auth.FAILURES_BEFORE_LOCK - 1 and account.locked_until is None


def enrolled(engine: Engine, tmp_path: Path) -> tuple[int, bytes, str]:
    console_key = keys.load_console_key(tmp_path / "keys", {})
    account = auth.create_account(engine, "ana", "agent", PASSWORD, NOW, created_by=None)
    secret = auth.start_enrolment(engine, account.id, console_key)
    with transaction(engine) as session:
        stored = session.get(StaffAccount, account.id)
        assert stored is not None
        stored.totp_confirmed = True
    return account.id, console_key, secret


def test_one_totp_code_is_accepted_once_even_when_sent_twice_at_once(engine: Engine, tmp_path: Path) -> None:
    account_id, console_key, secret = enrolled(engine, tmp_path)
    code = pyotp.TOTP(secret).at(NOW)

    results = together(PARALLEL, lambda: auth.check_totp(engine, account_id, code, NOW, console_key, False))

    assert results.count(True) == 1, results
    assert not auth.check_totp(engine, account_id, code, NOW, console_key, False)  # and never again after
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        assert account is not None and account.totp_last_counter == pyotp.TOTP(secret).timecode(NOW)


def test_parallel_wrong_totp_codes_are_all_counted(engine: Engine, tmp_path: Path) -> None:
    account_id, console_key, secret = enrolled(engine, tmp_path)
    wrong = f"{(int(pyotp.TOTP(secret).at(NOW)) + 1) % 1_000_000:06d}"

    together(PARALLEL, lambda: auth.check_totp(engine, account_id, wrong, NOW, console_key, False))

    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        assert account is not None and account.locked_until is not None
    checked = [e for e in login_failures(engine) if str(e.detail).startswith(auth.FAILURES["wrong_code"])]
    assert len(checked) == auth.FAILURES_BEFORE_LOCK  # the rest met the lock


# -- over HTTP: the throttle before Argon2, and the audit log of failed logins


def audit_text(console: Console) -> str:
    with transaction(console.engine) as session:
        entries = session.scalars(select(AuditEntry)).all()
        return "\n".join(f"{e.actor} {e.action} {e.target} {e.detail}" for e in entries)


def test_a_flood_on_one_unknown_name_is_throttled_and_leaves_no_typed_text(tmp_path: Path) -> None:
    typed = "MiClave.Secreta-2026"  # a password typed into the name field
    with serve(tmp_path) as console, console.client() as client:
        answers = [password_step(client, typed, "otra cosa cualquiera").status_code for _ in range(PARALLEL)]
        assert answers == [401] * PARALLEL  # one answer for all, throttled or not
        failures = login_failures(console.engine)
        assert len(failures) == auth.LoginThrottle.NAME_BURST  # only these ran Argon2
        assert all(e.actor is None and e.target is None for e in failures)
        assert typed not in audit_text(console)
        console.clock.advance(seconds=auth.LoginThrottle.NAME_EVERY.total_seconds())
        assert password_step(client, typed, "otra cosa cualquiera").status_code == 401
        assert len(login_failures(console.engine)) == auth.LoginThrottle.NAME_BURST + 1  # refilled: one more


def test_a_known_account_is_throttled_too_and_audited_by_name_and_id(tmp_path: Path) -> None:
    with serve(tmp_path) as console, console.client() as client:
        console.add("ana", "agent")
        for _ in range(PARALLEL):
            assert password_step(client, "ana", "adivinanza equivocada").status_code == 401
        failures = login_failures(console.engine)
        assert len(failures) == auth.LoginThrottle.NAME_BURST
        assert {(e.actor, e.target) for e in failures} == {("ana", auth.AUDIT_TARGETS["account"].format(id=1))}


def test_a_flood_of_new_names_is_bounded_for_the_whole_process(tmp_path: Path) -> None:
    with serve(tmp_path) as console, console.client() as client:
        console.add("ana", "agent", totp=False)
        burst = auth.LoginThrottle.OVERALL_BURST
        for number in range(burst + 5):
            assert password_step(client, f"nadie{number}", "adivinanza equivocada").status_code == 401
        assert len(login_failures(console.engine)) == burst
        assert password_step(client, "ana").status_code == 401  # staff wait too while the flood lasts
        console.clock.advance(seconds=auth.LoginThrottle.OVERALL_EVERY.total_seconds())
        assert password_step(client, "ana").status_code == 303
