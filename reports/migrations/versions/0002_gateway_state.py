"""Channel gateway state: processed deliveries, pending messages, opt-outs, Telegram
message ids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "channel_deliveries",
        sa.Column("delivery_hash", sa.String(64), nullable=False),
        _at("received_at"),
        sa.PrimaryKeyConstraint("delivery_hash", name=op.f("pk_channel_deliveries")),
    )
    op.create_index(op.f("ix_channel_deliveries_received_at"), "channel_deliveries", ["received_at"])
    op.create_table(
        "channel_pending_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        _at("received_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_pending_messages")),
    )
    op.create_index(op.f("ix_channel_pending_messages_pseudonym"), "channel_pending_messages", ["pseudonym"])
    op.create_index(op.f("ix_channel_pending_messages_received_at"), "channel_pending_messages", ["received_at"])
    op.create_table(
        "channel_opt_outs",
        sa.Column("pseudonym", sa.String(64), nullable=False),
        _at("opted_out_at"),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_channel_opt_outs")),
    )
    op.create_table(
        "channel_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(32), nullable=False),
        _at("sent_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_messages")),
    )
    op.create_index(op.f("ix_channel_messages_pseudonym"), "channel_messages", ["pseudonym"])
    op.create_index(op.f("ix_channel_messages_sent_at"), "channel_messages", ["sent_at"])


def downgrade() -> None:
    for table in ("channel_messages", "channel_opt_outs", "channel_pending_messages", "channel_deliveries"):
        op.drop_table(table)
