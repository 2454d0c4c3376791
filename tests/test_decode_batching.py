"""Batched decoding: which waiting decodes the next batch takes (``DecodeQueue``, property-tested), the scheduler
running batches through a backend that batches (a fake that records each call; the worker is held on a gate so the
batches are observed exactly, not raced), and speakers' streams sharing batches."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from server.asr.backends import DecodeRequest, Transcription, Word
from server.asr.scheduler import FINAL, PARTIAL, DecodeQueue, DecodeScheduler
from server.asr.service import WhisperCaptionService
from server.core.bus import InProcessBus
from server.core.events import CaptionFinal
from tests.test_captions import (
    CHUNK,
    RATE,
    SENTENCE,
    T0,
    LocatingBackend,
    Recorder,
    check_word_times,
    fake_settings,
    script_at,
    silence,
    speech,
)

# DecodeQueue ---------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Job:
    priority: int
    room: str
    n: int
    alive: bool = True


ROOMS = "abcde"
operations = st.lists(st.one_of(
    st.tuples(st.just("push"), st.sampled_from((FINAL, PARTIAL)), st.sampled_from(ROOMS)),
    st.tuples(st.just("take"), st.integers(1, 6)),
    st.tuples(st.just("cancel"), st.integers(0, 200)),
), max_size=120)


class QueueModel:
    """Runs operations on a ``DecodeQueue`` and checks every promise after each."""

    def __init__(self, max_partials: int) -> None:
        self.queue: DecodeQueue[Job] = DecodeQueue(max_partials)
        self.max_partials = max_partials
        self.waiting: list[Job] = []  # in push order
        self.pushed: list[Job] = []
        self.taken: list[Job] = []
        self.gone: list[Job] = []  # displaced or found dead
        self.passed_over: dict[str, int] = {}  # room with alive finals waiting -> final slots other rooms got since

    def push(self, priority: int, room: str) -> None:
        job = Job(priority, room, len(self.pushed))
        self.pushed.append(job)
        self.waiting.append(job)
        before = {r: sum(1 for j in self.waiting if j.priority == PARTIAL and j.room == r) for r in ROOMS}
        displaced = self.queue.push(job)
        if displaced is not None:
            assert displaced.priority == PARTIAL, "a final is never dropped"
            assert before[displaced.room] == max(before.values()), "the busiest room loses one"
            oldest = next(j for j in self.waiting if j.priority == PARTIAL and j.room == displaced.room)
            assert displaced is oldest, "its oldest"
            self.waiting.remove(displaced)
            self.gone.append(displaced)
        assert self.queue.waiting(PARTIAL) <= self.max_partials
        assert len(self.queue) == len(self.waiting)

    def cancel(self, index: int) -> None:
        if self.pushed:
            self.pushed[index % len(self.pushed)].alive = False

    def take(self, max_batch: int) -> list[Job]:
        alive_before = [j for j in self.waiting if j.alive]
        batch, dead = self.queue.take(max_batch, alive=lambda j: j.alive)
        assert len(batch) <= max_batch
        assert bool(batch) == bool(alive_before), "a batch whenever a live job waits"
        assert all(j.alive for j in batch) and not any(j.alive for j in dead)
        for job in [*batch, *dead]:
            self.waiting.remove(job)
        self.taken.extend(batch)
        self.gone.extend(dead)
        alive_after = [j for j in self.waiting if j.alive]
        priorities = [j.priority for j in batch]
        assert priorities == sorted(priorities), "finals first"
        if PARTIAL in priorities:
            assert not [j for j in alive_after if j.priority == FINAL], "partials only fill what finals leave"
        for priority in (FINAL, PARTIAL):  # rooms in turn: no room gets two more than a room left waiting
            counts = {r: sum(1 for j in batch if j.priority == priority and j.room == r) for r in ROOMS}
            still_waiting = {j.room for j in alive_after if j.priority == priority}
            if still_waiting:
                assert max(counts.values()) - min(counts[r] for r in still_waiting) <= 1, (counts, still_waiting)
        for room in ROOMS:  # within a room and priority, oldest first
            for priority in (FINAL, PARTIAL):
                ns = [j.n for j in batch if j.room == room and j.priority == priority]
                assert ns == sorted(ns)
        # No starvation: a room with a final waiting is passed over by fewer final slots than there are other rooms.
        finals_to = [j.room for j in batch if j.priority == FINAL]
        waiting_rooms = {j.room for j in alive_before if j.priority == FINAL}
        for room in waiting_rooms:
            if room in finals_to:
                self.passed_over.pop(room, None)
            else:
                self.passed_over[room] = self.passed_over.get(room, 0) + len(finals_to)
                assert self.passed_over[room] <= len(ROOMS) - 1, "a room waits for each other room at most once"
        for room in list(self.passed_over):
            if room not in {j.room for j in alive_after if j.priority == FINAL}:
                del self.passed_over[room]
        return batch


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 6))
def test_batches_take_finals_first_rooms_in_turn_and_never_drop_finals(ops: list[tuple], max_partials: int) -> None:
    model = QueueModel(max_partials)
    for op in ops:
        if op[0] == "push":
            model.push(op[1], op[2])
        elif op[0] == "take":
            model.take(op[1])
        else:
            model.cancel(op[1])
    while model.take(3):  # drain
        pass
    assert len(model.queue) == 0 and not model.waiting
    assert len({id(j) for j in model.taken}) == len(model.taken), "nothing runs twice"
    assert {id(j) for j in model.taken} | {id(j) for j in model.gone} == {id(j) for j in model.pushed}
    for job in model.pushed:
        if job.priority == FINAL and job.alive:
            assert job in model.taken, "every final that is still wanted runs"


def test_a_job_that_does_not_join_ends_the_batch_and_stays_first() -> None:
    queue: DecodeQueue[Job] = DecodeQueue(10)
    jobs = [Job(FINAL, "a", 0), Job(FINAL, "b", 1), Job(FINAL, "c", 2)]
    for job in jobs:
        queue.push(job)
    def joins(first: Job, job: Job) -> bool:
        return job.n != 1
    assert queue.take(3, joins=joins) == ([jobs[0]], [])
    assert queue.take(3, joins=lambda first, job: False) == ([jobs[1]], [])
    assert queue.take(3) == ([jobs[2]], [])


def test_many_rooms_each_get_a_final_within_a_bounded_number_of_batches() -> None:
    queue: DecodeQueue[Job] = DecodeQueue(10)
    rooms = [f"room{n}" for n in range(20)]
    n = itertools.count()
    for room in rooms:  # every room has a backlog of finals; room0 most of all
        for _ in range(30 if room == "room0" else 3):
            queue.push(Job(FINAL, room, next(n)))
    batches = [queue.take(8)[0] for _ in range(3)]
    assert [len(b) for b in batches] == [8, 8, 8]
    served = {j.room for b in batches for j in b}
    assert served == set(rooms), "every room within ceil(20 / 8) = 3 batches"
    assert max(sum(1 for b in batches for j in b if j.room == r) for r in rooms) == math.ceil(24 / 20)


# The scheduler with a batching backend -------------------------------------------------------------------------------


class BatchingFake:
    """Records every backend call as the list of its requests' prompts (used as names); the first call blocks on a
    gate until the test has queued the rest. A batch holding "bad" fails (and "bad" alone fails too)."""

    name = "fake-batching"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def load(self) -> None:
        return None

    def _one(self, request: DecodeRequest) -> Transcription:
        return Transcription([Word(" " + (request.prompt or ""), 0.0, 1.0)], request.language or "en", 1.0)

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        self.calls.append([f"single:{prompt}"])
        return self._one(DecodeRequest(audio, language, prompt))

    def transcribe_batch(self, requests: Sequence[DecodeRequest]) -> list[Transcription]:
        self.calls.append([r.prompt or "" for r in requests])
        if len(self.calls) == 1:
            self.started.set()
            self.gate.wait(30)
        if any(r.prompt == "bad" for r in requests):
            raise RuntimeError("decoder failed")
        return [self._one(r) for r in requests]


def request(name: str) -> DecodeRequest:
    return DecodeRequest(np.zeros(1600, np.float32), "en", prompt=name)


async def held(scheduler: DecodeScheduler, backend: BatchingFake) -> asyncio.Future[Transcription]:
    first = scheduler.decode(FINAL, request("blocker"), room="x")
    assert await asyncio.to_thread(backend.started.wait, 30), "the worker took the first decode"
    return first


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_decodes_run_in_batches_finals_first_rooms_in_turn() -> None:
    backend = BatchingFake()
    scheduler = DecodeScheduler(backend=backend, max_batch=3, max_partials=100)
    size_sum, size_count = sample("moot_asr_batch_size_sum"), sample("moot_asr_batch_size_count")
    audio_before = sample("moot_asr_decoded_audio_seconds_total")
    try:
        first = await held(scheduler, backend)
        futures = [scheduler.decode(PARTIAL, request(f"busy-p{n}"), room="busy") for n in range(3)]
        futures.append(scheduler.decode(PARTIAL, request("quiet-p0"), room="quiet"))
        futures += [scheduler.decode(FINAL, request(f"busy-f{n}"), room="busy") for n in range(2)]
        futures.append(scheduler.decode(FINAL, request("quiet-f0"), room="quiet"))
        stale = scheduler.decode(FINAL, request("stale"), room="quiet")
        stale.cancel()
        backend.gate.set()
        results = await asyncio.gather(first, *futures)
        assert [r.text for r in results] == ["blocker", "busy-p0", "busy-p1", "busy-p2", "quiet-p0", "busy-f0",
                                             "busy-f1", "quiet-f0"], "each caller gets its own result"
        await scheduler.idle()
    finally:
        backend.gate.set()
        await asyncio.to_thread(scheduler.close)
    assert backend.calls == [["blocker"], ["busy-f0", "quiet-f0", "busy-f1"], ["busy-p0", "quiet-p0", "busy-p1"],
                             ["busy-p2"]]
    assert scheduler.completed == 8 and scheduler.batches == 4 and scheduler.skipped == 1
    assert sample("moot_asr_batch_size_sum") - size_sum == 8
    assert sample("moot_asr_batch_size_count") - size_count == 4
    assert sample("moot_asr_decoded_audio_seconds_total") - audio_before == pytest.approx(0.8)


async def test_at_least_two_batches_of_partials_may_wait() -> None:
    backend = BatchingFake()
    scheduler = DecodeScheduler(backend=backend, max_batch=4, max_partials=3)
    try:
        first = await held(scheduler, backend)
        partials = [scheduler.decode(PARTIAL, request(f"p{n}"), room=f"r{n}") for n in range(10)]
        assert [p.cancelled() for p in partials] == [True, True] + [False] * 8
        backend.gate.set()
        await first
        await scheduler.idle()
    finally:
        backend.gate.set()
        await asyncio.to_thread(scheduler.close)
    assert backend.calls[1:] == [[f"p{n}" for n in range(2, 6)], [f"p{n}" for n in range(6, 10)]]


async def test_a_failed_batch_is_decoded_again_one_by_one() -> None:
    backend = BatchingFake()
    scheduler = DecodeScheduler(backend=backend, max_batch=4)
    try:
        first = await held(scheduler, backend)
        good = [scheduler.decode(FINAL, request(f"good{n}"), room=f"r{n}") for n in range(2)]
        bad = scheduler.decode(FINAL, request("bad"), room="r9")
        backend.gate.set()
        await first
        assert [r.text for r in await asyncio.gather(*good)] == ["good0", "good1"]
        with pytest.raises(RuntimeError, match="decoder failed"):
            await bad
    finally:
        backend.gate.set()
        await asyncio.to_thread(scheduler.close)
    assert backend.calls[1:] == [["good0", "good1", "bad"], ["good0"], ["good1"], ["bad"]]


async def test_callables_run_alone_and_max_batch_1_decodes_one_at_a_time() -> None:
    backend = BatchingFake()
    scheduler = DecodeScheduler(backend=backend, max_batch=1)
    try:
        first = await held(scheduler, backend)
        futures = [scheduler.decode(FINAL, request(f"f{n}"), room="r") for n in range(2)]
        futures.append(scheduler.submit(FINAL, lambda: Transcription([Word(" callable", 0, 1)]), room="r"))
        backend.gate.set()
        assert [r.text for r in await asyncio.gather(first, *futures)] == ["blocker", "f0", "f1", "callable"]
    finally:
        backend.gate.set()
        await asyncio.to_thread(scheduler.close)
    assert backend.calls == [["blocker"], ["f0"], ["f1"]], "batches of one"

    backend = BatchingFake()
    backend.started.set()  # no gate
    backend.calls.append(["-"])
    scheduler = DecodeScheduler(backend=backend, max_batch=8)
    try:
        gate = threading.Event()
        blocker = scheduler.submit(FINAL, gate.wait, room="x")
        futures = [scheduler.decode(FINAL, request("a0"), room="a")]
        futures.append(scheduler.submit(FINAL, lambda: Transcription([Word(" callable", 0, 1)]), room="b"))
        futures.append(scheduler.decode(FINAL, request("c0"), room="c"))
        futures.append(scheduler.decode(PARTIAL, request("c1"), room="c"))
        gate.set()
        await blocker
        assert [r.text for r in await asyncio.gather(*futures)] == ["a0", "callable", "c0", "c1"]
    finally:
        await asyncio.to_thread(scheduler.close)
    assert backend.calls[1:] == [["a0"], ["c0", "c1"]], "a callable ends a batch and runs alone"


async def test_a_backend_that_cannot_batch_decodes_one_at_a_time() -> None:
    from server.asr.backends import PlaceholderBackend

    scheduler = DecodeScheduler(backend=PlaceholderBackend(), max_batch=8)
    try:
        assert scheduler.max_batch == 1
        loud = np.full(16000, 0.1, np.float32)
        result = await scheduler.decode(FINAL, DecodeRequest(loud), room="r")
        assert result.text == "word1 word2"
    finally:
        await asyncio.to_thread(scheduler.close)


# Speakers' streams through a batching backend ------------------------------------------------------------------------


class BatchingLocating(LocatingBackend):
    """The scripted recogniser of tests/test_captions.py with a batch call (each request decoded in turn) that records
    batch sizes; the first call holds the worker until the test opens the gate."""

    def __init__(self, tracks: Sequence[tuple[npt.NDArray[np.float32], Sequence[tuple[str, float, float]]]]) -> None:
        super().__init__(tracks)
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def transcribe_batch(self, requests: Sequence[DecodeRequest]) -> list[Transcription]:
        self.sizes.append(len(requests))
        self.started.set()
        self.gate.wait(30)
        return [self.transcribe(r.audio, r.language, r.prompt) for r in requests]


async def test_speakers_in_several_rooms_share_batches(tmp_path: Path) -> None:
    """Four people in two rooms talk at once while the worker is held: their decodes then run in shared batches, and
    every speaker still gets exactly their own captions, with their own word times."""
    bus = InProcessBus()
    recorder = Recorder(bus, await bus.subscribe("room:*"))
    lags = [0.0, 0.3, 0.5, 0.8]
    tracks = [(np.concatenate([silence(lag), speech(), silence(2.0 - lag)]), script_at(lag)) for lag in lags]
    backend = BatchingLocating(tracks)
    service = WhisperCaptionService(fake_settings(tmp_path, asr_max_batch=4), bus, backend=backend)
    people = [("room1" if n < 2 else "room2", f"p{n}", f"Person {n}") for n in range(4)]
    streams = [service.open_speaker(room, pid, name) for room, pid, name in people]
    try:
        samples = tracks[0][0].size
        for i in range(0, samples, CHUNK):
            for n, stream in enumerate(streams):
                stream.push(tracks[n][0][i : i + CHUNK], T0 + 100 * n + i / RATE)
            await asyncio.sleep(0)
            if i == 2 * RATE:  # two seconds in: every speaker has a partial queued behind the first decode
                assert await asyncio.to_thread(backend.started.wait, 30)
        backend.gate.set()
        for _ in range(4):
            await recorder.until(lambda e: isinstance(e, CaptionFinal))
        for stream in streams:
            await stream.aclose()
        events = await recorder.drain()
    finally:
        backend.gate.set()
        await service.close()
        await bus.close()
    assert max(backend.sizes) > 1 and all(size <= 4 for size in backend.sizes)
    for n, (room, pid, _name) in enumerate(people):
        mine = [e for e in events if getattr(e, "participant_id", None) == pid]
        assert all(e.room_id == room for e in mine)
        finals = [e for e in mine if isinstance(e, CaptionFinal)]
        assert [f.text for f in finals] == [SENTENCE], (pid, [f.text for f in finals])
        check_word_times(finals[0], script_at(lags[n]), T0 + 100 * n)
