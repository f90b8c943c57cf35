"""The console web app (Starlette), served under `/console` by its own process:

    python -m console.app      # HOTLINE_CONSOLE_HOST:HOTLINE_CONSOLE_PORT, default 127.0.0.1:8100

It is the only process that holds the staff private key (keys/reports.key). It reaches the
channel gateway (HOTLINE_GATEWAY_URL) through the signed relay (console/relay.py) to pause
Rasa and write to people; the gateway holds only the public key.

Sessions live in a signed cookie (HttpOnly, SameSite=Strict, Secure unless
HOTLINE_CONSOLE_INSECURE_COOKIES=1) holding only ids, times and the CSRF token; idle and
absolute expiry are checked here, on the server's clock. Every POST carries the session's
CSRF token. Pages are Spanish, server-rendered, autoescaped.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from functools import partial
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jinja2
import uvicorn
from nacl.public import PrivateKey
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import auth, keys, metrics
from console.config import ConsoleSettings, load_console_settings
from console.labels import label, label_map
from console.relay import GatewayRelay
from reports import crypto
from reports.db import make_engine, transaction
from reports.health import Readiness, database_probe, http_probe, ready_answer, with_redis
from reports.keys import KeyringError, Keys, load_keys, load_private_key, load_relay_key
from reports.metrics import serve_metrics
from reports.models import ROLES, AuditEntry, StaffAccount

logger = logging.getLogger("console.app")

HERE = Path(__file__).resolve().parent
PREFIX = "/console"
COOKIE_NAME = "hotline_console"
MAX_BODY = 64 * 1024
PENDING_LOGIN = timedelta(minutes=5)
# The only page a login returns to (else home): an on-call alert's acknowledge link, opened
# from a phone before signing in. Checked against this pattern, so no open redirect.
RETURN_AFTER_LOGIN = re.compile(r"/guardia/confirmar/[A-Za-z0-9_-]{43}")
AUDIT_PAGE = 200
ROLE_NAMES = label_map("common", "roles", keys=ROLES)
FAILED_LOGIN = label("auth", "failed_login")
FAILED_CODE = label("auth", "failed_code")
SESSION_EXPIRED = label("auth", "session_expired")
ERRORS = {
    name: (label("common", "errors", name, "title"), label("common", "errors", name, "text"))
    for name in ("bad_request", "forbidden", "not_found", "method", "other", "internal", "csrf", "body")
}
PAGE_ERRORS = {400: ERRORS["bad_request"], 404: ERRORS["not_found"], 405: ERRORS["method"]}
ACCOUNT_LABELS = label_map(
    "accounts",
    keys=(
        "created",
        "disabled",
        "own_disable",
        "not_found",
        "enabled",
        "totp_reset",
        "password_set",
        "own_totp",
        "own_password",
    ),
)
PASSWORD_CHANGED = label("my_account", "changed")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store, private"),  # pages and photos hold case data: no cache keeps them
    (b"pragma", b"no-cache"),
]


class SecurityHeaders:
    """Adds the security headers to every answer and refuses large or unsized bodies (413/411)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        if scope["method"] == "POST":
            length = dict(scope["headers"]).get(b"content-length")
            status = 411 if length is None else 413 if not length.isdigit() or int(length) > MAX_BODY else 0
            if status:
                title, text = (escape(part) for part in ERRORS["body"])
                response = HTMLResponse(f"<!doctype html><title>{title}</title><p>{text}</p>", status)
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


class Console:
    """The state every handler shares: settings, engine, key, templates. Implements auth.Gate."""

    def __init__(self, settings: ConsoleSettings, engine: Engine, relay: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.relay = relay  # the gateway, for live hand-off and contact-back (console/handoff.py Relay)
        env = {"HOTLINE_CONSOLE_KEY": settings.console_key} if settings.console_key else {}
        self.key = keys.load_console_key(settings.keys_dir, env)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
        self.handoff_js = (HERE / "static" / "handoff.js").read_text(encoding="utf-8")
        self._report_keys: tuple[Keys, PrivateKey] | None = None
        self.login_throttle = auth.LoginThrottle()  # per process: limits Argon2 work before any check
        self.readiness = Readiness(
            with_redis(
                {
                    "database": database_probe(lambda: self.engine),
                    "gateway": http_probe(f"{settings.gateway_url}/health"),
                }
            )
        )

    def report_keys(self) -> tuple[Keys, PrivateKey]:
        """The keyring with the staff private key (the console is the only process holding
        reports.key), loaded on first use; raises reports.keys.KeyringError when missing."""
        if self._report_keys is None:
            keyring = self.settings.keyring()
            self._report_keys = (load_keys(keyring), load_private_key(keyring))
        return self._report_keys

    def private_key(self) -> PrivateKey | None:
        """The staff private key, or None when this host has none (pages then say so)."""
        try:
            return self.report_keys()[1]
        except (KeyringError, ValueError):
            return None

    def open_address(self, sealed: bytes | None) -> tuple[str, str] | None:
        """A sealed reply address (a report's contact, a hand-off's) as (channel, address),
        opened only to send now; None when there is none or it cannot be opened."""
        private_key = self.private_key() if sealed is not None else None
        if sealed is None or private_key is None:
            return None
        try:
            return crypto.open_contact(private_key, sealed)
        except (crypto.SealError, ValueError):
            return None

    def now(self) -> datetime:
        return self.settings.clock()

    # -- pages

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("account", None)
        context.setdefault("error", None)
        context.setdefault("message", None)
        html = self.templates.get_template(template).render(
            url=partial(link, request), csrf=csrf_token(request), role_names=ROLE_NAMES, **context
        )
        return HTMLResponse(html, status_code=status)

    def error(self, request: Request, status: int, title: str, text: str) -> HTMLResponse:
        return self.render(request, "error.html", status, title=title, text=text)

    def to_login(self, request: Request, expired: bool = False) -> RedirectResponse:
        return redirect_to(request, "login", query={"caducada": "1"} if expired else None)

    # -- the gate

    def session_expired(self, session: dict[str, Any]) -> bool:
        now = self.now().timestamp()
        seen, started = session.get("seen"), session.get("started")
        if not isinstance(seen, int | float) or not isinstance(started, int | float):
            return True
        idle = timedelta(minutes=self.settings.idle_minutes).total_seconds()
        longest = timedelta(hours=self.settings.max_session_hours).total_seconds()
        return now - seen > idle or now - started > longest or seen > now + 60

    async def admit(self, request: Request, role: str) -> StaffAccount | Response:
        session = request.session
        uid = session.get("uid")
        if not isinstance(uid, int):
            session.clear()
            self.remember_return(request)
            return self.to_login(request)
        if self.session_expired(session):
            session.clear()
            self.remember_return(request)
            target = auth.AUDIT_TARGETS["account"].format(id=uid)
            await run_in_threadpool(auth.audit, self.engine, "session_expired", self.now(), target=target)
            return self.to_login(request, expired=True)
        account = await run_in_threadpool(self.load_account, uid)
        if (
            account is None
            or account.disabled
            or session.get("epoch") != account.session_epoch
            or (self.settings.production and not account.totp_confirmed)
        ):
            session.clear()
            return self.to_login(request)
        if not auth.has_role(account.role, role):
            await run_in_threadpool(
                auth.audit, self.engine, "forbidden", self.now(), actor=account.username, target=request.url.path
            )
            return self.error(request, 403, *ERRORS["forbidden"])
        if request.method == "POST":
            form = await read_form(request)
            if not csrf_ok(request, form):
                return self.csrf_refused(request)
            request.state.form = form
        session["seen"] = self.now().timestamp()
        return account

    def load_account(self, account_id: int) -> StaffAccount | None:
        with transaction(self.engine) as session:
            return session.get(StaffAccount, account_id)

    def csrf_refused(self, request: Request) -> HTMLResponse:
        return self.error(request, 403, *ERRORS["csrf"])

    def start_session(self, request: Request, account_id: int, epoch: int) -> None:
        session = request.session
        back = session.get("next")
        session.clear()
        now = self.now().timestamp()
        session.update(uid=account_id, epoch=epoch, started=now, seen=now, csrf=secrets.token_urlsafe(32))
        if isinstance(back, str):
            session["next"] = back

    def remember_return(self, request: Request) -> None:
        """Keep the acknowledge link someone opened signed out, to go there after login."""
        path = request.url.path.removeprefix(base_path(request))
        if request.method == "GET" and RETURN_AFTER_LOGIN.fullmatch(path):
            request.session["next"] = path

    def after_login(self, request: Request) -> RedirectResponse:
        """303 to the remembered acknowledge link (checked again), else home."""
        back = request.session.pop("next", None)
        if isinstance(back, str) and RETURN_AFTER_LOGIN.fullmatch(back):
            return RedirectResponse(base_path(request) + back, status_code=303)
        return redirect_to(request, "home")


def base_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def link(request: Request, name: str, **params: object) -> str:
    """The path of a console route by its name (as routes are declared, `name=`), under the
    prefix the console is served at: pages and redirects never spell paths out."""
    return base_path(request) + str(request.app.url_path_for(name, **{k: str(v) for k, v in params.items()}))


def redirect_to(
    request: Request, name: str, query: dict[str, str] | None = None, fragment: str = "", **params: object
) -> RedirectResponse:
    """After a form: 303 to a named route (the browser then GETs it)."""
    target = link(request, name, **params)
    if query:
        target += "?" + urlencode(query)
    if fragment:
        target += "#" + quote(fragment)
    return RedirectResponse(target, status_code=303)


def csrf_token(request: Request) -> str:
    if "session" not in request.scope:  # the 500 page, outside the session middleware
        return ""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, form: FormData) -> bool:
    sent, expected = form.get("csrf"), request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


async def read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=0, max_fields=20, max_part_size=MAX_BODY)
    except HTTPException:
        raise
    except Exception as error:  # malformed bodies: a 400, never a 500
        raise HTTPException(400) from error


def text_field(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def console_of(request: Request) -> Console:
    console: Console = request.app.state.gate
    return console


# -- handlers ---------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    console = console_of(request)
    if isinstance(request.session.get("uid"), int) and not console.session_expired(request.session):
        return redirect_to(request, "home")
    expired = request.query_params.get("caducada") == "1"
    message = SESSION_EXPIRED if expired else None
    return console.render(request, "login.html", message=message, username="")


async def login_submit(request: Request) -> Response:
    console = console_of(request)
    form = await read_form(request)
    if not csrf_ok(request, form):
        return console.csrf_refused(request)
    username = text_field(form, "username", 200).strip()
    password = text_field(form, "password", auth.PASSWORD_MAX + 1)
    now = console.now()
    check = await run_in_threadpool(
        auth.check_password, console.engine, username, password, now, console.login_throttle
    )
    if check is None:
        metrics.LOGINS.labels("failed").inc()
        return console.render(request, "login.html", 401, error=FAILED_LOGIN, username=username)
    if not check.has_totp and not console.settings.production:
        metrics.LOGINS.labels("ok").inc()
        epoch = await run_in_threadpool(
            auth.login_succeeded, console.engine, check.account_id, now, auth.LOGIN_DETAILS["development"]
        )
        console.start_session(request, check.account_id, epoch)
        return console.after_login(request)
    session = request.session
    back = session.get("next")
    session.clear()
    if isinstance(back, str):
        session["next"] = back
    session.update(
        pending=check.account_id,
        pending_at=now.timestamp(),
        enrol=not check.has_totp,
        csrf=secrets.token_urlsafe(32),
    )
    return redirect_to(request, "totp")


def _pending(console: Console, request: Request) -> int | None:
    session = request.session
    pending, since = session.get("pending"), session.get("pending_at")
    if not isinstance(pending, int) or not isinstance(since, int | float):
        return None
    if console.now().timestamp() - since > PENDING_LOGIN.total_seconds():
        return None
    return pending


async def _totp_page(request: Request, console: Console, account_id: int, status: int, error: str | None) -> Response:
    enrol = bool(request.session.get("enrol"))
    context: dict[str, Any] = {"enrol": enrol, "error": error}
    if enrol:
        try:
            secret = await run_in_threadpool(auth.start_enrolment, console.engine, account_id, console.key)
        except (LookupError, auth.AccountError):
            request.session.clear()
            return console.to_login(request)
        account = await run_in_threadpool(console.load_account, account_id)
        context["secret"] = secret
        context["uri"] = auth.provisioning_uri(secret, account.username if account else "")
    return console.render(request, "totp.html", status, **context)


async def totp_page(request: Request) -> Response:
    console = console_of(request)
    account_id = _pending(console, request)
    if account_id is None:
        request.session.clear()
        return console.to_login(request)
    return await _totp_page(request, console, account_id, 200, None)


async def totp_submit(request: Request) -> Response:
    console = console_of(request)
    account_id = _pending(console, request)
    if account_id is None:
        request.session.clear()
        return console.to_login(request, expired=True)
    form = await read_form(request)
    if not csrf_ok(request, form):
        return console.csrf_refused(request)
    code = text_field(form, "code", 16)
    enrol = bool(request.session.get("enrol"))
    now = console.now()
    ok = await run_in_threadpool(auth.check_totp, console.engine, account_id, code, now, console.key, enrol)
    if not ok:
        metrics.LOGINS.labels("failed").inc()
        return await _totp_page(request, console, account_id, 401, FAILED_CODE)
    metrics.LOGINS.labels("ok").inc()
    detail = auth.LOGIN_DETAILS["enrolment" if enrol else "totp"]
    epoch = await run_in_threadpool(auth.login_succeeded, console.engine, account_id, now, detail)
    console.start_session(request, account_id, epoch)
    return console.after_login(request)


@auth.requires("agent")
async def logout(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    await run_in_threadpool(auth.log_out, console.engine, account.id, console.now())
    request.session.clear()
    return console.to_login(request)


@auth.requires("agent")
async def home(request: Request, account: StaffAccount) -> Response:
    return console_of(request).render(request, "home.html", account=account)


@auth.requires("supervisor")
async def audit_page(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)

    def read() -> list[AuditEntry]:
        with transaction(console.engine) as session:
            auth.record(session, "audit_viewed", console.now(), actor=account.username)
            return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_PAGE)))

    entries = await run_in_threadpool(read)
    return console.render(request, "audit.html", account=account, entries=entries)


def _accounts(console: Console) -> list[StaffAccount]:
    with transaction(console.engine) as session:
        return list(session.scalars(select(StaffAccount).order_by(StaffAccount.username)))


async def _accounts_page(request: Request, account: StaffAccount, status: int = 200, **context: Any) -> HTMLResponse:
    console = console_of(request)
    context.setdefault("form", {"username": "", "role": "agent"})
    accounts = await run_in_threadpool(_accounts, console)
    return console.render(
        request,
        "accounts.html",
        status,
        account=account,
        accounts=accounts,
        roles=ROLES,
        now=console.now(),
        password_min=auth.PASSWORD_MIN,
        password_max=auth.PASSWORD_MAX,
        **context,
    )


@auth.requires("admin")
async def accounts_page(request: Request, account: StaffAccount) -> Response:
    return await _accounts_page(request, account)


@auth.requires("admin")
async def accounts_create(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    form: FormData = request.state.form
    username = text_field(form, "username", 200).strip()
    role = text_field(form, "role", 20)
    password = text_field(form, "password", auth.PASSWORD_MAX + 1)
    repeated = text_field(form, "password2", auth.PASSWORD_MAX + 1)
    filled = {"username": username, "role": role}
    if not hmac.compare_digest(password.encode(), repeated.encode()):
        return await _accounts_page(request, account, 400, form=filled, error=auth.INVALID["passwords_differ"])
    try:
        created = await run_in_threadpool(
            auth.create_account, console.engine, username, role, password, console.now(), account.username
        )
    except auth.AccountError as error:
        return await _accounts_page(request, account, 400, form=filled, error=str(error))
    message = ACCOUNT_LABELS["created"].format(username=created.username)
    return await _accounts_page(request, account, 200, message=message)


@auth.requires("admin")
async def accounts_disable(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    account_id = int(request.path_params["account_id"])
    if account_id == account.id:
        return await _accounts_page(request, account, 400, error=ACCOUNT_LABELS["own_disable"])
    try:
        target = await run_in_threadpool(
            auth.set_disabled, console.engine, account_id, True, console.now(), account.username
        )
    except LookupError:
        return console.error(request, 404, ERRORS["not_found"][0], ACCOUNT_LABELS["not_found"])
    message = ACCOUNT_LABELS["disabled"].format(username=target.username)
    return await _accounts_page(request, account, 200, message=message)


async def _account_action(
    request: Request, account: StaffAccount, work: Callable[[int], StaffAccount], done: str, not_self: str | None
) -> Response:
    """Runs `work(account id)` for the account of the path and shows the accounts page with
    `done`; `not_self` is the refusal when the id is the admin's own."""
    console = console_of(request)
    account_id = int(request.path_params["account_id"])
    if not_self is not None and account_id == account.id:
        return await _accounts_page(request, account, 400, error=ACCOUNT_LABELS[not_self])
    try:
        target = await run_in_threadpool(work, account_id)
    except LookupError:
        return console.error(request, 404, ERRORS["not_found"][0], ACCOUNT_LABELS["not_found"])
    except auth.AccountError as error:
        return await _accounts_page(request, account, 400, error=str(error))
    return await _accounts_page(request, account, 200, message=ACCOUNT_LABELS[done].format(username=target.username))


@auth.requires("admin")
async def accounts_enable(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)

    def work(account_id: int) -> StaffAccount:
        return auth.set_disabled(console.engine, account_id, False, console.now(), account.username)

    return await _account_action(request, account, work, "enabled", None)


@auth.requires("admin")
async def accounts_reset_totp(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)

    def work(account_id: int) -> StaffAccount:
        return auth.reset_totp(console.engine, account_id, console.now(), account.username)

    return await _account_action(request, account, work, "totp_reset", "own_totp")


@auth.requires("admin")
async def accounts_set_password(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    form: FormData = request.state.form
    password = text_field(form, "password", auth.PASSWORD_MAX + 1)
    repeated = text_field(form, "password2", auth.PASSWORD_MAX + 1)

    def work(account_id: int) -> StaffAccount:
        if not hmac.compare_digest(password.encode(), repeated.encode()):
            raise auth.AccountError(auth.INVALID["passwords_differ"])
        return auth.set_password(console.engine, account_id, password, console.now(), account.username)

    return await _account_action(request, account, work, "password_set", "own_password")


async def _own_account_page(request: Request, account: StaffAccount, status: int = 200, **context: Any) -> Response:
    return console_of(request).render(
        request,
        "my_account.html",
        status,
        account=account,
        password_min=auth.PASSWORD_MIN,
        password_max=auth.PASSWORD_MAX,
        **context,
    )


@auth.requires("agent")
async def own_account_page(request: Request, account: StaffAccount) -> Response:
    message = PASSWORD_CHANGED if request.query_params.get("hecho") == "1" else None
    return await _own_account_page(request, account, message=message)


@auth.requires("agent")
async def own_password_submit(request: Request, account: StaffAccount) -> Response:
    console = console_of(request)
    form: FormData = request.state.form
    current = text_field(form, "current", auth.PASSWORD_MAX + 1)
    new = text_field(form, "password", auth.PASSWORD_MAX + 1)
    repeated = text_field(form, "password2", auth.PASSWORD_MAX + 1)
    if not hmac.compare_digest(new.encode(), repeated.encode()):
        return await _own_account_page(request, account, 400, error=auth.INVALID["passwords_differ"])
    try:
        epoch = await run_in_threadpool(
            auth.change_own_password, console.engine, account.id, current, new, console.now()
        )
    except auth.WrongPassword as error:
        return await _own_account_page(request, account, 401, error=str(error))
    except auth.AccountError as error:
        return await _own_account_page(request, account, 400, error=str(error))
    except LookupError:
        request.session.clear()
        return console.to_login(request)
    console.start_session(request, account.id, epoch)  # this browser stays signed in, the others do not
    return redirect_to(request, "own_account", query={"hecho": "1"})


async def health(request: Request) -> Response:
    """Liveness: the process answers (whatever its dependencies do)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness (reports/health.py): the database, the gateway's relay, Redis when configured."""
    status, body = ready_answer(await console_of(request).readiness.states())
    return JSONResponse(body, status_code=status)


async def handoff_script(request: Request) -> Response:
    return Response(console_of(request).handoff_js, media_type="text/javascript")


async def stylesheet(request: Request) -> Response:
    return Response(console_of(request).css, media_type="text/css")


async def http_error(request: Request, exc: Exception) -> Response:
    console = console_of(request)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status >= 500:
        metrics.ERRORS.inc()
    title, text = ERRORS["internal"] if status >= 500 else PAGE_ERRORS.get(status, ERRORS["other"])
    return console.error(request, status, title, text)


def create_console_app(
    settings: ConsoleSettings, engine: Engine | None = None, relay: Callable[[], Any] | None = None
) -> Starlette:
    """The console; `engine` defaults to one made from settings.database_url (migrated already)."""
    from console import (  # they import this module
        cases,
        contact,
        facts_audit,
        handoff,
        oncall,
        photos,
        referrals,
        services_page,
        stats,
    )

    console = Console(settings, engine if engine is not None else make_engine(settings.database_url), relay)
    secret = settings.secret or keys.derive(console.key, "console session cookie").hex()
    app = Starlette(
        routes=[
            Route("/", home, name="home"),
            Route("/login", login_page, methods=["GET"], name="login"),
            Route("/login", login_submit, methods=["POST"], name="login_submit"),
            Route("/login/totp", totp_page, methods=["GET"], name="totp"),
            Route("/login/totp", totp_submit, methods=["POST"], name="totp_submit"),
            Route("/logout", logout, methods=["POST"], name="logout"),
            Route("/audit", audit_page, name="audit"),
            Route("/admin/accounts", accounts_page, methods=["GET"], name="accounts"),
            Route("/admin/accounts", accounts_create, methods=["POST"], name="accounts_create"),
            Route(
                "/admin/accounts/{account_id:int}/disable", accounts_disable, methods=["POST"], name="account_disable"
            ),
            Route("/admin/accounts/{account_id:int}/enable", accounts_enable, methods=["POST"], name="account_enable"),
            Route(
                "/admin/accounts/{account_id:int}/totp-reset",
                accounts_reset_totp,
                methods=["POST"],
                name="account_totp_reset",
            ),
            Route(
                "/admin/accounts/{account_id:int}/password",
                accounts_set_password,
                methods=["POST"],
                name="account_password",
            ),
            Route("/cuenta", own_account_page, methods=["GET"], name="own_account"),
            Route("/cuenta", own_password_submit, methods=["POST"], name="own_password"),
            *cases.case_routes(),
            *contact.routes(),
            *photos.routes(),
            *referrals.routes(),
            *handoff.routes(),
            *stats.routes(),
            *oncall.routes(),
            *facts_audit.routes(),
            *services_page.routes(),
            Route("/health", health, name="health"),
            Route("/ready", ready, name="ready"),
            Route("/static/console.css", stylesheet, name="stylesheet"),
            Route("/static/handoff.js", handoff_script, name="handoff_script"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie=COOKIE_NAME,
                max_age=settings.max_session_hours * 3600,
                path=settings.cookie_path,
                same_site="strict",
                https_only=not settings.insecure_cookies,
            ),
        ],
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )
    app.state.gate = console
    return app


def open_relay(settings: ConsoleSettings) -> GatewayRelay | None:
    """The signed HTTP relay to the gateway; None (pages say the gateway is not connected)
    when the relay key is missing."""
    try:
        key = load_relay_key(settings.keyring())
    except (KeyringError, ValueError) as error:
        logger.warning("no relay to the gateway: %s", error)
        return None
    return GatewayRelay(settings.gateway_url, key, httpx.AsyncClient())


async def to_console(request: Request) -> Response:
    return RedirectResponse(PREFIX + "/", status_code=303)


def create_server_app(settings: ConsoleSettings, engine: Engine | None = None) -> Starlette:
    """What `python -m console.app` serves: the console under /console (its cookie's path),
    with the gateway relay opened at start-up and closed at shutdown."""
    relays: list[GatewayRelay] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        relay = open_relay(settings)
        relays.extend([relay] if relay is not None else [])
        try:
            yield
        finally:
            for opened in relays:
                await opened.aclose()
            relays.clear()

    console = create_console_app(settings, engine, relay=lambda: relays[0] if relays else None)
    return Starlette(routes=[Route("/", to_console), Mount(PREFIX, app=console)], lifespan=lifespan)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_console_settings()
    serve_metrics("console")  # HOTLINE_METRICS_PORT: its own internal port, never the console's
    uvicorn.run(
        create_server_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        proxy_headers=False,
        log_level="info",
    )


if __name__ == "__main__":  # run the package's module, not a second copy named __main__
    from console import app as console_module

    console_module.main()
