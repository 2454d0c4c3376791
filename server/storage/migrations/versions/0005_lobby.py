"""The lobby: people who arrived on a deliberation's link, with their consent, sign-up answers and assigned room."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_lobby"
down_revision = "0004_deliberations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lobby_participants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("deliberation_id", sa.String(32), sa.ForeignKey("deliberations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("consented_at", sa.Float(), nullable=False),
        sa.Column("notice_version", sa.String(32), nullable=False),
        sa.Column("arrived_at", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("room_id", sa.String(32), sa.ForeignKey("rooms.id", ondelete="SET NULL"), nullable=True),
        sa.Column("room_name", sa.String(64), nullable=True),
        sa.Column("assigned_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_lobby_participants_deliberation_status", "lobby_participants",
                    ["deliberation_id", "status", "arrived_at"])
    op.create_index("ix_lobby_participants_room_id", "lobby_participants", ["room_id"])


def downgrade() -> None:
    op.drop_table("lobby_participants")
