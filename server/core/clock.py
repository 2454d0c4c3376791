"""Time for everything with timers: ``SystemClock`` in production, ``ManualClock`` (virtual time) in tests and
benchmarks. Components take a ``Clock`` and never call ``time.time()`` or ``asyncio.sleep`` for their schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.time()))


class ManualClock:
    """Virtual time for tests and benchmarks: ``await advance(seconds, step)`` moves time forward one step at a time;
    after each step it waits until everything driven by this clock has settled (each ``settles_with`` callback: e.g.
    a facilitator service has handled every event and run every wake-up that is due), so no test counts yields."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._changed = asyncio.Condition()
        self._settlers: list[Callable[[], Awaitable[None]]] = []

    def now(self) -> float:
        return self._now

    def settles_with(self, settled: Callable[[], Awaitable[None]]) -> None:
        self._settlers.append(settled)

    async def sleep_until(self, when: float) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= when)

    async def settle(self) -> None:
        for settled in self._settlers:
            await settled()

    async def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self._now + seconds
        await self.settle()
        while self._now < end:
            async with self._changed:
                self._now = min(end, self._now + step)
                self._changed.notify_all()
            await self.settle()
