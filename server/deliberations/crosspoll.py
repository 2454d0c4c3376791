"""Cross-pollination: in its voting stage a room also votes on a few statements written in the deliberation's other
rooms, so that consensus across rooms can be measured (a statement voted on in one room only says nothing about the
others). The choice (``choose``) is a deterministic core, property-tested: never the room's own statements nor ones it
already has; first those that the fewest rooms have seen (so every statement gets votes from several rooms as rooms
reach their vote), taking source rooms in turn (so one prolific room does not fill the slots), each room starting with
the rooms after it in a ring (so shares go round whatever order rooms reach their vote in), older first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    statement_id: str
    room_id: str  # where it was written
    created_at: float
    seen_in: frozenset[str]  # rooms that have it (its own, and those it was shared into)


def choose(room_id: str, candidates: Sequence[Candidate], count: int) -> list[str]:
    """Up to ``count`` statement ids for ``room_id`` to vote on as well."""
    pool = [c for c in candidates if c.room_id != room_id and room_id not in c.seen_in]
    rooms = sorted({room_id, *(c.room_id for c in candidates)})
    me = rooms.index(room_id)

    def after_me(origin: str) -> int:  # rooms take from the rooms after them first (in a ring): shares go round
        return (rooms.index(origin) - me) % len(rooms)

    chosen: list[str] = []
    taken_from: dict[str, int] = {}
    while pool and len(chosen) < count:
        best = min(pool, key=lambda c: (len(c.seen_in), taken_from.get(c.room_id, 0), after_me(c.room_id),
                                        c.created_at, c.statement_id))
        chosen.append(best.statement_id)
        taken_from[best.room_id] = taken_from.get(best.room_id, 0) + 1
        pool.remove(best)
    return chosen


def spread(rooms_in_order: Sequence[str], written: Mapping[str, Sequence[tuple[str, float]]],
           count: int) -> dict[str, set[str]]:
    """Which rooms see each statement after every room in ``rooms_in_order`` has reached its vote (a simulation of
    ``choose`` for tests and the report): statement id -> rooms."""
    seen = {sid: {room} for room, items in written.items() for sid, _ in items}
    created = {sid: at for items in written.values() for sid, at in items}
    origin = {sid: room for room, items in written.items() for sid, _ in items}
    for room in rooms_in_order:
        candidates = [Candidate(sid, origin[sid], created[sid], frozenset(rooms)) for sid, rooms in seen.items()]
        for sid in choose(room, candidates, count):
            seen[sid].add(room)
    return seen
