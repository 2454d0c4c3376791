"""Rooms can be ended by a moderator (or with their deliberation): ``rooms.ended_at`` says when; nobody joins an
ended room."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_rooms_ended"
down_revision = "0010_help_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rooms") as rooms:
        rooms.add_column(sa.Column("ended_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rooms") as rooms:
        rooms.drop_column("ended_at")
