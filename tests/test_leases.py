"""Leases (server/core/leases.py), the same contract for the in-memory and the Redis implementation (real
redis-server), plus the keeper that renews them."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from server.core.clock import ManualClock
from server.core.errors import ConnectionLost
from server.core.leases import InMemoryLeases, Lease, LeaseKeeper, Leases, RedisLeases

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def until_expired(leases: Leases, kind: str, key: str, timeout: float = 5,
                        also: Callable[[], Awaitable[bool]] | None = None) -> None:
    """Watch a lease until it expires (expiry runs on the backend's own clock, so this polls, under a deadline);
    ``also`` runs at each look (e.g. renewing another lease, which must stay)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if also is not None:
            assert await also()
        if await leases.get(kind, key) is None:
            return
        assert loop.time() < deadline, f"lease {kind}:{key} never expired"
        await asyncio.sleep(0.05)


@pytest.fixture(params=["memory", "redis"])
async def leases(request: pytest.FixtureRequest) -> AsyncIterator[Leases]:
    store: Leases = InMemoryLeases() if request.param == "memory" else RedisLeases(
        REDIS_URL, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    await store.start()
    yield store
    await store.close()


async def test_one_holder_at_a_time_with_growing_epochs(leases: Leases) -> None:
    first = await leases.acquire("room-node", "r1", "node-a", ttl_s=5, info={"url": "http://a"})
    assert first is not None and first.epoch == 1 and first.info == {"url": "http://a"}
    assert await leases.acquire("room-node", "r1", "node-b", ttl_s=5) is None, "held by node-a"
    again = await leases.acquire("room-node", "r1", "node-a", ttl_s=5)
    assert again is not None and again.epoch == 1 and again.info == {"url": "http://a"}, "re-acquiring renews"
    current = await leases.get("room-node", "r1")
    assert current is not None and (current.holder, current.info["url"]) == ("node-a", "http://a")
    await leases.release(first)
    assert await leases.get("room-node", "r1") is None
    taken = await leases.acquire("room-node", "r1", "node-b", ttl_s=5)
    assert taken is not None and taken.epoch == 2
    assert not await leases.renew(first), "the old holder's lease is gone"
    await leases.release(first)  # a stale release changes nothing
    holder = await leases.get("room-node", "r1")
    assert holder is not None and (holder.holder, holder.epoch) == ("node-b", 2)


async def test_an_unrenewed_lease_expires_and_can_be_taken_over(leases: Leases) -> None:
    dead = await leases.acquire("room-facilitator", "r2", "worker-1", ttl_s=0.2)
    assert dead is not None
    alive = await leases.acquire("room-facilitator", "r3", "worker-1", ttl_s=0.2)
    assert alive is not None
    await until_expired(leases, "room-facilitator", "r2", also=lambda: leases.renew(alive))
    assert await leases.get("room-facilitator", "r3") is not None, "the renewed one is still held"
    assert not await leases.renew(dead)
    successor = await leases.acquire("room-facilitator", "r2", "worker-2", ttl_s=5)
    assert successor is not None and successor.epoch == dead.epoch + 1


async def test_listing_a_kind(leases: Leases) -> None:
    for room in ("a", "b", "c"):
        assert await leases.acquire("room-node", room, f"node-{room}", ttl_s=5)
    await leases.acquire("room-facilitator", "a", "worker", ttl_s=5)
    listed = await leases.all("room-node")
    assert sorted((lease.key, lease.holder) for lease in listed) == [("a", "node-a"), ("b", "node-b"),
                                                                   ("c", "node-c")]


async def test_the_keeper_renews_and_reports_losses(leases: Leases) -> None:
    lost: list[Lease] = []
    lost_event = asyncio.Event()

    def on_lost(lease: Lease) -> None:
        lost.append(lease)
        lost_event.set()

    keeper = LeaseKeeper(leases, on_lost)
    kept = await leases.acquire("room-node", "kept", "me", ttl_s=0.3)
    stolen = await leases.acquire("room-node", "stolen", "me", ttl_s=0.3)
    assert kept is not None and stolen is not None
    keeper.keep(kept)
    keeper.keep(stolen)
    await leases.release(stolen)  # an operator (or an expiry during a pause) takes it away
    assert await leases.acquire("room-node", "stolen", "someone-else", ttl_s=5) is not None
    await asyncio.wait_for(lost_event.wait(), timeout=5)
    assert [lease.key for lease in lost] == ["stolen"]
    # Two more ttls later the kept one is still held: the keeper renewed it.
    probe = await leases.acquire("room-node", "probe", "me", ttl_s=0.6)
    assert probe is not None
    await until_expired(leases, "room-node", "probe")
    assert (await leases.get("room-node", "kept")) is not None
    await keeper.close()
    assert await leases.get("room-node", "kept") is None, "closing releases what it kept"


class UnreachableLeases(InMemoryLeases):
    """Leases whose store can be made unreachable (as Redis while it restarts)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.down = False
        self.failed_renewals = 0

    async def renew(self, lease: Lease) -> bool:
        if self.down:
            self.failed_renewals += 1
            raise ConnectionLost("Redis unreachable")
        return await super().renew(lease)


async def test_a_lease_outlives_an_outage_shorter_than_its_ttl() -> None:
    """A renewal that fails is tried again every tenth of the ttl, not at the next third: a lease of 9 s whose store
    is unreachable from 2.9 s to 7 s is renewed at 7.5 s (waiting for the next third, at 9 s, it would have expired)."""
    clock = ManualClock()
    leases = UnreachableLeases(clock.now)
    lost: list[Lease] = []
    keeper = LeaseKeeper(leases, lost.append, clock)
    lease = await leases.acquire("room-facilitator", "r", "me", ttl_s=9)
    assert lease is not None
    keeper.keep(lease)
    await clock.advance(2.9, step=0.1)
    leases.down = True
    await clock.advance(4.1, step=0.1)
    assert leases.failed_renewals == 5  # at 3, 3.9, 4.8, 5.7 and 6.6 s
    leases.down = False
    await clock.advance(4.0, step=0.1)
    assert lost == [] and await leases.get("room-facilitator", "r") == lease
    await keeper.close()
