"""SQLAlchemy table definitions."""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RoomRow(Base):
    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    max_participants: Mapped[int] = mapped_column(Integer)


class DeliberationRow(Base):
    """The template a room's facilitator runs (rooms without a row have no facilitator)."""

    __tablename__ = "deliberations"

    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(40))
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "direct": AI messages post at once; "approve": they wait for a moderator. NULL (older rows): direct.
    ai_messages: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AIMessageRow(Base):
    """Every message the AI facilitator posted: shown to late joiners and kept for the organisers' review."""

    __tablename__ = "ai_messages"
    __table_args__ = (Index("ix_ai_messages_room_ts", "room_id", "ts"),)

    message_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    ts: Mapped[float] = mapped_column(Float)
    event: Mapped[dict[str, object]] = mapped_column(JSON)
    # "posted" (in the room), "pending" (waiting for a moderator) or "rejected". NULL (older rows): posted.
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reviewed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # AI-proposed statements a pending message announces (they wait with it): statement.added events as JSON.
    statements: Mapped[list[dict[str, object]] | None] = mapped_column(JSON, nullable=True)


class StatementRow(Base):
    __tablename__ = "statements"
    __table_args__ = (Index("ix_statements_room", "room_id", "created_at"),)

    statement_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    author_name: Mapped[str] = mapped_column(String(64))
    ai_generated: Mapped[bool] = mapped_column(default=False)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    edited_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # 0 when added, +1 per edit; edits stop at the first vote. NULL (older rows): 0.
    revision: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)


class VoteRow(Base):
    __tablename__ = "votes"

    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.statement_id", ondelete="CASCADE"),
                                              primary_key=True)
    participant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    choice: Mapped[str] = mapped_column(String(8))
    ts: Mapped[float] = mapped_column(Float)
    revision: Mapped[int | None] = mapped_column(Integer, nullable=True)  # of the statement voted on; NULL: older rows


class LLMCallRow(Base):
    """Every call to a language model, for the organisers: purpose, model, prompt, output, latency, outcome."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    purpose: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    output: Mapped[str] = mapped_column(Text)
    latency_s: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SummaryFlagRow(Base):
    """A participant's "that's not what we said" on a summary point: one per participant and point."""

    __tablename__ = "summary_flags"
    __table_args__ = (Index("ux_summary_flags_once", "message_id", "point", "participant_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(120))
    point: Mapped[int] = mapped_column(Integer)
    participant_id: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    ts: Mapped[float] = mapped_column(Float)


class ParticipantRow(Base):
    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    consented_at: Mapped[float] = mapped_column(Float)
    joined_at: Mapped[float] = mapped_column(Float)
    left_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class CaptionRow(Base):
    __tablename__ = "captions"
    __table_args__ = (Index("ix_captions_room_start", "room_id", "start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    utterance_id: Mapped[str] = mapped_column(String(64), unique=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    participant_id: Mapped[str] = mapped_column(String(32))
    speaker_name: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    words: Mapped[list[dict[str, float | str]]] = mapped_column(JSON, default=list)


class SafetyFlagRow(Base):
    """An utterance flagged as abusive or far off-topic, for moderators."""

    __tablename__ = "safety_flags"

    flag_id: Mapped[str] = mapped_column(String(120), primary_key=True)  # utterance id + category: stored once
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    utterance_id: Mapped[str] = mapped_column(String(64))
    participant_id: Mapped[str] = mapped_column(String(32))
    speaker_name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    detected_by: Mapped[str] = mapped_column(String(200))
    ts: Mapped[float] = mapped_column(Float)
