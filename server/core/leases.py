"""Leases: who serves what, with expiry. The room directory (room -> server node, facilitator worker, speech
worker) is built from them.

A lease is a key in a namespace (``kind``: ``room-node``, ``room-facilitator``, ...) held by one holder until it
expires, unless the holder renews it (heartbeats). Each successful acquisition gets a new ``epoch`` (a fencing token:
it only grows), so a holder that lost its lease and comes back can be told apart from the new one. ``InMemoryLeases``
serves the embedded deployment and tests (with an injectable clock); ``RedisLeases`` serves a deployment of many
processes. ``LeaseKeeper`` renews a process's leases in the background and reports the ones it loses.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.core.clock import Clock, ManualClock, SystemClock
from server.core.errors import connection_lost

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    kind: str
    key: str
    holder: str
    epoch: int
    ttl_s: float
    info: dict[str, str] = field(default_factory=dict)  # e.g. the node's URL


class Leases(abc.ABC):
    @abc.abstractmethod
    async def acquire(self, kind: str, key: str, holder: str, ttl_s: float,
                      info: dict[str, str] | None = None) -> Lease | None:
        """Take the lease if nobody holds it (or ``holder`` already does: then it is renewed); None if another
        holder has it."""

    @abc.abstractmethod
    async def renew(self, lease: Lease) -> bool:
        """Extend the lease by its ttl; False if it was lost meanwhile (expired, or taken by another holder)."""

    @abc.abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the lease up (only if still held by this holder at this epoch)."""

    @abc.abstractmethod
    async def get(self, kind: str, key: str) -> Lease | None:
        """The current holder's lease, or None."""

    @abc.abstractmethod
    async def all(self, kind: str) -> list[Lease]:
        """Every current lease of a kind (the directory listing)."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class InMemoryLeases(Leases):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[tuple[str, str], tuple[Lease, float]] = {}  # -> (lease, expires at)
        self._epochs: dict[tuple[str, str], int] = {}

    def _current(self, kind: str, key: str) -> Lease | None:
        entry = self._leases.get((kind, key))
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._leases[(kind, key)]
            return None
        return entry[0]

    async def acquire(self, kind: str, key: str, holder: str, ttl_s: float,
                      info: dict[str, str] | None = None) -> Lease | None:
        current = self._current(kind, key)
        if current is not None and current.holder != holder:
            return None
        if current is not None:
            lease = Lease(kind, key, holder, current.epoch, ttl_s, dict(info or current.info))
        else:
            epoch = self._epochs[(kind, key)] = self._epochs.get((kind, key), 0) + 1
            lease = Lease(kind, key, holder, epoch, ttl_s, dict(info or {}))
        self._leases[(kind, key)] = (lease, self._clock() + ttl_s)
        return lease

    async def renew(self, lease: Lease) -> bool:
        current = self._current(lease.kind, lease.key)
        if current is None or (current.holder, current.epoch) != (lease.holder, lease.epoch):
            return False
        self._leases[(lease.kind, lease.key)] = (current, self._clock() + lease.ttl_s)
        return True

    async def release(self, lease: Lease) -> None:
        current = self._current(lease.kind, lease.key)
        if current is not None and (current.holder, current.epoch) == (lease.holder, lease.epoch):
            del self._leases[(lease.kind, lease.key)]

    async def get(self, kind: str, key: str) -> Lease | None:
        return self._current(kind, key)

    async def all(self, kind: str) -> list[Lease]:
        return [lease for (k, key) in list(self._leases) if k == kind
                and (lease := self._current(k, key)) is not None]


# KEYS[1] lease key, KEYS[2] epoch counter; ARGV holder, ttl ms, info json. Returns {epoch, holder, info} of the
# holder after the call (the caller got the lease when the holder is itself).
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local lease = cjson.decode(current)
  if lease.holder ~= ARGV[1] then return current end
  if ARGV[3] ~= '' then lease.info = cjson.decode(ARGV[3]) end
  local value = cjson.encode(lease)
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
  return value
end
local epoch = redis.call('INCR', KEYS[2])
local info = '{}'
if ARGV[3] ~= '' then info = ARGV[3] end
local value = '{"holder":' .. cjson.encode(ARGV[1]) .. ',"epoch":' .. epoch .. ',"info":' .. info .. '}'
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

# KEYS[1] lease key; ARGV holder, epoch, ttl ms (0: release). Returns 1 if the lease was this holder's.
_RENEW_OR_RELEASE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local lease = cjson.decode(current)
if lease.holder ~= ARGV[1] or tostring(lease.epoch) ~= ARGV[2] then return 0 end
if ARGV[3] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


class RedisLeases(Leases):
    def __init__(self, url: str, prefix: str = "moot:") -> None:
        self._url = url
        self._prefix = prefix
        self._client: Any = None
        self._acquire: Any = None
        self._renew: Any = None

    async def start(self) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One immediate retry: the first command on a pooled connection that Redis closed (it restarted) fails, the
        # retry connects again. Every operation here may be repeated safely (acquiring again renews the same epoch).
        self._client = aioredis.from_url(self._url, retry=Retry(NoBackoff(), 1))
        await self._client.ping()
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW_OR_RELEASE)

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}lease:{kind}:{key}"

    def _lease(self, kind: str, key: str, raw: bytes | str, ttl_s: float) -> Lease:
        data = json.loads(raw)
        info = data.get("info") or {}
        return Lease(kind, key, str(data["holder"]), int(data["epoch"]), ttl_s,
                     {str(k): str(v) for k, v in info.items()} if isinstance(info, dict) else {})

    async def acquire(self, kind: str, key: str, holder: str, ttl_s: float,
                      info: dict[str, str] | None = None) -> Lease | None:
        raw = await self._acquire(keys=[self._key(kind, key), f"{self._prefix}lease-epoch:{kind}:{key}"],
                                  args=[holder, max(1, int(ttl_s * 1000)), json.dumps(info) if info else ""])
        lease = self._lease(kind, key, raw, ttl_s)
        return lease if lease.holder == holder else None

    async def renew(self, lease: Lease) -> bool:
        done = await self._renew(keys=[self._key(lease.kind, lease.key)],
                                 args=[lease.holder, str(lease.epoch), max(1, int(lease.ttl_s * 1000))])
        return bool(done)

    async def release(self, lease: Lease) -> None:
        await self._renew(keys=[self._key(lease.kind, lease.key)], args=[lease.holder, str(lease.epoch), 0])

    async def get(self, kind: str, key: str) -> Lease | None:
        key_name = self._key(kind, key)
        raw, ttl_ms = await self._client.pipeline().get(key_name).pttl(key_name).execute()
        return None if raw is None else self._lease(kind, key, raw, max(0, ttl_ms) / 1000)

    async def all(self, kind: str) -> list[Lease]:
        prefix = self._key(kind, "")
        out = []
        async for name in self._client.scan_iter(match=f"{prefix}*", count=500):
            key = (name.decode() if isinstance(name, bytes) else name).removeprefix(prefix)
            lease = await self.get(kind, key)
            if lease is not None:
                out.append(lease)
        return out

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class LeaseKeeper:
    """Renews a process's leases every third of their ttl on ``clock`` (virtual time in tests); ``on_lost(lease)``
    is called for each one that could not be renewed (expired meanwhile, or taken over), after which it is no longer
    kept. Leases kept together should have similar ttls (a room directory's do). A renewal that fails (Redis
    unreachable) is tried again every tenth of the ttl until it gets through, so a lease outlives an outage shorter
    than about half its ttl (up to nine tenths of it, when the outage begins right after a renewal)."""

    def __init__(self, leases: Leases, on_lost: Callable[[Lease], Any] | None = None,
                 clock: Clock | None = None) -> None:
        self._leases = leases
        self._on_lost = on_lost
        self._clock: Clock = clock or SystemClock()
        self._kept: dict[tuple[str, str], Lease] = {}
        self._task: asyncio.Task[None] | None = None
        self._due: float | None = None  # the next renewal round
        self._renewing = False
        self._failing = False  # the last renewal round could not reach the store
        self._progress = asyncio.Event()
        if isinstance(self._clock, ManualClock):
            self._clock.settles_with(self.settled)

    @property
    def held(self) -> list[Lease]:
        return list(self._kept.values())

    def keep(self, lease: Lease) -> None:
        self._kept[(lease.kind, lease.key)] = lease
        if self._task is None or self._task.done() or self._task.cancelling():
            self._task = asyncio.create_task(self._run(), name="lease-keeper")
        elif (not self._renewing and self._due is not None
              and self._due > self._clock.now() + lease.ttl_s / 3):  # renewed too late for this one: start over
            self._task.cancel()
            self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def drop(self, lease: Lease, release: bool = True) -> None:
        if self._kept.get((lease.kind, lease.key)) == lease:
            del self._kept[(lease.kind, lease.key)]
            task = self._task
            if (not self._kept and task is not None and not task.done() and not self._renewing
                    and task is not asyncio.current_task()):
                task.cancel()  # nothing left to keep: the renewal task ends now rather than at its next round
        if release:
            with contextlib.suppress(Exception):
                await self._leases.release(lease)

    async def _run(self) -> None:
        try:
            while self._kept:
                ttl_s = min(lease.ttl_s for lease in self._kept.values())
                self._due = self._clock.now() + (ttl_s / 10 if self._failing else ttl_s / 3)
                self._progress.set()
                await self._clock.sleep_until(self._due)
                self._renewing = True
                try:
                    await self._renew_all()
                finally:
                    self._renewing = False
        finally:
            self._due = None
            self._progress.set()

    async def _renew_all(self) -> None:
        failed = False
        for lease in list(self._kept.values()):
            try:
                kept = await self._leases.renew(lease)
            except Exception as exc:
                if not self._failing:
                    logger.warning("could not renew lease %s:%s (%s); retrying", lease.kind, lease.key, exc,
                                   exc_info=not connection_lost(exc))
                failed = True
                continue
            if not kept and self._kept.get((lease.kind, lease.key)) == lease:
                del self._kept[(lease.kind, lease.key)]
                logger.warning("lost lease %s:%s", lease.kind, lease.key)
                if self._on_lost is not None:
                    result = self._on_lost(lease)
                    if asyncio.iscoroutine(result):
                        await result
        if self._failing and not failed:
            logger.info("leases renewed again")
        self._failing = failed

    async def settled(self) -> None:
        """Virtual time: wait until no renewal round is due at the clock's current time."""
        while self._task is not None and not self._task.done() and (
                self._renewing or self._due is None or self._due <= self._clock.now()):
            self._progress.clear()
            await self._progress.wait()

    async def close(self, release: bool = True) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if release:
            for lease in list(self._kept.values()):
                with contextlib.suppress(Exception):
                    await self._leases.release(lease)
        self._kept.clear()


def create_leases(kind: str, redis_url: str | None = None, prefix: str = "moot:") -> Leases:
    """The lease store that goes with the bus named in settings: ``memory`` (one process) or ``redis``."""
    if kind == "memory":
        return InMemoryLeases()
    if kind == "redis":
        if not redis_url:
            raise ValueError("bus=redis needs MOOT_REDIS_URL")
        return RedisLeases(redis_url, prefix=prefix)
    raise ValueError(f"unknown lease store {kind!r}: use 'memory' or 'redis'")
