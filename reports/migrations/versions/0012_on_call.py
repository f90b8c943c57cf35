"""On call: shifts (who, when, which countries), staff contacts for alerts (sealed with the
on-call key) and pages (one alert to one person at one step of the escalation chain, its
acknowledge token kept only as a hash).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _staff_fk(table: str, column: str = "staff_id", cascade: bool = True) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        ["staff_accounts.id"],
        name=op.f(f"fk_{table}_{column}_staff_accounts"),
        ondelete="CASCADE" if cascade else None,
    )


def upgrade() -> None:
    op.create_table(
        "on_call_shifts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _staff_fk("on_call_shifts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_on_call_shifts")),
    )
    for column in ("staff_id", "starts_at", "ends_at"):
        op.create_index(op.f(f"ix_on_call_shifts_{column}"), "on_call_shifts", [column])
    op.create_table(
        "staff_contacts",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("channels", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _staff_fk("staff_contacts"),
        sa.PrimaryKeyConstraint("staff_id", name=op.f("pk_staff_contacts")),
    )
    op.create_table(
        "on_call_pages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject", sa.String(50), nullable=False),
        sa.Column("report_id", sa.String(36), nullable=True),
        sa.Column("handoff_id", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(12), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channels", sa.String(40), nullable=False),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_on_call_pages_report_id_reports"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["handoff_id"], ["handoffs.id"], name=op.f("fk_on_call_pages_handoff_id_handoffs"), ondelete="CASCADE"
        ),
        _staff_fk("on_call_pages"),
        _staff_fk("on_call_pages", "acknowledged_by", cascade=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_on_call_pages")),
        sa.UniqueConstraint("subject", "step", "staff_id", name=op.f("uq_on_call_pages_subject")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_on_call_pages_token_hash")),
    )
    for column in ("subject", "report_id", "handoff_id", "staff_id", "escalated_at"):
        op.create_index(op.f(f"ix_on_call_pages_{column}"), "on_call_pages", [column])


def downgrade() -> None:
    op.drop_table("on_call_pages")
    op.drop_table("staff_contacts")
    op.drop_table("on_call_shifts")
