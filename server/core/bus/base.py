"""The bus interface (v2) and the parts both implementations share.

Channels:

- ``room:<room_id>``: one room's events. Publishing stamps each event's envelope (``event_id``, ``source``) and the
  bus gives it the room's next sequence number (``seq``: 1, 2, 3... in publish order, no gaps). The bus keeps a
  trimmed history of every room (``history``), so a subscriber can resume after the last ``seq`` it saw.
- ``rooms``: every room's events together, for durable consumers (``consumer``): the transcript recorder, and any
  worker that must not miss an event.
- named channels (``control``, ``jobs``, ``speech``, ...): the same stream semantics outside rooms.

Two ways to read:

- ``subscribe`` (fan-out): every subscription gets every matching event, live, in a bounded queue; a slow subscriber
  loses its oldest events (counted in ``Subscription.dropped``) rather than stalling publishers. With ``after_seq`` it
  first gets the retained events after that number, then the live ones, with no gap and no duplicate. For browsers.
- ``consumer`` (durable): the members of a consumer group share the channel's events, each event goes to one member
  and stays pending until acknowledged; nothing is ever dropped (a member that cannot keep up stops reading instead),
  and the pending events of a member that stopped without acknowledging are delivered to another member after
  ``reclaim_after_s``. Delivery is at least once: a handler acknowledges after its work is done and must be
  idempotent (a redelivered event may already have been handled).
"""

from __future__ import annotations

import abc
import asyncio
import fnmatch
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from server.core.events import BusEvent
from server.core.ids import event_id

logger = logging.getLogger(__name__)

ROOMS = "rooms"  # the channel of every room's events, for durable consumers
_NAMED_CHANNEL = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def room_channel(room_id: str) -> str:
    return f"room:{room_id}"


def check_named_channel(channel: str) -> str:
    """A named (non-room) channel: lower-case letters, digits and ``_.-``, not ``rooms``, not ``room:...``."""
    if channel == ROOMS or not _NAMED_CHANNEL.fullmatch(channel):
        raise ValueError(f"not a named channel: {channel!r}")
    return channel


def stamp(event: BusEvent, source: str) -> BusEvent:
    """The event with its envelope filled in (kept when it already has one: an event passed on keeps its identity)."""
    if event.event_id:
        return event
    return event.model_copy(update={"event_id": event_id(), "source": source})


class Subscription:
    """Fan-out events for one subscriber, in publish order. Iterate with ``async for`` or call ``get(timeout)``.

    ``last_seq`` maps each channel to the highest sequence number delivered on it (the resume point)."""

    def __init__(self, pattern: str, maxsize: int, on_close: Any = None) -> None:
        self.pattern = pattern
        self.dropped = 0
        self.last_seq: dict[str, int] = {}
        self._queue: asyncio.Queue[BusEvent | None] = asyncio.Queue(maxsize=maxsize)
        self._closed = False
        self._on_close = on_close

    @property
    def pending(self) -> int:
        """Events delivered and not yet taken."""
        return self._queue.qsize()

    @property
    def closed(self) -> bool:
        return self._closed

    def matches(self, channel: str) -> bool:
        return fnmatch.fnmatchcase(channel, self.pattern)

    def deliver(self, event: BusEvent, channel: str | None = None) -> None:
        """Queue an event without blocking; when full, drop the oldest one. An event whose ``seq`` this subscription
        has already had on its channel (a replay overlapping live delivery) is skipped."""
        if self._closed:
            return
        if channel is not None and event.seq:
            if event.seq <= self.last_seq.get(channel, 0):
                return
            self.last_seq[channel] = event.seq
        if self._queue.full():
            try:
                self._queue.get_nowait()
                self.dropped += 1
                if self.dropped in (1, 100) or self.dropped % 1000 == 0:
                    logger.warning("subscription %s is slow: %d events dropped", self.pattern, self.dropped)
            except asyncio.QueueEmpty:  # pragma: no cover - raced with a reader
                pass
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> BusEvent:
        """The next event; raises ``TimeoutError`` after ``timeout`` and ``StopAsyncIteration`` once closed."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            self._queue.put_nowait(None)  # stay ended for the next caller too
            raise StopAsyncIteration
        return item

    def __aiter__(self) -> AsyncIterator[BusEvent]:
        return self

    async def __anext__(self) -> BusEvent:
        return await self.get()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Events already queued are still delivered; the end marker follows them (dropping the oldest if full).
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(None)
        if callable(self._on_close):
            result = self._on_close(self)
            if asyncio.iscoroutine(result):
                await result

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


@dataclass(frozen=True)
class Delivery:
    """One event handed to a durable consumer; acknowledge it with ``Consumer.ack(delivery)`` once handled."""

    entry_id: str  # the backend's id of the entry (what ``ack`` names)
    event: BusEvent
    attempt: int = 1  # 2 and more: delivered before to a member that did not acknowledge it


class Consumer(abc.ABC):
    """A member of a consumer group on a channel (see the module docstring). ``async for delivery in consumer``."""

    group: str
    name: str

    @abc.abstractmethod
    async def get(self, timeout: float | None = None) -> Delivery:
        """The next delivery; ``TimeoutError`` after ``timeout``, ``StopAsyncIteration`` once closed."""

    @abc.abstractmethod
    async def ack(self, *deliveries: Delivery) -> None:
        """The events are handled: they will not be delivered again to any member of the group."""

    @property
    @abc.abstractmethod
    def pending(self) -> int:
        """Deliveries handed to this member and not yet acknowledged."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop reading. Unacknowledged deliveries stay pending and go to another member after ``reclaim_after_s``
        (or to a member with the same name that starts again)."""

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        return await self.get()

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Bus(abc.ABC):
    """Publish typed events to channels; read them by fan-out subscription or as a durable consumer group."""

    source: str  # stamped on the events this process publishes

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, event: BusEvent) -> BusEvent:
        """Publish to the event's room channel; returns the event as delivered (envelope and ``seq`` filled in)."""

    @abc.abstractmethod
    async def publish_to(self, channel: str, event: BusEvent) -> BusEvent:
        """Publish to a named (non-room) channel; ``seq`` counts per channel."""

    @abc.abstractmethod
    async def subscribe(self, pattern: str, maxsize: int = 1000, after_seq: int | None = None) -> Subscription:
        """Fan-out subscription to a channel (``room:<id>``, a named channel) or a glob pattern (``room:*``).
        ``after_seq`` (one channel only) replays the retained events after it before the live ones."""

    @abc.abstractmethod
    async def history(self, channel: str, after_seq: int = 0, limit: int | None = None) -> list[BusEvent]:
        """The retained events of one channel with ``seq > after_seq``, oldest first (at most ``limit``)."""

    @abc.abstractmethod
    async def consumer(self, group: str, name: str, channel: str = ROOMS, reclaim_after_s: float = 30.0,
                       prefetch: int = 64) -> Consumer:
        """Join consumer group ``group`` on ``channel`` (``rooms`` or a named channel) as member ``name``. A group
        created now starts at the oldest retained event. A member reads ahead at most ``prefetch`` events (those not yet
        taken with ``get``); how many it holds unacknowledged is up to its handler."""

    @abc.abstractmethod
    async def close(self) -> None: ...
