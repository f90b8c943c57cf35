"""The staff console over real HTTP: uvicorn serves it, mounted at /console, on an ephemeral
127.0.0.1 port (SQLite); a test clock moves time instead of sleeping."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
import uvicorn
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount

from console import auth, keys
from console.app import COOKIE_NAME, FAILED_LOGIN, create_console_app
from console.config import ConsoleSettings
from reports.db import make_engine, transaction, upgrade
from reports.models import AuditEntry, StaffAccount

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
    app = Starlette(routes=[Mount("/console", app=create_console_app(settings, engine))])
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
