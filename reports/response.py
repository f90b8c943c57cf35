"""A report's first staff action, for the queue's response deadlines and the statistics:
the earliest status change away from "received", note, referral, message to the tipster or
assignment. Plain columns only (nothing is unsealed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from reports.models import CaseAssignment, CaseNote, Referral, Report, StatusChange, TipsterMessage

# (table, its report column, its time column, an extra condition or None)
ACTIONS = (
    (StatusChange, StatusChange.report_id, StatusChange.at, StatusChange.new_status != "received"),
    (CaseNote, CaseNote.report_id, CaseNote.created_at, None),
    (Referral, Referral.report_id, Referral.referred_at, None),
    (TipsterMessage, TipsterMessage.report_id, TipsterMessage.created_at, None),
    (CaseAssignment, CaseAssignment.report_id, CaseAssignment.assigned_at, None),
)


def acted() -> ColumnElement[bool]:
    """SQL: staff did something on the report (for the queue's overdue test)."""
    clauses = []
    for _, report_column, _, extra in ACTIONS:
        condition = report_column == Report.id
        # correlated to reports only: the queue also joins case_assignments
        clauses.append(exists().where(condition if extra is None else condition & extra).correlate(Report))
    return or_(*clauses)


def first_actions(session: Session) -> dict[str, datetime]:
    """Report id -> the time of its first staff action, for every report acted on."""
    first: dict[str, datetime] = {}
    for _, report_column, at_column, extra in ACTIONS:
        query = select(report_column, at_column)
        for report_id, at in session.execute(query if extra is None else query.where(extra)):
            if report_id not in first or at < first[report_id]:
                first[report_id] = at
    return first
