"""One worker thread that runs speech-recognition decodes for every speaker in the process: finals first, rooms in
turn, and a bounded number of waiting partials.

Whisper must never run on the event loop, and on a small CPU two decodes at once only slow each other down (the model
already uses every core it is given). Jobs carry a priority (finals before partials) and a room; the worker takes the
highest priority available and, within it, serves rooms in turn (round robin), so one busy room cannot starve the
others. Results come back as asyncio futures on the submitting loop.

The queue is bounded where it can be: at most ``max_partials`` partial decodes wait; a new one beyond that displaces
the oldest waiting partial of the room with the most of them (its future is cancelled: the speaker's next partial
brings the caption up to date anyway). Finals are never dropped: there is one per utterance, and each speaker's audio
is itself bounded upstream. A job whose future was cancelled before it started (a partial made stale by the end of its
utterance, a speculative final made moot by more speech) is skipped. Keeping at most one pending partial per speaker
is the caller's part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

FINAL = 0
PARTIAL = 1
PRIORITIES = (FINAL, PARTIAL)


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    queued_at: float
    priority: int
    room: str


class DecodeScheduler:
    def __init__(self, name: str = "asr-worker", max_partials: int = 16) -> None:
        self.max_partials = max_partials
        # priority -> room -> waiting jobs (oldest first); the room order is the round-robin order
        self._queues: dict[int, OrderedDict[str, deque[_Job]]] = {p: OrderedDict() for p in PRIORITIES}
        self._lock = threading.Condition()
        self._closed = False
        self._outstanding: set[asyncio.Future[Any]] = set()
        self.completed = 0
        self.skipped = 0
        self.displaced = 0  # partials dropped because too many were waiting
        self.busy_s = 0.0  # time spent decoding
        self.waited_s = 0.0  # time jobs spent queued
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, priority: int, fn: Callable[[], T], room: str = "") -> asyncio.Future[T]:
        """Queue ``fn`` (called in the worker thread) for ``room``; must be called on the event loop that awaits the
        result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._closed:
            future.cancel()
            return future
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        displaced: _Job | None = None
        with self._lock:
            self._queues[priority].setdefault(room, deque()).append(
                _Job(fn, future, loop, time.perf_counter(), priority, room))
            if priority == PARTIAL and self._waiting(PARTIAL) > self.max_partials:
                displaced = self._displace_partial()
            self._lock.notify()
        if displaced is not None:
            self.displaced += 1
            displaced.future.cancel()
        return future

    def _waiting(self, priority: int) -> int:
        return sum(len(jobs) for jobs in self._queues[priority].values())

    def _displace_partial(self) -> _Job:
        """The oldest waiting partial of the room that has the most (called with the lock held)."""
        rooms = self._queues[PARTIAL]
        room = max(rooms, key=lambda r: len(rooms[r]))
        job = rooms[room].popleft()
        if not rooms[room]:
            del rooms[room]
        return job

    def _take(self) -> _Job | None:
        """The next job: highest priority first, rooms in turn (called with the lock held); None once closed."""
        while True:
            for priority in PRIORITIES:
                rooms = self._queues[priority]
                if rooms:
                    room, jobs = next(iter(rooms.items()))
                    job = jobs.popleft()
                    if jobs:
                        rooms.move_to_end(room)  # this room's next job waits for the other rooms' turns
                    else:
                        del rooms[room]
                    return job
            if self._closed:
                return None
            self._lock.wait()

    async def idle(self) -> None:
        """Wait until every job submitted so far (and any submitted meanwhile) is done, failed or cancelled."""
        while self._outstanding:
            await asyncio.wait(set(self._outstanding))

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(self._waiting(p) for p in PRIORITIES)

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._take()
            if job is None:
                return
            if job.future.cancelled():
                self.skipped += 1
                continue
            started = time.perf_counter()
            self.waited_s += started - job.queued_at
            try:
                result, error = job.fn(), None
            except Exception as exc:  # delivered to the awaiting coroutine
                result, error = None, exc
            elapsed = time.perf_counter() - started
            self.busy_s += elapsed
            self.completed += 1
            logger.debug("decode (priority %d) took %.2f s after %.2f s queued, %d waiting", job.priority, elapsed,
                         started - job.queued_at, self.pending)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    def close(self, timeout: float = 30) -> None:
        """Let queued jobs finish, then stop the thread (blocking: call it from a thread)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
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
