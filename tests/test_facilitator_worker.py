"""``moot facilitator`` as its own process: it serves rooms over a real Redis bus and the shared database, exactly as
inside ``moot serve``, obeys pause over the bus, stops cleanly, and says plainly when Redis is unreachable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core.bus import Subscription
from server.core.bus.redis import RedisBus
from server.core.directory import ROOM_FACILITATOR, ROOM_NODE
from server.core.events import AIMessage, FacilitatorControl, ParticipantInfo, ParticipantJoined, StageChanged
from server.core.leases import RedisLeases
from server.storage import Storage
from tests.markers import collect
from tests.servers import drain

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def start_facilitator_process(tmp_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "MOOT_DATA_DIR": str(tmp_path), "MOOT_LLM_BACKEND": "none", **(extra_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "server", "worker", "facilitator", "--redis-url", REDIS_URL],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the worker to say it listens, rather than sleeping
        if "listening on the redis bus" in line:
            drain(proc)
            return proc
    pytest.fail(f"the worker exited ({proc.wait()}) before listening")


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = start_facilitator_process(tmp_path)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


async def next_of(sub: Subscription, kind: type, timeout: float = 20.0) -> object:
    while True:
        event = await sub.get(timeout=timeout)
        if isinstance(event, kind):
            return event


async def test_worker_process_facilitates_rooms_over_redis(worker: subprocess.Popen[str], tmp_path: Path) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'moot.db'}")  # the database the server nodes share with the worker
    storage.create_schema()
    room = storage.create_room("Library hours", 8)
    storage.set_room_plan(room.id, "quick-20", "Should the library open on Sundays?")
    plain = storage.create_room("No facilitator", 8)
    bus = RedisBus(REDIS_URL)  # stands in for a server node
    await bus.start()
    sub = await bus.subscribe(f"room:{room.id}")
    plain_sub = await bus.subscribe(f"room:{plain.id}")
    try:
        for room_id in (room.id, plain.id):
            await bus.publish(ParticipantJoined(room_id=room_id, participant=ParticipantInfo(
                participant_id=f"p{uuid.uuid4().hex[:6]}", name="Ada")))
        stage = await next_of(sub, StageChanged)
        assert isinstance(stage, StageChanged) and stage.template_id == "quick-20" and stage.stage_id == "welcome"
        intro = await next_of(sub, AIMessage)
        assert isinstance(intro, AIMessage) and intro.kind == "stage_intro" and intro.ai_generated
        assert not stage.paused
        # Pause over the bus: the worker stops the stage clock and says so; the time paused is added to the stage.
        await bus.publish(FacilitatorControl(room_id=room.id, action="pause"))
        paused = await next_of(sub, StageChanged)
        assert isinstance(paused, StageChanged) and paused.paused and paused.ends_at == stage.ends_at
        await asyncio.sleep(1.5)  # the length of the pause being measured, not a wait for something to happen
        await bus.publish(FacilitatorControl(room_id=room.id, action="resume"))
        resumed = await next_of(sub, StageChanged)
        assert isinstance(resumed, StageChanged) and not resumed.paused and resumed.stage_id == "welcome"
        assert resumed.ends_at - stage.ends_at >= 1.5, "the paused time does not count against the stage"
        # A room without a deliberation gets no facilitator: nothing came for it before a marker sent after the rest.
        assert not [e for e in await collect(bus, plain_sub, plain.id) if isinstance(e, AIMessage | StageChanged)]
    finally:
        await bus.close()
        storage.close()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0


def test_worker_without_redis_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "MOOT_DATA_DIR": str(tmp_path), "MOOT_LLM_BACKEND": "none"}
    result = subprocess.run([sys.executable, "-m", "server", "facilitator", "--redis-url", "redis://127.0.0.1:1/0"],
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


async def test_a_killed_facilitator_worker_is_replaced_and_the_stage_goes_on(tmp_path: Path) -> None:
    """Real processes: worker A facilitates a room, is killed (SIGKILL) mid-stage, worker B takes the room over when
    A's lease expires and continues the same stage with the same clock, saying nothing twice."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    storage = Storage(f"sqlite:///{tmp_path / 'moot.db'}")
    storage.create_schema()
    room = storage.create_room("Takeover", 8)
    storage.set_room_plan(room.id, "quick-20", "Should the library open on Sundays?")
    leases = RedisLeases(REDIS_URL, prefix=prefix)
    await leases.start()
    assert await leases.acquire(ROOM_NODE, room.id, "test-node", ttl_s=600)  # the test stands in for the node
    bus = RedisBus(REDIS_URL, prefix=prefix)
    await bus.start()
    sub = await bus.subscribe(f"room:{room.id}")
    env = {"MOOT_REDIS_PREFIX": prefix, "MOOT_FACILITATOR_LEASE_TTL_S": "1"}
    first = start_facilitator_process(tmp_path, env)
    second = None
    try:
        for name in ("Ada", "Bo"):
            await bus.publish(ParticipantJoined(room_id=room.id, participant=ParticipantInfo(
                participant_id=f"p-{name}", name=name)))
        stage = await next_of(sub, StageChanged)
        assert isinstance(stage, StageChanged) and stage.stage_id == "welcome"
        assert str(first.pid) in stage.source, "worker A posts it"
        await next_of(sub, AIMessage)  # the welcome

        first.kill()
        first.wait(timeout=10)
        second = start_facilitator_process(tmp_path, env)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:  # B's scan claims the room once A's lease has expired (about a second)
            holder = await leases.get(ROOM_FACILITATOR, room.id)
            if holder is not None and str(second.pid) in holder.holder:
                break
            assert loop.time() < deadline, "worker B never took the room over"
            await asyncio.sleep(0.1)
        await bus.publish(FacilitatorControl(room_id=room.id, action="pause"))
        paused = await next_of(sub, StageChanged)
        while not (isinstance(paused, StageChanged) and paused.paused):  # (a join re-announces the stage too)
            paused = await next_of(sub, StageChanged)
        assert isinstance(paused, StageChanged) and str(second.pid) in paused.source, "worker B answers"
        assert (paused.stage_id, paused.started_at, paused.ends_at) == ("welcome", stage.started_at, stage.ends_at)
        said = [e for e in await collect(bus, sub, room.id) if isinstance(e, AIMessage)]
        assert not [m for m in said if m.kind in ("stage_intro", "greeting")], "nothing said twice"
    finally:
        await bus.close()
        await leases.close()
        storage.close()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
