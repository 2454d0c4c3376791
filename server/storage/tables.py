"""SQLAlchemy table definitions."""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RoomRow(Base):
    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    max_participants: Mapped[int] = mapped_column(Integer)
    # The deliberation whose round formed this room (None: a stand-alone room).
    deliberation_id: Mapped[str | None] = mapped_column(ForeignKey("deliberations.id", ondelete="CASCADE"),
                                                        index=True, nullable=True)
    # Who created a stand-alone room (they, and administrators, moderate and review it).
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # When a moderator ended the room (or its deliberation closed): nobody joins it any more.
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class RoomPlanRow(Base):
    """The template a room's facilitator runs (rooms without a row have no facilitator)."""

    __tablename__ = "room_plans"

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
    # The producer's id of the call (``llm.call`` events): stored once however often the event is delivered.
    call_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True, index=True)
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
    # An utterance id is chosen by its producer and unique within its room (the recorder's idempotency key).
    __table_args__ = (Index("ix_captions_room_start", "room_id", "start"),
                      UniqueConstraint("room_id", "utterance_id", name="uq_captions_room_utterance"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    utterance_id: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    participant_id: Mapped[str] = mapped_column(String(32))
    speaker_name: Mapped[str] = mapped_column(String(64))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    words: Mapped[list[dict[str, float | str]]] = mapped_column(JSON, default=list)


class CaptionTranslationRow(Base):
    """A machine translation of a final caption into one language (made once for the room's readers of it); the
    caption itself keeps the original text and its detected language."""

    __tablename__ = "caption_translations"
    __table_args__ = (UniqueConstraint("room_id", "utterance_id", "language", name="uq_caption_translations"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    utterance_id: Mapped[str] = mapped_column(String(64))
    participant_id: Mapped[str] = mapped_column(String(32))  # the speaker (erasure deletes their words everywhere)
    source_language: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(String(120))
    ts: Mapped[float] = mapped_column(Float)


class SafetyFlagRow(Base):
    """An utterance flagged as abusive or far off-topic, for moderators."""

    __tablename__ = "safety_flags"

    flag_id: Mapped[str] = mapped_column(String(120), primary_key=True)  # room, utterance id, category: stored once
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    utterance_id: Mapped[str] = mapped_column(String(64))
    participant_id: Mapped[str] = mapped_column(String(32))
    speaker_name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    detected_by: Mapped[str] = mapped_column(String(200))
    ts: Mapped[float] = mapped_column(Float)


class UserRow(Base):
    """An organiser's, moderator's or administrator's account (participants have none)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # normalised (server/accounts/emails.py)
    password_hash: Mapped[str] = mapped_column(String(255))  # Argon2id, in its own encoded form
    role: Mapped[str] = mapped_column(String(16))  # organiser | moderator | admin
    created_at: Mapped[float] = mapped_column(Float)
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuthSessionRow(Base):
    """A signed-in session: the token names it, so revoking the row ends the session before the token expires."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class DeliberationRow(Base):
    """A deliberation: one question discussed in many small rooms, set up and run by an organiser."""

    __tablename__ = "deliberations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organiser_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True,
                                                     nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    background: Mapped[str] = mapped_column(Text)
    template_id: Mapped[str] = mapped_column(String(40))
    group_min: Mapped[int] = mapped_column(Integer)
    group_max: Mapped[int] = mapped_column(Integer)
    ai_messages: Mapped[str] = mapped_column(String(16))  # direct | approve
    signup_questions: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    mix_question: Mapped[str | None] = mapped_column(String(40), nullable=True)
    languages: Mapped[list[str]] = mapped_column(JSON)
    starts_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # draft | open | paused | closed
    # Statements of other rooms each room also votes on in its voting stage (NULL: the default).
    cross_pollination: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class DeliberationModeratorRow(Base):
    """A moderator assigned to a deliberation (they see and act on its rooms only)."""

    __tablename__ = "deliberation_moderators"

    deliberation_id: Mapped[str] = mapped_column(ForeignKey("deliberations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    added_at: Mapped[float] = mapped_column(Float)


class ModeratorInviteRow(Base):
    """A single-use link inviting a moderator to a deliberation (only the token's hash is kept)."""

    __tablename__ = "moderator_invites"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    deliberation_id: Mapped[str] = mapped_column(ForeignKey("deliberations.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    used_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class LobbyParticipantRow(Base):
    """Someone who arrived on a deliberation's participant link: their consent, answers, and the room they were
    given (None while they wait)."""

    __tablename__ = "lobby_participants"
    __table_args__ = (Index("ix_lobby_participants_deliberation_status", "deliberation_id", "status", "arrived_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the participant id in their room
    deliberation_id: Mapped[str] = mapped_column(ForeignKey("deliberations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict[str, str]] = mapped_column(JSON)
    consented_at: Mapped[float] = mapped_column(Float)
    notice_version: Mapped[str] = mapped_column(String(32))
    arrived_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # waiting | assigned | left
    room_id: Mapped[str | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"), nullable=True,
                                                index=True)
    room_name: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the name shown in the room
    assigned_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AuditEventRow(Base):
    """Who did something sensitive or moderated, when, to what (revealing real names in an export, approving an AI
    message, pausing the facilitator)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(100), index=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # e.g. the AI message acted on


class HelpRequestRow(Base):
    """A participant's call for a moderator, pending until a moderator takes it."""

    __tablename__ = "help_requests"
    __table_args__ = (Index("ix_help_requests_room_pending", "room_id", "taken_at"),)

    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    participant_id: Mapped[str] = mapped_column(String(32))
    participant_name: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[float] = mapped_column(Float)
    taken_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    taken_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


def is_search_index(kind: str, name: str | None) -> bool:
    """The full-text search objects of migration 0008 (an FTS5 table and its shadow tables on SQLite, an expression
    index on PostgreSQL), which the models do not declare: schema comparisons leave them out."""
    return (kind == "table" and (name or "").startswith("captions_fts")) or \
        (kind == "index" and name == "ix_captions_text_search")


class ReportRow(Base):
    """A deliberation's cross-room report: the job's state and progress, then its result (server/report/jobs.py)."""

    __tablename__ = "reports"

    deliberation_id: Mapped[str] = mapped_column(ForeignKey("deliberations.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    step: Mapped[int] = mapped_column(Integer)
    step_name: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SharedStatementRow(Base):
    """A statement written in another room of the deliberation, shared into this room's vote (cross-pollination)."""

    __tablename__ = "shared_statements"

    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.statement_id", ondelete="CASCADE"),
                                              primary_key=True)
    shared_at: Mapped[float] = mapped_column(Float)
