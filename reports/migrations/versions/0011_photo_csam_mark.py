"""A report photo marked by a supervisor as child sexual abuse material: who, with which
role, and when. The mark cannot be cleared or changed (a trigger refuses it), so a photo
once hidden stays hidden whatever a later bug or hand-typed UPDATE tries.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT = "a photo marked as child sexual abuse material keeps its mark"
CHANGED = (
    "OLD.csam_marked_at IS NOT NULL AND (NEW.csam_marked_at IS DISTINCT FROM OLD.csam_marked_at"
    " OR NEW.csam_marked_by IS DISTINCT FROM OLD.csam_marked_by"
    " OR NEW.csam_marked_role IS DISTINCT FROM OLD.csam_marked_role)"
)


def upgrade() -> None:
    with op.batch_alter_table("report_attachments") as batch:
        batch.add_column(sa.Column("csam_marked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("csam_marked_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("csam_marked_role", sa.String(16), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION report_attachments_csam_kept() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF {CHANGED} THEN RAISE EXCEPTION '{KEPT}'; END IF; RETURN NEW; END; $$"
        )
        op.execute(
            "CREATE TRIGGER report_attachments_csam_kept BEFORE UPDATE ON report_attachments "
            "FOR EACH ROW EXECUTE FUNCTION report_attachments_csam_kept()"
        )
    else:
        sqlite_changed = CHANGED.replace("IS DISTINCT FROM", "IS NOT")
        op.execute(
            "CREATE TRIGGER report_attachments_csam_kept BEFORE UPDATE ON report_attachments "
            f"WHEN {sqlite_changed} BEGIN SELECT RAISE(ABORT, '{KEPT}'); END"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS report_attachments_csam_kept" + _on_table())
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS report_attachments_csam_kept()")
    with op.batch_alter_table("report_attachments") as batch:
        batch.drop_column("csam_marked_role")
        batch.drop_column("csam_marked_by")
        batch.drop_column("csam_marked_at")


def _on_table() -> str:
    return " ON report_attachments" if op.get_bind().dialect.name == "postgresql" else ""
