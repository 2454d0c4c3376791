"""The in-process bus (embedded deployment and tests): the same contract as the Redis Streams bus, in memory.

Delivery to fan-out subscriptions is immediate and in order. Each channel keeps a bounded history (for ``history``
and ``after_seq`` resumes); ``rooms`` and named channels keep a bounded log that consumer groups read with a cursor
and a table of pending (delivered, unacknowledged) entries, as Redis consumer groups do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

from server.core.bus.base import (
    ROOMS,
    Bus,
    Consumer,
    Delivery,
    Subscription,
    check_named_channel,
    room_channel,
    stamp,
)
from server.core.events import BusEvent

_instances = itertools.count(1)


@dataclass
class _Pending:
    owner: str
    event: BusEvent
    delivered_at: float
    attempts: int
    handed_to: int  # the member instance it was last handed to (a restarted member with the same name re-gets it)


@dataclass
class _Group:
    next_index: int
    pending: dict[int, _Pending] = field(default_factory=dict)
    lost: int = 0  # entries trimmed from the log before this group read them


class _Log:
    """A channel's bounded log for consumer groups: entry ``i`` is ``entries[i - base]``."""

    def __init__(self, maxlen: int) -> None:
        self.entries: deque[BusEvent] = deque(maxlen=maxlen)
        self.base = 0
        self.groups: dict[str, _Group] = {}
        self.waiters: set[asyncio.Future[None]] = set()  # members waiting for something to read

    def append(self, event: BusEvent) -> None:
        if len(self.entries) == self.entries.maxlen:
            self.base += 1
        self.entries.append(event)
        self.wake()

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    @property
    def end(self) -> int:
        return self.base + len(self.entries)


class _Channel:
    def __init__(self, maxlen: int) -> None:
        self.seq = 0
        self.history: deque[BusEvent] = deque(maxlen=maxlen)


class InProcessBus(Bus):
    def __init__(self, source: str = "local", history: int = 10_000, log: int = 1_000_000) -> None:
        self.source = source
        self._history_len = history
        self._log_len = log
        self._subscriptions: list[Subscription] = []
        self._channels: dict[str, _Channel] = {}
        self._logs: dict[str, _Log] = {}

    async def start(self) -> None:
        return None

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self._history_len)
        return channel

    def _log(self, name: str) -> _Log:
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = _Log(self._log_len)
        return log

    def _append(self, name: str, log_name: str, event: BusEvent) -> BusEvent:
        channel = self._channel(name)
        channel.seq += 1
        event = stamp(event, self.source).model_copy(update={"seq": channel.seq})
        channel.history.append(event)
        self._log(log_name).append(event)
        for sub in list(self._subscriptions):
            if sub.matches(name):
                sub.deliver(event, name)
        return event

    async def publish(self, event: BusEvent) -> BusEvent:
        return self._append(room_channel(event.room_id), ROOMS, event)

    async def publish_to(self, channel: str, event: BusEvent) -> BusEvent:
        check_named_channel(channel)
        return self._append(channel, channel, event)

    async def subscribe(self, pattern: str, maxsize: int = 1000, after_seq: int | None = None) -> Subscription:
        sub = Subscription(pattern, maxsize, on_close=self._remove)
        if after_seq is not None:
            for event in await self.history(pattern, after_seq):
                sub.deliver(event, pattern)
        self._subscriptions.append(sub)  # no await since the replay: nothing published in between is missed
        return sub

    async def history(self, channel: str, after_seq: int = 0, limit: int | None = None) -> list[BusEvent]:
        if any(c in channel for c in "*?["):
            raise ValueError("history and after_seq need one channel, not a pattern")
        stream = self._channels.get(channel)
        if stream is None:
            return []
        events = [e for e in stream.history if e.seq > after_seq]
        return events[:limit] if limit is not None else events

    async def consumer(self, group: str, name: str, channel: str = ROOMS, reclaim_after_s: float = 30.0,
                       prefetch: int = 64) -> Consumer:
        if channel != ROOMS:
            check_named_channel(channel)
        log = self._log(channel)
        if group not in log.groups:
            log.groups[group] = _Group(next_index=log.base)
        return _MemoryConsumer(log, group, name, reclaim_after_s)  # pulls on get(): nothing to prefetch

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        for log in self._logs.values():
            log.wake()


class _MemoryConsumer(Consumer):
    def __init__(self, log: _Log, group: str, name: str, reclaim_after_s: float) -> None:
        self.group = group
        self.name = name
        self._log = log
        self._state = log.groups[group]
        self._reclaim_after_s = reclaim_after_s
        self._instance = next(_instances)
        self._closed = False

    @property
    def pending(self) -> int:
        return sum(1 for p in self._state.pending.values() if p.handed_to == self._instance)

    def _hand(self, index: int, entry: _Pending, now: float) -> Delivery:
        entry.owner, entry.delivered_at, entry.handed_to = self.name, now, self._instance
        return Delivery(str(index), entry.event, entry.attempts)

    def _take(self, now: float) -> tuple[Delivery | None, float | None]:
        """The next delivery, or None and how long until a pending entry can be reclaimed."""
        state = self._state
        soonest: float | None = None
        for index, entry in state.pending.items():  # oldest first (insertion order)
            if entry.handed_to == self._instance:
                continue
            if entry.owner == self.name:  # this member started again: its own pending come first
                entry.attempts += 1
                return self._hand(index, entry, now), None
            idle = now - entry.delivered_at
            if idle >= self._reclaim_after_s:
                entry.attempts += 1
                return self._hand(index, entry, now), None
            wait = self._reclaim_after_s - idle
            soonest = wait if soonest is None else min(soonest, wait)
        if state.next_index < self._log.base:
            state.lost += self._log.base - state.next_index
            state.next_index = self._log.base
        if state.next_index < self._log.end:
            index = state.next_index
            state.next_index += 1
            event = self._log.entries[index - self._log.base]
            entry = state.pending[index] = _Pending(self.name, event, now, 1, self._instance)
            return self._hand(index, entry, now), None
        return None, soonest

    async def get(self, timeout: float | None = None) -> Delivery:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._closed:
                raise StopAsyncIteration
            now = loop.time()
            delivery, retry_in = self._take(now)
            if delivery is not None:
                return delivery
            if deadline is not None and deadline - now <= 0:
                raise TimeoutError
            waits = [w for w in (retry_in, None if deadline is None else deadline - now) if w is not None]
            # A plain future, not wait_for() on a task: no task per wait, and a cancellation is never swallowed.
            waiter: asyncio.Future[None] = loop.create_future()
            self._log.waiters.add(waiter)
            timer = loop.call_later(min(waits), _resolve, waiter) if waits else None
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._log.waiters.discard(waiter)

    async def ack(self, *deliveries: Delivery) -> None:
        for delivery in deliveries:
            self._state.pending.pop(int(delivery.entry_id), None)

    async def close(self) -> None:
        self._closed = True
        for entry in self._state.pending.values():
            if entry.handed_to == self._instance:
                entry.handed_to = 0  # still pending under this name: reclaimable by others, or by a restart
        self._log.wake()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
