"""Four-eyes referrals (reports/referrals.py): a referral's state, the fields it shares and
the tipster's consent to share their contact, its sealed summary and the hash an approval
names, who decided, how and when it was sent, and the institution's answer. Rows made before
this flow keep their meaning with state "recorded" (a referral noted, nothing sent).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAFF_COLUMNS = ("decided_by", "sent_by", "outcome_by")


def _staff(name: str) -> sa.Column[int]:
    return sa.Column(
        name,
        sa.Integer(),
        sa.ForeignKey("staff_accounts.id", name=f"fk_referrals_{name}_staff_accounts"),
        nullable=True,
    )


def upgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("state", sa.String(20), nullable=False, server_default="recorded"))
        batch.add_column(sa.Column("shared_fields", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("contact_consent_how", sa.String(20), nullable=True))
        batch.add_column(sa.Column("summary_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("content_hash", sa.String(64), nullable=True))
        batch.add_column(_staff("decided_by"))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("approved_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("decision_note_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("sent_via", sa.String(10), nullable=True))
        batch.add_column(sa.Column("sent_to", sa.String(254), nullable=True))
        batch.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(_staff("sent_by"))
        batch.add_column(sa.Column("outcome", sa.String(20), nullable=True))
        batch.add_column(sa.Column("outcome_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("outcome_note_sealed", sa.LargeBinary(), nullable=True))
        batch.add_column(_staff("outcome_by"))
        batch.add_column(sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_referrals_state"), "referrals", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_referrals_state"), table_name="referrals")
    with op.batch_alter_table("referrals") as batch:
        for name in (
            "outcome_at",
            "outcome_by",
            "outcome_note_sealed",
            "outcome_on",
            "outcome",
            "sent_by",
            "sent_at",
            "sent_to",
            "sent_via",
            "decision_note_sealed",
            "approved_hash",
            "decided_at",
            "decided_by",
            "content_hash",
            "submitted_at",
            "summary_sealed",
            "contact_consent_how",
            "shared_fields",
            "state",
        ):
            if name in STAFF_COLUMNS:
                batch.drop_constraint(f"fk_referrals_{name}_staff_accounts", type_="foreignkey")
            batch.drop_column(name)
