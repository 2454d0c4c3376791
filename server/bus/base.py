"""The bus interface and the bounded subscription queue both implementations share."""

from __future__ import annotations

import abc
import asyncio
import fnmatch
import logging
from collections.abc import AsyncIterator
from types import TracebackType

from server.events import BusEvent

logger = logging.getLogger(__name__)


def room_channel(room_id: str) -> str:
    return f"room:{room_id}"


class Subscription:
    """Events for one subscriber, in publish order. Iterate with ``async for`` or call ``get(timeout)``."""

    def __init__(self, pattern: str, maxsize: int, on_close: object = None) -> None:
        self.pattern = pattern
        self.dropped = 0
        self._queue: asyncio.Queue[BusEvent | None] = asyncio.Queue(maxsize=maxsize)
        self._closed = False
        self._on_close = on_close

    @property
    def pending(self) -> int:
        """Events delivered and not yet taken."""
        return self._queue.qsize()

    def matches(self, channel: str) -> bool:
        return fnmatch.fnmatchcase(channel, self.pattern)

    def deliver(self, event: BusEvent) -> None:
        """Queue an event without blocking; when full, drop the oldest one."""
        if self._closed:
            return
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
        """The next event; raises ``asyncio.TimeoutError`` after ``timeout`` and ``StopAsyncIteration`` once closed."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
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


class Bus(abc.ABC):
    """Publish typed events to channels; subscribe to channels or glob patterns."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, event: BusEvent) -> None:
        """Publish to the event's room channel."""

    @abc.abstractmethod
    async def subscribe(self, pattern: str, maxsize: int = 1000) -> Subscription: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
