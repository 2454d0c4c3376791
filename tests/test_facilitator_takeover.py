"""Any number of facilitator workers: each room is facilitated by the worker holding its lease, and when that worker
dies another takes the room over and continues the same stage, rebuilt by replaying the room's events through the
deterministic engine (virtual time; the real-process version is in tests/test_facilitator_worker.py)."""

from __future__ import annotations

from facilitator.service import FacilitatorService
from facilitator.template import Template, builtin_templates
from server.core.bus import InProcessBus
from server.core.clock import ManualClock
from server.core.directory import ROOM_FACILITATOR, ROOM_NODE, RoomDirectory
from server.core.events import (
    AIMessage,
    CaptionFinal,
    ParticipantInfo,
    ParticipantJoined,
    StageChanged,
)
from server.core.leases import InMemoryLeases
from tests.markers import collect

TTL = 10.0


async def lookup(room_id: str) -> Template | None:
    return builtin_templates()["quick-20"]


def joined(room: str, pid: str, name: str, now: float) -> ParticipantJoined:
    return ParticipantJoined(room_id=room, ts=now, participant=ParticipantInfo(participant_id=pid, name=name))


async def test_a_second_worker_takes_over_a_dead_workers_room_and_continues_the_stage() -> None:
    bus = InProcessBus()
    clock = ManualClock()
    leases = InMemoryLeases(clock=clock.now)
    # The server node hosting the room holds its room-node lease (and renews it) for as long as the room runs.
    assert await leases.acquire(ROOM_NODE, "r", "node-1", ttl_s=3600)
    first = FacilitatorService(bus, lookup, clock, directory=RoomDirectory(leases, "worker-1", ttl_s=TTL))
    second = FacilitatorService(bus, lookup, clock, directory=RoomDirectory(leases, "worker-2", ttl_s=TTL))
    seen = await bus.subscribe("room:*", maxsize=10_000)  # markers go to rooms of their own
    await first.start()
    await clock.settle()
    await second.start()
    for pid, name in (("a", "Ada"), ("b", "Bo")):
        await bus.publish(joined("r", pid, name, clock.now()))
    await clock.advance(130, step=5)  # through the 2-minute welcome into the discussion
    await bus.publish(CaptionFinal(room_id="r", ts=clock.now(), utterance_id="u1", participant_id="a",
                                   speaker_name="Ada", text="More homes near the station.", start=clock.now() - 2,
                                   end=clock.now()))
    await clock.advance(60, step=5)
    before = await collect(bus, seen)
    holder = await leases.get(ROOM_FACILITATOR, "r")
    assert holder is not None and holder.holder == "worker-1"
    assert second.engine("r") is None, "one worker per room: the second one left it alone"
    engine = first.engine("r")
    assert engine is not None and engine.stage is not None and engine.stage.id == "discussion"
    stage_started, stage_ends, messages_sent = engine.stage_started_at, engine.stage_ends_at, len(
        [e for e in before if isinstance(e, AIMessage)])
    assert messages_sent >= 2 and all(e.source == "local" for e in before)

    await first.close(hand_over=False)  # killed: its lease is left to expire
    await clock.advance(TTL + 10, step=1)  # the second worker's scan finds the room unfacilitated and claims it
    holder = await leases.get(ROOM_FACILITATOR, "r")
    assert holder is not None and holder.holder == "worker-2" and holder.epoch == 2
    taken = second.engine("r")
    assert taken is not None and taken.stage is not None and taken.stage.id == "discussion", "the same stage"
    assert (taken.stage_started_at, taken.stage_ends_at) == (stage_started, stage_ends), "and the same clock"
    assert sorted(taken.balance.speakers) == ["a", "b"] and len(taken.statements) == len(engine.statements)
    during = await collect(bus, seen)
    # Nothing said twice on takeover: no stage announced again, no message id reused (what the new worker posts in
    # the gap is what came due while nobody facilitated, e.g. a prompt after the silence).
    assert not [e for e in during if isinstance(e, StageChanged)]
    assert not [e for e in during if isinstance(e, AIMessage) and e.kind in ("stage_intro", "greeting")]
    posted = {e.message_id for e in before if isinstance(e, AIMessage)}
    assert not [e for e in during if isinstance(e, AIMessage) and e.message_id in posted]

    # It goes on from there: the discussion ends when it was due to end, not a whole stage after the takeover.
    await clock.advance(stage_ends - clock.now() + 5, step=5)
    after = [e for e in await collect(bus, seen) if isinstance(e, StageChanged)]
    assert after and after[0].index == engine.stage_index + 1
    assert after[0].started_at == stage_ends
    ids = [e.message_id for e in before + during + await collect(bus, seen) if isinstance(e, AIMessage)]
    assert len(ids) == len(set(ids)), "message ids continue where the first worker stopped"
    await second.close()
    assert await leases.get(ROOM_FACILITATOR, "r") is None, "a worker that stops cleanly hands its rooms over"
    await bus.close()


async def test_a_clean_stop_hands_the_room_over_at_once() -> None:
    bus = InProcessBus()
    clock = ManualClock()
    leases = InMemoryLeases(clock=clock.now)
    assert await leases.acquire(ROOM_NODE, "q", "node-1", ttl_s=3600)
    first = FacilitatorService(bus, lookup, clock, directory=RoomDirectory(leases, "worker-1", ttl_s=TTL))
    await first.start()
    await bus.publish(joined("q", "a", "Ada", clock.now()))
    await clock.advance(10, step=1)
    assert first.engine("q") is not None
    await first.close()  # SIGTERM: hands over
    second = FacilitatorService(bus, lookup, clock, directory=RoomDirectory(leases, "worker-2", ttl_s=TTL))
    await second.start()
    await clock.settle()  # its first scan claims the room without waiting for any expiry
    assert second.engine("q") is not None and second.engine("q").stage_index == 0  # type: ignore[union-attr]
    await second.close()
    await bus.close()
