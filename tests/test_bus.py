"""Both bus implementations against the same contract; the Redis one against a real redis-server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from server.bus import Bus, InProcessBus
from server.bus.redis import PREFIX, RedisBus
from server.events import ParticipantLeft, VoiceActivity

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def left(room: str, n: int) -> ParticipantLeft:
    return ParticipantLeft(room_id=room, participant_id=f"p{n}", name=f"n{n}")


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    b: Bus = InProcessBus() if request.param == "memory" else RedisBus(REDIS_URL)
    await b.start()
    yield b
    await b.close()


async def test_room_channel_delivery_in_order(bus: Bus) -> None:
    sub = await bus.subscribe("room:a")
    other = await bus.subscribe("room:b")
    for n in range(5):
        await bus.publish(left("a", n))
    got = [await sub.get(timeout=5) for _ in range(5)]
    assert [e.participant_id for e in got] == [f"p{n}" for n in range(5)]  # type: ignore[union-attr]
    # Nothing of room a reached room b's subscriber: the first thing it gets is a marker published after all of them.
    await bus.publish(left("b", 99))
    first = await other.get(timeout=5)
    assert (first.room_id, first.participant_id) == ("b", "p99")  # type: ignore[union-attr]


async def test_pattern_subscription(bus: Bus) -> None:
    sub = await bus.subscribe("room:*")
    await bus.publish(left("x", 1))
    await bus.publish(VoiceActivity(room_id="y", participant_id="p", speaking=True, t=1.0))
    rooms = {(await sub.get(timeout=5)).room_id for _ in range(2)}
    assert rooms == {"x", "y"}


async def test_closed_subscription_delivers_queued_then_ends() -> None:
    bus = InProcessBus()  # delivery is synchronous here, so the event is queued before close()
    sub = await bus.subscribe("room:a")
    await bus.publish(left("a", 1))
    await sub.close()
    items = [e async for e in sub]
    assert [e.participant_id for e in items] == ["p1"]  # type: ignore[union-attr]


async def test_slow_subscriber_drops_oldest() -> None:
    bus = InProcessBus()
    sub = await bus.subscribe("room:a", maxsize=3)
    for n in range(10):
        await bus.publish(left("a", n))
    got = [await sub.get(timeout=1) for _ in range(3)]
    assert [e.participant_id for e in got] == ["p7", "p8", "p9"]  # type: ignore[union-attr]
    assert sub.dropped == 7


async def test_redis_bus_drops_unknown_messages() -> None:
    import redis.asyncio as aioredis

    bus = RedisBus(REDIS_URL)
    await bus.start()
    raw = aioredis.from_url(REDIS_URL)
    try:
        sub = await bus.subscribe("room:z")
        await raw.publish(PREFIX + "room:z", '{"type": "rm -rf", "room_id": "z"}')
        await raw.publish(PREFIX + "room:z", "garbage")
        await bus.publish(left("z", 1))
        event = await sub.get(timeout=5)
        assert isinstance(event, ParticipantLeft)
        assert bus.rejected == 2
    finally:
        await raw.aclose()
        await bus.close()


async def test_redis_bus_between_two_nodes() -> None:
    a, b = RedisBus(REDIS_URL), RedisBus(REDIS_URL)
    await a.start()
    await b.start()
    try:
        sub = await b.subscribe("room:shared")
        await a.publish(left("shared", 3))
        event = await sub.get(timeout=5)
        assert event.participant_id == "p3"  # type: ignore[union-attr]
    finally:
        await a.close()
        await b.close()
