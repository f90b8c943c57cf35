"""The staff console over real HTTP: uvicorn serves the console's app (create_server_app, what
`python -m console.app` serves: the pages under /console) on an ephemeral 127.0.0.1 port
(SQLite); a test clock moves time instead of sleeping. `run_console` starts the console's own
process instead, on the wall clock (tests/test_console_browser.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import uvicorn
from sqlalchemy import Engine, select

from console import auth, keys
from console.app import COOKIE_NAME, FAILED_LOGIN, create_server_app
from console.config import ConsoleSettings
from console.labels import label
from reports import crypto, handoffs
from reports.config import load_settings
from reports.db import make_engine, transaction, upgrade
from reports.keys import init_keyring, load_keys
from reports.models import AuditEntry, Handoff, StaffAccount
from scripts.stack import ROOT, free_port, spawn

START = datetime(2026, 11, 29, 12, 0, 10, tzinfo=UTC)
PASSWORD = "correcto caballo batería grapa"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class WallClock(Clock):
    """The real time: a console in its own process runs on it (nothing can move it)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def advance(self, **delta: float) -> None:
        raise AssertionError("the console process's clock cannot be moved: use `serve`")


@dataclass
class Console:
    url: str
    engine: Engine
    clock: Clock
    key: bytes
    secrets: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def add(self, username: str, role: str, totp: bool = True) -> None:
        created = auth.create_account(self.engine, username, role, PASSWORD, self.clock(), created_by=None)
        if totp:
            self.secrets[username] = auth.start_enrolment(self.engine, created.id, self.key)
            with transaction(self.engine) as session:
                stored = session.get(StaffAccount, created.id)
                assert stored is not None
                stored.totp_confirmed = True

    def code(self, username: str, step: int = 0) -> str:
        return pyotp.TOTP(self.secrets[username]).at(self.clock(), counter_offset=step)

    def actions(self) -> list[tuple[str | None, str]]:
        with transaction(self.engine) as session:
            return [(e.actor, e.action) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def csrf(client: httpx.Client, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def password_step(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/login", data={"csrf": csrf(client), "username": username, "password": password})


def log_in(console: Console, client: httpx.Client, username: str) -> None:
    assert password_step(client, username).headers["location"] == "/console/login/totp"
    answer = client.post("/login/totp", data={"csrf": csrf(client, "/login/totp"), "code": console.code(username)})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/", answer.text


@contextmanager
def serve(tmp_path: Path, **overrides: Any) -> Iterator[Console]:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    upgrade(url)
    engine = make_engine(url)
    clock = Clock()
    values: dict[str, Any] = {"database_url": url, "keys_dir": tmp_path / "keys", "insecure_cookies": True}
    values.update(overrides)
    settings = ConsoleSettings(clock=clock, **values)
    app = create_server_app(settings, engine)  # lifespan off: no relay to a gateway
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn accepts: no start-up polling
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", ws="none", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    port = sock.getsockname()[1]
    try:
        yield Console(f"http://127.0.0.1:{port}/console", engine, clock, keys.load_console_key(tmp_path / "keys", {}))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        engine.dispose()


@contextmanager
def run_console(tmp_path: Path, timeout: float = 60.0) -> Iterator[Console]:
    """`python -m console.app` in its own process (production mode, plain-http cookies) on
    a free port, with tmp_path's keyring and a migrated SQLite database; stopped afterwards."""
    url = f"sqlite:///{tmp_path / 'console.db'}"
    upgrade(url)
    key = keys.load_console_key(tmp_path / "keys", {})  # made here first: the process reads the same file
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_KEYS_DIR": str(tmp_path / "keys"),
        "HOTLINE_CONSOLE_PORT": str(port),
        "HOTLINE_CONSOLE_INSECURE_COOKIES": "1",
        "HOTLINE_GATEWAY_URL": f"http://127.0.0.1:{free_port()}",  # no gateway: nothing else is reached
    }
    for name in ("HOTLINE_CONSOLE_MODE", "HOTLINE_CONSOLE_KEY", "HOTLINE_CONSOLE_SECRET", "HOTLINE_RELAY_KEY"):
        env.pop(name, None)
    process = spawn("console", [sys.executable, "-m", "console.app"], env, tmp_path)
    engine = make_engine(url)
    try:
        _wait_for_health(process, f"http://127.0.0.1:{port}/console/health", tmp_path / "console.log", timeout)
        yield Console(f"http://127.0.0.1:{port}/console", engine, WallClock(), key)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        engine.dispose()


def _wait_for_health(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the console did not start: {log.read_text(errors='replace')}"
            time.sleep(0.2)  # polling a starting server, with a deadline


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with serve(tmp_path) as served:
        yield served


def test_login_with_password_and_totp_then_logout_is_audited(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        page = client.get("/login")
        assert page.status_code == 200 and "Iniciar sesión" in page.text and 'lang="es"' in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        assert client.get("/").headers["location"] == "/console/login"  # not yet
        log_in(console, client, "ana")
        home = client.get("/")
        assert home.status_code == 200 and "Hola, ana" in home.text and "Registro de auditoría" not in home.text
        signed_in = client.cookies[COOKIE_NAME]
        out = client.post("/logout", data={"csrf": csrf(client, "/")})
        assert out.status_code == 303 and client.get("/").headers["location"] == "/console/login"
        client.cookies.set(COOKIE_NAME, signed_in, domain="127.0.0.1", path="/console")  # a copy kept from before
        assert client.get("/").headers["location"] == "/console/login"
    assert console.actions() == [(None, "account_created"), ("ana", "login"), ("ana", "logout")]


def test_wrong_password_and_unknown_user_get_the_same_answer(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        wrong = password_step(client, "ana", "contraseña equivocada")
        unknown = password_step(client, "nadie", "contraseña equivocada")
        too_long = password_step(client, "x" * 500, "contraseña equivocada")
    assert wrong.status_code == unknown.status_code == too_long.status_code == 401
    assert FAILED_LOGIN in wrong.text
    assert wrong.text.replace('value="ana"', "") == unknown.text.replace('value="nadie"', "")
    assert [a for a in console.actions() if a[1] != "account_created"] == [
        ("ana", "login_failed"),
        (None, "login_failed"),  # an unknown name is not kept: it may be a password typed in the wrong field
        (None, "login_failed"),
    ]


def test_lockout_after_five_failures_backs_off(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        for _ in range(5):
            assert password_step(client, "ana", "mal mal mal mal").status_code == 401
        locked = password_step(client, "ana")  # the right password, while locked
        assert locked.status_code == 401 and FAILED_LOGIN in locked.text
        console.clock.advance(seconds=61)
        assert password_step(client, "ana", "mal mal mal mal").status_code == 401  # sixth: two minutes
        console.clock.advance(seconds=61)
        assert password_step(client, "ana").status_code == 401
        console.clock.advance(seconds=60)
        log_in(console, client, "ana")
    with transaction(console.engine) as session:
        account = session.scalars(select(StaffAccount)).one()
    assert account.failed_logins == 0 and account.locked_until is None  # reset by the good login


def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    console.add("root", "admin")
    with console.client() as client:
        refused = client.post("/login", data={"username": "root", "password": PASSWORD})
        assert refused.status_code == 403 and "Formulario caducado" in refused.text
        forged = client.post("/login", data={"csrf": "x" * 43, "username": "root", "password": PASSWORD})
        assert forged.status_code == 403
        log_in(console, client, "root")
        data = {"username": "eve", "role": "admin", "password": PASSWORD, "password2": PASSWORD}
        assert client.post("/admin/accounts", data=data).status_code == 403
        assert client.post("/logout").status_code == 403
        assert client.get("/").status_code == 200  # still signed in
    with transaction(console.engine) as session:
        assert session.scalars(select(StaffAccount.username)).all() == ["root"]


def test_a_tampered_cookie_and_an_idle_session_go_back_to_login(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        log_in(console, client, "ana")
        good = client.cookies[COOKIE_NAME]
        payload, rest = good.split(".", 1)
        forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest
        client.cookies.set(COOKIE_NAME, forged, domain="127.0.0.1", path="/console")
        assert client.get("/").headers["location"] == "/console/login"
        client.cookies.set(COOKIE_NAME, "garbage", domain="127.0.0.1", path="/console")
        assert client.get("/").headers["location"] == "/console/login"
    console.clock.advance(seconds=30)  # the next code: the first one was used
    with console.client() as client:
        log_in(console, client, "ana")
        console.clock.advance(minutes=14)
        assert client.get("/").status_code == 200  # activity restarts the idle time
        console.clock.advance(minutes=14)
        assert client.get("/").status_code == 200
        console.clock.advance(minutes=16)
        expired = client.get("/")
        assert expired.status_code == 303 and expired.headers["location"] == "/console/login?caducada=1"
        assert "Su sesión ha caducado" in client.get(expired.headers["location"].removeprefix("/console")).text
        assert client.get("/").headers["location"] == "/console/login"


def test_roles_decide_who_reads_the_audit_log_and_who_creates_accounts(console: Console) -> None:
    for name, role in (("agente1", "agent"), ("super1", "supervisor"), ("admin1", "admin")):
        console.add(name, role)
    with console.client() as agent:
        log_in(console, agent, "agente1")
        assert agent.get("/audit").status_code == 403 and agent.get("/admin/accounts").status_code == 403
    with console.client() as supervisor:
        log_in(console, supervisor, "super1")
        audit = supervisor.get("/audit")
        assert audit.status_code == 200 and "agente1" in audit.text and "forbidden" in audit.text
        assert supervisor.get("/admin/accounts").status_code == 403
    with console.client() as admin:
        log_in(console, admin, "admin1")
        data = {"csrf": csrf(admin, "/admin/accounts"), "username": "nueva", "role": "agent"}
        created = admin.post("/admin/accounts", data={**data, "password": PASSWORD, "password2": PASSWORD})
        assert created.status_code == 200 and "Cuenta «nueva» creada" in created.text
        mismatch = admin.post("/admin/accounts", data={**data, "password": PASSWORD, "password2": PASSWORD + "x"})
        assert mismatch.status_code == 400 and "no coinciden" in mismatch.text
        assert admin.get("/audit").status_code == 200
    actions = console.actions()
    assert ("admin1", "account_created") in actions and ("super1", "audit_viewed") in actions
    assert ("agente1", "forbidden") in actions
    with transaction(console.engine) as session:
        new = session.scalars(select(StaffAccount).where(StaffAccount.username == "nueva")).one()
    assert new.role == "agent" and not new.totp_confirmed and new.password_hash.startswith("$argon2id$")


def test_html_in_fields_is_shown_escaped(console: Console) -> None:
    console.add("admin1", "admin")
    script = "<script>alert(1)</script>"
    with console.client() as client:
        failed = password_step(client, script, script)
        assert failed.status_code == 401 and script not in failed.text and "&lt;script&gt;" in failed.text
        log_in(console, client, "admin1")
        data = {"csrf": csrf(client, "/admin/accounts"), "username": script, "role": "agent"}
        refused = client.post("/admin/accounts", data={**data, "password": PASSWORD, "password2": PASSWORD})
        assert refused.status_code == 400 and script not in refused.text and "&lt;script&gt;alert(1)" in refused.text
        audit = client.get("/audit")
        # The failed login's typed name is not kept at all (it may be a password), escaped or not.
        assert audit.status_code == 200 and script not in audit.text and "alert(1)" not in audit.text


def test_wrong_ids_and_methods_get_clear_pages(console: Console) -> None:
    console.add("admin1", "admin")
    with console.client() as client:
        log_in(console, client, "admin1")
        token = csrf(client, "/admin/accounts")
        missing = client.post("/admin/accounts/9999/disable", data={"csrf": token})
        assert missing.status_code == 404 and "Esa cuenta no existe" in missing.text
        assert client.post("/admin/accounts/abc/disable", data={"csrf": token}).status_code == 404
        assert "no existe" in client.get("/no-such-page").text
        assert client.get("/logout").status_code == 405
        assert client.get("/health").json() == {"status": "ok"}
        huge = client.post("/admin/accounts", data={"csrf": token, "username": "x" * 70_000})
        assert huge.status_code == 413


def test_a_totp_code_cannot_be_used_twice(console: Console) -> None:
    console.add("ana", "agent")
    with console.client() as client:
        log_in(console, client, "ana")
        client.post("/logout", data={"csrf": csrf(client, "/")})
        password_step(client, "ana")
        again = client.post("/login/totp", data={"csrf": csrf(client, "/login/totp"), "code": console.code("ana")})
        assert again.status_code == 401 and "cada código sirve una sola vez" in again.text
        later = client.post("/login/totp", data={"csrf": csrf(client, "/login/totp"), "code": console.code("ana", 1)})
        assert later.status_code == 303


def test_production_mode_forces_totp_enrolment(console: Console) -> None:
    console.add("nuevo", "agent", totp=False)
    with console.client() as client:
        assert password_step(client, "nuevo").headers["location"] == "/console/login/totp"
        page = client.get("/login/totp")
        uri = re.search(r"otpauth://totp/[^<\s]+", page.text)
        assert page.status_code == 200 and uri and "Dar de alta" in page.text
        secret = pyotp.parse_uri(uri.group(0).replace("&amp;", "&")).secret
        assert client.get("/").headers["location"] == "/console/login"  # not signed in yet
        password_step(client, "nuevo")
        token = csrf(client, "/login/totp")
        code = pyotp.TOTP(secret).at(console.clock())
        assert (
            client.post(
                "/login/totp", data={"csrf": token, "code": "000000" if code != "000000" else "111111"}
            ).status_code
            == 401
        )
        assert client.post("/login/totp", data={"csrf": token, "code": code}).status_code == 303
        assert client.get("/").status_code == 200
    with transaction(console.engine) as session:
        account = session.scalars(select(StaffAccount)).one()
    assert account.totp_confirmed and account.totp_secret_sealed and secret.encode() not in account.totp_secret_sealed
    assert keys.unseal(console.key, account.totp_secret_sealed) == secret.encode()
    assert ("nuevo", "totp_enrolled") in console.actions()


def test_development_mode_skips_totp_only_for_accounts_without_one(tmp_path: Path) -> None:
    with serve(tmp_path, mode="development") as served, served.client() as client, served.client() as other:
        served.add("sin", "agent", totp=False)
        served.add("con", "agent")
        assert password_step(client, "sin").headers["location"] == "/console/"
        assert client.get("/").status_code == 200
        assert password_step(other, "con").headers["location"] == "/console/login/totp"


def test_cookies_are_secure_unless_told_otherwise(tmp_path: Path) -> None:
    with serve(tmp_path, insecure_cookies=False) as served, served.client() as client:
        assert "; secure" in client.get("/login").headers["set-cookie"].lower()


def test_the_console_process_without_a_reachable_gateway_says_so_and_changes_nothing(tmp_path: Path) -> None:
    """The console's own process, whose gateway relay is down: taking a conversation gets the
    "not connected to the gateway" page (503) and leaves it waiting, unaudited as taken."""
    init_keyring(tmp_path / "keys")
    public = load_keys(load_settings({"HOTLINE_KEYS_DIR": str(tmp_path / "keys")})).public_key
    with run_console(tmp_path) as console:
        with transaction(console.engine) as session:
            handoff = handoffs.request_handoff(
                session, "ab" * 16, "sms", "asked", crypto.seal_contact(public, "sms", "+50255550123"), console.clock()
            )
            session.flush()
            handoff_id = handoff.id
        console.add("ana", "agent")
        with console.client() as client:
            log_in(console, client, "ana")
            page = client.get(f"/conversaciones/{handoff_id}")
            assert page.status_code == 200  # what was said before is simply not shown without the gateway
            taken = client.post(f"/conversaciones/{handoff_id}/atender", data={"csrf": csrf(client, "/")})
            assert taken.status_code == 503 and escape(label("handoff", "no_gateway")) in taken.text
        with transaction(console.engine) as session:
            stored = session.get(Handoff, handoff_id)
            assert stored is not None and (stored.state, stored.staff_id) == ("waiting", None)
        assert ("ana", "handoff_taken") not in console.actions()
