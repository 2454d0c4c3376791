"""The storage API used by the rest of the server. Methods are blocking; async callers use ``asyncio.to_thread``."""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    case,
    create_engine,
    event,
    func,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from server.core.events import (
    AIMessage,
    CaptionFinal,
    CaptionTranslated,
    CaptionWord,
    HelpRequested,
    LLMCallRecorded,
    SafetyFlagged,
    StatementAdded,
)
from server.core.ids import new_id
from server.storage.tables import (
    AIMessageRow,
    AuditEventRow,
    Base,
    CaptionRow,
    CaptionTranslationRow,
    DeliberationRow,
    HelpRequestRow,
    LLMCallRow,
    ParticipantRow,
    RoomPlanRow,
    RoomRow,
    SafetyFlagRow,
    SharedStatementRow,
    StatementRow,
    SummaryFlagRow,
    VoteRow,
)

logger = logging.getLogger(__name__)


CHOICES = ("agree", "disagree", "pass")

# What an edit did: "edited", or why it changed nothing.
EditOutcome = Literal["edited", "voted_on", "stale", "missing"]

# Unique indexes added to existing tables, with the statement that first removes the rows they would forbid.
_DEDUPLICATE_BEFORE = {
    "ux_summary_flags_once": "DELETE FROM summary_flags WHERE id NOT IN "
                             "(SELECT MIN(id) FROM summary_flags GROUP BY message_id, point, participant_id)",
}


@dataclass(frozen=True)
class RoomPlan:
    template_id: str
    question: str | None  # replaces the template's question
    ai_messages: str  # "direct" or "approve"


@dataclass(frozen=True)
class RoomRecord:
    id: str
    title: str
    created_at: float
    max_participants: int
    deliberation_id: str | None = None  # the deliberation whose round formed it (None: a stand-alone room)
    created_by: str | None = None  # a stand-alone room's creator
    ended_at: float | None = None  # a moderator ended it (or its deliberation closed): nobody joins it


@dataclass(frozen=True)
class ParticipantRecord:
    id: str
    room_id: str
    name: str
    consented_at: float
    joined_at: float
    left_at: float | None


@dataclass
class RoomOverview:
    """A room as a moderators' dashboard first sees it (``Storage.room_overviews``)."""

    title: str
    present: list[tuple[str, str]] = field(default_factory=list)  # (participant id, name), in order of joining
    help: list[HelpRequested] = field(default_factory=list)
    queued_ai: list[str] = field(default_factory=list)
    flags: int = 0
    captions: list[CaptionRecord] = field(default_factory=list)  # the latest, oldest first


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
    translations: dict[str, str] = field(default_factory=dict)  # language -> machine translation of ``text``


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
        """Bring the database to the current schema with the migrations (``server/storage/migrations``), in one
        transaction, one process at a time (several nodes may start together on one new database). A database made
        by the last release before migrations (tables, no ``alembic_version``) is first brought up to the baseline
        with that release's additive upgrade, then stamped and migrated; rows are kept."""
        with _migration_lock(self.url), self.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # SQLite alters a table by copying it and dropping the original; with foreign keys enforced, that
                # drop would cascade to every row referring to it. Off for the migration (it only works outside a
                # transaction), checked afterwards.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    if not sqlite:
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                    self._migrate(connection)
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"the migration left rows with broken references: {broken[:5]}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()

    @staticmethod
    def _migrate(connection: Connection) -> None:
        config = _alembic_config(connection)
        tables = set(inspect(connection).get_table_names())
        if "alembic_version" not in tables and "rooms" in tables:
            logger.info("database made before migrations: bringing it to the baseline")
            _legacy_upgrade(connection)
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    def audit(self, user_id: str | None, action: str, target: str, detail: str | None = None) -> None:
        """Write a sensitive or moderating action to the audit log."""
        with self._s() as s, s.begin():
            s.add(AuditEventRow(at=time.time(), user_id=user_id, action=action, target=target, detail=detail))

    def audit_entries(self, target: str) -> list[AuditEntry]:
        """Everything logged about ``target`` (a room), oldest first, with who did it (their email; None once the
        account is deleted)."""
        from server.storage.tables import UserRow

        with self._s() as s:
            rows = s.execute(select(AuditEventRow.at, UserRow.email, AuditEventRow.action, AuditEventRow.detail)
                             .outerjoin(UserRow, UserRow.id == AuditEventRow.user_id)
                             .where(AuditEventRow.target == target).order_by(AuditEventRow.id))
            return [AuditEntry(at, email, action, detail) for at, email, action, detail in rows]

    def audit_log(self, target: str) -> list[tuple[float, str | None, str]]:
        """(at, user id, action) of everything logged about ``target``, oldest first."""
        with self._s() as s:
            rows = s.execute(select(AuditEventRow.at, AuditEventRow.user_id, AuditEventRow.action)
                             .where(AuditEventRow.target == target).order_by(AuditEventRow.id))
            return [(at, user, action) for at, user, action in rows]

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory, for stores of other packages on the same database (accounts)."""
        return self._session

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
    def create_room(self, title: str, max_participants: int, created_by: str | None = None) -> RoomRecord:
        row = RoomRow(id=new_id(), title=title, created_at=time.time(), max_participants=max_participants,
                      created_by=created_by)
        with self._s() as s, s.begin():
            s.add(row)
        return _room(row)

    def set_room_plan(self, room_id: str, template_id: str, question: str | None = None,
                         ai_messages: str = "direct") -> None:
        with self._s() as s, s.begin():
            s.merge(RoomPlanRow(room_id=room_id, template_id=template_id, question=question,
                                    ai_messages=ai_messages))

    def end_room(self, room_id: str) -> bool:
        """Mark the room ended (once); False if it already was, or is unknown."""
        with self._s() as s, s.begin():
            ended = s.connection().execute(update(RoomRow).where(RoomRow.id == room_id, RoomRow.ended_at.is_(None))
                                           .values(ended_at=time.time()))
            return bool(ended.rowcount == 1)

    def room_plan(self, room_id: str) -> RoomPlan | None:
        """The room's deliberation settings, or None when it has no facilitator."""
        with self._s() as s:
            row = s.get(RoomPlanRow, room_id)
            return RoomPlan(row.template_id, row.question, row.ai_messages or "direct") if row else None

    def get_room(self, room_id: str) -> RoomRecord | None:
        with self._s() as s:
            row = s.get(RoomRow, room_id)
            return _room(row) if row else None

    # Participants -------------------------------------------------------------------------------------------------
    def add_participant(self, room_id: str, name: str, consented_at: float,
                        participant_id: str | None = None) -> ParticipantRecord:
        """Record a join. A participant whose id is fixed (a deliberation's, from its lobby) who joins again (a
        reload, another device) keeps one record: joined again, no longer left; one a moderator moved to another room
        of the deliberation keeps it too, now in that room (what they said stays with the room they said it in)."""
        now = time.time()
        with self._s() as s, s.begin():
            row = s.get(ParticipantRow, participant_id) if participant_id else None
            if row is not None:
                row.room_id, row.name, row.joined_at, row.left_at = room_id, name, now, None
            else:
                row = ParticipantRow(id=participant_id or new_id(), room_id=room_id, name=name,
                                     consented_at=consented_at, joined_at=now)
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

    def add_caption_translation(self, translation: CaptionTranslated) -> bool:
        """Store a final caption's machine translation; False if this utterance already has one in that language."""
        return self._insert_once(CaptionTranslationRow(
            room_id=translation.room_id, utterance_id=translation.utterance_id,
            participant_id=translation.participant_id, source_language=translation.source_language,
            language=translation.language, text=translation.text, backend=translation.backend[:120],
            ts=translation.ts))

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

    def add_llm_call_record(self, call: LLMCallRecorded) -> bool:
        """Store an ``llm.call`` event; False if this call was already stored (idempotent)."""
        return self._insert_once(LLMCallRow(call_id=call.call_id, room_id=call.room_id, at=call.ts,
                                            purpose=call.purpose, model=call.model, messages=call.messages,
                                            output=call.output, latency_s=call.latency_s, outcome=call.outcome,
                                            error=call.error))

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

    # Help requests ------------------------------------------------------------------------------------------------
    def add_help_request(self, request: HelpRequested) -> HelpRequested:
        """Store a call for a moderator; a participant with one pending already gets that one back (pressing the
        button again calls nobody twice)."""
        with self._s() as s, s.begin():
            pending = s.scalar(select(HelpRequestRow).where(HelpRequestRow.room_id == request.room_id,
                                                            HelpRequestRow.participant_id == request.participant_id,
                                                            HelpRequestRow.taken_at.is_(None)))
            if pending is not None:
                return _help(pending)
            s.add(HelpRequestRow(request_id=request.request_id, room_id=request.room_id,
                                 participant_id=request.participant_id, participant_name=request.participant_name,
                                 note=request.note, requested_at=request.ts))
        return request

    def pending_help_requests(self, room_id: str) -> list[HelpRequested]:
        with self._s() as s:
            rows = s.scalars(select(HelpRequestRow).where(HelpRequestRow.room_id == room_id,
                                                          HelpRequestRow.taken_at.is_(None))
                             .order_by(HelpRequestRow.requested_at))
            return [_help(r) for r in rows]

    def take_help_request(self, room_id: str, request_id: str, user_id: str) -> HelpRequested | None:
        """Mark a pending request as taken by ``user_id``; None if it is unknown here or was taken already."""
        with self._s() as s, s.begin():
            taken = s.connection().execute(update(HelpRequestRow).where(HelpRequestRow.request_id == request_id,
                                                                        HelpRequestRow.room_id == room_id,
                                                                        HelpRequestRow.taken_at.is_(None))
                                           .values(taken_at=time.time(), taken_by=user_id))
            if taken.rowcount != 1:
                return None
            row = s.get(HelpRequestRow, request_id)
            assert row is not None
            return _help(row)

    # Safety -------------------------------------------------------------------------------------------------------
    def add_safety_flag(self, flag: SafetyFlagged) -> bool:
        return self._insert_once(SafetyFlagRow(
            flag_id=f"{flag.room_id}:{flag.utterance_id}:{flag.category}"[:120], room_id=flag.room_id,
            utterance_id=flag.utterance_id,
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
        """The room's statements, and those shared into it from other rooms (``shared``), oldest first."""
        return [statement for statement, _ in self.statements_with_tallies(room_id)]

    def votable_in(self, room_id: str, statement_id: str) -> StatementAdded | None:
        """The statement, if the room may vote on it: its own, or one shared into it (then as the room sees it)."""
        with self._s() as s:
            row = s.get(StatementRow, statement_id)
            if row is None:
                return None
            if row.room_id == room_id:
                return _statement(row)
            if s.get(SharedStatementRow, (room_id, statement_id)) is None:
                return None
            return _as_shared(_statement(row), room_id)

    def deliberation_statements(self, deliberation_id: str,
                                s: Session | None = None) -> list[tuple[StatementAdded, set[str]]]:
        """Every statement written in the deliberation's rooms, with the rooms that have it (its own and those it
        was shared into)."""
        if s is None:
            with self._s() as session:
                return self.deliberation_statements(deliberation_id, session)
        rows = list(s.scalars(select(StatementRow).join(RoomRow, RoomRow.id == StatementRow.room_id)
                              .where(RoomRow.deliberation_id == deliberation_id)
                              .order_by(StatementRow.created_at)))
        shares: dict[str, set[str]] = {}
        ids = [r.statement_id for r in rows]
        if ids:
            for room_id, statement_id in s.execute(select(SharedStatementRow.room_id, SharedStatementRow.statement_id)
                                                   .where(SharedStatementRow.statement_id.in_(ids))):
                shares.setdefault(statement_id, set()).add(room_id)
        return [(_statement(r), {r.room_id, *shares.get(r.statement_id, set())}) for r in rows]

    def share_once(self, room_id: str, deliberation_id: str,
                   pick: Callable[[list[tuple[StatementAdded, set[str]]]], list[str]], now: float) -> list[str]:
        """Share statements of other rooms into ``room_id`` unless it has some already, in one transaction holding
        the deliberation's write lock (two workers handling two announcements of the room's vote share once):
        ``pick`` chooses from the deliberation's statements. Returns the ids shared now."""
        with self._s() as s, s.begin():
            s.execute(update(DeliberationRow).where(DeliberationRow.id == deliberation_id)
                      .values(updated_at=DeliberationRow.updated_at))  # the write lock (SQLite: the database's)
            if s.scalar(select(func.count()).select_from(SharedStatementRow)
                        .where(SharedStatementRow.room_id == room_id)):
                return []
            chosen = pick(self.deliberation_statements(deliberation_id, s))
            for statement_id in chosen:
                s.add(SharedStatementRow(room_id=room_id, statement_id=statement_id, shared_at=now))
            return chosen

    def statements_with_tallies(self, room_id: str) -> list[tuple[StatementAdded, dict[str, int]]]:
        """The room's statements, oldest first, each with its tally: one query whatever the number of statements."""
        counts = (select(VoteRow.statement_id,
                         *(func.sum(case((VoteRow.choice == choice, 1), else_=0)).label(choice) for choice in CHOICES))
                  .group_by(VoteRow.statement_id).subquery())
        shared = select(SharedStatementRow.statement_id).where(SharedStatementRow.room_id == room_id)
        query = (select(StatementRow, *(func.coalesce(counts.c[choice], 0) for choice in CHOICES))
                 .outerjoin(counts, counts.c.statement_id == StatementRow.statement_id)
                 .where((StatementRow.room_id == room_id) | StatementRow.statement_id.in_(shared))
                 .order_by(StatementRow.created_at))
        with self._s() as s:
            out = []
            for row, *tally in s.execute(query):
                statement = _statement(row)
                if row.room_id != room_id:  # shared into this room from another
                    statement = _as_shared(statement, room_id)
                out.append((statement, dict(zip(CHOICES, (int(n) for n in tally), strict=True))))
            return out

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

    def search_captions(self, room_ids: Sequence[str], query: str, limit: int = 100) -> list[CaptionRecord]:
        """Captions of these rooms containing every word of ``query`` (whole words, any case and accents on SQLite),
        in time order, with the database's full-text index (migration 0008). Words only: no query syntax."""
        words = re.findall(r"\w+", query)
        if not words or not room_ids:
            return []
        match: Any
        if self.engine.dialect.name == "sqlite":
            phrase = " ".join(f'"{w}"' for w in words)  # each word quoted: nothing in it is FTS5 syntax
            match = CaptionRow.id.in_(text("SELECT rowid FROM captions_fts WHERE captions_fts MATCH :match")
                                      .bindparams(match=phrase))
        else:
            match = text("to_tsvector('simple', captions.text) @@ plainto_tsquery('simple', :match)").bindparams(
                match=" ".join(words))
        with self._s() as s:
            rows = s.scalars(select(CaptionRow).where(CaptionRow.room_id.in_(list(room_ids)), match)
                             .order_by(CaptionRow.start, CaptionRow.id).limit(limit))
            return [_caption(r) for r in rows]

    def room_overviews(self, room_ids: Sequence[str], latest: int = 3) -> dict[str, RoomOverview]:
        """What a moderators' dashboard opening now needs to know of each room, in a few queries: who is in it (not
        marked as left), open calls for a moderator, AI messages waiting for approval, how many flags, and the latest
        ``latest`` captions."""
        ids = list(room_ids)
        if not ids:
            return {}
        with self._s() as s:
            found = {r.id: RoomOverview(r.title) for r in s.scalars(select(RoomRow).where(RoomRow.id.in_(ids)))}
            for p in s.scalars(select(ParticipantRow).where(ParticipantRow.room_id.in_(ids),
                                                            ParticipantRow.left_at.is_(None))
                               .order_by(ParticipantRow.joined_at)):
                found[p.room_id].present.append((p.id, p.name))
            for h in s.scalars(select(HelpRequestRow).where(HelpRequestRow.room_id.in_(ids),
                                                            HelpRequestRow.taken_at.is_(None))
                               .order_by(HelpRequestRow.requested_at)):
                found[h.room_id].help.append(_help(h))
            for room_id, message_id in s.execute(select(AIMessageRow.room_id, AIMessageRow.message_id)
                                                 .where(AIMessageRow.room_id.in_(ids),
                                                        AIMessageRow.status == "pending")):
                found[room_id].queued_ai.append(message_id)
            for table in (SafetyFlagRow, SummaryFlagRow):
                for room_id, count in s.execute(select(table.room_id, func.count()).where(table.room_id.in_(ids))
                                                .group_by(table.room_id)):
                    found[room_id].flags += int(count)
            for room_id in found:
                rows = s.scalars(select(CaptionRow).where(CaptionRow.room_id == room_id)
                                 .order_by(CaptionRow.start.desc(), CaptionRow.id.desc()).limit(latest))
                found[room_id].captions = [_caption(r) for r in reversed(list(rows))]
        return found

    def transcript(self, room_id: str) -> list[CaptionRecord]:
        """A room's final captions in order, each with its machine translations."""
        with self._s() as s:
            rows = s.scalars(select(CaptionRow).where(CaptionRow.room_id == room_id).order_by(
                CaptionRow.start, CaptionRow.id))
            translations: dict[str, dict[str, str]] = {}
            for t in s.scalars(select(CaptionTranslationRow).where(CaptionTranslationRow.room_id == room_id)
                               .order_by(CaptionTranslationRow.language)):
                translations.setdefault(t.utterance_id, {})[t.language] = t.text
            return [_caption(r, translations.get(r.utterance_id)) for r in rows]


BASELINE = "0001_baseline"
_PG_MIGRATION_LOCK = 0x6D6F6F74  # "moot": one migration at a time across processes
_MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """SQLite: one process at a time migrates the file (a lock file beside it; PostgreSQL locks in the database)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        yield
        return
    with open(url.removeprefix("sqlite:///") + ".migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _legacy_upgrade(connection: Connection) -> None:
    """The last release's own upgrade (before migrations): create missing tables, add the nullable columns and the
    indexes an even older database lacks (duplicates a new unique index forbids are removed first, the first kept)."""
    baseline = _baseline_metadata()
    baseline.create_all(connection)
    inspector = inspect(connection)
    for table in baseline.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=connection.dialect)
                logger.info("adding column %s.%s to the database", table.name, column.name)
                connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                logger.info("adding index %s to the database", index.name)
                if index.name in _DEDUPLICATE_BEFORE:
                    connection.execute(text(_DEDUPLICATE_BEFORE[index.name]))
                index.create(connection)


def _baseline_metadata() -> MetaData:
    """The tables as the baseline migration defines them (frozen there, not today's models)."""
    baseline = importlib.import_module("server.storage.migrations.versions.0001_baseline")
    metadata: MetaData = baseline.baseline_metadata()
    return metadata


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


def _as_shared(statement: StatementAdded, room_id: str) -> StatementAdded:
    """A statement of another room as ``room_id`` sees it when it is shared into its vote: its words only (who wrote
    it, and the lines it drew on, belong to the other room)."""
    return statement.model_copy(update={"room_id": room_id, "shared": True, "author_id": None,
                                        "author_name": "Another room", "sources": []})


def _room(row: RoomRow) -> RoomRecord:
    return RoomRecord(id=row.id, title=row.title, created_at=row.created_at, max_participants=row.max_participants,
                      deliberation_id=row.deliberation_id, created_by=row.created_by, ended_at=row.ended_at)


def _participant(row: ParticipantRow) -> ParticipantRecord:
    return ParticipantRecord(
        id=row.id, room_id=row.room_id, name=row.name, consented_at=row.consented_at, joined_at=row.joined_at,
        left_at=row.left_at,
    )


@dataclass(frozen=True)
class AuditEntry:
    at: float
    who: str | None  # the account's email
    action: str
    detail: str | None


def _help(r: HelpRequestRow) -> HelpRequested:
    return HelpRequested(room_id=r.room_id, request_id=r.request_id, participant_id=r.participant_id,
                         participant_name=r.participant_name, note=r.note, ts=r.requested_at)


def _caption(r: CaptionRow, translations: dict[str, str] | None = None) -> CaptionRecord:
    return CaptionRecord(utterance_id=r.utterance_id, room_id=r.room_id, participant_id=r.participant_id,
                         speaker_name=r.speaker_name, start=r.start, end=r.end, text=r.text, language=r.language,
                         words=[CaptionWord.model_validate(w) for w in (r.words or [])],
                         translations=dict(translations or {}))
