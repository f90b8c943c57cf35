"""The staff console's Prometheus metrics (served by reports.metrics on HOTLINE_METRICS_PORT).

Labels: login outcomes and the audit log's action names (a fixed list: anything else counts
as "other"); never a username, an account, a case or a path."""

from __future__ import annotations

from prometheus_client import Counter

LOGIN_OUTCOMES = ("ok", "failed")
STAFF_ACTIONS = (
    "account_created",
    "account_disabled",
    "account_enabled",
    "audit_viewed",
    "case_assigned",
    "case_unassigned",
    "export",
    "fact_confirmed",
    "facts_exported",
    "forbidden",
    "handoff_message",
    "handoff_message_failed",
    "handoff_returned",
    "handoff_taken",
    "handoff_viewed",
    "login",
    "login_failed",
    "logout",
    "note_added",
    "password_change_failed",
    "password_changed",
    "password_reset",
    "photo_csam_marked",
    "photo_hidden_refused",
    "photo_mark_repeated",
    "photo_not_found",
    "photo_unreadable",
    "photo_viewed",
    "referral_approved",
    "referral_drafted",
    "referral_edited",
    "referral_outcome",
    "referral_pdf_downloaded",
    "referral_refused",
    "referral_rejected",
    "referral_self_decision_refused",
    "referral_send_failed",
    "referral_sent",
    "referral_submitted",
    "report_referred",  # before the four-eyes referrals (audit entries already written)
    "report_viewed",
    "service_correction_approved",
    "service_correction_invalid",
    "service_correction_own_refused",
    "service_correction_proposed",
    "service_correction_rejected",
    "service_corrections_exported",
    "session_expired",
    "status_changed",
    "tipster_contact_failed",
    "tipster_contacted",
    "tipster_message",
    "totp_enrolled",
    "totp_reset",
)

LOGINS = Counter("hotline_console_logins", "Login steps: ok (signed in) or failed (password or code)", ["outcome"])
ERRORS = Counter("hotline_console_errors", "Pages answered 500 (a bug or the database)")
STAFF_ACTION_COUNT = Counter("hotline_console_staff_actions", "Audit log entries written, by action", ["action"])

for _outcome in LOGIN_OUTCOMES:
    LOGINS.labels(_outcome)
for _action in (*STAFF_ACTIONS, "other"):
    STAFF_ACTION_COUNT.labels(_action)


def staff_action(action: str) -> None:
    STAFF_ACTION_COUNT.labels(action if action in STAFF_ACTIONS else "other").inc()
