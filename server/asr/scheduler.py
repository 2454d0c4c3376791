"""One worker thread that runs speech-recognition decodes for every speaker in the process, finals first.

Whisper must never run on the event loop, and on a small CPU two decodes at once only slow each other down (the model
already uses every core it is given). Jobs carry a priority (finals before partials) and run one at a time, in
submission order within a priority; results come back as asyncio futures on the submitting loop. A job whose future was
cancelled before it started (a partial made stale by the end of its utterance, a speculative final made moot by more
speech) is skipped. Keeping at most one pending partial per speaker is the caller's part.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

FINAL = 0
PARTIAL = 1
_STOP = 2  # after every real job


class DecodeScheduler:
    def __init__(self, name: str = "asr-worker") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._counter = itertools.count()
        self._closed = False
        self._outstanding: set[asyncio.Future[Any]] = set()
        self.completed = 0
        self.skipped = 0
        self.busy_s = 0.0  # time spent decoding
        self.waited_s = 0.0  # time jobs spent queued
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: int, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn`` (called in the worker thread); must be called on the event loop that awaits the result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._closed:
            future.cancel()
            return future
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        self._queue.put((priority, next(self._counter), (fn, future, loop, time.perf_counter())))
        return future

    async def idle(self) -> None:
        """Wait until every job submitted so far (and any submitted meanwhile) is done, failed or cancelled."""
        while self._outstanding:
            await asyncio.wait(set(self._outstanding))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            priority, _, job = self._queue.get()
            if job is None:
                break
            fn, future, loop, queued = job
            if future.cancelled():
                self.skipped += 1
                continue
            started = time.perf_counter()
            self.waited_s += started - queued
            try:
                result, error = fn(), None
            except Exception as exc:  # delivered to the awaiting coroutine
                result, error = None, exc
            elapsed = time.perf_counter() - started
            self.busy_s += elapsed
            self.completed += 1
            logger.debug("decode (priority %d) took %.2f s after %.2f s queued, %d waiting", priority, elapsed,
                         started - queued, self._queue.qsize())
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, future, result, error)
        # Closed: whatever is still queued will not run.
        while True:
            try:
                _, _, job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                with contextlib.suppress(RuntimeError):
                    job[2].call_soon_threadsafe(job[1].cancel)

    def close(self, timeout: float = 30) -> None:
        """Let queued jobs finish, then stop the thread (blocking: call it from a thread)."""
        if not self._closed:
            self._closed = True
            self._queue.put((_STOP, next(self._counter), None))
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("the speech-recognition worker did not stop within %.0f s", timeout)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
