"""Worker processes from the one runtime: a real ``moot worker recorder`` process on the Redis bus answers health
checks, stores what the bus carries, and stops cleanly on SIGTERM; two of them store each caption once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core.bus.redis import RedisBus
from server.core.events import CaptionFinal
from server.storage import Storage
from tests.servers import drain

REDIS_URL = os.environ.get("MOOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def start_worker(role: str, tmp_path: Path, prefix: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    env = {**os.environ, "MOOT_DATA_DIR": str(tmp_path), "MOOT_LLM_BACKEND": "none", "MOOT_REDIS_PREFIX": prefix}
    proc = subprocess.Popen([sys.executable, "-m", "server", "worker", role, "--redis-url", REDIS_URL,
                             "--health-port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # it says when it listens and where its health checks are
        found = re.search(r"listening on the redis bus, health on port (\d+)", line)
        if found:
            return proc, int(found.group(1)), drain(proc)
    pytest.fail(f"the {role} worker exited ({proc.wait()}) before listening")


def health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        assert response.status == 200
        return dict(json.load(response))


def metrics(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return bytes(response.read())


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"test-{uuid.uuid4().hex[:8]}:"


async def test_recorder_workers_store_each_caption_once_and_stop_on_sigterm(tmp_path: Path, prefix: str) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'moot.db'}")  # the database the workers share
    storage.create_schema()
    room = storage.create_room("Recorded", 8)
    workers = [start_worker("recorder", tmp_path, prefix) for _ in range(2)]
    bus = RedisBus(REDIS_URL, prefix=prefix)  # stands in for a server node
    await bus.start()
    try:
        for _, port, _ in workers:
            report = health(port)
            assert report["ok"] and report["role"] == "recorder"
            assert b"# TYPE process_cpu_seconds" in metrics(port), "Prometheus text on the health port"
        for n in range(20):
            await bus.publish(CaptionFinal(room_id=room.id, utterance_id=f"u{n}", participant_id="p",
                                           speaker_name="Ada", text=f"line {n}", start=float(n), end=n + 0.5))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(storage.transcript(room.id)) < 20:  # another process writes: watch the database, under a deadline
            assert loop.time() < deadline, "the workers did not store every caption"
            await asyncio.sleep(0.1)
        assert [c.utterance_id for c in storage.transcript(room.id)] == [f"u{n}" for n in range(20)]
        stored = [health(port)["components"]["recorder"]["stored"] for _, port, _ in workers]  # type: ignore[index]
        assert sum(stored) == 20, stored  # each caption stored by one of them
    finally:
        await bus.close()
        storage.close()
    for proc, _, _ in workers:
        proc.send_signal(signal.SIGTERM)
    for proc, _, output in workers:
        assert proc.wait(timeout=20) == 0
        assert "Traceback" not in "".join(output)


def test_every_role_has_help() -> None:
    for args in (["serve"], ["server"], ["worker"], ["worker", "facilitator"], ["worker", "recorder"]):
        result = subprocess.run([sys.executable, "-m", "server", *args, "--help"], capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0 and "usage: moot" in result.stdout, args
