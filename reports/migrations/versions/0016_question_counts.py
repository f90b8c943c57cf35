"""Answers given per topic, month and country (counts only, for the public figures).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "question_counts",
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", "country", "topic", name=op.f("pk_question_counts")),
    )


def downgrade() -> None:
    op.drop_table("question_counts")
