"""Users and sessions in the database (blocking; async callers use ``asyncio.to_thread``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from server.core.ids import new_id
from server.storage.tables import AuthSessionRow, UserRow


class AccountExists(ValueError):
    """An account with this email exists already."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    role: str
    created_at: float
    disabled: bool
    password_hash: str  # never leaves the accounts package


def _user(row: UserRow) -> UserRecord:
    return UserRecord(row.id, row.email, row.role, row.created_at, row.disabled_at is not None, row.password_hash)


class AccountStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add_user(self, email: str, password_hash: str, role: str, now: float) -> UserRecord:
        row = UserRow(id=new_id(), email=email, password_hash=password_hash, role=role, created_at=now)
        try:
            with self._sessions() as s, s.begin():
                s.add(row)
        except IntegrityError as exc:
            raise AccountExists(email) from exc
        return _user(row)

    def user_by_email(self, email: str) -> UserRecord | None:
        with self._sessions() as s:
            row = s.scalar(select(UserRow).where(UserRow.email == email))
            return _user(row) if row is not None else None

    def user(self, user_id: str) -> UserRecord | None:
        with self._sessions() as s:
            row = s.get(UserRow, user_id)
            return _user(row) if row is not None else None

    def users(self) -> list[UserRecord]:
        with self._sessions() as s:
            return [_user(row) for row in s.scalars(select(UserRow).order_by(UserRow.created_at))]

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._sessions() as s, s.begin():
            s.execute(update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash))

    def set_disabled(self, user_id: str, at: float | None) -> None:
        with self._sessions() as s, s.begin():
            s.execute(update(UserRow).where(UserRow.id == user_id).values(disabled_at=at))

    def add_session(self, user_id: str, now: float, expires_at: float) -> str:
        session_id = new_id(48)  # about 236 bits
        with self._sessions() as s, s.begin():
            s.add(AuthSessionRow(id=session_id, user_id=user_id, created_at=now, expires_at=expires_at))
        return session_id

    def active_session_user(self, session_id: str, user_id: str, now: float) -> UserRecord | None:
        """The session's user if the session is theirs, unrevoked and unexpired, and the account is enabled."""
        with self._sessions() as s:
            row = s.execute(
                select(UserRow)
                .join(AuthSessionRow, AuthSessionRow.user_id == UserRow.id)
                .where(AuthSessionRow.id == session_id, AuthSessionRow.user_id == user_id,
                       AuthSessionRow.revoked_at.is_(None), AuthSessionRow.expires_at > now,
                       UserRow.disabled_at.is_(None))
            ).scalar_one_or_none()
            return _user(row) if row is not None else None

    def revoke_session(self, session_id: str, now: float) -> None:
        with self._sessions() as s, s.begin():
            s.execute(update(AuthSessionRow).where(AuthSessionRow.id == session_id,
                                                   AuthSessionRow.revoked_at.is_(None)).values(revoked_at=now))

    def revoke_sessions_of(self, user_id: str, now: float) -> None:
        with self._sessions() as s, s.begin():
            s.execute(update(AuthSessionRow).where(AuthSessionRow.user_id == user_id,
                                                   AuthSessionRow.revoked_at.is_(None)).values(revoked_at=now))
