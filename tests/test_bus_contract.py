"""The bus contract (server/core/bus/base.py), run against both implementations: the in-process twin and the Redis
Streams bus on a real redis-server. Anything one implementation must do, the other must do the same way."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from server.core.bus import ROOMS, Bus, Consumer, Delivery, InProcessBus
from server.core.events import CaptionFinal, ParticipantLeft, VoteCast

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

BusFactory = Callable[..., Awaitable[Bus]]


def left(room: str, n: int) -> ParticipantLeft:
    return ParticipantLeft(room_id=room, participant_id=f"p{n}", name=f"n{n}")


def final(room: str, n: int) -> CaptionFinal:
    return CaptionFinal(room_id=room, utterance_id=f"u{n}", participant_id="p", speaker_name="Ada", text=f"line {n}",
                        start=float(n), end=float(n) + 1)


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Builds started buses of one kind sharing one backend (for Redis: a fresh key prefix per test, so tests
    never see each other's streams); closes them at the end."""
    made: list[Bus] = []
    namespace = f"test-{uuid.uuid4().hex[:8]}:"

    async def factory(source: str = "test", **options: object) -> Bus:
        if request.param == "memory":
            if made:
                return made[0]  # one process, one bus: "another node" is the same object
            bus: Bus = InProcessBus(source=source, **options)  # type: ignore[arg-type]
        else:
            from server.core.bus.redis import RedisBus

            bus = RedisBus(REDIS_URL, source=source, prefix=namespace, **options)  # type: ignore[arg-type]
        await bus.start()
        made.append(bus)
        return bus

    yield factory
    for bus in reversed(made):
        await bus.close()
    if request.param == "redis":
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{namespace}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_publish_stamps_the_envelope_and_numbers_each_room(make_bus: BusFactory) -> None:
    bus = await make_bus(source="node-1")
    a1 = await bus.publish(left("a", 1))
    b1 = await bus.publish(left("b", 1))
    a2 = await bus.publish(left("a", 2))
    assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1)
    assert a1.source == "node-1" and a1.event_id and a1.event_id != a2.event_id
    assert a1.v == 2


async def test_room_channel_delivery_in_order_and_isolated(make_bus: BusFactory) -> None:
    bus = await make_bus()
    sub = await bus.subscribe("room:a")
    other = await bus.subscribe("room:b")
    for n in range(5):
        await bus.publish(left("a", n))
    got = [await sub.get(timeout=5) for _ in range(5)]
    assert [e.participant_id for e in got] == [f"p{n}" for n in range(5)]  # type: ignore[union-attr]
    assert [e.seq for e in got] == [1, 2, 3, 4, 5]
    # Nothing of room a reached room b's subscriber: the first thing it gets is a marker published after all of them.
    await bus.publish(left("b", 99))
    first = await other.get(timeout=5)
    assert (first.room_id, first.participant_id) == ("b", "p99")  # type: ignore[union-attr]


async def test_pattern_subscription_sees_every_room(make_bus: BusFactory) -> None:
    bus = await make_bus()
    sub = await bus.subscribe("room:*")
    await bus.publish(left("x", 1))
    await bus.publish(final("y", 1))
    assert {(await sub.get(timeout=5)).room_id for _ in range(2)} == {"x", "y"}


async def test_delivery_between_two_processes(make_bus: BusFactory) -> None:
    node_a, node_b = await make_bus(source="a"), await make_bus(source="b")
    sub = await node_b.subscribe("room:r")
    await node_a.publish(left("r", 1))
    event = await sub.get(timeout=5)
    assert event.seq == 1 and event.source == "a"


async def test_history_and_resume_after_a_sequence_number(make_bus: BusFactory) -> None:
    bus = await make_bus()
    for n in range(1, 6):
        await bus.publish(final("h", n))
    assert [e.seq for e in await bus.history("room:h", after_seq=2)] == [3, 4, 5]
    assert [e.seq for e in await bus.history("room:h", after_seq=0, limit=2)] == [1, 2]
    assert await bus.history("room:nobody") == []
    # Resume after seq 3: the retained 4 and 5 first, then live events, no gap and no duplicate.
    sub = await bus.subscribe("room:h", after_seq=3)
    await bus.publish(final("h", 6))
    got = [await sub.get(timeout=5) for _ in range(3)]
    assert [e.seq for e in got] == [4, 5, 6]
    assert [e.utterance_id for e in got] == ["u4", "u5", "u6"]  # type: ignore[union-attr]


async def test_resume_while_events_keep_coming_has_no_gap(make_bus: BusFactory) -> None:
    bus = await make_bus()
    writer = await make_bus(source="writer")
    for n in range(1, 21):
        await writer.publish(final("busy", n))

    async def keep_publishing() -> None:
        for n in range(21, 121):
            await writer.publish(final("busy", n))

    task = asyncio.create_task(keep_publishing())
    sub = await bus.subscribe("room:busy", after_seq=10, maxsize=1000)
    await task
    got = [await sub.get(timeout=5) for _ in range(110)]
    assert [e.seq for e in got] == list(range(11, 121))


async def test_history_is_trimmed_to_its_bound(make_bus: BusFactory) -> None:
    bus = await make_bus(history=50)
    for n in range(1, 301):
        await bus.publish(left("t", n))
    kept = await bus.history("room:t")
    assert kept[-1].seq == 300
    assert 50 <= len(kept) < 300  # Redis trims approximately (MAXLEN ~), never below the bound
    assert [e.seq for e in kept] == list(range(301 - len(kept), 301))


async def test_a_slow_subscriber_loses_its_oldest_events_and_counts_them(make_bus: BusFactory) -> None:
    bus = await make_bus()
    sub = await bus.subscribe("room:slow", maxsize=3)
    marker = await bus.subscribe("room:slow")
    for n in range(10):
        await bus.publish(left("slow", n))
    for _ in range(10):  # the roomy subscription has everything: so has the slow one's queue, minus the dropped
        await marker.get(timeout=5)
    got = [await sub.get(timeout=5) for _ in range(3)]
    assert [e.participant_id for e in got] == ["p7", "p8", "p9"]  # type: ignore[union-attr]
    assert sub.dropped == 7


async def test_named_channels_are_separate_from_rooms(make_bus: BusFactory) -> None:
    bus = await make_bus()
    rooms = await bus.subscribe("room:*")
    control = await bus.subscribe("control")
    sent = await bus.publish_to("control", left("c", 1))
    assert sent.seq == 1
    got = await control.get(timeout=5)
    assert got.event_id == sent.event_id
    await bus.publish(left("c", 2))
    assert (await rooms.get(timeout=5)).participant_id == "p2"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await bus.publish_to("room:c", left("c", 3))
    with pytest.raises(ValueError):
        await bus.publish_to(ROOMS, left("c", 3))


async def drain(consumer: Consumer, count: int, ack: bool = True) -> list[Delivery]:
    got = [await consumer.get(timeout=5) for _ in range(count)]
    if ack:
        await consumer.ack(*got)
    return got


async def test_a_consumer_group_shares_events_among_members_once(make_bus: BusFactory) -> None:
    node_a, node_b = await make_bus(source="a"), await make_bus(source="b")
    first = await node_a.consumer("recorder", "r1")
    second = await node_b.consumer("recorder", "r2")
    for n in range(20):
        await node_a.publish(final(f"room{n % 3}", n))
    seen: list[str] = []
    while len(seen) < 20:
        for member in (first, second):
            if len(seen) == 20:
                break
            try:
                delivery = await member.get(timeout=0.05)
            except TimeoutError:
                continue
            seen.append(delivery.event.utterance_id)  # type: ignore[union-attr]
            await member.ack(delivery)
    assert sorted(seen) == sorted(f"u{n}" for n in range(20))  # each exactly once across the group
    # Another group gets everything again, independently.
    audit = await node_b.consumer("audit", "x")
    assert len(await drain(audit, 20)) == 20


async def test_a_consumer_never_drops_however_far_behind(make_bus: BusFactory) -> None:
    bus = await make_bus()
    consumer = await bus.consumer("slow", "only", prefetch=4)
    for n in range(500):
        await bus.publish(final("far", n))
    got = [d.event.utterance_id for d in await drain(consumer, 500)]  # type: ignore[union-attr]
    assert got == [f"u{n}" for n in range(500)]
    assert consumer.pending == 0


async def test_unacknowledged_events_go_to_another_member_after_a_crash(make_bus: BusFactory) -> None:
    node_a, node_b = await make_bus(source="a"), await make_bus(source="b")
    crashed = await node_a.consumer("recorder", "dies", reclaim_after_s=0.3)
    for n in range(3):
        await node_a.publish(final("crash", n))
    taken = await drain(crashed, 3, ack=False)
    await crashed.ack(taken[0])
    await crashed.close()  # stops with u1 and u2 unacknowledged
    survivor = await node_b.consumer("recorder", "lives", reclaim_after_s=0.3)
    await node_a.publish(final("crash", 3))
    got = await drain(survivor, 3)
    assert sorted(d.event.utterance_id for d in got) == ["u1", "u2", "u3"]  # type: ignore[union-attr]
    redelivered = {d.event.utterance_id: d.attempt for d in got}  # type: ignore[union-attr]
    assert redelivered["u1"] >= 2 and redelivered["u3"] == 1


async def test_a_restarted_member_gets_its_own_pending_first(make_bus: BusFactory) -> None:
    bus = await make_bus()
    before = await bus.consumer("recorder", "r1", reclaim_after_s=60)
    await bus.publish(final("again", 1))
    await drain(before, 1, ack=False)
    await before.close()
    after = await bus.consumer("recorder", "r1", reclaim_after_s=60)  # same name: no need to wait 60 s
    delivery = await after.get(timeout=5)
    assert delivery.event.utterance_id == "u1"  # type: ignore[union-attr]
    await after.ack(delivery)


async def test_a_member_waits_for_new_events(make_bus: BusFactory) -> None:
    bus = await make_bus()
    consumer = await bus.consumer("g", "m")
    waiting = asyncio.create_task(consumer.get(timeout=5))
    await bus.publish(VoteCast(room_id="w", statement_id="s", participant_id="p", choice="agree"))
    delivery = await waiting
    assert delivery.event.type == "vote.cast"
    with pytest.raises(TimeoutError):
        await consumer.get(timeout=0.1)
    await consumer.ack(delivery)


async def test_named_channel_consumers(make_bus: BusFactory) -> None:
    bus = await make_bus()
    jobs = await bus.consumer("workers", "w1", channel="jobs")
    await bus.publish(left("not-a-job", 1))
    await bus.publish_to("jobs", left("j", 1))
    delivery = await jobs.get(timeout=5)
    assert delivery.event.room_id == "j"
    await jobs.ack(delivery)
