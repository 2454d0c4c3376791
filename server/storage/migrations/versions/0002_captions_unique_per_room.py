"""Captions are unique per (room, utterance id) instead of across all rooms.

An utterance id is chosen by its producer (the recorder's idempotency key); unique across all rooms, one room's id
could silently drop another room's caption. SQLite cannot drop a constraint, so there the table is copied into its
new shape (rows kept); PostgreSQL drops the old constraint by the name it has. A database already in the new shape
(made by ``create_all`` from the release that introduced it, before migrations) is left as it is.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision = "0002_captions_unique_per_room"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

NEW = "uq_captions_room_utterance"


def _captions(*constraints: SchemaItem) -> sa.Table:
    return sa.Table(
        "captions", sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("utterance_id", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(32), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("speaker_name", sa.String(64), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Index("ix_captions_room_start", "room_id", "start"),
        *constraints,
    )


def _unique_constraints() -> list[Any]:
    return list(sa.inspect(op.get_bind()).get_unique_constraints("captions"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("captions", copy_from=_captions(sa.UniqueConstraint("room_id", "utterance_id",
                                                                                      name=NEW)),
                                  recreate="always"):
            pass
        return
    existing = _unique_constraints()
    for constraint in existing:
        if constraint["column_names"] == ["utterance_id"]:
            op.drop_constraint(str(constraint["name"]), "captions", type_="unique")
    if not any(c["name"] == NEW for c in existing):
        op.create_unique_constraint(NEW, "captions", ["room_id", "utterance_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("captions", copy_from=_captions(sa.UniqueConstraint("utterance_id")),
                                  recreate="always"):
            pass
        return
    op.drop_constraint(NEW, "captions", type_="unique")
    op.create_unique_constraint("captions_utterance_id_key", "captions", ["utterance_id"])
