"""``moot bench sfu`` end to end, briefly: the real server in a child process, two synthetic participants."""

from __future__ import annotations

from server.bench.sfu import measure_sfu


async def test_sfu_bench_smoke() -> None:
    result = await measure_sfu(participants=2, seconds=2.0, warmup=0.5, frames=20)
    assert result["participants"] == 2 and result["streams"] == 2 and result["audio_streams"] == 2
    for key in ("fps_min", "fps_mean", "latency_p50_ms", "latency_p95_ms", "server_cpu_percent", "server_rss_mb"):
        assert isinstance(result[key], int | float), key
    # Media flowed on every stream while it measured, and the numbers are there. How many frames per second and how
    # little latency depend on the machine (and on what else it runs): the benchmark reports them, the test does not
    # judge them.
    assert result["fps_min"] > 0 and result["audio_packets_per_s_min"] > 0
    assert result["latency_samples"] > 0 and result["latency_p50_ms"] > 0
    assert result["server_rss_mb"] > 10
