"""Audit events carry a detail (which AI message a moderator approved, edited or rejected, for example), so that
every moderator action can be shown in the review: who, what, when."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_audit_details"
down_revision = "0008_caption_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as events:
        events.add_column(sa.Column("detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as events:
        events.drop_column("detail")
