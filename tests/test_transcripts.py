"""The transcript recorder stores final captions published on the bus, and only those, exactly once."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from server.core.bus import Bus, InProcessBus
from server.core.events import AIMessage, CaptionFinal, CaptionPartial, LLMCallRecorded
from server.storage import Storage
from server.transcripts import TranscriptRecorder


async def test_recorder_stores_finals_once(tmp_path: Path) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'm.db'}")
    storage.create_schema()
    room = storage.create_room("R", 8)
    bus = InProcessBus()
    recorder = TranscriptRecorder(bus, storage)
    await recorder.start()
    final = CaptionFinal(room_id=room.id, utterance_id="u1", participant_id="p", speaker_name="Bo", text="from the bus",
                         start=5.0, end=6.0)
    await bus.publish(CaptionPartial(room_id=room.id, utterance_id="u1", participant_id="p", speaker_name="Bo",
                                     committed="from", tentative="the", start=5.0))
    await bus.publish(final)
    await bus.publish(final)  # delivered twice (e.g. two nodes): stored once
    second = final.model_copy(update={"utterance_id": "u2", "text": "again", "start": 7.0, "end": 8.0})
    await bus.publish(second)
    await recorder.wait_stored(2, timeout=5)
    await recorder.close()
    assert [c.text for c in storage.transcript(room.id)] == ["from the bus", "again"]
    storage.close()


async def test_recorder_keeps_ai_messages_for_late_joiners_and_review(tmp_path: Path) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'm.db'}")
    storage.create_schema()
    room = storage.create_room("R", 8)
    other = storage.create_room("Other", 8)
    bus = InProcessBus()
    recorder = TranscriptRecorder(bus, storage)
    await recorder.start()
    first = await bus.publish(AIMessage(room_id=room.id, ts=10.0, message_id="m1", kind="stage_intro", text="Welcome"))
    await bus.publish(first)  # delivered again (same envelope): stored once
    await bus.publish(AIMessage(room_id=other.id, ts=11.0, message_id="m2", kind="question", text="Elsewhere"))
    await bus.publish(CaptionFinal(room_id=room.id, utterance_id="u", participant_id="p", speaker_name="Bo",
                                   text="hi", start=12.0, end=13.0))
    await recorder.wait_stored(1, timeout=5)
    await recorder.close()
    assert storage.ai_messages(room.id) == [first]
    assert [m.text for m in storage.ai_messages(other.id)] == ["Elsewhere"]
    storage.close()


# --- the recorder as a durable consumer group: exactly once with slow or failing databases, many nodes, crashes ---

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class UnreliableStorage(Storage):
    """A database that is slow and fails the first write of every ``fail_every``-th caption (then works)."""

    def __init__(self, url: str, delay_s: float = 0.0, fail_every: int = 0) -> None:
        super().__init__(url)
        self.delay_s = delay_s
        self.fail_every = fail_every
        self.attempts: Counter[str] = Counter()
        self.failures = 0

    def add_caption(self, caption: CaptionFinal) -> bool:
        self.attempts[caption.utterance_id] += 1
        attempt = self.attempts[caption.utterance_id]
        time.sleep(self.delay_s)  # a slow database (this runs on a worker thread, as every storage call does)
        number = int(caption.utterance_id.removeprefix("u"))
        if self.fail_every and number % self.fail_every == 0 and attempt == 1:
            self.failures += 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return super().add_caption(caption)


@pytest.fixture(params=["memory", "redis"])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Awaitable[Bus]]]:
    """Makes buses sharing one backend: for Redis each is another connection (another node), with a fresh prefix."""
    made: list[Bus] = []
    prefix = f"test-{uuid.uuid4().hex[:8]}:"

    async def make() -> Bus:
        if request.param == "memory":
            if not made:
                made.append(InProcessBus())
            return made[0]
        from server.core.bus.redis import RedisBus

        bus = RedisBus(REDIS_URL, prefix=prefix)
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()


def caption(room_id: str, n: int) -> CaptionFinal:
    return CaptionFinal(room_id=room_id, utterance_id=f"u{n}", participant_id="p", speaker_name="Bo",
                        text=f"line {n}", start=float(n), end=float(n) + 0.5)


async def test_slow_failing_database_many_nodes_every_final_stored_exactly_once(
        tmp_path: Path, buses: Callable[[], Awaitable[Bus]]) -> None:
    storage = UnreliableStorage(f"sqlite:///{tmp_path / 'm.db'}", delay_s=0.01, fail_every=7)
    storage.create_schema()
    room = storage.create_room("R", 8)
    nodes = [await buses() for _ in range(3)]
    recorders = [TranscriptRecorder(bus, storage, name=f"node-{i}", reclaim_after_s=0.3)
                 for i, bus in enumerate(nodes)]
    for recorder in recorders:
        await recorder.start()
    for n in range(1, 61):
        await nodes[n % 3].publish(caption(room.id, n))
    await wait_until(lambda: len(storage.transcript(room.id)) == 60, timeout=30)
    for recorder in recorders:
        await recorder.close()
    assert [c.utterance_id for c in storage.transcript(room.id)] == [f"u{n}" for n in range(1, 61)]
    assert storage.failures == 8  # u7, u14, ... u56 failed once each and were stored on redelivery
    assert sum(r.stored for r in recorders) == 60, "each caption stored by one recorder, once"
    storage.close()


async def test_a_recorder_that_dies_before_acknowledging_loses_nothing(
        tmp_path: Path, buses: Callable[[], Awaitable[Bus]]) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'm.db'}")
    storage.create_schema()
    room = storage.create_room("R", 8)
    bus = await buses()
    dying = await bus.consumer("recorder", "dies", reclaim_after_s=0.3)  # a recorder's member, killed mid-work
    for n in range(1, 4):
        await bus.publish(caption(room.id, n))
    taken = [await dying.get(timeout=5) for _ in range(3)]
    assert [d.event.utterance_id for d in taken] == ["u1", "u2", "u3"]  # type: ignore[union-attr]
    await dying.close()  # never acknowledged
    survivor = TranscriptRecorder(await buses(), storage, name="lives", reclaim_after_s=0.3)
    await survivor.start()
    await survivor.wait_stored(3, timeout=10)
    await survivor.close()
    assert [c.utterance_id for c in storage.transcript(room.id)] == ["u1", "u2", "u3"]
    storage.close()


async def test_llm_call_records_travel_as_events_and_are_stored_once(
        tmp_path: Path, buses: Callable[[], Awaitable[Bus]]) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'm.db'}")
    storage.create_schema()
    room = storage.create_room("R", 8)
    bus = await buses()
    recorder = TranscriptRecorder(bus, storage, name="r")
    await recorder.start()
    call = await bus.publish(LLMCallRecorded(room_id=room.id, ts=5.0, call_id="c1", purpose="summary", model="m",
                                             messages=[{"role": "user", "content": "x"}], output="{}",
                                             latency_s=0.5, outcome="ok"))
    await bus.publish(call)  # redelivered
    await bus.publish(caption(room.id, 1))  # marker: the recorder handles the group's events in order
    await recorder.wait_stored(1, timeout=5)
    await recorder.close()
    assert [(c["purpose"], c["outcome"]) for c in storage.llm_calls(room.id)] == [("summary", "ok")]
    storage.close()


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll a database condition (the recorder's writes are on worker threads; nothing to await on here)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.05)


class RestartingRedisStorage(Storage):
    """A database write during which Redis drops the recorder's command connections (as when it restarts): the
    acknowledgement that follows finds its connection gone."""

    def __init__(self, url: str, bus_source: str) -> None:
        super().__init__(url)
        self.bus_name = f"moot-bus:{bus_source}"
        self.dropped = 0

    def add_caption(self, caption: CaptionFinal) -> bool:
        stored = super().add_caption(caption)
        if caption.utterance_id == "u1" and not self.dropped:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            try:
                for connection in client.client_list():
                    if connection.get("name") == self.bus_name and "P" not in connection["flags"] \
                            and connection["cmd"] != "xreadgroup":
                        client.execute_command("CLIENT", "KILL", "ID", connection["id"])
                        self.dropped += 1
            finally:
                client.close()
        return stored


async def test_a_failed_acknowledgement_does_not_stop_the_recorder(tmp_path: Path) -> None:
    from server.core.bus.redis import RedisBus

    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    source = f"recorder-{uuid.uuid4().hex[:8]}"
    storage = RestartingRedisStorage(f"sqlite:///{tmp_path / 'm.db'}", source)
    storage.create_schema()
    room = storage.create_room("R", 8)
    recorder_bus = RedisBus(REDIS_URL, source=source, prefix=prefix, retry_for_s=0)  # no time to retry
    node = RedisBus(REDIS_URL, prefix=prefix)
    await recorder_bus.start()
    await node.start()
    recorder = TranscriptRecorder(recorder_bus, storage, name="r")
    try:
        await recorder.start()
        await node.publish(caption(room.id, 1))
        await node.publish(caption(room.id, 2))
        await recorder.wait_stored(2, timeout=10)
        assert storage.dropped >= 1, "the acknowledgement of u1 found its connection gone"
        assert recorder.health()["ok"]
        # u1 came back (pending), was found stored and acknowledged: nothing stays pending, nothing stored twice.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (await node._require_client().xpending(f"{prefix}log:rooms", "recorder"))["pending"]:
            assert loop.time() < deadline, "u1 was never acknowledged"
            await asyncio.sleep(0.05)
        assert recorder.stored == 2 and recorder.health()["ok"]
        assert [c.utterance_id for c in storage.transcript(room.id)] == ["u1", "u2"]
    finally:
        await recorder.close()
        await recorder_bus.close()
        await node.close()
        storage.close()
