"""Faults lose nothing: Redis restarts while a room talks, and every process reconnects and carries on.

Real processes on a private ``redis-server`` (its own port and data directory, never the shared one): a ``moot worker
recorder`` and a ``moot worker facilitator`` share it and one database with the test, which stands in for two server
nodes: one publishes a final caption every 50 ms, the other watches the room as a browser's node would. Mid-stream
Redis is stopped (SIGTERM), kept down for a while and started again on the same port and data directory. Afterwards
every caption whose publish returned is stored exactly once, the watcher has every event of the room exactly once in
seq order, the workers are healthy, the facilitator still answers, and everything stops cleanly on SIGTERM.

The private Redis runs with ``appendfsync always``: Redis replies to a write only once the append-only file is synced
to disk, so whatever it acknowledged survives however it stops, and the test can demand that nothing acknowledged is
lost without depending on timing. ``docker-compose.yml`` uses ``everysec`` (one sync a second, far cheaper under load):
a restart by SIGTERM loses nothing there either (Redis writes and syncs the file as it shuts down), but a crash of the
machine may lose about the last second of acknowledged writes; a deployment that cannot accept that sets ``always``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.core.bus import Subscription
from server.core.bus.redis import RedisBus
from server.core.events import (
    BusEvent,
    CaptionFinal,
    FacilitatorControl,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantMediaState,
    StageChanged,
)
from server.storage import Storage
from tests.private_redis import RedisProcess, started_redis
from tests.servers import drain

CAPTION_EVERY_S = 0.05
OUTAGE_S = 2.0  # how long Redis stays down (from its exit to the new start), the fault being tested
WORKERS = ("recorder", "facilitator")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = started_redis(tmp_path)
    yield server
    server.kill()


class Worker:
    def __init__(self, role: str, proc: subprocess.Popen[str], health_port: int, output: list[str]) -> None:
        self.role, self.proc, self.health_port, self.output = role, proc, health_port, output

    def health(self) -> dict[str, object]:
        """The worker's health report (``ok`` false: it answered 503)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=10) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as unhealthy:
            return dict(json.load(unhealthy))


def start_worker(role: str, redis_url: str, database_url: str, data_dir: Path) -> Worker:
    env = {**os.environ, "MOOT_DATA_DIR": str(data_dir), "MOOT_DATABASE_URL": database_url,
           "MOOT_LLM_BACKEND": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "server", "worker", role, "--redis-url", redis_url,
                             "--health-port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:  # it says when it listens and where its health checks are
        seen.append(line)
        found = re.search(r"listening on the redis bus, health on port (\d+)", line)
        if found:
            return Worker(role, proc, int(found.group(1)), drain(proc))
    pytest.fail(f"the {role} worker exited ({proc.wait()}) before listening:\n{''.join(seen)}")


class Watcher:
    """Reads a fan-out subscription into a list, so the test can wait for what it expects while keeping all."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.events: list[BusEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read(), name="test-watcher")

    async def _read(self) -> None:
        async for event in self.sub:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_for(self, found: Callable[[BusEvent], bool], timeout: float = 30.0) -> BusEvent:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: any(found(e) for e in self.events)), timeout)
            return next(e for e in self.events if found(e))

    async def close(self) -> None:
        await self.sub.close()
        await self._task


class Publisher:
    """A server node's caption stream: one final caption every ``CAPTION_EVERY_S``, each published once (the bus
    rides out a short outage itself); ``acknowledged`` are the captions whose publish returned."""

    def __init__(self, bus: RedisBus, room_id: str) -> None:
        self.bus, self.room_id = bus, room_id
        self.acknowledged: list[CaptionFinal] = []
        self.failed: list[tuple[CaptionFinal, BaseException]] = []
        self.longest_publish_s = 0.0
        self.started_during_outage = asyncio.Event()
        self.outage = False
        self._stop = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name="test-publisher")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while not self._stop.is_set():
            caption = CaptionFinal(room_id=self.room_id, utterance_id=f"{self.room_id}-u{n:05d}",
                                   participant_id="p-ada", speaker_name="Ada", text=f"line {n}", start=float(n),
                                   end=n + 0.5)
            n += 1
            if self.outage:
                self.started_during_outage.set()
            began = loop.time()
            try:
                await self.bus.publish(caption)
            except Exception as exc:  # not acknowledged: it may or may not have been stored
                self.failed.append((caption, exc))
            else:
                self.acknowledged.append(caption)
            self.longest_publish_s = max(self.longest_publish_s, loop.time() - began)
            async with self._progress:
                self._progress.notify_all()
            with contextlib.suppress(TimeoutError):  # the speaking rate, not a synchronisation
                await asyncio.wait_for(self._stop.wait(), CAPTION_EVERY_S)

    async def wait_acknowledged(self, count: int, timeout: float = 60.0) -> None:
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: len(self.acknowledged) >= count), timeout)

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Another process does it (the database, a worker): check under a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.1)


async def test_redis_restart_mid_room_loses_nothing_and_stores_nothing_twice(
        private_redis: RedisProcess, tmp_path: Path) -> None:
    database_url = os.environ.get("MOOT_TEST_POSTGRES_URL") or f"sqlite:///{tmp_path / 'moot.db'}"
    storage = Storage(database_url)
    storage.create_schema()
    room = storage.create_room("Restarted", 8)
    storage.set_room_plan(room.id, "quick-20", "Should the library open on Sundays?")
    node = RedisBus(private_redis.url, source="test-node")  # publishes the room's captions
    viewer = RedisBus(private_redis.url, source="test-viewer")  # another node, relaying the room to a browser
    workers: list[Worker] = []
    watcher: Watcher | None = None
    publisher: Publisher | None = None
    try:
        for role in WORKERS:
            workers.append(start_worker(role, private_redis.url, database_url, tmp_path))
        await node.start()
        await viewer.start()
        watcher = Watcher(await viewer.subscribe(f"room:{room.id}", maxsize=100_000))
        for worker in workers:
            report = worker.health()
            assert report["ok"] and report["role"] == worker.role, report
        await node.publish(ParticipantJoined(room_id=room.id, participant=ParticipantInfo(participant_id="p-ada",
                                                                                         name="Ada")))
        stage = await watcher.wait_for(lambda e: isinstance(e, StageChanged))  # the facilitator runs the room
        assert isinstance(stage, StageChanged) and not stage.paused

        publisher = Publisher(node, room.id)
        await publisher.wait_acknowledged(20)

        # The fault: Redis stops (SIGTERM) mid-stream, stays down while a publish is waiting, and starts again.
        loop = asyncio.get_running_loop()
        before_outage = len(publisher.acknowledged)
        went_down = loop.time()
        publisher.outage = True
        await asyncio.to_thread(private_redis.stop)
        await asyncio.wait_for(publisher.started_during_outage.wait(), 10)
        await asyncio.sleep(max(0.0, went_down + OUTAGE_S - loop.time()))  # the length of the outage
        await asyncio.to_thread(private_redis.start)
        publisher.outage = False
        outage_s = loop.time() - went_down
        await publisher.wait_acknowledged(len(publisher.acknowledged) + 40)
        await publisher.stop()
        assert not publisher.failed, f"{len(publisher.failed)} publishes failed: {publisher.failed[:3]}"
        assert publisher.longest_publish_s > OUTAGE_S / 2, "a publish waited for Redis to come back"

        # The facilitator still facilitates: a pause after the restart is answered with a paused stage.
        control = await node.publish(FacilitatorControl(room_id=room.id, action="pause"))
        paused = await watcher.wait_for(lambda e: isinstance(e, StageChanged) and e.paused and e.seq > control.seq)
        assert isinstance(paused, StageChanged) and paused.stage_id == stage.stage_id

        # Every acknowledged caption is stored, once (the recorder counts only what it newly stored).
        published = [c.utterance_id for c in publisher.acknowledged]
        await until(lambda: len(storage.transcript(room.id)) >= len(published),
                    f"the recorder did not store every caption ({len(published)} published)")
        stored = [c.utterance_id for c in storage.transcript(room.id)]
        assert stored == published, (len(stored), len(published))
        recorder = next(w for w in workers if w.role == "recorder")
        assert recorder.health()["components"]["recorder"]["stored"] == len(published)  # type: ignore[index]

        # The watcher got the room's every event once, in seq order with no gap (a marker closes the record).
        marker = await node.publish(ParticipantMediaState(room_id=room.id, participant_id="marker", audio=False,
                                                          video=False))
        await watcher.wait_for(lambda e: e.event_id == marker.event_id)
        seen = [e for e in watcher.events if e.seq <= marker.seq]
        assert [e.seq for e in seen] == list(range(1, marker.seq + 1))
        assert [e.utterance_id for e in seen if isinstance(e, CaptionFinal)] == published
        assert watcher.sub.dropped == 0

        for worker in workers:
            report = worker.health()
            assert report["ok"], report
        print(f"outage {outage_s:.2f} s; {len(published)} captions published ({before_outage} before it), "
              f"{len(stored)} stored; longest publish {publisher.longest_publish_s:.2f} s")
    except BaseException:
        for worker in workers:  # what the workers said, to explain the failure
            print(f"--- {worker.role} worker ---\n{''.join(worker.output)}")
            if worker.proc.poll() is None:
                print(f"health: {worker.health()}")
        raise
    finally:
        if publisher is not None:
            await publisher.stop()
        if watcher is not None:
            await watcher.close()
        await node.close()
        await viewer.close()
        storage.close()
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:  # they stop cleanly
        assert worker.proc.wait(timeout=30) == 0, "".join(worker.output)
        assert "Traceback" not in "".join(worker.output), "".join(worker.output)
