"""The storage API used by the rest of the server. Methods are blocking; async callers use ``asyncio.to_thread``."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import Float, Integer, String, case, create_engine, event, func, inspect, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from server.events import AIMessage, CaptionFinal, CaptionWord, SafetyFlagged, StatementAdded
from server.storage.tables import (
    AIMessageRow,
    Base,
    CaptionRow,
    DeliberationRow,
    LLMCallRow,
    ParticipantRow,
    RoomRow,
    SafetyFlagRow,
    StatementRow,
    SummaryFlagRow,
    VoteRow,
)

logger = logging.getLogger(__name__)

_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"

CHOICES = ("agree", "disagree", "pass")

# What an edit did: "edited", or why it changed nothing.
EditOutcome = Literal["edited", "voted_on", "stale", "missing"]

# Unique indexes added to existing tables, with the statement that first removes the rows they would forbid.
_DEDUPLICATE_BEFORE = {
    "ux_summary_flags_once": "DELETE FROM summary_flags WHERE id NOT IN "
                             "(SELECT MIN(id) FROM summary_flags GROUP BY message_id, point, participant_id)",
}


def new_id(length: int = 12) -> str:
    """An unguessable, URL-safe, unambiguous id (about 59 bits for 12 characters)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class Deliberation:
    template_id: str
    question: str | None  # replaces the template's question
    ai_messages: str  # "direct" or "approve"


@dataclass(frozen=True)
class RoomRecord:
    id: str
    title: str
    created_at: float
    max_participants: int


@dataclass(frozen=True)
class ParticipantRecord:
    id: str
    room_id: str
    name: str
    consented_at: float
    joined_at: float
    left_at: float | None


@dataclass(frozen=True)
class CaptionRecord:
    utterance_id: str
    room_id: str
    participant_id: str
    speaker_name: str
    start: float
    end: float
    text: str
    language: str | None
    words: list[CaptionWord] = field(default_factory=list)


class Storage:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def create_schema(self) -> None:
        """Create missing tables, and add the nullable columns and the indexes that a database made by an earlier
        version lacks (the only kinds of schema change so far; existing rows keep their data, except duplicates a
        new unique index forbids: the first of them is kept)."""
        Base.metadata.create_all(self.engine)
        inspector = inspect(self.engine)
        with self.engine.begin() as connection:
            for table in Base.metadata.sorted_tables:
                present = {c["name"] for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in present and column.nullable:
                        kind = column.type.compile(dialect=self.engine.dialect)
                        logger.info("adding column %s.%s to the database", table.name, column.name)
                        connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
                indexes = {i["name"] for i in inspector.get_indexes(table.name)}
                for index in table.indexes:
                    if index.name not in indexes:
                        logger.info("adding index %s to the database", index.name)
                        if index.name in _DEDUPLICATE_BEFORE:
                            connection.execute(text(_DEDUPLICATE_BEFORE[index.name]))
                        index.create(connection)

    def close(self) -> None:
        self.engine.dispose()

    def _s(self) -> Session:
        return self._session()

    def _insert_once(self, row: Base) -> bool:
        """Insert a row keyed by an id its producer chose; False if it was already there (idempotent delivery)."""
        try:
            with self._s() as s, s.begin():
                s.add(row)
        except IntegrityError:
            return False
        return True

    # Rooms --------------------------------------------------------------------------------------------------------
    def create_room(self, title: str, max_participants: int) -> RoomRecord:
        row = RoomRow(id=new_id(), title=title, created_at=time.time(), max_participants=max_participants)
        with self._s() as s, s.begin():
            s.add(row)
        return _room(row)

    def set_deliberation(self, room_id: str, template_id: str, question: str | None = None,
                         ai_messages: str = "direct") -> None:
        with self._s() as s, s.begin():
            s.merge(DeliberationRow(room_id=room_id, template_id=template_id, question=question,
                                    ai_messages=ai_messages))

    def deliberation(self, room_id: str) -> Deliberation | None:
        """The room's deliberation settings, or None when it has no facilitator."""
        with self._s() as s:
            row = s.get(DeliberationRow, room_id)
            return Deliberation(row.template_id, row.question, row.ai_messages or "direct") if row else None

    def get_room(self, room_id: str) -> RoomRecord | None:
        with self._s() as s:
            row = s.get(RoomRow, room_id)
            return _room(row) if row else None

    # Participants -------------------------------------------------------------------------------------------------
    def add_participant(self, room_id: str, name: str, consented_at: float) -> ParticipantRecord:
        now = time.time()
        row = ParticipantRow(id=new_id(), room_id=room_id, name=name, consented_at=consented_at, joined_at=now)
        with self._s() as s, s.begin():
            s.add(row)
        return _participant(row)

    def mark_left(self, participant_id: str) -> None:
        with self._s() as s, s.begin():
            row = s.get(ParticipantRow, participant_id)
            if row is not None and row.left_at is None:
                row.left_at = time.time()

    def list_participants(self, room_id: str) -> list[ParticipantRecord]:
        with self._s() as s:
            rows = s.scalars(select(ParticipantRow).where(ParticipantRow.room_id == room_id).order_by(
                ParticipantRow.joined_at))
            return [_participant(r) for r in rows]

    # Transcript ---------------------------------------------------------------------------------------------------
    def add_caption(self, caption: CaptionFinal) -> bool:
        """Store a final caption; returns False if this utterance was already stored (idempotent)."""
        row = CaptionRow(
            utterance_id=caption.utterance_id,
            room_id=caption.room_id,
            participant_id=caption.participant_id,
            speaker_name=caption.speaker_name,
            start=caption.start,
            end=caption.end,
            text=caption.text,
            language=caption.language,
            words=[w.model_dump() for w in caption.words],
        )
        return self._insert_once(row)

    def add_ai_message(self, message: AIMessage, status: str = "posted",
                       statements: list[StatementAdded] | None = None) -> bool:
        """Store an AI message (with the AI statements it announces, when it waits for approval); a message that
        was pending becomes posted (a moderator approved it). Returns False if nothing changed (idempotent)."""
        attached = [st.model_dump(mode="json") for st in statements] if statements else None
        if self._insert_once(AIMessageRow(message_id=message.message_id, room_id=message.room_id, ts=message.ts,
                                          event=message.model_dump(mode="json"), status=status,
                                          statements=attached)):
            return True
        if status != "posted":
            return False
        with self._s() as s, s.begin():
            row = s.get(AIMessageRow, message.message_id)
            if row is None or row.room_id != message.room_id or (row.status or "posted") != "pending":
                return False
            row.event, row.status, row.reviewed_at = message.model_dump(mode="json"), "posted", time.time()
            return True

    def ai_message_status(self, message_id: str) -> tuple[AIMessage, str, list[StatementAdded]] | None:
        """An AI message, its status (posted, pending or rejected) and the statements it announces."""
        with self._s() as s:
            row = s.get(AIMessageRow, message_id)
            if row is None:
                return None
            statements = [StatementAdded.model_validate(st) for st in row.statements or []]
            return AIMessage.model_validate(row.event), row.status or "posted", statements

    def pending_ai_messages(self, room_id: str) -> list[tuple[AIMessage, list[StatementAdded]]]:
        """AI messages waiting for a moderator, oldest first, with the statements each announces."""
        with self._s() as s:
            rows = s.scalars(select(AIMessageRow).where(AIMessageRow.room_id == room_id,
                                                        AIMessageRow.status == "pending").order_by(AIMessageRow.ts))
            return [(AIMessage.model_validate(r.event),
                     [StatementAdded.model_validate(st) for st in r.statements or []]) for r in rows]

    def reject_ai_message(self, message_id: str) -> bool:
        """Mark a pending AI message rejected (kept for the organisers' review); False if it was not pending."""
        with self._s() as s, s.begin():
            row = s.get(AIMessageRow, message_id)
            if row is None or (row.status or "posted") != "pending":
                return False
            row.status, row.reviewed_at = "rejected", time.time()
            return True

    def add_llm_call(self, room_id: str, at: float, purpose: str, model: str, messages: list[dict[str, str]],
                     output: str, latency_s: float, outcome: str, error: str | None) -> None:
        with self._s() as s, s.begin():
            s.add(LLMCallRow(room_id=room_id, at=at, purpose=purpose, model=model, messages=messages, output=output,
                             latency_s=latency_s, outcome=outcome, error=error))

    def llm_calls(self, room_id: str) -> list[dict[str, object]]:
        with self._s() as s:
            rows = s.scalars(select(LLMCallRow).where(LLMCallRow.room_id == room_id).order_by(LLMCallRow.at))
            return [{"at": r.at, "purpose": r.purpose, "model": r.model, "messages": r.messages, "output": r.output,
                     "latency_s": r.latency_s, "outcome": r.outcome, "error": r.error} for r in rows]

    def get_ai_message(self, message_id: str) -> AIMessage | None:
        with self._s() as s:
            row = s.get(AIMessageRow, message_id)
            return AIMessage.model_validate(row.event) if row else None

    def add_summary_flag(self, room_id: str, message_id: str, point: int, participant_id: str, note: str) -> bool:
        """Store a participant's flag on a summary point; False if they had flagged it already (the first flag and
        its note stand: flagging again changes nothing)."""
        return self._insert_once(SummaryFlagRow(room_id=room_id, message_id=message_id, point=point,
                                                participant_id=participant_id, note=note, ts=time.time()))

    def summary_flags(self, room_id: str) -> list[dict[str, object]]:
        with self._s() as s:
            rows = s.scalars(select(SummaryFlagRow).where(SummaryFlagRow.room_id == room_id).order_by(
                SummaryFlagRow.ts))
            return [{"message_id": r.message_id, "point": r.point, "participant_id": r.participant_id,
                     "note": r.note, "ts": r.ts} for r in rows]

    def ai_messages(self, room_id: str, status: str = "posted") -> list[AIMessage]:
        """The room's AI messages with ``status`` (posted: what the room saw), oldest first."""
        with self._s() as s:
            rows = s.scalars(select(AIMessageRow).where(AIMessageRow.room_id == room_id).order_by(AIMessageRow.ts))
            return [AIMessage.model_validate(r.event) for r in rows if (r.status or "posted") == status]

    # Safety -------------------------------------------------------------------------------------------------------
    def add_safety_flag(self, flag: SafetyFlagged) -> bool:
        return self._insert_once(SafetyFlagRow(
            flag_id=f"{flag.utterance_id}:{flag.category}"[:120], room_id=flag.room_id, utterance_id=flag.utterance_id,
            participant_id=flag.participant_id, speaker_name=flag.speaker_name, category=flag.category,
            reason=flag.reason, detected_by=flag.detected_by, ts=flag.ts))

    def safety_flags(self, room_id: str) -> list[dict[str, object]]:
        """The room's safety flags, each with the flagged utterance's text from the transcript (the flag itself does
        not copy it, so deleting the transcript leaves no text behind)."""
        with self._s() as s:
            rows = s.execute(
                select(SafetyFlagRow, CaptionRow.text)
                .outerjoin(CaptionRow, (CaptionRow.utterance_id == SafetyFlagRow.utterance_id)
                           & (CaptionRow.room_id == SafetyFlagRow.room_id))
                .where(SafetyFlagRow.room_id == room_id).order_by(SafetyFlagRow.ts))
            return [{"utterance_id": r.utterance_id, "participant_id": r.participant_id,
                     "speaker_name": r.speaker_name, "category": r.category, "reason": r.reason,
                     "detected_by": r.detected_by, "ts": r.ts, "text": text} for r, text in rows]

    # Statements and votes ---------------------------------------------------------------------------------------
    def add_statement(self, statement: StatementAdded) -> bool:
        row = StatementRow(statement_id=statement.statement_id, room_id=statement.room_id, text=statement.text,
                           author_id=statement.author_id, author_name=statement.author_name,
                           ai_generated=statement.ai_generated, sources=list(statement.sources),
                           created_at=statement.ts, revision=statement.revision)
        return self._insert_once(row)

    def get_statement(self, statement_id: str) -> StatementAdded | None:
        with self._s() as s:
            row = s.get(StatementRow, statement_id)
            return _statement(row) if row else None

    def edit_statement(self, statement_id: str, text: str, seen_revision: int) -> EditOutcome:
        """Replace a statement's text and move it to the next revision, in one transaction and only if nobody has
        voted on it yet and it is still at ``seen_revision`` (what the editor read). Otherwise nothing changes and
        the outcome says why: ``voted_on``, ``stale`` (edited meanwhile) or ``missing``."""
        revision = func.coalesce(StatementRow.revision, 0)
        has_votes = select(VoteRow.statement_id).where(VoteRow.statement_id == statement_id).exists()
        with self._s() as s, s.begin():
            connection = s.connection()
            # PostgreSQL: lock the statement first. A vote holding its share lock commits before the check below
            # (which then sees it); a vote coming later waits, then finds the new revision and is refused. SQLite
            # needs no lock: it runs the conditional UPDATE below as one atomic write.
            found = connection.execute(select(revision).where(StatementRow.statement_id == statement_id)
                                       .with_for_update()).first()
            if found is None:
                return "missing"
            edited = connection.execute(
                update(StatementRow)
                .where(StatementRow.statement_id == statement_id, revision == seen_revision, ~has_votes)
                .values(text=text, revision=revision + 1, edited_at=time.time()))
            if edited.rowcount == 1:
                return "edited"
            return "voted_on" if connection.execute(select(has_votes)).scalar() else "stale"

    def statements(self, room_id: str) -> list[StatementAdded]:
        with self._s() as s:
            rows = s.scalars(select(StatementRow).where(StatementRow.room_id == room_id).order_by(
                StatementRow.created_at))
            return [_statement(r) for r in rows]

    def statements_with_tallies(self, room_id: str) -> list[tuple[StatementAdded, dict[str, int]]]:
        """The room's statements, oldest first, each with its tally: one query whatever the number of statements."""
        counts = (select(VoteRow.statement_id,
                         *(func.sum(case((VoteRow.choice == choice, 1), else_=0)).label(choice) for choice in CHOICES))
                  .group_by(VoteRow.statement_id).subquery())
        query = (select(StatementRow, *(func.coalesce(counts.c[choice], 0) for choice in CHOICES))
                 .outerjoin(counts, counts.c.statement_id == StatementRow.statement_id)
                 .where(StatementRow.room_id == room_id).order_by(StatementRow.created_at))
        with self._s() as s:
            return [(_statement(row), dict(zip(CHOICES, (int(n) for n in tally), strict=True)))
                    for row, *tally in s.execute(query)]

    def cast_vote(self, statement_id: str, participant_id: str, choice: str, revision: int) -> dict[str, int] | None:
        """Record (or change) a participant's vote on revision ``revision`` of a statement, in one transaction and
        only if the statement is still at that revision; returns the statement's tally, or None when the vote was
        refused (the statement was edited since the voter read it, or is gone)."""
        with self._s() as s, s.begin():
            connection = s.connection()
            # PostgreSQL: share-lock the statement, so that no edit commits between here and the vote (an edit
            # holding the lock commits first, and the INSERT below, a new statement, sees its revision). SQLite
            # runs the INSERT below, whose SELECT checks the revision, as one atomic write.
            connection.execute(select(StatementRow.statement_id).where(StatementRow.statement_id == statement_id)
                               .with_for_update(read=True))
            still_current = select(StatementRow.statement_id).where(
                StatementRow.statement_id == statement_id, func.coalesce(StatementRow.revision, 0) == revision)
            values = select(literal(statement_id, String), literal(participant_id, String), literal(choice, String),
                            literal(time.time(), Float), literal(revision, Integer)).where(still_current.exists())
            insert = _insert(self.engine.dialect.name, VoteRow).from_select(
                ["statement_id", "participant_id", "choice", "ts", "revision"], values)
            upsert = insert.on_conflict_do_update(
                index_elements=["statement_id", "participant_id"],
                set_={"choice": insert.excluded.choice, "ts": insert.excluded.ts, "revision": insert.excluded.revision})
            if connection.execute(upsert, execution_options={"preserve_rowcount": True}).rowcount != 1:
                return None
        return self.tally(statement_id)

    def tally(self, statement_id: str) -> dict[str, int]:
        with self._s() as s:
            choices = list(s.scalars(select(VoteRow.choice).where(VoteRow.statement_id == statement_id)))
        return {c: choices.count(c) for c in CHOICES}

    def votes(self, room_id: str) -> list[tuple[str, str, str]]:
        """(statement id, participant id, choice) for every vote in the room: for cross-room analysis."""
        with self._s() as s:
            rows = s.execute(select(VoteRow.statement_id, VoteRow.participant_id, VoteRow.choice).join(
                StatementRow, StatementRow.statement_id == VoteRow.statement_id).where(StatementRow.room_id == room_id))
            return [(a, b, c) for a, b, c in rows]

    def transcript(self, room_id: str) -> list[CaptionRecord]:
        with self._s() as s:
            rows = s.scalars(select(CaptionRow).where(CaptionRow.room_id == room_id).order_by(
                CaptionRow.start, CaptionRow.id))
            return [
                CaptionRecord(
                    utterance_id=r.utterance_id,
                    room_id=r.room_id,
                    participant_id=r.participant_id,
                    speaker_name=r.speaker_name,
                    start=r.start,
                    end=r.end,
                    text=r.text,
                    language=r.language,
                    words=[CaptionWord.model_validate(w) for w in (r.words or [])],
                )
                for r in rows
            ]


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _insert(dialect: str, table: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can say what to do ON CONFLICT, for the database in use (SQLite or PostgreSQL)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def _statement(row: StatementRow) -> StatementAdded:
    return StatementAdded(room_id=row.room_id, ts=row.created_at, statement_id=row.statement_id, text=row.text,
                          author_id=row.author_id, author_name=row.author_name, ai_generated=row.ai_generated,
                          sources=list(row.sources or []), revision=row.revision or 0)


def _room(row: RoomRow) -> RoomRecord:
    return RoomRecord(id=row.id, title=row.title, created_at=row.created_at, max_participants=row.max_participants)


def _participant(row: ParticipantRow) -> ParticipantRecord:
    return ParticipantRecord(
        id=row.id, room_id=row.room_id, name=row.name, consented_at=row.consented_at, joined_at=row.joined_at,
        left_at=row.left_at,
    )
