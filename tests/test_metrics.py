"""Operators' metrics: the speech decode queue reports its depth, waits, decode times, batch sizes and drops in the
Prometheus text format, served at /metrics by the web app (and by workers on their health port)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from server.app import create_app
from server.asr.scheduler import FINAL, PARTIAL, DecodeScheduler
from server.core.settings import Settings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_decode_queue_reports_what_it_does() -> None:
    finals_before = sample("moot_asr_decode_seconds_count", kind="final")
    partials_before = sample("moot_asr_decode_seconds_count", kind="partial")
    dropped_before = sample("moot_asr_partials_dropped_total")
    gate = threading.Event()
    scheduler = DecodeScheduler(name="metrics-test", max_partials=2)
    try:
        blocker = scheduler.submit(FINAL, gate.wait, room="a")  # holds the worker while the queue fills
        partials = [scheduler.submit(PARTIAL, lambda: "p", room="a") for _ in range(4)]  # two too many: dropped
        final = scheduler.submit(FINAL, lambda: "f", room="b")
        assert sample("moot_asr_queue_depth", kind="partial") == 2 and sample("moot_asr_queue_depth", kind="final") >= 1
        gate.set()
        await asyncio.gather(blocker, final, *partials, return_exceptions=True)
        await scheduler.idle()
    finally:
        await asyncio.to_thread(scheduler.close)
    assert sample("moot_asr_decode_seconds_count", kind="final") - finals_before == 2
    assert sample("moot_asr_decode_seconds_count", kind="partial") - partials_before == 2
    assert sample("moot_asr_partials_dropped_total") - dropped_before == 2
    assert sample("moot_asr_queue_depth", kind="partial") == 0


def test_the_app_serves_metrics(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, asr_backend="none", facilitator_enabled=False)
    with TestClient(create_app(settings)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in ("moot_asr_queue_depth", "moot_asr_decode_seconds", "moot_asr_final_latency_seconds",
                 "moot_asr_partials_dropped_total", "moot_asr_batch_size"):
        assert f"# TYPE {name}" in text
