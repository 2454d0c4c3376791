"""Forming groups from the people waiting in a lobby: a deterministic core, no I/O, no clock, no randomness.

A round seats the people waiting in rooms whose sizes are as balanced as possible (they differ by at most one) and
always within the deliberation's minimum and maximum group size: 10 people with sizes 4-6 make 5+5, never 4+4+2.
The bounds are hard: when not everyone can be seated within them (7 people with sizes 4-6, or fewer people than the
minimum), as many as possible are seated and the latest arrivals keep waiting, for open seats or the next round (the
organiser sees how many wait and can change the sizes). Among the ways to seat that many, the one whose group size is
closest to the middle of the bounds wins; a tie goes to fewer, larger rooms.

Mixing: when a sign-up question is chosen, each of its answers is spread across the rooms as evenly as possible: for
every answer, the rooms' counts of it differ by at most one. People are dealt to the rooms in turn, grouped by answer
(the most common answer first), which gives exactly that. Without mixing they are dealt in arrival order, so people
who arrive together (friends, colleagues) end up in different rooms.

A late arrival takes an open seat in a running room (the room where their answer is rarest, then the smallest, then
the first) or waits for the next round.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GroupSize:
    minimum: int
    maximum: int

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"group sizes need 1 <= minimum <= maximum (got {self.minimum}-{self.maximum})")

    def fits(self, seated: int, rooms: int) -> bool:
        """Whether ``seated`` people fit in ``rooms`` balanced rooms within the bounds."""
        return rooms > 0 and rooms * self.minimum <= seated <= rooms * self.maximum


@dataclass(frozen=True)
class Waiting:
    """Someone in the lobby, in arrival order; ``answer`` is their answer to the mixing question (None: none)."""

    participant_id: str
    answer: str | None = None


@dataclass(frozen=True)
class Round:
    rooms: list[list[Waiting]]  # each room's people
    waiting: list[Waiting]  # those who keep waiting (the latest arrivals)

    @property
    def sizes(self) -> list[int]:
        return [len(room) for room in self.rooms]


@dataclass
class OpenRoom:
    """A running room that may take late arrivals."""

    room_id: str
    size: int
    answers: Counter[str | None] = field(default_factory=Counter)


def seatable(people: int, size: GroupSize) -> int:
    """How many of ``people`` can be seated within the bounds (the rest wait)."""
    for seated in range(people, 0, -1):
        rooms = -(-seated // size.maximum)  # the fewest rooms that hold them
        if size.fits(seated, rooms):
            return seated
    return 0


def room_sizes(people: int, size: GroupSize) -> list[int]:
    """The sizes of the rooms for a round of ``people`` (largest first): balanced, within the bounds, seating as many
    as possible; among the room counts that do, group size closest to the middle of the bounds, then fewer rooms."""
    seated = seatable(people, size)
    if seated == 0:
        return []
    middle = (size.minimum + size.maximum) / 2
    candidates = [k for k in range(-(-seated // size.maximum), seated // size.minimum + 1) if size.fits(seated, k)]
    rooms = min(candidates, key=lambda k: (abs(seated / k - middle), k))
    base, extra = divmod(seated, rooms)
    return [base + 1] * extra + [base] * (rooms - extra)


def form_groups(waiting: Sequence[Waiting], size: GroupSize, mix: bool = False) -> Round:
    """Assign the people waiting (in arrival order) to rooms; the latest arrivals wait if not all can be seated."""
    if len({w.participant_id for w in waiting}) != len(waiting):
        raise ValueError("someone is waiting twice")
    sizes = room_sizes(len(waiting), size)
    seated_count = sum(sizes)
    seated, left = list(waiting[:seated_count]), list(waiting[seated_count:])
    if mix:
        groups: dict[str | None, list[Waiting]] = {}
        for person in seated:
            groups.setdefault(person.answer, []).append(person)
        ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0] is None, item[0] or ""))
        seated = [person for _, members in ordered for person in members]
    rooms: list[list[Waiting]] = [[] for _ in sizes]
    # Dealing in turn fills the balanced sizes exactly: the larger rooms come first.
    for index, person in enumerate(seated):
        rooms[index % len(rooms)].append(person)
    return Round(rooms, left)


def seat_late_arrival(person: Waiting, rooms: Sequence[OpenRoom], size: GroupSize) -> str | None:
    """The running room a late arrival joins (None: no open seat; they wait for the next round)."""
    open_rooms = [room for room in rooms if room.size < size.maximum]
    if not open_rooms:
        return None
    best = min(open_rooms, key=lambda room: (room.answers[person.answer], room.size))
    return best.room_id
