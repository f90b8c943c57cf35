"""Services directory: staff corrections with four-eyes approval.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_corrections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(100), nullable=False),
        sa.Column("field", sa.String(20), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["staff_accounts.id"], name=op.f("fk_service_corrections_proposed_by_staff_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["staff_accounts.id"], name=op.f("fk_service_corrections_decided_by_staff_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_corrections")),
    )
    op.create_index(op.f("ix_service_corrections_service_id"), "service_corrections", ["service_id"])
    op.create_index(op.f("ix_service_corrections_state"), "service_corrections", ["state"])


def downgrade() -> None:
    op.drop_table("service_corrections")
