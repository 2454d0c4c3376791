"""One worker thread that runs speech-recognition decodes for every speaker in the process, finals first.

Whisper must never run on the event loop, and on a small CPU two decodes at once only slow each other down. Jobs carry a
priority (finals before partials) and are run one at a time, in order within a priority; results come back as asyncio
futures on the submitting loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

FINAL = 0
PARTIAL = 1


class DecodeScheduler:
    def __init__(self, name: str = "asr-worker") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._counter = itertools.count()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        self.completed = 0
        self.busy_s = 0.0

    def submit(self, priority: int, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((priority, next(self._counter), (fn, future, loop)))
        return future

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        import time

        while True:
            priority, _, job = self._queue.get()
            if job is None:
                return
            fn, future, loop = job
            if future.cancelled():
                continue
            started = time.perf_counter()
            try:
                result, error = fn(), None
            except Exception as exc:  # delivered to the awaiting coroutine
                result, error = None, exc
            elapsed = time.perf_counter() - started
            self.busy_s += elapsed
            logger.debug("decode (priority %d) took %.2f s, %d waiting", priority, elapsed, self._queue.qsize())
            self.completed += 1
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def close(self, timeout: float = 30) -> None:
        self._queue.put((-1, -1, None))
        self._thread.join(timeout)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
