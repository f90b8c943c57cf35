"""The console's page kit: what every page handler does the same way, in one place.

    path_value(request, name, pattern)   parse a path parameter (None when malformed: a 404)
    not_found(request, text, title)      the 404 page
    form_text(request, name, limit)      a form field as text, capped, control characters dropped
    in_transaction(console, work)        `work(session)` in one transaction, off the event loop
    audit(session, console, action, ...) the append-only audit row of what staff did
    link / redirect_to                   paths by route name (console.app), never spelled out

Handlers stay thin: parse and validate with these, do the work in one transaction (with its
audit row), then redirect to a named route.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from console import auth
from console.app import ERRORS, Console, console_of, link, redirect_to
from hotline.text import without_control
from reports.db import transaction
from reports.models import StaffAccount

__all__ = ["REPORT_ID", "audit", "form_text", "in_transaction", "link", "not_found", "path_value", "redirect_to"]

T = TypeVar("T")
FORM_TEXT_LIMIT = 64 * 1024  # what is kept of a field, to check and show it back (the body is capped anyway)
REPORT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # a report's path id


def path_value(request: Request, name: str, pattern: re.Pattern[str]) -> str | None:
    """A path parameter when it has the expected shape; None (answer 404) otherwise."""
    value = str(request.path_params.get(name, ""))
    return value if pattern.fullmatch(value) else None


def not_found(request: Request, text: str, title: str | None = None) -> Response:
    return console_of(request).error(request, 404, title or ERRORS["not_found"][0], text)


def form_text(request: Request, name: str, limit: int = FORM_TEXT_LIMIT) -> str:
    """A field of the request's form (parsed and CSRF-checked by the console) as text: ""
    when absent or not text, cut at `limit`, without control characters."""
    form: FormData = request.state.form
    value = form.get(name)
    return without_control(value[:limit]) if isinstance(value, str) else ""


async def in_transaction(console: Console, work: Callable[[Session], T]) -> T:
    """`work(session)` inside one transaction, in the thread pool (the database blocks)."""

    def run() -> T:
        with transaction(console.engine) as session:
            return work(session)

    return await run_in_threadpool(run)


def audit(
    session: Session,
    console: Console,
    action: str,
    account: StaffAccount,
    target: str | None = None,
    detail: str | None = None,
) -> None:
    """The audit row of a staff action, in the same transaction as the action."""
    auth.record(session, action, console.now(), actor=account.username, target=target, detail=detail)
