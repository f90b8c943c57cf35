"""WhatsApp's 24-hour window: when each person last wrote (the time only, under the
pseudonym), staff messages held until the person writes again (sealed with the gateway
key), and how each staff message of a hand-off went (its path).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_last_inbound",
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_channel_last_inbound")),
    )
    op.create_table(
        "channel_held_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_held_messages")),
    )
    op.create_index(op.f("ix_channel_held_messages_pseudonym"), "channel_held_messages", ["pseudonym"])
    op.create_index(op.f("ix_channel_held_messages_held_at"), "channel_held_messages", ["held_at"])
    with op.batch_alter_table("handoff_messages") as batch:
        batch.add_column(sa.Column("path", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("handoff_messages") as batch:
        batch.drop_column("path")
    op.drop_index(op.f("ix_channel_held_messages_held_at"), table_name="channel_held_messages")
    op.drop_index(op.f("ix_channel_held_messages_pseudonym"), table_name="channel_held_messages")
    op.drop_table("channel_held_messages")
    op.drop_table("channel_last_inbound")
