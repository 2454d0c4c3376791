"""One worker thread that runs speech-recognition decodes for every speaker in the process, in batches where the
backend can: finals first, rooms in turn, and a bounded number of waiting partials.

Whisper must never run on the event loop, and on a small CPU two decodes at once only slow each other down (the model
already uses every core it is given); on a GPU, many decodes in one batched call cost little more than one. So one
worker thread takes the waiting decodes ``max_batch`` at a time and runs them in one backend call
(``transcribe_batch``, also for a batch of one: on the CPU it is the cheaper path, see docs/benchmarks.md); a backend
that cannot batch decodes one at a time (``transcribe``).

Jobs are data: a ``DecodeRequest`` (audio, language, prompt) with a priority (finals before partials) and a room
(``decode``). Which jobs the next batch takes is decided by ``DecodeQueue``, a deterministic core without threads:
finals first, rooms in turn (round robin: each room with waiting finals gets one before any gets a second, and the turn
carries over to the next batch, so no room waits more than a few batches), then partials fill what is left of the
batch, also rooms in turn. Arbitrary callables (``submit``) also queue, by the same rules, and always run alone.
Results come back as asyncio futures on the submitting loop.

Backpressure drops partials, never finals: at most ``max_partials`` partial decodes wait (or two batches' worth, if
that is more); a new one beyond that
displaces the oldest waiting partial of the room with the most of them (its future is cancelled: the speaker's next
partial brings the caption up to date anyway). Finals are never dropped: there is one per utterance, and each
speaker's audio is itself bounded upstream. A job whose future was cancelled before it started (a partial made stale
by the end of its utterance, a speculative final made moot by more speech) is skipped and takes no place in a batch.
Keeping at most one pending partial per speaker is the caller's part.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from server.asr import metrics
from server.asr.backends import AsrBackend, DecodeRequest, Transcription, batches

logger = logging.getLogger(__name__)

T = TypeVar("T")

FINAL = 0
PARTIAL = 1
PRIORITIES = (FINAL, PARTIAL)
KIND = {FINAL: "final", PARTIAL: "partial"}


class Queued(Protocol):
    @property
    def priority(self) -> int: ...

    @property
    def room(self) -> str: ...


J = TypeVar("J", bound=Queued)


class DecodeQueue(Generic[J]):
    """Waiting jobs by priority and room, and the choice of the next batch (not thread-safe: the scheduler holds a
    lock around it)."""

    def __init__(self, max_partials: int) -> None:
        self.max_partials = max_partials
        # priority -> room -> waiting jobs (oldest first); the room order is the round-robin order
        self._queues: dict[int, OrderedDict[str, deque[J]]] = {p: OrderedDict() for p in PRIORITIES}

    def push(self, job: J) -> J | None:
        """Queue ``job``; returns the partial it displaced, if too many now wait (never a final)."""
        self._queues[job.priority].setdefault(job.room, deque()).append(job)
        if job.priority == PARTIAL and self.waiting(PARTIAL) > self.max_partials:
            rooms = self._queues[PARTIAL]
            room = max(rooms, key=lambda r: len(rooms[r]))  # the busiest room (the first in turn among equals)
            displaced = rooms[room].popleft()
            if not rooms[room]:
                del rooms[room]
            return displaced
        return None

    def take(self, max_batch: int, alive: Callable[[J], bool] = lambda _job: True,
             joins: Callable[[J, J], bool] = lambda _first, _job: True) -> tuple[list[J], list[J]]:
        """The next batch (at most ``max_batch`` jobs; empty if none waits) and the jobs found dead on the way (not
        ``alive``: removed, and they take no place). Finals first, then partials; within each, rooms in turn. The
        batch stops early at a job that does not ``join`` its first job (it stays first in line)."""
        batch: list[J] = []
        dead: list[J] = []
        for priority in PRIORITIES:
            rooms = self._queues[priority]
            while rooms and len(batch) < max_batch:
                room, jobs = next(iter(rooms.items()))
                job = jobs[0]
                if alive(job) and batch and not joins(batch[0], job):
                    return batch, dead
                jobs.popleft()
                if not alive(job):
                    dead.append(job)  # the room keeps its turn
                    if not jobs:
                        del rooms[room]
                    continue
                batch.append(job)
                if jobs:
                    rooms.move_to_end(room)  # this room's next job waits for the other rooms' turns
                else:
                    del rooms[room]
        return batch, dead

    def waiting(self, priority: int | None = None) -> int:
        priorities = PRIORITIES if priority is None else (priority,)
        return sum(len(jobs) for p in priorities for jobs in self._queues[p].values())

    def __len__(self) -> int:
        return self.waiting()


@dataclass(eq=False)
class _Job:
    priority: int
    room: str
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    queued_at: float
    fn: Callable[[], Any] | None = None  # an arbitrary job (runs alone)
    request: DecodeRequest | None = None  # or a decode (batched with other decodes)


class DecodeScheduler:
    def __init__(self, name: str = "asr-worker", max_partials: int = 16, backend: AsrBackend | None = None,
                 max_batch: int = 1) -> None:
        self.max_partials = max_partials
        self.backend = backend
        self._queue: DecodeQueue[_Job] = DecodeQueue(max_partials)
        self._lock = threading.Condition()
        self._max_batch = 1
        self.max_batch = max_batch
        self._closed = False
        self._outstanding: set[asyncio.Future[Any]] = set()
        self.completed = 0  # jobs run (each job of a batch counts)
        self.batches = 0  # backend calls (or arbitrary jobs) run
        self.skipped = 0
        self.displaced = 0  # partials dropped because too many were waiting
        self.busy_s = 0.0  # time spent decoding
        self.waited_s = 0.0  # time jobs spent queued
        self.audio_s = 0.0  # audio decoded, seconds
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Not closed, and its worker thread alive."""
        return not self._closed and self._thread.is_alive()

    @property
    def max_batch(self) -> int:
        """Decodes per backend call: at most this many, and 1 for a backend that cannot batch."""
        return self._max_batch

    @max_batch.setter
    def max_batch(self, value: int) -> None:
        with self._lock:
            self._max_batch = max(1, value) if self.backend is not None and batches(self.backend) else 1
            # Waiting partials are bounded so that stale ones do not pile up, but never below what two batches take:
            # batches of partials are what a GPU worker is for.
            self._queue.max_partials = max(self.max_partials, 2 * self._max_batch)

    def submit(self, priority: int, fn: Callable[[], T], room: str = "") -> asyncio.Future[T]:
        """Queue ``fn`` (called alone in the worker thread) for ``room``; must be called on the event loop that awaits
        the result."""
        return self._queue_job(priority, room, fn=fn)

    def decode(self, priority: int, request: DecodeRequest, room: str = "") -> asyncio.Future[Transcription]:
        """Queue a decode with the scheduler's backend (batched with others where it can); must be called on the
        event loop that awaits the result."""
        if self.backend is None:
            raise RuntimeError("this scheduler has no speech backend: use submit()")
        return self._queue_job(priority, room, request=request)

    def _queue_job(self, priority: int, room: str, fn: Callable[[], Any] | None = None,
                   request: DecodeRequest | None = None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.cancel()
            return future
        self._outstanding.add(future)
        future.add_done_callback(self._outstanding.discard)
        with self._lock:
            displaced = self._queue.push(_Job(priority, room, future, loop, time.perf_counter(), fn, request))
            self._count_waiting()
            self._lock.notify()
        if displaced is not None:
            self.displaced += 1
            metrics.partials_dropped.inc()
            displaced.future.cancel()
        return future

    def _count_waiting(self) -> None:
        """Publish the queue depth (called with the lock held)."""
        for priority in PRIORITIES:
            metrics.queue_depth.labels(KIND[priority]).set(self._queue.waiting(priority))

    def _take(self) -> list[_Job] | None:
        """The next batch (called with the lock held; waits for one); None once closed and drained."""
        while True:
            batch, dead = self._queue.take(self.max_batch, alive=lambda job: not job.future.cancelled(),
                                           joins=lambda first, job: first.request is not None
                                           and job.request is not None)
            if dead:
                self.skipped += len(dead)
                metrics.decodes_skipped.inc(len(dead))
            if batch:
                return batch
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
            return len(self._queue)

    def _work(self) -> None:
        while True:
            with self._lock:
                batch = self._take()
                self._count_waiting()
            if batch is None:
                return
            kind = KIND[min(job.priority for job in batch)]  # a batch with a final in it is a final's decode
            started = time.perf_counter()
            for job in batch:
                self.waited_s += started - job.queued_at
                metrics.wait_seconds.labels(KIND[job.priority]).observe(started - job.queued_at)
            outcomes = self._run(batch)
            elapsed = time.perf_counter() - started
            self.busy_s += elapsed
            metrics.decode_seconds.labels(kind).observe(elapsed)
            metrics.batch_size.observe(len(batch))
            audio_s = sum(job.request.seconds for job in batch if job.request is not None)
            self.audio_s += audio_s
            metrics.audio_seconds.inc(audio_s)
            self.completed += len(batch)
            self.batches += 1
            logger.debug("%d decode(s) (%s) took %.2f s after up to %.2f s queued, %d waiting", len(batch), kind,
                         elapsed, started - min(job.queued_at for job in batch), self.pending)
            for job, (result, error) in zip(batch, outcomes, strict=True):
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                    job.loop.call_soon_threadsafe(_settle, job.future, result, error)

    def _run(self, batch: list[_Job]) -> list[tuple[Any, BaseException | None]]:
        """Each job's result or error. A batch that fails is decoded again one by one, so that one bad buffer fails
        alone."""
        if batch[0].fn is not None:
            return [_call(batch[0].fn)]
        backend = self.backend
        assert backend is not None
        # Prompts are read now, just before the decode (a request may wait briefly for its speaker's previous final).
        requests = [job.request.resolved() for job in batch if job.request is not None]
        if not batches(backend):
            return [_call(functools.partial(backend.transcribe, r.audio, language=r.language, prompt=r.prompt))
                    for r in requests]
        transcribe_batch = backend.transcribe_batch  # type: ignore[attr-defined]  # batches(backend) holds
        result, error = _call(lambda: transcribe_batch(requests))
        if error is None and len(result) == len(requests):
            return [(r, None) for r in result]
        if len(requests) == 1:
            return [(None, error or RuntimeError("the backend returned no transcription"))]
        logger.warning("a batch of %d decodes failed (%s): decoding them one by one", len(requests), error)
        return [_call(functools.partial(_first, transcribe_batch, r)) for r in requests]

    def close(self, timeout: float = 30) -> None:
        """Let queued jobs finish, then stop the thread (blocking: call it from a thread)."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("the speech-recognition worker did not stop within %.0f s", timeout)


def _first(transcribe_batch: Callable[[list[DecodeRequest]], list[Transcription]],
           request: DecodeRequest) -> Transcription:
    return transcribe_batch([request])[0]


def _call(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return fn(), None
    except Exception as exc:  # delivered to the awaiting coroutine
        return None, exc


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
