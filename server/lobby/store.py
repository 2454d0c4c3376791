"""The lobby in the database (blocking; async callers use ``asyncio.to_thread``): arrivals, rounds that form rooms
from everyone waiting, late arrivals seated in running rooms.

A round is one transaction holding the deliberation's row lock, so two organisers pressing "start" at once cannot
seat anyone twice: the second round finds nobody (or only newer arrivals) waiting. Each room formed gets the
deliberation's facilitator plan (template, question, AI approval mode). Within a room no two names may look alike
(``server/names.py``): a later arrival whose name clashes with someone already in the room is shown with a number
("Ada 2").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.core.ids import new_id
from server.deliberations.store import DeliberationRecord, lock_deliberation
from server.lobby.grouping import GroupSize, OpenRoom, Waiting, form_groups, seat_late_arrival
from server.names import names_clash
from server.storage.tables import LobbyParticipantRow, RoomPlanRow, RoomRow

PARTICIPANT_ID_LENGTH = 16


class LobbyClosed(ValueError):
    """The deliberation does not take arrivals or rounds now; the message says why."""


@dataclass(frozen=True)
class LobbyEntry:
    id: str
    deliberation_id: str
    name: str
    answers: dict[str, str]
    status: str  # waiting | assigned | left | removed (by a moderator)
    room_id: str | None
    room_name: str | None
    arrived_at: float


@dataclass(frozen=True)
class RoundResult:
    rooms: dict[str, list[str]] = field(default_factory=dict)  # room id -> participant ids
    waiting: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RoomCount:
    room_id: str
    title: str
    participants: int


@dataclass(frozen=True)
class LobbyStatus:
    waiting: int
    rooms: list[RoomCount]


def _entry(row: LobbyParticipantRow) -> LobbyEntry:
    return LobbyEntry(row.id, row.deliberation_id, row.name, dict(row.answers), row.status, row.room_id,
                      row.room_name, row.arrived_at)


def _unclashed(name: str, taken: list[str]) -> str:
    """``name``, or with the first number that makes it look unlike every name already in the room."""
    candidate, n = name, 1
    while any(names_clash(candidate, other) for other in taken):
        n += 1
        candidate = f"{name[:60]} {n}"
    return candidate


class LobbyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def arrive(self, deliberation: DeliberationRecord, name: str, answers: dict[str, str], notice_version: str,
               now: float) -> LobbyEntry:
        """Someone consented and answered: they wait, or, when rounds have already formed rooms, take an open seat."""
        row = LobbyParticipantRow(id=new_id(PARTICIPANT_ID_LENGTH), deliberation_id=deliberation.id, name=name,
                                  answers=answers, consented_at=now, notice_version=notice_version, arrived_at=now,
                                  status="waiting")
        with self._sessions() as s, s.begin():
            locked = lock_deliberation(s, deliberation.id)
            if locked is None or locked.status != "open":
                raise LobbyClosed("this deliberation is not open")
            s.add(row)
            s.flush()
            if self._has_rooms(s, deliberation.id):
                self._seat_late(s, deliberation, row, now)
            return _entry(row)

    def entry(self, participant_id: str) -> LobbyEntry | None:
        with self._sessions() as s:
            row = s.get(LobbyParticipantRow, participant_id)
            return _entry(row) if row is not None else None

    def arrival_order(self, deliberation_id: str) -> list[str]:
        """Every participant id of the deliberation, in the order they arrived (exports number them so)."""
        with self._sessions() as s:
            return list(s.scalars(select(LobbyParticipantRow.id)
                                  .where(LobbyParticipantRow.deliberation_id == deliberation_id)
                                  .order_by(LobbyParticipantRow.arrived_at, LobbyParticipantRow.id)))

    def leave(self, participant_id: str) -> None:
        with self._sessions() as s, s.begin():
            row = s.get(LobbyParticipantRow, participant_id)
            if row is not None:
                row.status = "left"

    def remove(self, participant_id: str) -> None:
        """A moderator removed them: their credential admits them nowhere any more."""
        with self._sessions() as s, s.begin():
            row = s.get(LobbyParticipantRow, participant_id)
            if row is not None:
                row.status, row.room_id = "removed", None

    def move(self, participant_id: str, room_id: str, capacity: int, now: float) -> str | None:
        """Seat an assigned participant in another room of their deliberation; None if done, else why not."""
        with self._sessions() as s, s.begin():
            row = s.get(LobbyParticipantRow, participant_id)
            if row is None or row.status != "assigned":
                return "this participant has no seat to move"
            target = s.get(RoomRow, room_id)
            if target is None or target.deliberation_id != row.deliberation_id or target.ended_at is not None:
                return "the room to move to is not an open room of the same deliberation"
            if row.room_id == room_id:
                return "they are already in that room"
            members = list(s.scalars(select(LobbyParticipantRow).where(LobbyParticipantRow.room_id == room_id,
                                                                       LobbyParticipantRow.status == "assigned")))
            if len(members) >= capacity:
                return f"that room is full ({capacity} people)"
            row.room_name = _unclashed(row.name, [m.room_name or m.name for m in members])
            row.room_id, row.assigned_at = room_id, now
            return None

    def start_round(self, deliberation: DeliberationRecord, now: float) -> RoundResult:
        """Seat everyone waiting (as many as the group sizes allow) in new rooms."""
        spec = deliberation.spec
        with self._sessions() as s, s.begin():
            locked = lock_deliberation(s, deliberation.id)
            if locked is None or locked.status != "open":
                raise LobbyClosed("open the deliberation before starting a round")
            rows = list(s.scalars(select(LobbyParticipantRow)
                                  .where(LobbyParticipantRow.deliberation_id == deliberation.id,
                                         LobbyParticipantRow.status == "waiting")
                                  .order_by(LobbyParticipantRow.arrived_at, LobbyParticipantRow.id)))
            by_id = {row.id: row for row in rows}
            mix = spec.mix_question
            waiting = [Waiting(row.id, row.answers.get(mix) if mix else None) for row in rows]
            formed = form_groups(waiting, GroupSize(spec.group_min, spec.group_max), mix=mix is not None)
            number = self._room_count(s, deliberation.id)
            result = RoundResult(waiting=[w.participant_id for w in formed.waiting])
            for members in formed.rooms:
                number += 1
                room = RoomRow(id=new_id(), title=f"{spec.title[:180]} · room {number}", created_at=now,
                               max_participants=spec.group_max, deliberation_id=deliberation.id)
                s.add(room)
                s.flush()  # (no ORM relationships: the room is written before what refers to it)
                s.add(RoomPlanRow(room_id=room.id, template_id=spec.template, question=spec.question,
                                  ai_messages=spec.ai_messages))
                s.flush()
                names: list[str] = []
                for member in members:
                    row = by_id[member.participant_id]
                    row.room_name = _unclashed(row.name, names)
                    names.append(row.room_name)
                    row.status, row.room_id, row.assigned_at = "assigned", room.id, now
                result.rooms[room.id] = [m.participant_id for m in members]
            return result

    def status(self, deliberation_id: str) -> LobbyStatus:
        with self._sessions() as s:
            waiting = s.scalar(select(func.count()).select_from(LobbyParticipantRow)
                               .where(LobbyParticipantRow.deliberation_id == deliberation_id,
                                      LobbyParticipantRow.status == "waiting")) or 0
            counts = s.execute(
                select(RoomRow.id, RoomRow.title, func.count(LobbyParticipantRow.id))
                .outerjoin(LobbyParticipantRow, (LobbyParticipantRow.room_id == RoomRow.id)
                           & (LobbyParticipantRow.status == "assigned"))
                .where(RoomRow.deliberation_id == deliberation_id)
                .group_by(RoomRow.id, RoomRow.title, RoomRow.created_at)
                .order_by(RoomRow.created_at, RoomRow.title))
            return LobbyStatus(int(waiting), [RoomCount(r, t, int(n)) for r, t, n in counts])

    # -- within a transaction ---------------------------------------------------------------------------------------

    @staticmethod
    def _has_rooms(s: Session, deliberation_id: str) -> bool:
        return s.scalar(select(RoomRow.id).where(RoomRow.deliberation_id == deliberation_id).limit(1)) is not None

    @staticmethod
    def _room_count(s: Session, deliberation_id: str) -> int:
        return int(s.scalar(select(func.count()).select_from(RoomRow)
                            .where(RoomRow.deliberation_id == deliberation_id)) or 0)

    @staticmethod
    def _seat_late(s: Session, deliberation: DeliberationRecord, row: LobbyParticipantRow, now: float) -> None:
        spec = deliberation.spec
        members = s.scalars(select(LobbyParticipantRow)
                            .join(RoomRow, RoomRow.id == LobbyParticipantRow.room_id)
                            .where(RoomRow.deliberation_id == deliberation.id,
                                   LobbyParticipantRow.status == "assigned")
                            .order_by(RoomRow.created_at, RoomRow.id))
        rooms: dict[str, OpenRoom] = {}
        names: dict[str, list[str]] = {}
        for member in members:
            assert member.room_id is not None
            room = rooms.setdefault(member.room_id, OpenRoom(member.room_id, 0, Counter()))
            room.size += 1
            room.answers[member.answers.get(spec.mix_question) if spec.mix_question else None] += 1
            names.setdefault(member.room_id, []).append(member.room_name or member.name)
        answer = row.answers.get(spec.mix_question) if spec.mix_question else None
        chosen = seat_late_arrival(Waiting(row.id, answer), list(rooms.values()),
                                   GroupSize(spec.group_min, spec.group_max))
        if chosen is not None:
            row.room_name = _unclashed(row.name, names.get(chosen, []))
            row.status, row.room_id, row.assigned_at = "assigned", chosen, now
