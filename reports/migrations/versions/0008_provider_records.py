"""Provider records to delete: Twilio message and media SIDs (no number, no text), deleted
through Twilio's API once a message is answered.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("media_id", sa.String(64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_records")),
        sa.UniqueConstraint("channel", "message_id", "media_id", name=op.f("uq_provider_records_channel")),
    )
    op.create_index(op.f("ix_provider_records_due_at"), "provider_records", ["due_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_records_due_at"), table_name="provider_records")
    op.drop_table("provider_records")
