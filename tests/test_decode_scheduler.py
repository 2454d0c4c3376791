"""The decode scheduler: finals before partials, rooms served in turn, a bounded number of waiting partials, and
finals never dropped. The worker is held on a gate so the queue's order is observed exactly, not raced."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from server.asr.scheduler import FINAL, PARTIAL, DecodeScheduler


class Recorder:
    """Jobs that record the order they ran in; the first job blocks on a gate until the test has queued the rest."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.gate = threading.Event()
        self.started = threading.Event()

    def blocker(self) -> str:
        self.started.set()
        self.gate.wait(30)
        return "blocker"

    def job(self, name: str) -> Callable[[], str]:
        def run() -> str:
            self.ran.append(name)
            return name
        return run


async def blocked(scheduler: DecodeScheduler, recorder: Recorder) -> asyncio.Future[str]:
    first = scheduler.submit(FINAL, recorder.blocker, room="x")
    assert await asyncio.to_thread(recorder.started.wait, 30), "the worker took the first job"
    return first


async def test_rooms_take_turns_within_a_priority_and_finals_go_first() -> None:
    scheduler = DecodeScheduler(max_partials=100)
    recorder = Recorder()
    try:
        first = await blocked(scheduler, recorder)
        futures: list[asyncio.Future[str]] = []
        for n in range(3):  # a busy room queues three partials before the quiet room's one
            futures.append(scheduler.submit(PARTIAL, recorder.job(f"busy-p{n}"), room="busy"))
        futures.append(scheduler.submit(PARTIAL, recorder.job("quiet-p0"), room="quiet"))
        futures.append(scheduler.submit(FINAL, recorder.job("busy-f0"), room="busy"))
        futures.append(scheduler.submit(FINAL, recorder.job("quiet-f0"), room="quiet"))
        recorder.gate.set()
        await asyncio.gather(first, *futures)
        assert recorder.ran == ["busy-f0", "quiet-f0", "busy-p0", "quiet-p0", "busy-p1", "busy-p2"]
    finally:
        recorder.gate.set()
        await asyncio.to_thread(scheduler.close)


async def test_waiting_partials_are_bounded_and_finals_are_never_dropped() -> None:
    scheduler = DecodeScheduler(max_partials=4)
    recorder = Recorder()
    try:
        first = await blocked(scheduler, recorder)
        partials = {f"loud-p{n}": scheduler.submit(PARTIAL, recorder.job(f"loud-p{n}"), room="loud")
                    for n in range(6)}
        partials["calm-p0"] = scheduler.submit(PARTIAL, recorder.job("calm-p0"), room="calm")
        finals = [scheduler.submit(FINAL, recorder.job(f"loud-f{n}"), room="loud") for n in range(20)]
        assert scheduler.pending == 4 + 20
        dropped = [name for name, future in partials.items() if future.cancelled()]
        assert dropped == ["loud-p0", "loud-p1", "loud-p2"], "the room with the most waiting loses its oldest"
        assert scheduler.displaced == 3
        recorder.gate.set()
        await first
        assert await asyncio.gather(*finals) == [f"loud-f{n}" for n in range(20)], "every final runs, in order"
        await scheduler.idle()
        assert [name for name in recorder.ran if "-p" in name] == ["loud-p3", "calm-p0", "loud-p4", "loud-p5"]
    finally:
        recorder.gate.set()
        await asyncio.to_thread(scheduler.close)


async def test_a_cancelled_job_is_skipped_and_errors_reach_the_caller() -> None:
    scheduler = DecodeScheduler()
    recorder = Recorder()
    try:
        first = await blocked(scheduler, recorder)
        stale = scheduler.submit(PARTIAL, recorder.job("stale"), room="r")
        stale.cancel()

        def broken() -> str:
            raise RuntimeError("decoder failed")

        failing = scheduler.submit(FINAL, broken, room="r")
        recorder.gate.set()
        await first
        with pytest.raises(RuntimeError, match="decoder failed"):
            await failing
        # A partial queued after the cancelled one: when it runs, the worker has passed (and skipped) the stale one.
        await scheduler.submit(PARTIAL, recorder.job("marker"), room="r")
        assert recorder.ran == ["marker"] and scheduler.skipped == 1
    finally:
        recorder.gate.set()
        await asyncio.to_thread(scheduler.close)


async def test_jobs_submitted_after_close_are_cancelled() -> None:
    scheduler = DecodeScheduler()
    await asyncio.to_thread(scheduler.close)
    assert scheduler.submit(FINAL, lambda: 1, room="r").cancelled()
