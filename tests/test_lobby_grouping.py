"""The lobby's grouping core: balanced rooms within the bounds, as many seated as possible, answers spread evenly,
late arrivals placed where their answer is rarest. Cases by hand, then properties over 1 to 500 people."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.lobby.grouping import (
    GroupSize,
    OpenRoom,
    Waiting,
    form_groups,
    room_sizes,
    seat_late_arrival,
    seatable,
)


def people(n: int, answers: list[str | None] | None = None) -> list[Waiting]:
    return [Waiting(f"p{i:03d}", answers[i % len(answers)] if answers else None) for i in range(n)]


@pytest.mark.parametrize(("n", "bounds", "sizes"), [
    (10, (4, 6), [5, 5]),  # never 4+4+2
    (12, (4, 6), [6, 6]),  # 6+6 and 4+4+4 are as far from 5: fewer rooms
    (13, (4, 6), [5, 4, 4]),
    (7, (4, 6), [6]),  # 4+3 breaks the minimum: six seated, one waits
    (3, (4, 6), []),  # fewer than the minimum: everyone waits
    (0, (4, 6), []),
    (1, (1, 8), [1]),
    (8, (4, 8), [8]),  # 8 is one room of 8, as close to 6 as two of 4
    (9, (4, 8), [5, 4]),
    (17, (5, 5), [5, 5, 5]),  # fixed size: two wait
    (500, (4, 8), [7, 7] + [6] * 81),  # 83 rooms: 6.02 a room is closer to 6 than 84 rooms' 5.95
])
def test_room_sizes(n: int, bounds: tuple[int, int], sizes: list[int]) -> None:
    assert room_sizes(n, GroupSize(*bounds)) == sizes


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        GroupSize(0, 4)
    with pytest.raises(ValueError):
        GroupSize(5, 4)


def test_the_latest_arrivals_wait() -> None:
    result = form_groups(people(7), GroupSize(4, 6))
    assert result.sizes == [6]
    assert [w.participant_id for w in result.waiting] == ["p006"]


def test_without_mixing_arrivals_are_dealt_in_turn() -> None:
    result = form_groups(people(10), GroupSize(4, 6))
    assert [[w.participant_id for w in room] for room in result.rooms] == [
        ["p000", "p002", "p004", "p006", "p008"], ["p001", "p003", "p005", "p007", "p009"]]


def test_mixing_spreads_each_answer() -> None:
    # 6 of region "north", 3 "south", 1 without an answer, arriving grouped (all the north first)
    waiting = [Waiting(f"n{i}", "north") for i in range(6)] + [Waiting(f"s{i}", "south") for i in range(3)]
    waiting.append(Waiting("x", None))
    unmixed = form_groups(waiting, GroupSize(4, 6))
    mixed = form_groups(waiting, GroupSize(4, 6), mix=True)
    assert mixed.sizes == [5, 5]
    for answer in ("north", "south"):
        counts = [sum(w.answer == answer for w in room) for room in mixed.rooms]
        assert max(counts) - min(counts) <= 1, (answer, counts)
    assert sorted(w.participant_id for room in mixed.rooms for w in room) == sorted(w.participant_id
                                                                                   for w in waiting)
    assert unmixed.sizes == [5, 5]


def test_someone_waiting_twice_is_refused() -> None:
    with pytest.raises(ValueError):
        form_groups([Waiting("a"), Waiting("a")], GroupSize(1, 4))


def test_late_arrival_joins_where_their_answer_is_rarest_then_the_smallest_room() -> None:
    size = GroupSize(4, 6)
    rooms = [OpenRoom("r1", 5, Counter({"north": 3, "south": 2})),
             OpenRoom("r2", 5, Counter({"north": 4, "south": 1})),
             OpenRoom("r3", 6, Counter({"south": 6}))]
    assert seat_late_arrival(Waiting("late", "north"), rooms, size) == "r1"
    assert seat_late_arrival(Waiting("late", "south"), rooms, size) == "r2"
    assert seat_late_arrival(Waiting("late", None), rooms, size) == "r1"  # a tie: the first
    full = [OpenRoom("r1", 6), OpenRoom("r2", 6)]
    assert seat_late_arrival(Waiting("late"), full, size) is None


bounds = st.tuples(st.integers(1, 10), st.integers(0, 6)).map(lambda t: GroupSize(t[0], t[0] + t[1]))


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 500), bounds)
def test_sizes_are_balanced_within_bounds_and_seat_as_many_as_possible(n: int, size: GroupSize) -> None:
    sizes = room_sizes(n, size)
    seated = sum(sizes)
    assert seated <= n
    assert all(size.minimum <= s <= size.maximum for s in sizes)
    if sizes:
        assert max(sizes) - min(sizes) <= 1
    # nobody who could have been seated waits: no larger number fits any number of rooms
    assert not any(size.fits(m, k) for m in range(seated + 1, n + 1) for k in range(1, m + 1))
    assert seatable(n, size) == seated


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 500), bounds, st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=7),
       st.booleans())
def test_groups_are_a_partition_with_each_answer_spread(n: int, size: GroupSize,
                                                        answers: list[str | None], mix: bool) -> None:
    waiting = people(n, answers)
    result = form_groups(waiting, size, mix=mix)
    assert result.sizes == room_sizes(n, size)
    everyone = [w.participant_id for room in result.rooms for w in room] + [w.participant_id for w in result.waiting]
    assert sorted(everyone) == [w.participant_id for w in waiting]  # each person exactly once
    assert result.waiting == waiting[sum(result.sizes):]  # the latest arrivals wait
    if mix and result.rooms:
        for answer in set(answers):
            counts = [sum(w.answer == answer for w in room) for room in result.rooms]
            assert max(counts) - min(counts) <= 1, (answer, counts)
    assert form_groups(waiting, size, mix=mix) == result  # deterministic
