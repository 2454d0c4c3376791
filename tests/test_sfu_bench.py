"""``moot bench sfu`` end to end, briefly: the real server in a child process, two synthetic participants."""

from __future__ import annotations

from server.bench.sfu import measure_sfu


async def test_sfu_bench_smoke() -> None:
    result = await measure_sfu(participants=2, seconds=2.0, warmup=0.5, frames=20)
    assert result["participants"] == 2 and result["streams"] == 2 and result["audio_streams"] == 2
    for key in ("fps_min", "fps_mean", "latency_p50_ms", "latency_p95_ms", "server_cpu_percent", "server_rss_mb"):
        assert isinstance(result[key], int | float), key
    # Loose bounds: the machine running the tests may be busy; the benchmark itself reports the real numbers.
    assert result["fps_min"] > 10 and result["audio_packets_per_s_min"] > 20
    assert result["latency_samples"] > 0 and 0 < result["latency_p50_ms"] < 1000
    assert result["server_rss_mb"] > 10
