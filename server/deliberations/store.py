"""Deliberations, their moderators and moderator invites in the database (blocking; async callers use
``asyncio.to_thread``). Invites keep only a hash of their token; accepting one is atomic, so a link works once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from server.core.ids import new_id
from server.deliberations.spec import RUNNING, TRANSITIONS, DeliberationSpec
from server.storage.tables import DeliberationModeratorRow, DeliberationRow, ModeratorInviteRow, UserRow

ID_LENGTH = 16  # about 78 bits: links are unguessable


class InvalidTransition(ValueError):
    """The deliberation cannot do that from its current status; the message says why."""


class InviteUnusable(ValueError):
    """The invite is unknown, used or expired (deliberately not saying which)."""


@dataclass(frozen=True)
class DeliberationRecord:
    id: str
    organiser_id: str | None
    spec: DeliberationSpec
    status: str
    created_at: float
    updated_at: float

    @property
    def running(self) -> bool:
        """Open or paused: its participants reach its lobby and rooms (not before it opens, nor after it closes)."""
        return self.status in RUNNING


@dataclass(frozen=True)
class ModeratorRecord:
    user_id: str
    email: str
    added_at: float


def _record(row: DeliberationRow) -> DeliberationRecord:
    spec = DeliberationSpec.model_validate({
        "title": row.title, "question": row.question, "background": row.background, "template": row.template_id,
        "group_min": row.group_min, "group_max": row.group_max, "ai_messages": row.ai_messages,
        "cross_pollination": 3 if row.cross_pollination is None else row.cross_pollination,
        "signup_questions": row.signup_questions, "mix_question": row.mix_question, "languages": row.languages,
        "starts_at": row.starts_at, "retention_days": row.retention_days})
    return DeliberationRecord(row.id, row.organiser_id, spec, row.status, row.created_at, row.updated_at)


def spec_columns(spec: DeliberationSpec) -> dict[str, object]:
    """A spec as the deliberations table's columns."""
    return {"title": spec.title, "question": spec.question, "background": spec.background,
            "template_id": spec.template, "group_min": spec.group_min, "group_max": spec.group_max,
            "ai_messages": spec.ai_messages, "cross_pollination": spec.cross_pollination,
            "signup_questions": [q.model_dump() for q in spec.signup_questions],
            "mix_question": spec.mix_question, "languages": list(spec.languages), "starts_at": spec.starts_at,
            "retention_days": spec.retention_days}


def lock_deliberation(s: Session, deliberation_id: str) -> DeliberationRow | None:
    """Take the deliberation's write lock in this transaction, then read it: a no-op UPDATE first (PostgreSQL locks
    the row; SQLite, whose SELECT ... FOR UPDATE does nothing, takes its database write lock before anything is
    read, so a concurrent transaction cannot act on what it read before this one committed)."""
    s.execute(update(DeliberationRow).where(DeliberationRow.id == deliberation_id)
              .values(updated_at=DeliberationRow.updated_at))
    return s.get(DeliberationRow, deliberation_id, populate_existing=True)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DeliberationStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # Deliberations ------------------------------------------------------------------------------------------------
    def create(self, organiser_id: str, spec: DeliberationSpec, now: float) -> DeliberationRecord:
        row = DeliberationRow(id=new_id(ID_LENGTH), organiser_id=organiser_id, status="draft", created_at=now,
                              updated_at=now, **spec_columns(spec))
        with self._sessions() as s, s.begin():
            s.add(row)
        return _record(row)

    def get(self, deliberation_id: str) -> DeliberationRecord | None:
        with self._sessions() as s:
            row = s.get(DeliberationRow, deliberation_id)
            return _record(row) if row is not None else None

    def all(self) -> list[DeliberationRecord]:
        with self._sessions() as s:
            return [_record(r) for r in s.scalars(select(DeliberationRow).order_by(DeliberationRow.created_at))]

    def of_organiser(self, user_id: str) -> list[DeliberationRecord]:
        with self._sessions() as s:
            rows = s.scalars(select(DeliberationRow).where(DeliberationRow.organiser_id == user_id)
                             .order_by(DeliberationRow.created_at))
            return [_record(r) for r in rows]

    def moderated_by(self, user_id: str) -> list[DeliberationRecord]:
        with self._sessions() as s:
            rows = s.scalars(select(DeliberationRow)
                             .join(DeliberationModeratorRow,
                                   DeliberationModeratorRow.deliberation_id == DeliberationRow.id)
                             .where(DeliberationModeratorRow.user_id == user_id)
                             .order_by(DeliberationRow.created_at))
            return [_record(r) for r in rows]

    def update(self, deliberation_id: str, spec: DeliberationSpec, now: float) -> DeliberationRecord:
        with self._sessions() as s, s.begin():
            row = lock_deliberation(s, deliberation_id)
            if row is None:
                raise KeyError(deliberation_id)
            if row.status == "closed":
                raise InvalidTransition("a closed deliberation cannot be changed")
            for name, value in spec_columns(spec).items():
                setattr(row, name, value)
            row.updated_at = now
            return _record(row)

    def transition(self, deliberation_id: str, action: str, now: float) -> DeliberationRecord:
        """Open, pause or close (atomic: two organisers acting at once cannot skip a state check)."""
        if action not in TRANSITIONS:
            raise InvalidTransition(f"unknown action {action!r}")
        allowed_from, target = TRANSITIONS[action]
        with self._sessions() as s, s.begin():
            row = lock_deliberation(s, deliberation_id)
            if row is None:
                raise KeyError(deliberation_id)
            if row.status not in allowed_from:
                raise InvalidTransition(f"a {row.status} deliberation cannot {action}")
            row.status, row.updated_at = target, now
            return _record(row)

    def delete(self, deliberation_id: str) -> bool:
        with self._sessions() as s, s.begin():
            result = s.connection().execute(delete(DeliberationRow).where(DeliberationRow.id == deliberation_id))
            return bool(result.rowcount)

    # Moderators ---------------------------------------------------------------------------------------------------
    def moderators(self, deliberation_id: str) -> list[ModeratorRecord]:
        with self._sessions() as s:
            rows = s.execute(select(UserRow.id, UserRow.email, DeliberationModeratorRow.added_at)
                             .join(DeliberationModeratorRow, DeliberationModeratorRow.user_id == UserRow.id)
                             .where(DeliberationModeratorRow.deliberation_id == deliberation_id)
                             .order_by(DeliberationModeratorRow.added_at))
            return [ModeratorRecord(user_id, email, added_at) for user_id, email, added_at in rows]

    def is_moderator(self, deliberation_id: str, user_id: str) -> bool:
        with self._sessions() as s:
            return s.get(DeliberationModeratorRow, (deliberation_id, user_id)) is not None

    def add_moderator(self, deliberation_id: str, user_id: str, now: float) -> None:
        """Assign (idempotent)."""
        with self._sessions() as s, s.begin():
            dialect = s.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            s.execute(insert(DeliberationModeratorRow)
                      .values(deliberation_id=deliberation_id, user_id=user_id, added_at=now)
                      .on_conflict_do_nothing())

    def remove_moderator(self, deliberation_id: str, user_id: str) -> bool:
        with self._sessions() as s, s.begin():
            result = s.connection().execute(delete(DeliberationModeratorRow).where(
                DeliberationModeratorRow.deliberation_id == deliberation_id,
                DeliberationModeratorRow.user_id == user_id))
            return bool(result.rowcount)

    # Invites ------------------------------------------------------------------------------------------------------
    def create_invite(self, deliberation_id: str, created_by: str, now: float, ttl_s: float) -> str:
        """A new single-use invite; returns its token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        with self._sessions() as s, s.begin():
            s.add(ModeratorInviteRow(token_hash=token_hash(token), deliberation_id=deliberation_id,
                                     created_by=created_by, created_at=now, expires_at=now + ttl_s))
        return token

    def invite_deliberation(self, token: str, now: float) -> str | None:
        """The deliberation an unused, unexpired invite is for (without using it)."""
        with self._sessions() as s:
            row = s.get(ModeratorInviteRow, token_hash(token))
            if row is None or row.used_at is not None or row.expires_at <= now:
                return None
            return row.deliberation_id

    def accept_invite(self, token: str, user_id: str, now: float) -> str:
        """Use the invite (once) and assign ``user_id``; returns the deliberation id."""
        with self._sessions() as s, s.begin():
            used = s.execute(update(ModeratorInviteRow)
                             .where(ModeratorInviteRow.token_hash == token_hash(token),
                                    ModeratorInviteRow.used_at.is_(None), ModeratorInviteRow.expires_at > now)
                             .values(used_at=now, used_by=user_id)
                             .returning(ModeratorInviteRow.deliberation_id)).scalar_one_or_none()
            if used is None:
                raise InviteUnusable
            dialect = s.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            s.execute(insert(DeliberationModeratorRow)
                      .values(deliberation_id=used, user_id=user_id, added_at=now).on_conflict_do_nothing())
            return str(used)
