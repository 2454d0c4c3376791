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

from server.bus import Subscription
from server.bus.redis import RedisBus
from server.events import AIMessage, FacilitatorControl, ParticipantInfo, ParticipantJoined, StageChanged
from server.storage import Storage
from tests.markers import collect

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "MOOT_DATA_DIR": str(tmp_path), "MOOT_LLM_BACKEND": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "server", "facilitator", "--redis-url", REDIS_URL],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the worker to say it listens, rather than sleeping
        if "listening on the redis bus" in line:
            break
    else:
        pytest.fail(f"the worker exited ({proc.wait()}) before listening")
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
    storage.set_deliberation(room.id, "quick-20", "Should the library open on Sundays?")
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
