"""A report's photos in the console: listed on the report page, each opened with the staff
private key only to be sent to the browser that asked (in memory, never written anywhere
decrypted), with headers that keep it out of every cache; every view is audited (who, which
report, which photo; never the image).

A supervisor can mark a photo as child sexual abuse material: from then on no route opens
it, for anyone; the mark records who (username and role) and when, is audited, and cannot
be undone (no route clears it, and a database trigger refuses any change to it). The page
then names the legal path for the report's country from content/facts.yml, or says that the
line has none verified. The line never forwards an image: there is no download or send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nacl.public import PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth, directory
from console.app import ERRORS, ROLE_NAMES, console_of, redirect_to
from console.labels import console_labels, label, label_map
from console.pages import REPORT_ID, audit, form_text, in_transaction, not_found, path_value
from reports import crypto
from reports.models import Report, ReportAttachment, StaffAccount

LABELS = label_map(
    "photos",
    keys=(
        "title",
        "none",
        "hint",
        "alt",
        "name",
        "hidden",
        "mark_button",
        "mark_hint",
        "confirm",
        "confirm_missing",
        "marked",
        "already_marked",
        "mark_forbidden",
        "not_found",
        "hidden_title",
        "hidden_text",
        "unreadable_title",
        "unreadable_text",
        "bad_type",
        "legal_title",
        "legal_hint",
        "no_path",
        "unknown_country",
    ),
)
REPORT_TARGET = label("audit_log", "targets", "report")
PHOTO_DETAIL = label("audit_log", "photo")
NO_KEY_TITLE = label("cases", "no_key_title")
NO_KEY = label("cases", "no_key")
PHOTO_ID = re.compile(r"[1-9][0-9]{0,8}")  # fits a 32-bit INTEGER column on PostgreSQL
MARKER_ROLE = "supervisor"  # and above (admin)
# What the gateway keeps (re-encoded, metadata stripped) and how each format starts: a photo
# is served only as the type it was stored with, and only when its bytes are that type.
SIGNATURES = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
}
PHOTO_HEADERS = {
    "Cache-Control": "no-store, private",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Disposition": "inline",
}


def _legal_paths() -> dict[str, tuple[str, ...]]:
    """Country -> the fact ids (content/facts.yml) of where to report such material."""
    raw = console_labels()["photos"]["paths"]
    return {str(country): tuple(str(key) for key in keys) for country, keys in raw.items()}


LEGAL_PATHS = _legal_paths()


@dataclass(frozen=True)
class PhotoRow:
    """One photo as the report page lists it: never its content."""

    id: int
    name: str
    alt: str
    hidden: str | None  # the "oculta: marcada..." line, when marked


@dataclass(frozen=True)
class LegalPath:
    """Where staff report child sexual abuse material for a report's country."""

    text: str
    contacts: tuple[directory.Contact, ...]


def hidden_text(photo: ReportAttachment) -> str | None:
    if photo.csam_marked_at is None:
        return None
    role = photo.csam_marked_role or ""
    return LABELS["hidden"].format(
        role=ROLE_NAMES.get(role, role),
        username=photo.csam_marked_by or "",
        date=photo.csam_marked_at.strftime("%Y-%m-%d %H:%M UTC"),
    )


def photos_of(session: Session, report_id: str) -> list[PhotoRow]:
    """The report's photos in the order received, without opening any."""
    query = select(ReportAttachment).where(ReportAttachment.report_id == report_id).order_by(ReportAttachment.id)
    return [
        PhotoRow(
            id=photo.id,
            name=LABELS["name"].format(n=number),
            alt=LABELS["alt"].format(n=number),
            hidden=hidden_text(photo),
        )
        for number, photo in enumerate(session.scalars(query), start=1)
    ]


def legal_path(country: str | None) -> LegalPath:
    """The facts naming where to report such material in `country`: only usable facts (the
    directory leaves unverified ones out) that have a source; else the line has no path."""
    contacts = tuple(
        contact
        for key in LEGAL_PATHS.get(country or "", ())
        if (contact := directory.find(key)) is not None and contact.sources
    )
    name = country or LABELS["unknown_country"]
    return LegalPath(LABELS["legal_hint" if contacts else "no_path"].format(country=name), contacts)


def page_context(session: Session, report_id: str, country: str | None) -> dict[str, Any]:
    """What the report page shows about photos (cases.py): the list, and the legal path once
    a photo is marked."""
    photos = photos_of(session, report_id)
    marked = any(photo.hidden for photo in photos)
    return {"photos": photos, "photo_labels": LABELS, "legal": legal_path(country) if marked else None}


# -- serving one photo -------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """The outcome of asking for a photo: the image (in memory), or why there is none."""

    status: int
    content: bytes = b""
    content_type: str = ""


def _target(report_id: str) -> str:
    return REPORT_TARGET.format(id=report_id)


def _detail(photo_id: int) -> str:
    return PHOTO_DETAIL.format(id=photo_id)


def _photo(session: Session, report_id: str, photo_id: int, lock: bool = False) -> ReportAttachment | None:
    """The photo when it belongs to that report (another report's id is no photo of this one)."""
    photo = session.get(ReportAttachment, photo_id, with_for_update=lock)
    return photo if photo is not None and photo.report_id == report_id else None


def _looks_like(content: bytes, content_type: str) -> bool:
    starts = SIGNATURES.get(content_type, ())
    webp = content_type != "image/webp" or content[8:12] == b"WEBP"
    return any(content.startswith(start) for start in starts) and webp


def open_photo(
    session: Session, report_id: str, photo_id: int, private_key: PrivateKey, account: StaffAccount, console: Any
) -> Opened:
    """Opens one photo for `account`, auditing the view (or the refusal) in this transaction."""
    target, detail = _target(report_id), _detail(photo_id)
    photo = _photo(session, report_id, photo_id) if session.get(Report, report_id) is not None else None
    if photo is None:
        audit(session, console, "photo_not_found", account, target, detail)
        return Opened(404)
    if photo.csam_marked_at is not None:
        audit(session, console, "photo_hidden_refused", account, target, detail)
        return Opened(410)
    try:
        content = crypto.unseal(private_key, photo.sealed_content)
    except crypto.SealError:
        audit(session, console, "photo_unreadable", account, target, detail)
        return Opened(500)
    if not _looks_like(content, photo.content_type):
        audit(session, console, "photo_unreadable", account, target, detail)
        return Opened(415)
    audit(session, console, "photo_viewed", account, target, detail)
    return Opened(200, content, photo.content_type)


def _ids(request: Request) -> tuple[str, int] | None:
    report_id = path_value(request, "report_id", REPORT_ID)
    photo_id = path_value(request, "photo_id", PHOTO_ID)
    return (report_id, int(photo_id)) if report_id and photo_id else None


def _no_photo(request: Request) -> Response:
    return not_found(request, LABELS["not_found"])


@auth.requires("agent")
async def photo(request: Request, account: StaffAccount) -> Response:
    """One photo, for whoever may see the report (agents and up), decrypted only for this answer."""
    ids = _ids(request)
    if ids is None:
        return _no_photo(request)
    console = console_of(request)
    private_key = await run_in_threadpool(console.private_key)
    if private_key is None:
        return console.error(request, 503, NO_KEY_TITLE, NO_KEY)
    opened = await in_transaction(console, lambda session: open_photo(session, *ids, private_key, account, console))
    if opened.status == 404:
        return _no_photo(request)
    if opened.status == 410:
        return console.error(request, 410, LABELS["hidden_title"], LABELS["hidden_text"])
    if opened.status == 415:
        return console.error(request, 415, LABELS["unreadable_title"], LABELS["bad_type"])
    if opened.status != 200:
        return console.error(request, opened.status, LABELS["unreadable_title"], LABELS["unreadable_text"])
    return Response(opened.content, media_type=opened.content_type, headers=PHOTO_HEADERS)


# -- marking a photo -----------------------------------------------------------------------------


def mark_photo(session: Session, report_id: str, photo_id: int, account: StaffAccount, console: Any) -> int:
    """Marks the photo (row locked: two supervisors at once mark it once); 303 done, 404 no
    such photo of this report, 409 already marked (the first mark stays as it was)."""
    target, detail = _target(report_id), _detail(photo_id)
    photo = _photo(session, report_id, photo_id, lock=True) if session.get(Report, report_id) is not None else None
    if photo is None:
        audit(session, console, "photo_not_found", account, target, detail)
        return 404
    if photo.csam_marked_at is not None:
        audit(session, console, "photo_mark_repeated", account, target, detail)
        return 409
    photo.csam_marked_at = console.now()
    photo.csam_marked_by = account.username
    photo.csam_marked_role = account.role
    audit(session, console, "photo_csam_marked", account, target, detail)
    return 303


@auth.requires("agent")
async def mark(request: Request, account: StaffAccount) -> Response:
    """Supervisors only (an agent's attempt is refused and audited); needs the confirmation box."""
    ids = _ids(request)
    if ids is None:
        return _no_photo(request)
    console = console_of(request)
    report_id, photo_id = ids
    if not auth.has_role(account.role, MARKER_ROLE):
        await in_transaction(
            console,
            lambda session: audit(session, console, "forbidden", account, _target(report_id), _detail(photo_id)),
        )
        return console.error(request, 403, ERRORS["forbidden"][0], LABELS["mark_forbidden"])
    if form_text(request, "confirm") != "1":
        return console.error(request, 400, ERRORS["bad_request"][0], LABELS["confirm_missing"])
    outcome = await in_transaction(console, lambda session: mark_photo(session, report_id, photo_id, account, console))
    if outcome == 404:
        return _no_photo(request)
    if outcome == 409:
        return console.error(request, 409, LABELS["hidden_title"], LABELS["already_marked"])
    return redirect_to(request, "case", query={"hecho": "foto"}, fragment="fotos", report_id=report_id)


def routes() -> list[Route]:
    return [
        Route("/casos/{report_id}/fotos/{photo_id}", photo, methods=["GET"], name="case_photo"),
        Route("/casos/{report_id}/fotos/{photo_id}/marcar", mark, methods=["POST"], name="case_photo_mark"),
    ]
