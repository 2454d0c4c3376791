"""Participants' calls for a moderator ("call a moderator"), pending until a moderator takes them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_help_requests"
down_revision = "0009_audit_details"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "help_requests",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("room_id", sa.String(32), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("participant_name", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("taken_at", sa.Float(), nullable=True),
        sa.Column("taken_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    )
    op.create_index("ix_help_requests_room_pending", "help_requests", ["room_id", "taken_at"])


def downgrade() -> None:
    op.drop_index("ix_help_requests_room_pending", "help_requests")
    op.drop_table("help_requests")
