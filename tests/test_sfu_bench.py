"""``moot bench sfu`` end to end, briefly: the real server in a child process, two synthetic participants."""

from __future__ import annotations

import pytest

from server.bench.sfu import measure_sfu, worst_window_rate


@pytest.mark.parametrize("captions", [None, "fake"])
async def test_sfu_bench_smoke(captions: str | None) -> None:
    result = await measure_sfu(participants=2, seconds=2.0, warmup=0.5, frames=20, captions=captions)
    assert result["participants"] == 2 and result["streams"] == 2 and result["audio_streams"] == 2
    assert result["captions"] == (captions or "off")
    for key in ("fps_min", "fps_min_run_average", "fps_mean", "latency_p50_ms", "latency_p95_ms",
                "server_cpu_percent", "server_rss_mb"):
        assert isinstance(result[key], int | float), key
    # Media flowed on every stream while it measured, and the numbers are there. How many frames per second and how
    # little latency depend on the machine (and on what else it runs): the benchmark reports them, the test does not
    # judge them.
    assert result["fps_min_run_average"] > 0 and result["audio_packets_per_s_min"] > 0
    assert result["latency_samples"] > 0 and result["latency_p50_ms"] > 0
    assert result["server_rss_mb"] > 10


def test_worst_window_of_a_steady_stream_is_its_rate() -> None:
    arrivals = [i / 30 for i in range(300)]  # 30 fps for 10 s
    assert worst_window_rate(arrivals, 0.0, 10.0) == pytest.approx(30, abs=1)


def test_one_second_stall_shows_in_the_worst_window_not_in_the_average() -> None:
    # 30 fps for 20 s, except that nothing arrives for one second that straddles two aligned windows (9.5 .. 10.5).
    arrivals = [i / 30 for i in range(600) if not 9.5 <= i / 30 < 10.5]
    average = len(arrivals) / 20
    assert average > 28
    assert worst_window_rate(arrivals, 0.0, 20.0) == 0


def test_half_stall_counts_what_remains_of_the_window() -> None:
    arrivals = [i / 8 for i in range(80) if not 4.0 <= i / 8 < 4.5]  # 8 fps (exact in binary), 0.5 s gap
    assert worst_window_rate(arrivals, 0.0, 10.0) == 4


def test_only_arrivals_inside_the_interval_count() -> None:
    arrivals = [float(t) for t in range(-5, 0)] + [0.5 + t for t in range(5)] + [20.0, 21.0]
    assert worst_window_rate(arrivals, 0.0, 5.0) == 1


def test_stream_that_delivered_nothing_scores_zero() -> None:
    assert worst_window_rate([], 0.0, 5.0) == 0


def test_stall_at_the_end_of_the_run_counts() -> None:
    arrivals = [i / 30 for i in range(30 * 9)]  # stops at 9 s of a 10 s run
    assert worst_window_rate(arrivals, 0.0, 10.0) == 0


def test_interval_shorter_than_a_window_gives_the_average() -> None:
    assert worst_window_rate([0.1, 0.2, 0.3], 0.0, 0.5) == pytest.approx(6)
    with pytest.raises(ValueError):
        worst_window_rate([], 1.0, 1.0)
