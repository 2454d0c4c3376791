"""``moot bench asr --streams N``: the measurements' pure parts, and a short run of the whole harness with the
placeholder speech backend (no model) to show every speaker's captions come back, attributed to the right speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from server.bench.asr_load import Recording, finals_lost, pooled_wer, run_local, run_remote, start_delays
from server.bench.scoring import percentile, read_wav_16k
from server.core.settings import Settings
from tests.private_redis import started_redis

DATA = Path(__file__).parent / "data"


def test_start_delays_are_spread_and_distinct() -> None:
    delays = start_delays(8, spread_s=5.0)
    assert delays[0] == 0.0 and len(set(delays)) == 8
    assert all(0.0 <= d < 5.0 for d in delays)
    gaps = np.diff(sorted(delays))
    assert gaps.min() > 5.0 / 8 / 3  # no two speakers start (nearly) together
    assert start_delays(1) == [0.0]


def test_percentile_interpolates_and_handles_empty() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


def test_finals_lost_counts_utterances_with_a_partial_and_no_final() -> None:
    partials = {("r1", "u1"), ("r1", "u2"), ("r2", "u1")}
    finals = {("r1", "u1"), ("r2", "u1"), ("r2", "u9")}  # a final without a partial is fine
    assert finals_lost(partials, finals) == 1


def test_pooled_wer_weights_speakers_by_their_words() -> None:
    pairs = [("open the library on sundays", "open the library on sundays"), ("more homes", "more")]
    assert pooled_wer(pairs) == pytest.approx(1 / 7)  # one error in seven reference words, not the mean of 0 and 0.5
    assert pooled_wer([("", "")]) == 0.0


async def test_streams_run_through_the_local_caption_service_and_lose_no_final() -> None:
    # Real speech (espeak, and a recorded voice) through the real voice-activity detector; the placeholder backend
    # turns each 0.4 s of sound into a numbered word, so no model is needed.
    recordings = [Recording(read_wav_16k(DATA / "hello16.wav"), "hello everyone"),
                  Recording(read_wav_16k(DATA / "arctic_a0007.wav"), (DATA / "arctic_a0007.txt").read_text())]
    settings = Settings(asr_backend="fake", asr_language="en")
    result = await run_local(recordings, 3, settings)
    assert result["streams"] == 3 and result["placement"] == "local"
    assert result["finals_lost"] == 0
    assert result["finals"] >= 3  # every speaker's speech came back as final captions
    assert result["workers"][0]["decodes"] > 0
    assert result["audio_seconds_per_second"] is not None and result["audio_seconds_per_second"] > 0
    for key in ("final_latency_p50_s", "final_latency_p95_s", "wer", "offline_wer", "partials_dropped"):
        assert key in result


async def test_streams_run_through_speech_worker_processes_on_redis(tmp_path: Path) -> None:
    # The remote placement: two real ``moot worker speech`` processes on a private redis-server, this process as the
    # server node sending Opus packets (the placeholder backend again, so no model is loaded).
    recordings = [Recording(read_wav_16k(DATA / "hello16.wav"), "hello everyone"),
                  Recording(read_wav_16k(DATA / "arctic_a0007.wav"), (DATA / "arctic_a0007.txt").read_text())]
    redis = started_redis(tmp_path)
    try:
        settings = Settings(asr_backend="fake", asr_language="en", bus="redis", speech_placement="remote",
                            redis_url=SecretStr(redis.url), data_dir=tmp_path, speech_lease_ttl_s=2.0)
        result = await run_remote(recordings, 4, settings, workers=2)
    finally:
        redis.kill()
    assert result["streams"] == 4 and result["placement"] == "remote"
    assert result["finals_lost"] == 0
    assert result["finals"] >= 4
    assert len(result["workers"]) == 2 and len({w["worker"] for w in result["workers"]}) == 2
    assert sum(w["decodes"] for w in result["workers"]) > 0, "the workers did the decoding"
    assert result["final_latency_p50_s"] is not None
