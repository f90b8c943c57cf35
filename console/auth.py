"""Passwords (Argon2id), the TOTP second factor, login back-off, roles and the audit log.

Everything here is synchronous (database and Argon2 work): the web handlers run it in a
thread pool. Times come in as arguments so the back-off and TOTP steps can be tested
without waiting.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

import pyotp
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, Engine, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from console import keys, metrics
from console.labels import label, label_map
from reports.db import transaction
from reports.models import ROLES, AuditEntry, StaffAccount

ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}  # agent < supervisor < admin
USERNAME_MAX = 64
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
PASSWORD_MIN = 12
PASSWORD_MAX = 1024  # Argon2 cost does not depend on length, but bodies stay small
FAILURES_BEFORE_LOCK = 5
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(hours=1)
TOTP_INTERVAL = 30
TOTP_ISSUER = label("auth", "totp_issuer")
INVALID = {
    key: label("auth", "invalid", key)
    for key in ("username", "password", "role", "taken", "has_totp", "passwords_differ")
}
AUDIT_TARGETS = label_map("audit_log", "targets", keys=("account", "report", "fact"))
LOGIN_DETAILS = label_map("audit_log", "login", keys=("development", "totp", "enrolment"))
FAILURES = label_map(
    "audit_log",
    "failures",
    keys=("unknown_user", "disabled", "locked", "wrong_password", "wrong_code", "wrong_current", "locked_for"),
)
OWN_PASSWORD = label_map("my_account", keys=("wrong_current", "locked", "same"))
AUDIT_DETAILS = {key: label("audit_log", key) for key in ("role", "assigned", "fact_confirmed", "export_rows")}

HASHER = PasswordHasher(type=Type.ID)
_DUMMY_HASH: list[str] = []  # made once: unknown users cost the same Argon2 work


class AccountError(ValueError):
    """Input that cannot make an account; the message is Spanish (content/console.yml), for staff."""


class WrongPassword(AccountError):
    """The current password given to change it is wrong, or the account is locked."""


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(HASHER.hash("not a password of anyone"))
    return _DUMMY_HASH[0]


def has_role(role: str, needed: str) -> bool:
    return role in ROLE_RANK and ROLE_RANK[role] >= ROLE_RANK[needed]


# -- audit log ---------------------------------------------------------------------------


def record(
    session: Session,
    action: str,
    now: datetime,
    actor: str | None = None,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit entry; values are cut to their columns (never passwords nor report text)."""
    metrics.staff_action(action)
    session.add(
        AuditEntry(
            at=now,
            actor=actor[:64] if actor is not None else None,
            action=action[:40],
            target=target[:80] if target is not None else None,
            detail=detail[:300] if detail is not None else None,
        )
    )


def audit(engine: Engine, action: str, now: datetime, **values: str | None) -> None:
    with transaction(engine) as session:
        record(session, action, now, **values)


# -- accounts ----------------------------------------------------------------------------


def validate_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise AccountError(INVALID["username"])
    return username


def validate_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(INVALID["password"].format(min=PASSWORD_MIN, max=PASSWORD_MAX))
    return password


def validate_role(role: str) -> str:
    if role not in ROLE_RANK:
        raise AccountError(INVALID["role"])
    return role


def create_account(
    engine: Engine, username: str, role: str, password: str, now: datetime, created_by: str | None
) -> StaffAccount:
    """A new account (validated); raises AccountError when the input or the name is taken."""
    validate_username(username)
    validate_role(role)
    validate_password(password)
    password_hash = hash_password(password)
    with transaction(engine) as session:
        if session.scalar(select(StaffAccount.id).where(StaffAccount.username == username)) is not None:
            raise AccountError(INVALID["taken"])
        account = StaffAccount(
            username=username,
            password_hash=password_hash,
            role=role,
            totp_confirmed=False,
            failed_logins=0,
            disabled=False,
            session_epoch=0,
            created_at=now,
        )
        session.add(account)
        record(
            session,
            "account_created",
            now,
            actor=created_by,
            target=username,
            detail=AUDIT_DETAILS["role"].format(role=role),
        )
    return account


def set_disabled(engine: Engine, account_id: int, disabled: bool, now: datetime, actor: str | None) -> StaffAccount:
    """Disable an account, ending its sessions (so enabling it again does not bring them
    back), or enable it, lifting a login lock too; raises LookupError for an unknown id."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is None:
            raise LookupError(account_id)
        account.disabled = disabled
        if disabled:
            account.session_epoch += 1
        else:
            account.failed_logins = 0
            account.locked_until = None
        action = "account_disabled" if disabled else "account_enabled"
        record(session, action, now, actor=actor, target=account.username)
    return account


def reset_totp(engine: Engine, account_id: int, now: datetime, actor: str | None) -> StaffAccount:
    """Forgets the account's second factor (its next login enrols a new one) and ends its
    sessions; raises LookupError for an unknown id."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is None:
            raise LookupError(account_id)
        account.totp_secret_sealed = None
        account.totp_confirmed = False
        account.totp_last_counter = None
        account.session_epoch += 1
        record(session, "totp_reset", now, actor=actor, target=account.username)
    return account


def set_password(engine: Engine, account_id: int, password: str, now: datetime, actor: str | None) -> StaffAccount:
    """An administrator's new password for an account (validated): ends its sessions and lifts
    a login lock; raises AccountError for a password out of the rules, LookupError for an
    unknown id."""
    validate_password(password)
    password_hash = hash_password(password)
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is None:
            raise LookupError(account_id)
        account.password_hash = password_hash
        account.session_epoch += 1
        account.failed_logins = 0
        account.locked_until = None
        record(session, "password_reset", now, actor=actor, target=account.username)
    return account


def change_own_password(engine: Engine, account_id: int, current: str, new: str, now: datetime) -> int:
    """The signed-in person's new password, given the current one. A wrong current password
    counts towards the login lock (and is audited); while locked nothing is checked. Ends the
    account's other sessions: returns the new session epoch for the one that asked. Raises
    WrongPassword, AccountError (the new password), LookupError (no such usable account)."""
    validate_password(new)
    attempt = _take_attempt(engine, StaffAccount.id == account_id, now)
    if attempt.account_id is None or attempt.refusal == FAILURES["disabled"]:
        raise LookupError(account_id)
    username, stored = attempt.username, attempt.password_hash
    if attempt.refusal is not None:
        _audit_failure(engine, attempt, now, attempt.refusal, "password_change_failed")
        raise WrongPassword(OWN_PASSWORD["locked"])
    if not verify_password(stored, current[:PASSWORD_MAX]):
        _audit_failure(engine, attempt, now, attempt.failure(FAILURES["wrong_current"]), "password_change_failed")
        raise WrongPassword(OWN_PASSWORD["wrong_current"])
    _give_back(engine, attempt)
    if verify_password(stored, new):
        raise AccountError(OWN_PASSWORD["same"])
    password_hash = hash_password(new)
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is None or account.password_hash != stored:  # changed meanwhile
            raise WrongPassword(OWN_PASSWORD["wrong_current"])
        account.password_hash = password_hash
        account.session_epoch += 1
        account.failed_logins = 0
        account.locked_until = None
        record(session, "password_changed", now, actor=username, target=username)
        return account.session_epoch


# -- login throttle ------------------------------------------------------------------------


class TokenBuckets:
    """Token buckets by key, in memory, for at most `max_keys` keys (the least recently used
    is forgotten first, so a flood of new keys costs bounded memory). Thread-safe."""

    def __init__(self, burst: int, every: timedelta, max_keys: int = 1) -> None:
        self.burst, self.every, self.max_keys = float(burst), every.total_seconds(), max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _tokens(self, key: str, at: float) -> float:
        tokens, since = self._buckets.get(key, (self.burst, at))
        return min(self.burst, tokens + max(0.0, at - since) / self.every)

    def available(self, key: str, at: float) -> bool:
        with self._lock:
            return self._tokens(key, at) >= 1

    def add(self, key: str, at: float, tokens: float) -> None:
        with self._lock:
            self._buckets[key] = (min(self.burst, self._tokens(key, at) + tokens), at)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)


class LoginThrottle:
    """Cheap limits taken before the Argon2 work of a login (64 MiB each): per typed name,
    known or not (so the answer time says nothing about which names exist; a known account's
    lock comes on top), and for the whole process. Never by client address: behind a proxy
    every caller has the same one. Names are kept only as keyed hashes, in memory."""

    NAME_BURST = 2 * FAILURES_BEFORE_LOCK  # room for a lock, lifted by an admin, and a retry
    NAME_EVERY = timedelta(seconds=30)  # one more attempt per name each 30 s once its burst is used
    OVERALL_BURST = 20
    OVERALL_EVERY = timedelta(seconds=2)
    MAX_NAMES = 10_000

    def __init__(self) -> None:
        self._names = TokenBuckets(self.NAME_BURST, self.NAME_EVERY, self.MAX_NAMES)
        self._overall = TokenBuckets(self.OVERALL_BURST, self.OVERALL_EVERY)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()

    def _name(self, username: str) -> str:
        return hmac.new(self._key, username.encode("utf-8", "replace"), hashlib.sha256).hexdigest()

    def admit(self, username: str, now: datetime) -> bool:
        """Takes one attempt from the name's and the process's buckets, or refuses."""
        name, at = self._name(username), now.timestamp()
        with self._lock:
            if not (self._names.available(name, at) and self._overall.available("", at)):
                return False
            self._names.add(name, at, -1)
            self._overall.add("", at, -1)
            return True

    def give_back(self, username: str, now: datetime) -> None:
        """A right password costs its name nothing: staff are never throttled by their own logins."""
        self._names.add(self._name(username), now.timestamp(), 1)


# -- login ---------------------------------------------------------------------------------


def lock_duration(failures: int) -> timedelta | None:
    """No lock before the fifth failure; then 1 min, doubling with each failure, up to 1 h."""
    if failures < FAILURES_BEFORE_LOCK:
        return None
    steps = min(failures - FAILURES_BEFORE_LOCK, 12)
    return min(FIRST_LOCK * (1 << steps), LONGEST_LOCK)


def _count_failure(session: Session, account: StaffAccount, now: datetime, reason: str, action: str) -> None:
    """One more failure on a row locked by the caller's transaction; locks the account at
    the threshold; audits it."""
    account.failed_logins += 1
    lock = lock_duration(account.failed_logins)
    if lock is not None:
        account.locked_until = now + lock
        reason += FAILURES["locked_for"].format(seconds=int(lock.total_seconds()))
    record(session, action, now, actor=account.username, target=_account_target(account.id), detail=reason)


def _account_target(account_id: int) -> str:
    return AUDIT_TARGETS["account"].format(id=account_id)


@dataclass(frozen=True)
class _Attempt:
    """A password attempt taken on an account before Argon2 runs: counted as a failure and,
    if it is the last one allowed, locking the account, in one transaction holding the row.
    Parallel guesses therefore never get more password checks than the lock allows; a right
    password gives the attempt back (`_give_back`). `refusal` says why no check is made."""

    account_id: int | None = None
    username: str = ""
    role: str = ""
    has_totp: bool = False
    password_hash: str = ""
    refusal: str | None = None
    lock_before: datetime | None = None
    lock_set: datetime | None = None
    lock_for: timedelta | None = None

    def failure(self, reason: str) -> str:
        """The audit detail of a wrong password, with the lock this attempt set."""
        if self.lock_for is None:
            return reason
        return reason + FAILURES["locked_for"].format(seconds=int(self.lock_for.total_seconds()))


def _take_attempt(engine: Engine, where: ColumnElement[bool], now: datetime) -> _Attempt:
    with transaction(engine) as session:
        account = session.scalar(select(StaffAccount).where(where).with_for_update())
        if account is None:
            return _Attempt(refusal=FAILURES["unknown_user"])
        found = _Attempt(account.id, account.username, account.role, account.totp_confirmed, account.password_hash)
        if account.disabled:
            return replace(found, refusal=FAILURES["disabled"])
        if account.locked_until is not None and account.locked_until > now:
            return replace(found, refusal=FAILURES["locked"])
        before = account.locked_until
        account.failed_logins += 1
        lock = lock_duration(account.failed_logins)
        if lock is None:
            return found
        account.locked_until = now + lock
        return replace(found, lock_before=before, lock_set=account.locked_until, lock_for=lock)


def _give_back(engine: Engine, attempt: _Attempt) -> None:
    """A right password: the attempt taken for it was no failure."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, attempt.account_id, with_for_update=True)
        if account is None:
            return
        account.failed_logins = max(0, account.failed_logins - 1)
        if attempt.lock_set is not None and account.locked_until == attempt.lock_set:
            account.locked_until = attempt.lock_before


@dataclass(frozen=True)
class PasswordCheck:
    """A passed password check: the account and what the second factor step must do."""

    account_id: int
    username: str
    role: str
    has_totp: bool


def check_password(
    engine: Engine, username: str, password: str, now: datetime, throttle: LoginThrottle | None = None
) -> PasswordCheck | None:
    """The account if the password is right and the account usable; None otherwise, after the
    same Argon2 work whether the user exists, is locked or disabled (one answer for all).
    The throttle refuses before any Argon2 work or database write. A failure is audited with
    the account for a known name, and without the typed text (maybe a password) otherwise."""
    if throttle is not None and not throttle.admit(username, now):
        return None
    if len(username) <= USERNAME_MAX and len(password) <= PASSWORD_MAX:
        attempt = _take_attempt(engine, StaffAccount.username == username, now)
    else:
        attempt = _Attempt(refusal=FAILURES["unknown_user"])
    password = password[:PASSWORD_MAX]
    if attempt.refusal is not None or attempt.account_id is None:
        verify_password(_dummy_hash(), password)
        _audit_failure(engine, attempt, now, attempt.refusal or FAILURES["unknown_user"])
        return None
    if not verify_password(attempt.password_hash, password):
        _audit_failure(engine, attempt, now, attempt.failure(FAILURES["wrong_password"]))
        return None
    _give_back(engine, attempt)
    if throttle is not None:
        throttle.give_back(username, now)
    return PasswordCheck(attempt.account_id, attempt.username, attempt.role, attempt.has_totp)


def _audit_failure(engine: Engine, attempt: _Attempt, now: datetime, detail: str, action: str = "login_failed") -> None:
    if attempt.account_id is None:
        audit(engine, action, now, detail=detail)
    else:
        audit(engine, action, now, actor=attempt.username, target=_account_target(attempt.account_id), detail=detail)


def login_succeeded(engine: Engine, account_id: int, now: datetime, detail: str) -> int:
    """Resets the back-off and records the login; returns the account's session epoch."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is None:
            raise LookupError(account_id)
        account.failed_logins = 0
        account.locked_until = None
        record(session, "login", now, actor=account.username, detail=detail)
        return account.session_epoch


def log_out(engine: Engine, account_id: int, now: datetime) -> None:
    """Ends every session of the account (their cookies carry the old epoch) and records it."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is not None:
            account.session_epoch += 1
            record(session, "logout", now, actor=account.username)


# -- TOTP ----------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, interval=TOTP_INTERVAL).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def matching_counter(secret: str, code: str, now: datetime, last_counter: int | None) -> int | None:
    """The time step a code belongs to (now, one before or one after), if it is later than the
    last accepted one: a code is good once."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL)
    current = totp.timecode(now)
    found = None
    for counter in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code) and (last_counter is None or counter > last_counter):
            found = counter
    return found


def start_enrolment(engine: Engine, account_id: int, console_key: bytes) -> str:
    """A new TOTP secret for an account without a confirmed one (sealed in the database);
    an unconfirmed secret already there is kept, so reloading the page shows the same one."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id)
        if account is None:
            raise LookupError(account_id)
        if account.totp_confirmed:
            raise AccountError(INVALID["has_totp"])
        if account.totp_secret_sealed is not None:
            return keys.unseal(console_key, account.totp_secret_sealed).decode()
        secret = new_totp_secret()
        account.totp_secret_sealed = keys.seal(console_key, secret.encode())
        return secret


def check_totp(engine: Engine, account_id: int, code: str, now: datetime, console_key: bytes, enrolling: bool) -> bool:
    """Checks a code (a failure counts towards the lock); enrolling confirms the secret. One
    transaction holding the account's row: a code is accepted once even when sent in parallel,
    and parallel wrong codes are all counted before the next is checked."""
    with transaction(engine) as session:
        account = session.get(StaffAccount, account_id, with_for_update=True)
        if account is None or account.disabled or account.totp_secret_sealed is None:
            return False
        if account.locked_until is not None and account.locked_until > now:
            record(session, "login_failed", now, actor=account.username, detail=FAILURES["locked"])
            return False
        if account.totp_confirmed == enrolling:
            return False
        secret = keys.unseal(console_key, account.totp_secret_sealed).decode()
        counter = matching_counter(secret, code[:16], now, account.totp_last_counter)
        if counter is None:
            _count_failure(session, account, now, FAILURES["wrong_code"], "login_failed")
            return False
        account.totp_last_counter = counter
        if enrolling:
            account.totp_confirmed = True
            record(session, "totp_enrolled", now, actor=account.username)
        return True


# -- route roles ---------------------------------------------------------------------------


class Gate(Protocol):
    """What the console app provides: the signed-in account allowed to see a route, or the
    answer to give instead (a redirect to login, a 403 page)."""

    async def admit(self, request: Request, role: str) -> StaffAccount | Response: ...


Handler = Callable[[Request, StaffAccount], Awaitable[Response]]


def requires(role: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Route decorator: the handler runs only for a signed-in account with `role` or higher
    (and, on POST, a valid CSRF token), given as its second argument."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            gate: Gate = request.app.state.gate
            admitted = await gate.admit(request, role)
            if isinstance(admitted, Response):
                return admitted
            return await handler(request, admitted)

        endpoint.required_role = role  # type: ignore[attr-defined]
        return endpoint

    return decorate
