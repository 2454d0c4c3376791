"""Cross-pollination's choice, property-tested: never a room's own statements nor ones it already has, no repeats,
as many as asked while there are enough; the least-seen first; and once every room has voted, the statements are
spread nearly evenly over the rooms (every statement seen by several rooms when there are slots enough)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.deliberations.crosspoll import Candidate, choose, spread


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3", "r4"]), st.integers(0, 100),
                          st.frozensets(st.sampled_from(["r1", "r2", "r3", "r4"]))), max_size=25),
       st.sampled_from(["r1", "r2", "r3", "r4"]), st.integers(0, 6))
def test_choice_is_foreign_new_distinct_and_least_seen_first(items: list[tuple[str, int, frozenset[str]]], room: str,
                                                             count: int) -> None:
    candidates = [Candidate(f"s{i}", origin, float(at), seen | {origin}) for i, (origin, at, seen) in enumerate(items)]
    chosen = choose(room, candidates, count)
    eligible = [c for c in candidates if c.room_id != room and room not in c.seen_in]
    assert len(chosen) == len(set(chosen)) == min(count, len(eligible))
    by_id = {c.statement_id: c for c in candidates}
    assert all(by_id[s].room_id != room and room not in by_id[s].seen_in for s in chosen)
    if chosen:  # nothing left out was seen by fewer rooms than the most-seen chosen one
        worst = max(len(by_id[s].seen_in) for s in chosen)
        assert all(len(c.seen_in) >= worst for c in eligible if c.statement_id not in chosen)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 8), st.integers(1, 4), st.integers(1, 5), st.randoms(use_true_random=False))
def test_after_every_room_voted_statements_are_spread_evenly(rooms: int, per_room: int, count: int,
                                                            rng: object) -> None:
    names = [f"r{n}" for n in range(rooms)]
    written = {room: [(f"{room}-s{k}", float(k)) for k in range(per_room)] for room in names}
    order = list(names)
    rng.shuffle(order)  # type: ignore[attr-defined]
    seen = spread(order, written, count)
    coverage = sorted(len(r) for r in seen.values())
    # Nearly even (rooms choose one after another, unaware of those still to come).
    assert coverage[-1] - coverage[0] <= 2, coverage
    slots = rooms * min(count, (rooms - 1) * per_room)
    assert sum(coverage) == rooms * per_room + slots  # every slot was used
    if count * rooms >= rooms * per_room:  # slots enough for each statement to travel once
        assert coverage[0] >= 2


def test_source_rooms_take_turns() -> None:
    candidates = [Candidate(f"a{k}", "ra", float(k), frozenset({"ra"})) for k in range(5)]
    candidates += [Candidate("b0", "rb", 10.0, frozenset({"rb"}))]
    assert choose("rc", candidates, 3) == ["a0", "b0", "a1"]
