"""Reports, their additions, status history, tipster messages, lookup attempts and staff
notifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _report_id(table: str) -> list[SchemaItem]:
    return [
        sa.Column("report_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f(f"fk_{table}_report_id_reports"), ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("lookup_hash", sa.String(64), nullable=False),
        sa.Column("tipster_public_key", sa.LargeBinary(32), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.Column("status", sa.String(20), nullable=False),
        _at("closed_at", nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("minors", sa.Boolean(), nullable=True),
        sa.Column("danger_now", sa.Boolean(), nullable=True),
        sa.Column("people_count", sa.Integer(), nullable=True),
        sa.Column("recent", sa.Boolean(), nullable=True),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("triage_score", sa.Integer(), nullable=False),
        sa.Column("triage_reasons", sa.JSON(), nullable=False),
        sa.Column("sealed_body", sa.LargeBinary(), nullable=False),
        sa.Column("contact_consent", sa.Boolean(), nullable=False),
        sa.Column("contact_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("reporter_ref", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("lookup_hash", name=op.f("uq_reports_lookup_hash")),
    )
    for column in ("closed_at", "priority", "reporter_ref", "status"):
        op.create_index(op.f(f"ix_reports_{column}"), "reports", [column])

    op.create_table(
        "report_additions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_report_id("report_additions"),
        _at("created_at"),
        sa.Column("sealed_body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_additions")),
    )
    op.create_table(
        "status_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_report_id("status_changes"),
        _at("at"),
        sa.Column("old_status", sa.String(20), nullable=True),
        sa.Column("new_status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("note_sealed", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_changes")),
    )
    op.create_table(
        "tipster_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_report_id("tipster_messages"),
        _at("created_at"),
        sa.Column("sealed_for_tipster", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_for_staff", sa.LargeBinary(), nullable=True),
        sa.Column("author", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tipster_messages")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_report_id("notifications"),
        sa.Column("channel", sa.String(20), nullable=False),
        _at("created_at"),
        _at("sent_at", nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    for table in ("report_additions", "status_changes", "tipster_messages", "notifications"):
        op.create_index(op.f(f"ix_{table}_report_id"), table, ["report_id"])
    op.create_index(op.f("ix_notifications_status"), "notifications", ["status"])

    op.create_table(
        "follow_up_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_ref", sa.String(64), nullable=False),
        _at("attempted_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_attempts")),
    )
    op.create_index(op.f("ix_follow_up_attempts_sender_ref"), "follow_up_attempts", ["sender_ref"])
    op.create_index(op.f("ix_follow_up_attempts_attempted_at"), "follow_up_attempts", ["attempted_at"])


def downgrade() -> None:
    for table in ("follow_up_attempts", "notifications", "tipster_messages", "status_changes", "report_additions"):
        op.drop_table(table)
    op.drop_table("reports")
