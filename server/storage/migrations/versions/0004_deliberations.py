"""Deliberations: many rooms run as one, with an organiser, assigned moderators and single-use moderator invites.

The per-room template table that was called ``deliberations`` becomes ``room_plans`` (its rows are kept), and rooms
gain the deliberation whose round formed them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_deliberations"
down_revision = "0003_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("deliberations", "room_plans")
    op.create_table(
        "deliberations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("organiser_id", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("background", sa.Text(), nullable=False),
        sa.Column("template_id", sa.String(40), nullable=False),
        sa.Column("group_min", sa.Integer(), nullable=False),
        sa.Column("group_max", sa.Integer(), nullable=False),
        sa.Column("ai_messages", sa.String(16), nullable=False),
        sa.Column("signup_questions", sa.JSON(), nullable=False),
        sa.Column("mix_question", sa.String(40), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_deliberations_organiser_id", "deliberations", ["organiser_id"])
    op.create_table(
        "deliberation_moderators",
        sa.Column("deliberation_id", sa.String(32), sa.ForeignKey("deliberations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_deliberation_moderators_user_id", "deliberation_moderators", ["user_id"])
    op.create_table(
        "moderator_invites",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("deliberation_id", sa.String(32), sa.ForeignKey("deliberations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("used_by", sa.String(32), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    )
    op.create_index("ix_moderator_invites_deliberation_id", "moderator_invites", ["deliberation_id"])
    with op.batch_alter_table("rooms") as rooms:
        rooms.add_column(sa.Column("deliberation_id", sa.String(32), nullable=True))
        rooms.create_foreign_key("fk_rooms_deliberation_id", "deliberations", ["deliberation_id"], ["id"],
                                 ondelete="CASCADE")
        rooms.create_index("ix_rooms_deliberation_id", ["deliberation_id"])


def downgrade() -> None:
    with op.batch_alter_table("rooms") as rooms:
        rooms.drop_index("ix_rooms_deliberation_id")
        rooms.drop_constraint("fk_rooms_deliberation_id", type_="foreignkey")
        rooms.drop_column("deliberation_id")
    op.drop_table("moderator_invites")
    op.drop_table("deliberation_moderators")
    op.drop_table("deliberations")
    op.rename_table("room_plans", "deliberations")
