"""What the bus contract (tests/test_bus_contract.py) does not cover: the in-process twin's synchronous delivery, and
the Redis Streams bus's own concerns against a real redis-server: messages that are not events, gap fill, lost
connections (commands tried again, a publish whose reply was lost published once, a clear error when Redis stays down),
a lost sequence counter, and closing without leaking tasks or connections."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.core.bus import InProcessBus
from server.core.bus.base import stamp
from server.core.bus.redis import RedisBus
from server.core.errors import ConnectionLost
from server.core.events import ParticipantLeft, encode
from tests.private_redis import started_redis

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

RedisBusFactory = Callable[..., Awaitable[RedisBus]]


def left(room: str, n: int) -> ParticipantLeft:
    return ParticipantLeft(room_id=room, participant_id=f"p{n}", name=f"n{n}")


async def test_closed_subscription_delivers_queued_then_ends() -> None:
    bus = InProcessBus()  # delivery is synchronous here, so the event is queued before close()
    sub = await bus.subscribe("room:a")
    await bus.publish(left("a", 1))
    await sub.close()
    items = [e async for e in sub]
    assert [e.participant_id for e in items] == ["p1"]  # type: ignore[union-attr]


@pytest.fixture
async def raw() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def make_redis_bus(raw: aioredis.Redis) -> AsyncIterator[RedisBusFactory]:
    """Started Redis buses sharing a fresh key prefix (and a unique source, which names their connections)."""
    made: list[RedisBus] = []
    prefix = f"test-{uuid.uuid4().hex[:8]}:"

    async def factory(**options: Any) -> RedisBus:
        options.setdefault("source", f"t-{uuid.uuid4().hex[:8]}")
        bus = RedisBus(REDIS_URL, prefix=prefix, **options)
        await bus.start()
        made.append(bus)
        return bus

    yield factory
    for bus in reversed(made):
        await bus.close()
    keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
    if keys:
        await raw.delete(*keys)


async def connections_of(raw: aioredis.Redis, bus: RedisBus) -> list[dict[str, Any]]:
    return [c for c in await raw.client_list() if c.get("name") == f"moot-bus:{bus.source}"]


async def kill(raw: aioredis.Redis, bus: RedisBus, which: Callable[[dict[str, Any]], bool]) -> int:
    """Close some of this bus's connections from the server side (never anyone else's)."""
    victims = [c for c in await connections_of(raw, bus) if which(c)]
    for client in victims:
        await raw.execute_command("CLIENT", "KILL", "ID", client["id"])
    return len(victims)


async def test_unknown_or_malformed_messages_are_dropped_and_counted(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus()
    sub = await bus.subscribe("room:z")
    channel = f"{bus.prefix}p:room:z"
    await raw.publish(channel, '1 {"type": "rm -rf", "room_id": "z"}')
    await raw.publish(channel, "garbage")
    await raw.publish(channel, "1 [1, 2]")
    await bus.publish(left("z", 1))
    event = await sub.get(timeout=5)
    assert isinstance(event, ParticipantLeft) and event.seq == 1
    assert bus.rejected == 3


async def test_malformed_stream_and_log_entries_are_dropped(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus()
    consumer = await bus.consumer("g", "m")
    await raw.xadd(f"{bus.prefix}s:room:m", {"e": '{"type": "nope"}'}, id="1-0")
    await raw.set(f"{bus.prefix}seq:room:m", 1)
    await raw.xadd(f"{bus.prefix}log:rooms", {"s": "1", "e": '{"type": "nope"}'})
    await raw.xadd(f"{bus.prefix}log:rooms", {"no": "fields"})
    sent = await bus.publish(left("m", 2))
    assert [e.seq for e in await bus.history("room:m")] == [2]
    delivery = await consumer.get(timeout=5)
    assert delivery.event.event_id == sent.event_id
    await consumer.ack(delivery)
    assert bus.rejected == 3
    # The bad log entries were acknowledged as they were dropped: nothing stays pending in the group.
    assert (await raw.xpending(f"{bus.prefix}log:rooms", "g"))["pending"] == 0


async def test_a_live_message_after_a_gap_brings_the_missing_events_first(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus()
    sub = await bus.subscribe("room:g")
    await bus.publish(left("g", 1))
    assert (await sub.get(timeout=5)).seq == 1
    # An event that reached the stream but whose pub/sub message was lost (as while a connection is down).
    lost = stamp(left("g", 2), "elsewhere")
    assert await raw.incr(f"{bus.prefix}seq:room:g") == 2
    await raw.xadd(f"{bus.prefix}s:room:g", {"e": encode(lost)}, id="2-0")
    await bus.publish(left("g", 3))
    got = [await sub.get(timeout=5) for _ in range(2)]
    assert [(e.seq, e.participant_id) for e in got] == [(2, "p2"), (3, "p3")]  # type: ignore[union-attr]


async def test_a_lost_sequence_counter_continues_after_the_stream(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus()
    for n in range(3):
        await bus.publish(left("c", n))
    await raw.delete(f"{bus.prefix}seq:room:c")  # e.g. evicted under memory pressure
    assert (await bus.publish(left("c", 3))).seq == 4


async def test_a_channel_that_starts_again_from_one_still_reaches_subscribers(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus()
    sub = await bus.subscribe("room:*")
    for n in range(1, 4):
        await bus.publish(left("q", n))
    assert [(await sub.get(timeout=5)).seq for _ in range(3)] == [1, 2, 3]
    await raw.delete(f"{bus.prefix}s:room:q", f"{bus.prefix}seq:room:q")  # as when a quiet room's keys expire
    again = await bus.publish(left("q", 4))
    assert again.seq == 1
    assert (await sub.get(timeout=5)).event_id == again.event_id


async def test_subscriptions_survive_a_lost_connection_without_a_gap(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    reader, writer = await make_redis_bus(), await make_redis_bus()
    exact = await reader.subscribe("room:k")
    pattern = await reader.subscribe("room:*")
    await writer.publish(left("k", 1))
    assert (await exact.get(timeout=5)).seq == 1 and (await pattern.get(timeout=5)).seq == 1
    assert await kill(raw, reader, lambda c: "P" in c["flags"]) == 1  # its pub/sub connection
    for n in range(2, 6):  # published while the reader is (or may be) disconnected
        await writer.publish(left("k", n))
    # Redis-py reconnects and subscribes again; the bus catches up from the streams, and fills any gap left.
    assert [(await exact.get(timeout=10)).seq for _ in range(4)] == [2, 3, 4, 5]
    assert [(await pattern.get(timeout=10)).seq for _ in range(4)] == [2, 3, 4, 5]
    await writer.publish(left("k", 6))
    assert (await exact.get(timeout=5)).seq == 6 and (await pattern.get(timeout=5)).seq == 6


async def test_a_consumer_survives_a_lost_connection(make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus()
    consumer = await bus.consumer("g", "m")
    await bus.publish(left("r", 1))
    first = await consumer.get(timeout=5)
    assert await kill(raw, bus, lambda c: c["cmd"] == "xreadgroup") == 1  # its blocking read
    await bus.publish(left("r", 2))
    second = await consumer.get(timeout=10)
    assert [first.event.seq, second.event.seq] == [1, 2] and second.attempt == 1
    await consumer.ack(first, second)
    assert consumer.pending == 0


async def test_a_member_does_not_reclaim_what_it_still_holds(make_redis_bus: RedisBusFactory) -> None:
    bus = await make_redis_bus()
    consumer = await bus.consumer("g", "m", reclaim_after_s=0.1)
    await bus.publish(left("h", 1))
    held = await consumer.get(timeout=5)
    await asyncio.sleep(0.4)  # the time it holds the delivery unacknowledged: several reclaim rounds
    await bus.publish(left("h", 2))
    marker = await consumer.get(timeout=5)
    assert (marker.event.seq, marker.attempt) == (2, 1)  # not its own held delivery a second time
    assert consumer.pending == 2
    await consumer.ack(held, marker)


async def test_closing_leaks_no_task_and_no_connection(make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    baseline = set(asyncio.all_tasks())
    bus = await make_redis_bus()
    subs = [await bus.subscribe("room:a"), await bus.subscribe("room:*"), await bus.subscribe("control")]
    resumed = await bus.subscribe("room:a", after_seq=0)
    consumers = [await bus.consumer("g", "m1"), await bus.consumer("g", "m2", channel="jobs")]
    await bus.publish(left("a", 1))
    await bus.publish_to("jobs", left("a", 2))
    for sub in [*subs[:2], resumed]:
        assert (await sub.get(timeout=5)).seq == 1
    assert (await consumers[1].get(timeout=5)).event.seq == 1
    await subs[0].close()  # one closed early, the rest with the bus
    assert len(await connections_of(raw, bus)) >= 4  # commands, pub/sub, one per consumer
    await bus.close()
    assert [t for t in asyncio.all_tasks() if t not in baseline and t is not asyncio.current_task()] == []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while await connections_of(raw, bus):  # the server notices closed sockets a moment later
        assert loop.time() < deadline, await connections_of(raw, bus)
        await asyncio.sleep(0.05)


def command_connections(c: dict[str, Any]) -> bool:
    return "P" not in c["flags"] and c["cmd"] != "xreadgroup"


async def test_commands_ride_out_a_stale_connection(make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    """As after a Redis restart: the pooled command connection is dead; publishing, history and acknowledgements
    connect again and carry on instead of failing."""
    bus = await make_redis_bus()
    consumer = await bus.consumer("g", "m")
    await bus.publish(left("s", 1))
    first = await consumer.get(timeout=5)
    assert await kill(raw, bus, command_connections) >= 1
    assert (await bus.publish(left("s", 2))).seq == 2
    assert await kill(raw, bus, command_connections) >= 1
    assert [e.seq for e in await bus.history("room:s")] == [1, 2]
    assert await kill(raw, bus, command_connections) >= 1
    await consumer.ack(first)
    assert (await consumer.get(timeout=5)).event.seq == 2


async def test_a_publish_whose_reply_was_lost_is_published_once(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    """The connection broke after Redis had carried the publish out: the retry finds the event and adds nothing."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    bus = await make_redis_bus()
    sub = await bus.subscribe("room:l")
    publish = bus._publish_script
    asked_for: list[str] = []

    async def reply_lost_once(**kwargs: Any) -> Any:  # a fault injected around the real script
        asked_for.append(kwargs["args"][5])  # the event id a retry looks for ("" on a first attempt)
        seq = await publish(**kwargs)
        if len(asked_for) == 1:
            raise RedisConnectionError("Connection closed by server.")
        return seq

    bus._publish_script = reply_lost_once
    sent = await bus.publish(left("l", 1))
    assert sent.seq == 1 and asked_for == ["", sent.event_id]
    bus._publish_script = publish
    after = await bus.publish(left("l", 2))
    assert after.seq == 2
    assert [(e.seq, e.event_id) for e in await bus.history("room:l")] == [(1, sent.event_id), (2, after.event_id)]
    assert [(await sub.get(timeout=5)).seq for _ in range(2)] == [1, 2]  # the second is the next publish's
    assert await raw.xlen(f"{bus.prefix}log:rooms") == 2


async def test_a_failed_acknowledgement_is_delivered_again(
        make_redis_bus: RedisBusFactory, raw: aioredis.Redis) -> None:
    bus = await make_redis_bus(retry_for_s=0)  # no time to retry: the acknowledgement fails
    consumer = await bus.consumer("g", "m")
    await bus.publish(left("a", 1))
    first = await consumer.get(timeout=5)
    assert await kill(raw, bus, command_connections) >= 1
    with pytest.raises(ConnectionLost):
        await consumer.ack(first)
    again = await consumer.get(timeout=10)
    assert (again.entry_id, again.attempt) == (first.entry_id, 2)
    await consumer.ack(again)
    assert consumer.pending == 0
    assert (await raw.xpending(f"{bus.prefix}log:rooms", "g"))["pending"] == 0


async def test_publishing_gives_up_with_a_clear_error_when_redis_stays_down(tmp_path: Path) -> None:
    server = started_redis(tmp_path)
    bus = RedisBus(server.url, retry_for_s=0.5)
    try:
        await bus.start()
        await bus.publish(left("d", 1))
        server.stop()
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(ConnectionLost, match=r"could not publish on room:d: Redis unreachable for 0\.5 s"):
            await bus.publish(left("d", 2))
        assert 0.5 <= loop.time() - began < 5
    finally:
        await bus.close()
        server.kill()
