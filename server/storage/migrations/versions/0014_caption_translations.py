"""Caption translations: each final caption's machine translation into each language its room read
(``caption_translations``, one row per utterance and language)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_caption_translations"
down_revision = "0013_cross_pollination"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "caption_translations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("room_id", sa.String(32), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("utterance_id", sa.String(64), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("source_language", sa.String(16), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("backend", sa.String(120), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.UniqueConstraint("room_id", "utterance_id", "language", name="uq_caption_translations"),
    )
    op.create_index("ix_caption_translations_room_id", "caption_translations", ["room_id"])


def downgrade() -> None:
    op.drop_index("ix_caption_translations_room_id", "caption_translations")
    op.drop_table("caption_translations")
