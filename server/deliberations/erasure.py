"""Deleting personal data for real (rows gone, not flagged): one participant's data in a deliberation, and the
transcripts of deliberations whose retention period has passed.

One participant: their captions, the statements they wrote (with every vote on them), their votes, their flags on
summaries, safety flags about what they said, their room join records and their lobby entry with its consent.

Retention: ``retention_days`` after a deliberation closed, its transcripts go: captions, the language-model call
records (their prompts quote the transcript) and safety flags. Statements, votes and the facilitator's messages stay:
they are the deliberation's outcome, not what each person said.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from server.storage.tables import (
    CaptionRow,
    CaptionTranslationRow,
    DeliberationRow,
    HelpRequestRow,
    LLMCallRow,
    LobbyParticipantRow,
    ParticipantRow,
    RoomRow,
    SafetyFlagRow,
    StatementRow,
    SummaryFlagRow,
    VoteRow,
)

DAY_S = 86_400.0


@dataclass(frozen=True)
class Closed:
    """What retention needs to know of a deliberation."""

    deliberation_id: str
    status: str
    closed_at: float  # when it closed (its last change: a closed deliberation cannot change)
    retention_days: int | None


def due_for_deletion(deliberations: Iterable[Closed], now: float) -> list[str]:
    """The deliberations whose transcripts must go now: closed, with a retention period, and that long ago."""
    return sorted(d.deliberation_id for d in deliberations
                  if d.status == "closed" and d.retention_days is not None
                  and d.closed_at + d.retention_days * DAY_S <= now)


def _rooms(s: Session, deliberation_id: str) -> list[str]:
    return list(s.scalars(select(RoomRow.id).where(RoomRow.deliberation_id == deliberation_id)))


class Erasure:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def delete_participant(self, deliberation_id: str, participant_id: str) -> bool:
        """Everything of one participant in one deliberation; False if they never arrived there."""
        with self._sessions() as s, s.begin():
            entry = s.get(LobbyParticipantRow, participant_id)
            if entry is None or entry.deliberation_id != deliberation_id:
                return False
            rooms = _rooms(s, deliberation_id)
            if rooms:
                in_rooms = CaptionRow.room_id.in_(rooms)
                s.execute(delete(SafetyFlagRow).where(SafetyFlagRow.room_id.in_(rooms),
                                                      SafetyFlagRow.participant_id == participant_id))
                s.execute(delete(CaptionRow).where(in_rooms, CaptionRow.participant_id == participant_id))
                s.execute(delete(CaptionTranslationRow).where(CaptionTranslationRow.room_id.in_(rooms),
                                                              CaptionTranslationRow.participant_id == participant_id))
                authored = select(StatementRow.statement_id).where(StatementRow.room_id.in_(rooms),
                                                                   StatementRow.author_id == participant_id)
                s.execute(delete(VoteRow).where(VoteRow.statement_id.in_(authored)))
                s.execute(delete(StatementRow).where(StatementRow.room_id.in_(rooms),
                                                     StatementRow.author_id == participant_id))
                in_statements = select(StatementRow.statement_id).where(StatementRow.room_id.in_(rooms))
                s.execute(delete(VoteRow).where(VoteRow.statement_id.in_(in_statements),
                                                VoteRow.participant_id == participant_id))
                s.execute(delete(SummaryFlagRow).where(SummaryFlagRow.room_id.in_(rooms),
                                                       SummaryFlagRow.participant_id == participant_id))
                s.execute(delete(HelpRequestRow).where(HelpRequestRow.room_id.in_(rooms),
                                                       HelpRequestRow.participant_id == participant_id))
                s.execute(delete(ParticipantRow).where(ParticipantRow.room_id.in_(rooms),
                                                       ParticipantRow.id == participant_id))
            s.delete(entry)
            return True

    def closed(self) -> list[Closed]:
        with self._sessions() as s:
            rows = s.execute(select(DeliberationRow.id, DeliberationRow.status, DeliberationRow.updated_at,
                                    DeliberationRow.retention_days)
                             .where(DeliberationRow.status == "closed",
                                    DeliberationRow.retention_days.is_not(None)))
            return [Closed(i, status, at, days) for i, status, at, days in rows]

    def delete_transcripts(self, deliberation_id: str) -> int:
        """The deliberation's transcripts (see the module's docstring); returns how many captions went."""
        with self._sessions() as s, s.begin():
            rooms = _rooms(s, deliberation_id)
            if not rooms:
                return 0
            s.execute(delete(SafetyFlagRow).where(SafetyFlagRow.room_id.in_(rooms)))
            s.execute(delete(LLMCallRow).where(LLMCallRow.room_id.in_(rooms)))
            s.execute(delete(CaptionTranslationRow).where(CaptionTranslationRow.room_id.in_(rooms)))
            result = s.connection().execute(delete(CaptionRow).where(CaptionRow.room_id.in_(rooms)))
            return int(result.rowcount)

    def apply_retention(self, now: float) -> list[str]:
        """Delete the transcripts of every deliberation that is due; returns their ids."""
        due = due_for_deletion(self.closed(), now)
        for deliberation_id in due:
            self.delete_transcripts(deliberation_id)
        return due
