"""On call and acknowledgement: who answers alerts when, and the escalation chain.

Supervisors set shifts (console/oncall.py): a staff member, a start and an end (UTC) and
the countries covered (none: all). An urgent report or a new hand-off request pages the
first person on call for its country (shifts in order of start); a page not acknowledged
within HOTLINE_ONCALL_ACK_MINUTES (or that reached nobody) escalates to the next person on
call, then to every supervisor. `escalate_due(engine, settings, now)` does all of it and runs
in the jobs loop (reports/jobs.py) on an explicit clock, so tests drive the whole chain.

A page goes out on every channel the person set (e-mail, Telegram chat, SMS through Twilio).
Its text (content/notifications.yml) says only what happened and carries the acknowledge
link: never report text, a code or a country. The link's token is random and kept only as
its SHA-256; it expires after HOTLINE_ONCALL_LINK_HOURS. Staff contacts are sealed with the
on-call key (keys/oncall.key, a SecretBox) and opened only to send; they are never logged
and errors stored on a page name the channel, never the address.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
import nacl.exceptions
import nacl.secret
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hotline.paths import CONTENT
from reports import notify
from reports.config import Settings
from reports.db import transaction
from reports.models import Handoff, OnCallPage, OnCallShift, Report, StaffAccount, StaffContact
from reports.response import acted

log = logging.getLogger(__name__)
CHANNELS = ("email", "telegram", "sms")
ACK_PATH = "/guardia/confirmar/"  # console/oncall.py, below HOTLINE_CONSOLE_URL
LOOKBACK = timedelta(hours=24)  # older reports and hand-offs are never paged for the first time
SUPERVISOR_ROLES = ("supervisor",)
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}")
PHONE = re.compile(r"\+[1-9][0-9]{7,14}")  # E.164
TELEGRAM_CHAT = re.compile(r"-?[0-9]{1,20}")
ERROR_CHARS = 300


class ContactError(ValueError):
    """A contact value that is not an e-mail, a Telegram chat id or an E.164 phone (its name)."""


# -- shifts ---------------------------------------------------------------------------------


def covers(shift: OnCallShift, country: str | None) -> bool:
    """A shift with no countries covers all; a subject without a country is everyone's."""
    return not shift.countries or country is None or country in shift.countries


def on_call(session: Session, now: datetime, country: str | None = None) -> list[int]:
    """Staff ids on call at `now` for `country`, in chain order (shift start, then id); once each."""
    query = (
        select(OnCallShift)
        .join(StaffAccount, StaffAccount.id == OnCallShift.staff_id)
        .where(OnCallShift.starts_at <= now, OnCallShift.ends_at > now, StaffAccount.disabled.is_(False))
        .order_by(OnCallShift.starts_at, OnCallShift.id)
    )
    ids: list[int] = []
    for shift in session.scalars(query):
        if covers(shift, country) and shift.staff_id not in ids:
            ids.append(shift.staff_id)
    return ids


def supervisors(session: Session) -> list[int]:
    query = select(StaffAccount.id).where(StaffAccount.role.in_(SUPERVISOR_ROLES), StaffAccount.disabled.is_(False))
    return list(session.scalars(query.order_by(StaffAccount.id)))


# -- contacts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    email: str = ""
    telegram: str = field(default="", repr=False)
    phone: str = field(default="", repr=False)

    def channels(self) -> tuple[str, ...]:
        return tuple(name for name in CHANNELS if self.value(name))

    def value(self, channel: str) -> str:
        return {"email": self.email, "telegram": self.telegram, "sms": self.phone}[channel]


def checked_contact(email: str, telegram: str, phone: str) -> Contact:
    """The contact with spaces removed; raises ContactError naming the first wrong field."""
    email, telegram = email.strip(), telegram.strip()
    phone = re.sub(r"[\s().-]", "", phone)
    if email and not EMAIL.fullmatch(email):
        raise ContactError("email")
    if telegram and not TELEGRAM_CHAT.fullmatch(telegram):
        raise ContactError("telegram")
    if phone and not PHONE.fullmatch(phone):
        raise ContactError("phone")
    return Contact(email, telegram, phone)


def seal_contact(key: bytes, contact: Contact) -> bytes:
    data = json.dumps({"email": contact.email, "telegram": contact.telegram, "phone": contact.phone})
    return bytes(nacl.secret.SecretBox(key).encrypt(data.encode()))


def open_contact(key: bytes, sealed: bytes) -> Contact | None:
    """The contact, or None when it does not open with this key (a rotated or wrong key)."""
    try:
        data = json.loads(nacl.secret.SecretBox(key).decrypt(sealed))
    except (nacl.exceptions.CryptoError, ValueError):
        return None
    return Contact(str(data.get("email", "")), str(data.get("telegram", "")), str(data.get("phone", "")))


def set_contact(session: Session, staff_id: int, key: bytes, contact: Contact, now: datetime) -> None:
    """Store (or clear, when empty) a staff member's contact, sealed."""
    row = session.get(StaffContact, staff_id)
    if not contact.channels():
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = StaffContact(staff_id=staff_id)
        session.add(row)
    row.sealed = seal_contact(key, contact)
    row.channels = ",".join(contact.channels())
    row.updated_at = now


def contact_of(session: Session, staff_id: int, key: bytes) -> Contact | None:
    row = session.get(StaffContact, staff_id)
    return open_contact(key, row.sealed) if row is not None else None


# -- tokens ---------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ack_link(settings: Settings, token: str) -> str:
    return f"{settings.console_url}{ACK_PATH}{token}"


# -- alert text and sending -----------------------------------------------------------------


@lru_cache(maxsize=1)
def _texts() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONTENT / "notifications.yml").read_text(encoding="utf-8"))["on_call"]
    return data


def alert_text(kind: str, link: str, escalated: bool) -> str:
    """The one-line alert (SMS, Telegram, the e-mail's body): what happened and the link only."""
    texts = _texts()
    return (texts["escalated"] if escalated else "") + str(texts["text"][kind]).format(link=link)


def alert_subject(kind: str) -> str:
    return str(_texts()["subject"][kind])


def send_sms(settings: Settings, phone: str, text: str) -> None:
    """Twilio's Messages resource: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource"""
    if not settings.sms_configured:
        raise notify.NotifyError("SMS is not configured")
    url = f"{settings.twilio_api_url}/2010-04-01/Accounts/{settings.twilio_account_sid}/Messages.json"
    auth = (settings.twilio_account_sid or "", settings.twilio_auth_token or "")
    form = {"From": settings.oncall_sms_from or "", "To": phone, "Body": text}
    try:
        response = httpx.post(url, data=form, auth=auth, timeout=notify.TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise notify.NotifyError(f"{type(error).__name__} reaching Twilio") from None
    if response.status_code not in (200, 201):
        try:
            code = str(response.json().get("code", ""))
        except ValueError:
            code = ""
        raise notify.NotifyError(f"Twilio answered {response.status_code} {code}".strip())


def _send_email(settings: Settings, address: str, kind: str, text: str) -> None:
    body = text + "\n\n" + str(_texts()["email_footer"]) + "\n"
    notify.deliver_email(settings, (address,), alert_subject(kind), body)


def _send_telegram(settings: Settings, chat: str, kind: str, text: str) -> None:
    notify.post_telegram(settings, chat, text)


def _send_sms(settings: Settings, phone: str, kind: str, text: str) -> None:
    send_sms(settings, phone, text)


SENDERS: dict[str, Callable[[Settings, str, str, str], None]] = {
    "email": _send_email,
    "telegram": _send_telegram,
    "sms": _send_sms,
}


# -- the chain ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What a chain is about: an urgent report or a waiting hand-off (and its country)."""

    key: str  # "report:<uuid>" / "handoff:<id>"
    kind: str
    report_id: str | None
    handoff_id: int | None
    country: str | None


@dataclass(frozen=True)
class Planned:
    """A page written in this run, with its token (only in memory) to send after commit."""

    page_id: int
    staff_id: int
    kind: str
    token: str
    escalated: bool


@dataclass(frozen=True)
class EscalationCounts:
    paged: int = 0  # subjects paged for the first time
    escalated: int = 0  # subjects moved to a next step
    sent: int = 0  # pages that reached someone on at least one channel
    failed: int = 0  # pages that reached nobody
    exhausted: int = 0  # subjects whose chain has no one left


def report_subject(report: Report) -> Subject:
    return Subject(f"report:{report.id}", "report", report.id, None, report.country)


def handoff_subject(handoff: Handoff) -> Subject:
    return Subject(f"handoff:{handoff.id}", "handoff", None, handoff.id, None)


def open_subjects(session: Session, now: datetime) -> list[Subject]:
    """What needs someone: open urgent reports nobody has acted on yet (reports/response.py)
    and waiting hand-offs, from the last LOOKBACK (older ones predate the chain or lapsed)."""
    since = now - LOOKBACK
    reports = session.scalars(
        select(Report)
        .where(Report.priority == "urgent", Report.status != "closed", Report.created_at >= since)
        .where(~acted())
        .order_by(Report.created_at)
    )
    handoffs = session.scalars(
        select(Handoff).where(Handoff.state == "waiting", Handoff.requested_at >= since).order_by(Handoff.requested_at)
    )
    return [report_subject(r) for r in reports] + [handoff_subject(h) for h in handoffs]


def _pages(session: Session, subject: str) -> list[OnCallPage]:
    return list(session.scalars(select(OnCallPage).where(OnCallPage.subject == subject).order_by(OnCallPage.id)))


def _next_recipients(
    session: Session, subject: Subject, pages: list[OnCallPage], now: datetime
) -> tuple[str, list[int]]:
    """The next step's level and people: the next on call not yet paged, else every
    supervisor not yet paged; none when the chain is done."""
    paged = {page.staff_id for page in pages}
    if not any(page.level == "supervisor" for page in pages):
        for staff_id in on_call(session, now, subject.country):
            if staff_id not in paged:
                return "on_call", [staff_id]
        chiefs = [staff_id for staff_id in supervisors(session) if staff_id not in paged]
        if chiefs:
            return "supervisor", chiefs
    return "", []


def _due(pages: list[OnCallPage], settings: Settings, now: datetime) -> bool:
    """The latest step waited long enough for its acknowledgement, or reached nobody."""
    latest = max(page.step for page in pages)
    current = [page for page in pages if page.step == latest]
    if any(page.escalated_at is not None for page in current):
        return False  # escalated already, and nobody was left
    wait = timedelta(minutes=settings.oncall_ack_minutes)
    return all(_waited(page, wait, now) for page in current)


def _waited(page: OnCallPage, wait: timedelta, now: datetime) -> bool:
    """Sent and not acknowledged in time, sent to nobody, or never sent (its run died)."""
    if page.sent_at is None:
        return page.created_at + wait <= now
    return not page.channels or page.sent_at + wait <= now


def _write_pages(
    session: Session, subject: Subject, step: int, level: str, staff_ids: list[int], settings: Settings, now: datetime
) -> list[Planned]:
    planned = []
    for staff_id in staff_ids:
        token = secrets.token_urlsafe(32)
        page = OnCallPage(
            subject=subject.key,
            report_id=subject.report_id,
            handoff_id=subject.handoff_id,
            step=step,
            level=level,
            staff_id=staff_id,
            created_at=now,
            channels="",
            token_hash=token_hash(token),
            expires_at=now + timedelta(hours=settings.oncall_link_hours),
        )
        session.add(page)
        session.flush()
        planned.append(Planned(page.id, staff_id, subject.kind, token, step > 0))
    return planned


def plan(session: Session, settings: Settings, now: datetime) -> tuple[list[Planned], EscalationCounts]:
    """Write this run's pages (first pages and escalations) in one transaction."""
    planned: list[Planned] = []
    paged = escalated = exhausted = 0
    for subject in open_subjects(session, now):
        pages = _pages(session, subject.key)
        if any(page.acknowledged_at is not None for page in pages):
            continue
        if pages and not _due(pages, settings, now):
            continue
        level, staff_ids = _next_recipients(session, subject, pages, now)
        if pages:
            for page in pages:
                if page.escalated_at is None:
                    page.escalated_at = now
        if not staff_ids:
            exhausted += 1
            continue
        step = max((page.step for page in pages), default=-1) + 1
        planned += _write_pages(session, subject, step, level, staff_ids, settings, now)
        paged, escalated = paged + (not pages), escalated + bool(pages)
    return planned, EscalationCounts(paged=paged, escalated=escalated, exhausted=exhausted)


def _deliver(page: Planned, contact: Contact | None, settings: Settings) -> tuple[list[str], str | None]:
    """Send one page on each of the person's channels; (channels it went out on, problem)."""
    if contact is None or not contact.channels():
        return [], "no contact for alerts"
    text = alert_text(page.kind, ack_link(settings, page.token), page.escalated)
    went, problems = [], []
    for channel in contact.channels():
        try:
            SENDERS[channel](settings, contact.value(channel), page.kind, text)
            went.append(channel)
        except notify.NotifyError as error:  # an SMTP refusal names the recipient: never kept or logged
            problems.append(f"{channel}: {error}".replace(contact.value(channel), "***"))
        except Exception as error:  # a bug must not stop the other channels; its text may hold the address
            problems.append(f"{channel}: unexpected {type(error).__name__}")
    if problems:
        log.warning("page %s: %s", page.page_id, "; ".join(problems))
    return went, "; ".join(problems)[:ERROR_CHARS] or None


def send(
    engine: Engine, planned: list[Planned], settings: Settings, key: bytes | None, now: datetime
) -> tuple[int, int]:
    """Send the pages outside any transaction, then record what went; (sent, failed)."""
    with transaction(engine) as session:
        contacts = {page.staff_id: contact_of(session, page.staff_id, key) if key else None for page in planned}
    results = {page.page_id: _deliver(page, contacts[page.staff_id], settings) for page in planned}
    with transaction(engine) as session:
        for page_id, (went, problem) in results.items():
            row = session.get(OnCallPage, page_id)
            if row is not None:
                row.sent_at, row.channels, row.error = now, ",".join(went), problem
    sent = sum(1 for went, _ in results.values() if went)
    return sent, len(results) - sent


def _keyring_key(settings: Settings) -> bytes | None:
    from reports.keys import KeyringError, load_oncall_key  # the keyring module imports much: late

    try:
        return load_oncall_key(settings)
    except (KeyringError, ValueError) as error:
        log.error("on call: no contact key (%s): alerts reach nobody", error)
        return None


def escalate_due(engine: Engine, settings: Settings, now: datetime, key: bytes | None = None) -> EscalationCounts:
    """One run of the chain at `now`: first pages, escalations, sending. `key` is the on-call
    key (read from the keyring when there is something to send; without it nobody is reached,
    so the chain moves on to the supervisors, and the error says why)."""
    with transaction(engine) as session:
        planned, counts = plan(session, settings, now)
    if planned and key is None:
        key = _keyring_key(settings)
    sent, failed = send(engine, planned, settings, key, now)
    return EscalationCounts(counts.paged, counts.escalated, sent, failed, counts.exhausted)


# -- acknowledgement ------------------------------------------------------------------------

ACK_OUTCOMES = ("acknowledged", "unknown", "used", "expired", "not_on_call", "done_by_other")


@dataclass(frozen=True)
class AckView:
    """What the confirm page shows: the outcome (would-be, on GET) and the page's facts."""

    outcome: str
    page_id: int | None = None
    kind: str = ""
    report_id: str | None = None
    handoff_id: int | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None


def _find(session: Session, token: str, lock: bool = False) -> OnCallPage | None:
    if not TOKEN.fullmatch(token):
        return None
    query = select(OnCallPage).where(OnCallPage.token_hash == token_hash(token))
    return session.scalar(query.with_for_update() if lock else query)


def _country(session: Session, page: OnCallPage) -> str | None:
    report = session.get(Report, page.report_id) if page.report_id else None
    return report.country if report is not None else None


def _subject_ack(session: Session, page: OnCallPage) -> OnCallPage | None:
    query = select(OnCallPage).where(OnCallPage.subject == page.subject, OnCallPage.acknowledged_at.is_not(None))
    return session.scalar(query.order_by(OnCallPage.acknowledged_at).limit(1))


def _username(session: Session, staff_id: int | None) -> str | None:
    account = session.get(StaffAccount, staff_id) if staff_id is not None else None
    return account.username if account is not None else None


def check(
    session: Session, token: str, staff_id: int, now: datetime, lock: bool = False
) -> tuple[AckView, OnCallPage | None]:
    """What acknowledging would do (nothing is changed here)."""
    page = _find(session, token, lock)
    if page is None:
        return AckView("unknown"), None
    kind = page.subject.split(":", 1)[0]
    facts: dict[str, Any] = {
        "page_id": page.id,
        "kind": kind,
        "report_id": page.report_id,
        "handoff_id": page.handoff_id,
    }
    if page.acknowledged_at is not None:
        by = _username(session, page.acknowledged_by)
        return AckView("used", acknowledged_at=page.acknowledged_at, acknowledged_by=by, **facts), page
    if now >= page.expires_at:
        return AckView("expired", **facts), page
    if page.staff_id != staff_id and staff_id not in on_call(session, now, _country(session, page)):
        return AckView("not_on_call", **facts), page
    other = _subject_ack(session, page)
    if other is not None:
        by = _username(session, other.acknowledged_by)
        return AckView("done_by_other", acknowledged_at=other.acknowledged_at, acknowledged_by=by, **facts), page
    return AckView("acknowledged", **facts), page


def acknowledge(session: Session, token: str, staff_id: int, now: datetime) -> AckView:
    """Acknowledge the page of `token` as `staff_id` (row locked: a double click acknowledges
    once); the outcome says why not otherwise. The caller audits it in this transaction."""
    view, page = check(session, token, staff_id, now, lock=True)
    if view.outcome == "acknowledged" and page is not None:
        page.acknowledged_at, page.acknowledged_by = now, staff_id
        return replace(view, acknowledged_at=now, acknowledged_by=_username(session, staff_id))
    return view
