"""What staff accounts do beyond logging in, over real HTTP (uvicorn, SQLite, a test clock):
changing one's own password, and an admin resetting a second factor, re-enabling an account
and setting a password; then the same from `python -m console.accounts`, run as a
subprocess against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import select

from console import auth
from console.app import ACCOUNT_LABELS, COOKIE_NAME, FAILED_LOGIN, PASSWORD_CHANGED, ROLE_NAMES
from console.labels import label
from reports.db import make_engine, transaction, upgrade
from reports.models import AuditEntry, StaffAccount, utcnow
from tests.test_console_web import PASSWORD, Console, csrf, log_in, password_step, serve

NEW_PASSWORD = "otra frase larga de contraseña"
SCRIPT = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with serve(tmp_path) as served:
        yield served


def account(console: Console, username: str) -> StaffAccount:
    with transaction(console.engine) as session:
        return session.scalars(select(StaffAccount).where(StaffAccount.username == username)).one()


def audit(console: Console) -> list[tuple[str | None, str, str | None, str | None]]:
    with transaction(console.engine) as session:
        return [
            (e.actor, e.action, e.target, e.detail) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def next_login(console: Console, client: httpx.Client, username: str) -> None:
    """A login with the next TOTP code (each code is good once)."""
    console.clock.advance(seconds=30)
    log_in(console, client, username)


def change(client: httpx.Client, current: str, new: str, repeated: str | None = None) -> httpx.Response:
    data = {"csrf": csrf(client, "/cuenta"), "current": current, "password": new}
    data["password2"] = new if repeated is None else repeated
    return client.post("/cuenta", data=data)


def test_changing_ones_password_ends_the_other_sessions_but_not_this_one(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as here, console.client() as elsewhere, console.client() as later:
        log_in(console, here, "ana")
        next_login(console, elsewhere, "ana")
        home = here.get("/")
        assert 'href="/console/cuenta">Mi cuenta</a>' in home.text
        page = here.get("/cuenta")
        assert page.status_code == 200 and "Cambiar la contraseña" in page.text and "agente" in page.text
        before = here.cookies[COOKIE_NAME]
        old_token = csrf(here, "/cuenta")
        changed = change(here, PASSWORD, NEW_PASSWORD)
        assert changed.status_code == 303 and changed.headers["location"] == "/console/cuenta?hecho=1"
        shown = here.get("/cuenta?hecho=1")
        assert shown.status_code == 200 and PASSWORD_CHANGED in shown.text
        assert here.get("/").status_code == 200  # this browser: a fresh session
        assert here.post("/logout", data={"csrf": old_token}).status_code == 403  # the old form token is gone
        assert elsewhere.get("/").headers["location"] == "/console/login"
        with console.client() as here_copy:
            here_copy.cookies.set(COOKIE_NAME, before, domain="127.0.0.1", path="/console")
            assert here_copy.get("/").headers["location"] == "/console/login"  # the cookie from before
        old = password_step(later, "ana")
        assert old.status_code == 401 and FAILED_LOGIN in old.text
        assert password_step(later, "ana", NEW_PASSWORD).headers["location"] == "/console/login/totp"
        console.clock.advance(seconds=30)
        code = later.post("/login/totp", data={"csrf": csrf(later, "/login/totp"), "code": console.code("ana")})
        assert code.status_code == 303 and later.get("/").status_code == 200
    stored = account(console, "ana")
    assert stored.password_hash.startswith("$argon2id$") and auth.verify_password(stored.password_hash, NEW_PASSWORD)
    assert ("ana", "password_changed", "ana", None) in audit(console)
    assert not any(PASSWORD in str(entry) or NEW_PASSWORD in str(entry) for entry in audit(console))


def test_a_wrong_current_password_is_refused_counted_towards_the_lock_and_audited(console: Console) -> None:
    console.add("ana", "agent")
    wrong_current = label("my_account", "wrong_current")
    with console.client() as client, console.client() as other:
        log_in(console, client, "ana")
        for _ in range(auth.FAILURES_BEFORE_LOCK):
            refused = change(client, f"no es {SCRIPT}", NEW_PASSWORD)
            assert refused.status_code == 401 and wrong_current in refused.text and SCRIPT not in refused.text
        assert account(console, "ana").failed_logins == auth.FAILURES_BEFORE_LOCK
        locked = change(client, PASSWORD, NEW_PASSWORD)  # the right one, while locked
        assert locked.status_code == 401 and label("my_account", "locked") in locked.text
        assert password_step(other, "ana").status_code == 401  # the lock holds for logins too
        assert client.get("/").status_code == 200  # still signed in here
        console.clock.advance(seconds=61)
        assert change(client, PASSWORD, NEW_PASSWORD).status_code == 303
    stored = account(console, "ana")
    assert auth.verify_password(stored.password_hash, NEW_PASSWORD)
    assert stored.failed_logins == 0 and stored.locked_until is None
    failures = [entry for entry in audit(console) if entry[1] == "password_change_failed"]
    assert [entry[3] for entry in failures] == ["contraseña actual incorrecta"] * 4 + [
        "contraseña actual incorrecta; bloqueada 60 s",
        "cuenta bloqueada",
    ]
    assert all(entry[0] == "ana" for entry in failures)


def test_bad_new_passwords_get_a_clear_400_and_change_nothing(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        log_in(console, client, "ana")
        rules = label("auth", "invalid", "password").format(min=auth.PASSWORD_MIN, max=auth.PASSWORD_MAX)
        for new, repeated, expected in (
            ("", "", rules),
            ("corta", "corta", rules),
            ("x" * 5000, "x" * 5000, rules),  # over-long (under the body cap)
            (NEW_PASSWORD, NEW_PASSWORD + "x", label("auth", "invalid", "passwords_differ")),
            (SCRIPT * 2, SCRIPT, label("auth", "invalid", "passwords_differ")),
            (PASSWORD, PASSWORD, label("my_account", "same")),
        ):
            answer = change(client, PASSWORD, new, repeated)
            assert answer.status_code == 400 and expected in answer.text, new[:20]
            assert SCRIPT not in answer.text and "x" * 100 not in answer.text
        empty = client.post("/cuenta", data={"csrf": csrf(client, "/cuenta")})
        assert empty.status_code == 400 and rules in empty.text
        huge = client.post("/cuenta", data={"csrf": csrf(client, "/cuenta"), "password": "x" * 70_000})
        assert huge.status_code == 413
        assert client.get("/").status_code == 200
    stored = account(console, "ana")
    assert auth.verify_password(stored.password_hash, PASSWORD) and stored.failed_logins == 0
    assert not any(entry[1] in ("password_changed", "password_change_failed") for entry in audit(console))


def test_an_admin_resets_a_second_factor_and_the_next_login_enrols_a_new_one(console: Console) -> None:
    console.add("root", "admin")
    console.add("ana", "agent")
    old_secret = console.secrets["ana"]
    ana_id = account(console, "ana").id
    with console.client() as admin, console.client() as ana:
        log_in(console, admin, "root")
        log_in(console, ana, "ana")
        page = admin.get("/admin/accounts")
        assert f'action="/console/admin/accounts/{ana_id}/totp-reset"' in page.text
        reset = admin.post(f"/admin/accounts/{ana_id}/totp-reset", data={"csrf": csrf(admin, "/admin/accounts")})
        assert reset.status_code == 200
        assert ACCOUNT_LABELS["totp_reset"].format(username="ana") in reset.text
        assert ana.get("/").headers["location"] == "/console/login"  # her session ended
        stored = account(console, "ana")
        assert not stored.totp_confirmed and stored.totp_secret_sealed is None and stored.totp_last_counter is None
        assert password_step(ana, "ana").headers["location"] == "/console/login/totp"
        enrol = ana.get("/login/totp")
        uri = re.search(r"otpauth://totp/[^<\s]+", enrol.text)
        assert enrol.status_code == 200 and "Dar de alta" in enrol.text and uri
        secret = pyotp.parse_uri(uri.group(0).replace("&amp;", "&")).secret
        assert secret != old_secret
        token = csrf(ana, "/login/totp")
        stale = pyotp.TOTP(old_secret).at(console.clock())
        assert ana.post("/login/totp", data={"csrf": token, "code": stale}).status_code == 401
        fresh = pyotp.TOTP(secret).at(console.clock())
        assert ana.post("/login/totp", data={"csrf": token, "code": fresh}).status_code == 303
        assert ana.get("/").status_code == 200
    assert ("root", "totp_reset", "ana", None) in audit(console)
    assert ("ana", "totp_enrolled", None, None) in audit(console)


def test_an_admin_cannot_lock_themselves_out_through_the_forms(console: Console) -> None:
    console.add("root", "admin")
    root = account(console, "root")
    with console.client() as admin:
        log_in(console, admin, "root")
        token = csrf(admin, "/admin/accounts")
        page = admin.get("/admin/accounts")
        assert f"/admin/accounts/{root.id}/totp-reset" not in page.text  # no buttons for oneself
        own_totp = admin.post(f"/admin/accounts/{root.id}/totp-reset", data={"csrf": token})
        assert own_totp.status_code == 400 and ACCOUNT_LABELS["own_totp"] in own_totp.text
        data = {"csrf": token, "password": NEW_PASSWORD, "password2": NEW_PASSWORD}
        own_password = admin.post(f"/admin/accounts/{root.id}/password", data=data)
        assert own_password.status_code == 400 and ACCOUNT_LABELS["own_password"] in own_password.text
        own_disable = admin.post(f"/admin/accounts/{root.id}/disable", data={"csrf": token})
        assert own_disable.status_code == 400 and ACCOUNT_LABELS["own_disable"] in own_disable.text
        assert admin.get("/").status_code == 200  # still signed in
    after = account(console, "root")
    assert after.totp_confirmed and after.totp_secret_sealed == root.totp_secret_sealed
    assert after.password_hash == root.password_hash and not after.disabled
    assert after.session_epoch == root.session_epoch
    assert not any(entry[1] in ("totp_reset", "password_reset", "account_disabled") for entry in audit(console))


def test_disable_then_enable_lets_the_person_back_in_but_not_the_old_session(console: Console) -> None:
    console.add("root", "admin")
    console.add("ana", "agent")
    console.add("beto", "agent")
    ana_id, beto_id = account(console, "ana").id, account(console, "beto").id
    with console.client() as admin, console.client() as ana, console.client() as beto:
        log_in(console, admin, "root")
        log_in(console, ana, "ana")
        kept = ana.cookies[COOKIE_NAME]  # a copy of her session from before
        token = csrf(admin, "/admin/accounts")
        assert admin.post(f"/admin/accounts/{ana_id}/disable", data={"csrf": token}).status_code == 200
        assert ana.get("/").headers["location"] == "/console/login"
        page = admin.get("/admin/accounts")
        assert f'action="/console/admin/accounts/{ana_id}/enable"' in page.text and "Reactivar" in page.text
        enabled = admin.post(f"/admin/accounts/{ana_id}/enable", data={"csrf": token})
        assert enabled.status_code == 200 and ACCOUNT_LABELS["enabled"].format(username="ana") in enabled.text
        ana.cookies.set(COOKIE_NAME, kept, domain="127.0.0.1", path="/console")
        assert ana.get("/").headers["location"] == "/console/login"  # the session from before stays ended
        next_login(console, ana, "ana")
        assert ana.get("/").status_code == 200
        for _ in range(auth.FAILURES_BEFORE_LOCK):  # a lock, lifted by the same button
            assert password_step(beto, "beto", "mal mal mal mal").status_code == 401
        page = admin.get("/admin/accounts")
        assert "bloqueada hasta las" in page.text and "Desbloquear" in page.text
        assert admin.post(f"/admin/accounts/{beto_id}/enable", data={"csrf": token}).status_code == 200
        log_in(console, beto, "beto")
    assert account(console, "ana").disabled is False
    actions = audit(console)
    assert ("root", "account_disabled", "ana", None) in actions and ("root", "account_enabled", "ana", None) in actions
    assert ("root", "account_enabled", "beto", None) in actions


def test_an_admin_sets_a_new_password_for_someone(console: Console) -> None:
    console.add("root", "admin")
    console.add("ana", "agent")
    ana_id = account(console, "ana").id
    with console.client() as admin, console.client() as ana:
        log_in(console, admin, "root")
        log_in(console, ana, "ana")
        token = csrf(admin, "/admin/accounts")
        path = f"/admin/accounts/{ana_id}/password"
        mismatch = admin.post(path, data={"csrf": token, "password": NEW_PASSWORD, "password2": SCRIPT})
        assert mismatch.status_code == 400 and "no coinciden" in mismatch.text and SCRIPT not in mismatch.text
        short = admin.post(path, data={"csrf": token, "password": "corta", "password2": "corta"})
        assert short.status_code == 400 and "entre 12 y 1024 caracteres" in short.text
        empty = admin.post(path, data={"csrf": token})
        assert empty.status_code == 400 and "entre 12 y 1024 caracteres" in empty.text
        assert ana.get("/").status_code == 200  # nothing changed yet
        done = admin.post(path, data={"csrf": token, "password": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert done.status_code == 200 and ACCOUNT_LABELS["password_set"].format(username="ana") in done.text
        assert NEW_PASSWORD not in done.text
        assert ana.get("/").headers["location"] == "/console/login"
        assert password_step(ana, "ana").status_code == 401
        console.clock.advance(seconds=30)
        assert password_step(ana, "ana", NEW_PASSWORD).headers["location"] == "/console/login/totp"
    assert ("root", "password_reset", "ana", None) in audit(console)
    assert not any(NEW_PASSWORD in str(entry) for entry in audit(console))


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_only_admins_reach_the_account_actions(console: Console, role: str) -> None:
    console.add("ana", "agent")
    console.add("alguien", role)
    ana = account(console, "ana")
    with console.client() as client:
        log_in(console, client, "alguien")
        own = client.get("/cuenta")  # every role has its own account page
        assert own.status_code == 200 and f"<dd>{ROLE_NAMES[role]}</dd>" in own.text
        token = csrf(client, "/cuenta")
        for action, data in (
            ("enable", {}),
            ("totp-reset", {}),
            ("password", {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}),
            ("disable", {}),
        ):
            answer = client.post(f"/admin/accounts/{ana.id}/{action}", data={"csrf": token, **data})
            assert answer.status_code == 403 and "Acceso no permitido" in answer.text, action
    after = account(console, "ana")
    assert (after.password_hash, after.totp_secret_sealed, after.totp_confirmed, after.session_epoch) == (
        ana.password_hash,
        ana.totp_secret_sealed,
        ana.totp_confirmed,
        ana.session_epoch,
    )
    forbidden = [entry[2] for entry in audit(console) if entry[1] == "forbidden"]
    assert forbidden == [
        f"/console/admin/accounts/{ana.id}/{a}" for a in ("enable", "totp-reset", "password", "disable")
    ]


def test_account_forms_without_the_csrf_token_are_refused_and_change_nothing(console: Console) -> None:
    console.add("root", "admin")
    console.add("ana", "agent")
    ana = account(console, "ana")
    with console.client() as admin:
        log_in(console, admin, "root")
        for path, data in (
            (f"/admin/accounts/{ana.id}/totp-reset", {}),
            (f"/admin/accounts/{ana.id}/password", {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}),
            (f"/admin/accounts/{ana.id}/disable", {}),
            ("/cuenta", {"current": PASSWORD, "password": NEW_PASSWORD, "password2": NEW_PASSWORD}),
        ):
            for token in (None, "x" * 43):
                sent = data if token is None else {**data, "csrf": token}
                refused = admin.post(path, data=sent)
                assert refused.status_code == 403 and "Formulario caducado" in refused.text, path
        assert admin.get("/").status_code == 200
    after, root = account(console, "ana"), account(console, "root")
    assert after.password_hash == ana.password_hash and after.totp_confirmed and not after.disabled
    assert after.session_epoch == ana.session_epoch
    assert auth.verify_password(root.password_hash, PASSWORD)
    assert [entry[1] for entry in audit(console)] == ["account_created", "account_created", "login"]


def test_account_actions_on_unknown_ids_get_the_404_page(console: Console) -> None:
    console.add("root", "admin")
    with console.client() as admin:
        log_in(console, admin, "root")
        token = csrf(admin, "/admin/accounts")
        for action in ("enable", "totp-reset", "password"):
            data = {"csrf": token, "password": NEW_PASSWORD, "password2": NEW_PASSWORD}
            missing = admin.post(f"/admin/accounts/9999/{action}", data=data)
            assert missing.status_code == 404 and ACCOUNT_LABELS["not_found"] in missing.text, action
            assert admin.post(f"/admin/accounts/{SCRIPT}/{action}", data=data).status_code == 404
        assert admin.get("/admin/accounts/1/enable").status_code == 405


# -- the command line ------------------------------------------------------------------------


def test_the_command_line_enables_resets_the_second_factor_and_sets_passwords(
    tmp_path: Path, database_url: str
) -> None:
    upgrade(database_url)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_KEYS_DIR": str(tmp_path / "keys"),
    }

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "console.accounts", *args]
        return subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, timeout=60)

    created = run("create", "--username", "ana", "--role", "admin", "--totp", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    engine = make_engine(database_url)
    try:

        def stored() -> StaffAccount:
            with transaction(engine) as session:
                return session.scalars(select(StaffAccount)).one()

        first = stored()
        assert first.totp_secret_sealed is not None
        with transaction(engine) as session:  # as if she had confirmed it and then got locked out
            locked = session.scalars(select(StaffAccount)).one()
            locked.totp_confirmed, locked.totp_last_counter, locked.failed_logins = True, 7, 9
            locked.locked_until = utcnow() + auth.LONGEST_LOCK
        assert run("disable", "--username", "ana").returncode == 0
        enabled = run("enable", "--username", "ana")
        assert enabled.returncode == 0 and "cuenta reactivada: ana" in enabled.stdout
        after_enable = stored()
        assert not after_enable.disabled and after_enable.failed_logins == 0 and after_enable.locked_until is None
        reset = run("reset-totp", "--username", "ana")
        assert reset.returncode == 0 and "segundo factor restablecido: ana" in reset.stdout
        after_reset = stored()
        assert not after_reset.totp_confirmed and after_reset.totp_secret_sealed is None
        assert after_reset.totp_last_counter is None and after_reset.session_epoch > after_enable.session_epoch
        short = run("set-password", "--username", "ana", stdin="corta\n")
        assert short.returncode == 2 and "entre 12 y 1024 caracteres" in short.stderr
        assert auth.verify_password(stored().password_hash, PASSWORD)
        changed = run("set-password", "--username", "ana", stdin=NEW_PASSWORD + "\n")
        assert changed.returncode == 0, changed.stderr
        after_password = stored()
        assert auth.verify_password(after_password.password_hash, NEW_PASSWORD)
        assert after_password.session_epoch > after_reset.session_epoch
        for command in ("enable", "reset-totp", "set-password"):
            missing = run(command, "--username", SCRIPT, stdin=NEW_PASSWORD + "\n")
            assert missing.returncode == 1 and "no existe la cuenta" in missing.stderr, command
        with transaction(engine) as session:
            entries = [
                (e.actor, e.action, e.target) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            ]
    finally:
        engine.dispose()
    assert entries == [
        ("cli", "account_created", "ana"),
        ("cli", "account_disabled", "ana"),
        ("cli", "account_enabled", "ana"),
        ("cli", "totp_reset", "ana"),
        ("cli", "password_reset", "ana"),
    ]
