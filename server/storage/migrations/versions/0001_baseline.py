"""Baseline: the schema as the last release before migrations created it (``create_all`` and additive upgrades).

A database made by that release has these tables and no ``alembic_version``: ``Storage.create_schema`` brings it up
to this point with that release's additive upgrade (``baseline_metadata``: these definitions, frozen, not today's
models), stamps it with this revision, then runs the steps after it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def _room() -> sa.ForeignKey:
    return sa.ForeignKey("rooms.id", ondelete="CASCADE")


def baseline_metadata() -> sa.MetaData:
    m = sa.MetaData()
    sa.Table(
        "rooms", m,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("max_participants", sa.Integer(), nullable=False),
    )
    sa.Table(
        "ai_messages", m,
        sa.Column("message_id", sa.String(80), primary_key=True),
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("reviewed_at", sa.Float(), nullable=True),
        sa.Column("statements", sa.JSON(), nullable=True),
        sa.Index("ix_ai_messages_room_ts", "room_id", "ts"),
    )
    sa.Table(
        "captions", m,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("utterance_id", sa.String(64), nullable=False, unique=True),  # across all rooms: see 0002
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("speaker_name", sa.String(64), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Index("ix_captions_room_start", "room_id", "start"),
    )
    sa.Table(
        "deliberations", m,
        sa.Column("room_id", sa.String(32), _room(), primary_key=True),
        sa.Column("template_id", sa.String(40), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("ai_messages", sa.String(16), nullable=True),
    )
    sa.Table(
        "llm_calls", m,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(40), nullable=True),
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Index("ix_llm_calls_call_id", "call_id", unique=True),
        sa.Index("ix_llm_calls_room_id", "room_id"),
    )
    sa.Table(
        "participants", m,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("consented_at", sa.Float(), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("left_at", sa.Float(), nullable=True),
        sa.Index("ix_participants_room_id", "room_id"),
    )
    sa.Table(
        "safety_flags", m,
        sa.Column("flag_id", sa.String(120), primary_key=True),
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("utterance_id", sa.String(64), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("speaker_name", sa.String(64), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detected_by", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Index("ix_safety_flags_room_id", "room_id"),
    )
    sa.Table(
        "statements", m,
        sa.Column("statement_id", sa.String(80), primary_key=True),
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(32), nullable=True),
        sa.Column("author_name", sa.String(64), nullable=False),
        sa.Column("ai_generated", sa.Boolean(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("edited_at", sa.Float(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Index("ix_statements_room", "room_id", "created_at"),
    )
    sa.Table(
        "summary_flags", m,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("room_id", sa.String(32), _room(), nullable=False),
        sa.Column("message_id", sa.String(120), nullable=False),
        sa.Column("point", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Index("ix_summary_flags_room_id", "room_id"),
        sa.Index("ux_summary_flags_once", "message_id", "point", "participant_id", unique=True),
    )
    sa.Table(
        "votes", m,
        sa.Column("statement_id", sa.String(80), sa.ForeignKey("statements.statement_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("participant_id", sa.String(32), primary_key=True),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
    )
    return m


def upgrade() -> None:
    baseline_metadata().create_all(op.get_bind())


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind())
