"""Timed deliberation work on virtual time: the first round forms itself at the scheduled start (once, and not for a
deliberation that is paused or has had a round), and transcripts go when the retention period is over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.accounts.store import AccountStore
from server.core.clock import ManualClock
from server.core.events import CaptionFinal
from server.deliberations.erasure import DAY_S
from server.deliberations.spec import DeliberationSpec
from server.deliberations.store import DeliberationStore
from server.lobby.notice import NOTICE_VERSION
from server.lobby.store import LobbyStore
from server.storage import Storage
from server.workers.schedule import DeliberationScheduler, Scheduled, due_rounds

START = 1_000_000.0


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage(f"sqlite:///{tmp_path / 'moot.db'}")
    store.create_schema()
    yield store
    store.close()


def test_due_rounds() -> None:
    cases = [Scheduled("due", "open", 10.0, False), Scheduled("later", "open", 30.0, False),
             Scheduled("had-round", "open", 10.0, True), Scheduled("paused", "paused", 10.0, False),
             Scheduled("unscheduled", "open", None, False)]
    assert due_rounds(cases, 20.0) == ["due"]


@given(st.floats(0, 1e9), st.floats(0, 1e9), st.booleans())
def test_a_round_is_due_exactly_from_its_start(starts_at: float, now: float, had_round: bool) -> None:
    due = due_rounds([Scheduled("d", "open", starts_at, had_round)], now)
    assert (due == ["d"]) == (now >= starts_at and not had_round)


async def test_the_scheduled_start_forms_the_rooms_and_retention_deletes_transcripts(storage: Storage) -> None:
    clock = ManualClock(START)
    organiser = AccountStore(storage.sessions).add_user("ada@example.org", "x" * 40, "organiser", START)
    deliberations = DeliberationStore(storage.sessions)
    spec = DeliberationSpec(title="Sundays", question="Open on Sundays?", group_min=2, group_max=3,
                            starts_at=START + 120, retention_days=7)
    record = deliberations.transition(deliberations.create(organiser.id, spec, START).id, "open", START)
    paused = deliberations.create(organiser.id, spec, START)  # never opened: no round
    lobby = LobbyStore(storage.sessions)
    for i in range(5):
        lobby.arrive(record, f"Person {i}", {}, NOTICE_VERSION, START + i)
    scheduler = DeliberationScheduler(storage, clock, every_s=30)
    clock.settles_with(scheduler.rested)
    await scheduler.start()
    try:
        await clock.advance(90, step=30)
        assert lobby.status(record.id).waiting == 5  # not yet
        await clock.advance(60, step=30)
        status = lobby.status(record.id)
        assert status.waiting == 0 and sorted(r.participants for r in status.rooms) == [2, 3]
        assert lobby.status(paused.id).rooms == []
        assert scheduler.rounds_started == 1
        room = status.rooms[0].room_id
        storage.add_caption(CaptionFinal(room_id=room, utterance_id="u1", participant_id="p", speaker_name="A",
                                         text="said", start=1.0, end=2.0))
        lobby.arrive(record, "Late", {}, NOTICE_VERSION, clock.now())  # a late arrival, not another round
        await clock.advance(60, step=30)
        assert scheduler.rounds_started == 1

        closed_at = clock.now()
        deliberations.transition(record.id, "close", closed_at)
        await clock.advance(7 * DAY_S - 60, step=3600)
        assert len(storage.transcript(room)) == 1
        await clock.advance(3600, step=30)
        assert storage.transcript(room) == []
        assert scheduler.health()["ok"] and scheduler.failures == 0
    finally:
        await scheduler.close()
