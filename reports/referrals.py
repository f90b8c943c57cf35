"""Four-eyes referrals of a report to an institution of the directory: the rules, apart from
any web page, so they hold whoever calls them.

    draft ──submit──▶ pending ──approve──▶ approved ──send (email | pdf)──▶ sent ──outcome──▶ answered
      ▲                  │
      └──edit── rejected ◀┘ (reject)

The author chooses the report's fields to share and writes (or keeps) the generated summary;
submitting freezes it and records a hash of exactly what was submitted. Only a supervisor who
is not the author can approve, and approval names that hash: nothing is sent unless the
content still hashes to it (an edit after a rejection goes back to draft and needs a new
approval). The tipster's contact is shared only when they consented to sharing it with the
institution, and staff recorded how: the report form's consent covers being written to by
the line, not by an institution. Rows from before this flow have state "recorded".

Everything written here about a report (summary, rejection and outcome notes) is sealed to
the staff key like the report itself; the hash is taken over sealed bytes, so it reveals
nothing about the text.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

from nacl.public import PrivateKey
from sqlalchemy.orm import Session

from reports import crypto
from reports.keys import Keys
from reports.models import Referral, Report, StaffAccount

STATES = ("recorded", "draft", "pending", "approved", "rejected", "sent", "answered")
EDITABLE = ("draft", "rejected")
FIELDS = ("country", "kind", "minors", "danger_now", "what", "place", "when", "people", "additions", "contact")
CONSENT_WAYS = ("chat", "phone", "in_person", "written")  # how the tipster agreed to share their contact
SEND_PATHS = ("email", "pdf")
OUTCOMES = ("accepted", "declined", "no_answer", "other")
APPROVER_ROLES = ("supervisor", "admin")
MAX_SUMMARY_CHARS = 8000  # the report text (4000) and more; what a form post can carry (console MAX_BODY 64 KiB)
MAX_NOTE_CHARS = 300


class ReferralError(ValueError):
    """A step the rules refuse; `reason` names the Spanish message (content/console.yml
    referrals.errors) and `status` the HTTP answer."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Invalid(ReferralError):
    status = 400


class NotAllowed(ReferralError):
    status = 403


class WrongState(ReferralError):
    status = 409


def _seal(keys: Keys, text: str) -> bytes:
    return crypto.seal_text(keys.public_key, text)


def content_hash(referral: Referral) -> str:
    """SHA-256 of what an approval covers: institution, shared fields, consent and the sealed
    summary's bytes (a new seal, even of the same words, is a new content)."""
    summary = hashlib.sha256(referral.summary_sealed or b"").hexdigest()
    content = {
        "institution": referral.institution_key,
        "fields": sorted(referral.shared_fields or []),
        "consent": referral.contact_consent_how,
        "summary": summary,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def check_fields(report: Report, fields: list[str], consent: str | None) -> list[str]:
    """The fields to share, in FIELDS order; the contact only with a stored contact and a
    recorded way of consent (Invalid otherwise)."""
    unknown = [name for name in fields if name not in FIELDS]
    if unknown:
        raise Invalid("bad_field")
    if consent is not None and consent not in CONSENT_WAYS:
        raise Invalid("bad_consent")
    if "contact" in fields:
        if report.contact_sealed is None:
            raise Invalid("no_contact")
        if consent is None:
            raise Invalid("contact_without_consent")
    return [name for name in FIELDS if name in fields]


def contact_leaks(summary: str, referral: Referral, contact_address: str | None) -> bool:
    """True when the summary carries the tipster's address while the contact is not shared."""
    if not contact_address or "contact" in (referral.shared_fields or []):
        return False
    digits = "".join(ch for ch in contact_address if ch.isalnum())
    typed = "".join(ch for ch in summary if ch.isalnum())
    return contact_address in summary or (len(digits) >= 6 and digits in typed)


def draft(
    session: Session,
    report: Report,
    institution_key: str,
    country: str | None,
    fields: list[str],
    consent: str | None,
    summary: str,
    author: StaffAccount,
    keys: Keys,
    now: datetime,
) -> Referral:
    """A new draft with its generated summary, for the author to read and edit."""
    shared = check_fields(report, fields, consent)
    _check_summary(summary)
    referral = Referral(
        report_id=report.id,
        institution_key=institution_key,
        country=country,
        referred_at=now,
        staff_id=author.id,
        state="draft",
        shared_fields=shared,
        contact_consent_how=consent if "contact" in shared else None,
        summary_sealed=_seal(keys, summary),
    )
    session.add(referral)
    session.flush()
    return referral


def _check_summary(summary: str) -> None:
    if not summary.strip():
        raise Invalid("empty_summary")
    if len(summary) > MAX_SUMMARY_CHARS:
        raise Invalid("long_summary")


def _author_only(referral: Referral, account: StaffAccount) -> None:
    if referral.staff_id != account.id:
        raise NotAllowed("not_author")


def edit(
    session: Session,
    referral: Referral,
    summary: str,
    account: StaffAccount,
    keys: Keys,
    contact_address: str | None,
    now: datetime,
) -> None:
    """The author's new summary (only before submitting, or after a rejection: the draft
    then starts over and any earlier decision is cleared)."""
    _author_only(referral, account)
    if referral.state not in EDITABLE:
        raise WrongState("frozen")
    _check_summary(summary)
    if contact_leaks(summary, referral, contact_address):
        raise Invalid("contact_in_summary")
    referral.summary_sealed = _seal(keys, summary)
    referral.state = "draft"
    _clear_decision(referral)
    session.flush()


def _clear_decision(referral: Referral) -> None:
    referral.submitted_at = None
    referral.content_hash = None
    referral.decided_by = None
    referral.decided_at = None
    referral.approved_hash = None
    referral.decision_note_sealed = None


def submit(session: Session, referral: Referral, account: StaffAccount, now: datetime) -> None:
    """Freezes the draft for approval and records the hash of what was submitted."""
    _author_only(referral, account)
    if referral.state != "draft":
        raise WrongState("not_draft")
    referral.state = "pending"
    referral.submitted_at = now
    referral.content_hash = content_hash(referral)
    session.flush()


def decide(
    session: Session,
    referral: Referral,
    account: StaffAccount,
    approve: bool,
    seen_hash: str,
    note: str,
    keys: Keys,
    now: datetime,
) -> None:
    """A supervisor's decision on the content they saw (`seen_hash`). The author never
    decides on their own referral, whatever their role."""
    if account.role not in APPROVER_ROLES:
        raise NotAllowed("not_supervisor")
    if referral.staff_id == account.id:
        raise NotAllowed("own_referral")
    if referral.state != "pending":
        raise WrongState("not_pending")
    current = content_hash(referral)
    if current != referral.content_hash or seen_hash != current:
        raise WrongState("changed")
    if len(note) > MAX_NOTE_CHARS:
        raise Invalid("long_note")
    referral.state = "approved" if approve else "rejected"
    referral.decided_by = account.id
    referral.decided_at = now
    referral.approved_hash = current if approve else None
    referral.decision_note_sealed = _seal(keys, note) if note.strip() else None
    session.flush()


def check_sendable(referral: Referral) -> None:
    """Approved, and still exactly the content approved: else nothing leaves (NotAllowed)."""
    if referral.state != "approved" or not referral.approved_hash:
        raise NotAllowed("not_approved")
    if content_hash(referral) != referral.approved_hash:
        raise NotAllowed("changed_since_approval")


def mark_sent(
    session: Session, referral: Referral, via: str, to: str | None, account: StaffAccount, now: datetime
) -> None:
    """Records the send (checked again on the row the caller locked)."""
    if via not in SEND_PATHS:
        raise Invalid("bad_path")
    check_sendable(referral)
    referral.state = "sent"
    referral.sent_via = via
    referral.sent_to = to
    referral.sent_at = now
    referral.sent_by = account.id
    session.flush()


def record_outcome(
    session: Session,
    referral: Referral,
    outcome: str,
    note: str,
    answered_on: date | None,
    account: StaffAccount,
    keys: Keys,
    now: datetime,
) -> None:
    """The institution's answer as staff recorded it: once sent, on a day between the send
    and today."""
    if referral.state != "sent" or referral.sent_at is None:
        raise WrongState("not_sent")
    if outcome not in OUTCOMES:
        raise Invalid("bad_outcome")
    if answered_on is None or answered_on > now.date() or answered_on < referral.sent_at.date():
        raise Invalid("bad_date")
    if len(note) > MAX_NOTE_CHARS:
        raise Invalid("long_note")
    referral.state = "answered"
    referral.outcome = outcome
    referral.outcome_on = answered_on
    referral.outcome_note_sealed = _seal(keys, note) if note.strip() else None
    referral.outcome_by = account.id
    referral.outcome_at = now
    session.flush()


def opened_text(private_key: PrivateKey, blob: bytes | None) -> str | None:
    return crypto.unseal_text(private_key, blob) if blob else None
