"""``moot bench asr``: live captions against offline transcription of the same file with the same model.

The WAV is played through exactly the live caption path (``WhisperCaptionService`` with an in-process bus) in 20 ms
chunks, in real time or ``--speed`` times faster. Reported: word error rate of the concatenated final captions (``wer``)
and of one offline transcription of the whole file (``offline_wer``), final-caption latency from the end of each
utterance's speech to its final caption, the interval between partial captions, and the real-time factor of the
decoding worker.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import time
import unicodedata
import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.asr.base import SAMPLE_RATE
from server.bench import print_result

CHUNK_S = 0.02


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "asr",
        help="live captions vs offline transcription: WER and latency",
        description="Play a WAV through the live caption path and compare with offline transcription. "
        "Make a test file with scripts/make_speech_fixture.",
    )
    p.add_argument("--wav", type=Path, required=True, help="speech recording (WAV, 16-bit PCM, any rate)")
    p.add_argument("--text", type=Path, required=True, help="reference transcript (plain text)")
    p.add_argument("--speed", type=float, default=1.0, help="play this many times faster than real time")
    p.add_argument("--model", default=None, help="ASR model (default: the server default, 'base')")
    p.add_argument("--language", default=None, help="language hint (default: detect)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory holding the model cache")
    p.add_argument("--json", action="store_true", help="print one JSON object (default: also human-readable)")
    p.set_defaults(func=main)


def normalise_text(text: str) -> list[str]:
    """Words for WER: case-folded, punctuation stripped (apostrophes too: "don't" = "dont")."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("'", "").replace("\u2019", "")
    return re.sub(r"[^\w\s]", " ", text).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER over normalised words: jiwer when installed (the test extras), else the same Levenshtein distance."""
    ref, hyp = normalise_text(reference), normalise_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    try:
        import jiwer
    except ImportError:
        pass
    else:
        return float(jiwer.wer(" ".join(ref), " ".join(hyp))) if hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)


def read_wav_16k(path: Path) -> npt.NDArray[np.float32]:
    """A 16-bit PCM WAV as mono float32 at 16 kHz (channels averaged, resampled with FFmpeg's resampler if needed)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only 16-bit PCM WAV is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    audio = raw.reshape(-1, channels).mean(axis=1).astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        import av

        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = [out.to_ndarray().reshape(-1) for f in (frame, None) for out in resampler.resample(f)]
        audio = np.concatenate(chunks).astype(np.float32)
    return audio


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def run_asr_bench(wav: Path, reference: str, speed: float = 1.0, model: str | None = None,
                        language: str | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    from server.asr.service import WhisperCaptionService
    from server.bus import InProcessBus
    from server.events import CaptionFinal, CaptionPartial
    from server.settings import Settings

    overrides: dict[str, Any] = {"asr_backend": "whisper", "asr_language": language}
    if model:
        overrides["asr_model"] = model
    if data_dir:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)
    audio = read_wav_16k(wav)
    audio = np.concatenate([audio, np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)])  # let the last one end
    bus = InProcessBus()
    service = WhisperCaptionService(settings, bus)
    await service.start()

    offline_started = time.perf_counter()
    offline = await asyncio.to_thread(service.backend.transcribe, audio, language)
    offline_s = time.perf_counter() - offline_started
    busy_before = service.scheduler.busy_s

    subscription = await bus.subscribe("room:*", maxsize=100_000)
    received: list[tuple[float, Any]] = []

    async def collect() -> None:
        async for event in subscription:
            received.append((time.time(), event))

    collector = asyncio.create_task(collect())
    speaker = service.open_speaker("bench", "speaker", "Speaker")
    chunk = int(CHUNK_S * SAMPLE_RATE)
    stream_t0 = time.time()
    wall_t0 = time.perf_counter()
    wall_epoch0 = time.time()
    for i, n in enumerate(range(0, audio.size, chunk)):
        due = wall_t0 + i * CHUNK_S / speed
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the simulated microphone
        speaker.push(audio[n : n + chunk], stream_t0 + n / SAMPLE_RATE)
    await speaker.aclose()
    await subscription.close()
    await collector
    decode_busy = service.scheduler.busy_s - busy_before
    await service.close()

    def pushed_at(stream_time: float) -> float:
        """Wall-clock time at which the sample of a given stream time was pushed."""
        return wall_epoch0 + (stream_time - stream_t0) / speed

    finals = [(t, e) for t, e in received if isinstance(e, CaptionFinal)]
    latencies = [t - pushed_at(e.end) for t, e in finals]
    partial_times: dict[str, list[float]] = {}
    for t, e in received:
        if isinstance(e, CaptionPartial):
            partial_times.setdefault(e.utterance_id, []).append(t)
    intervals = [b - a for times in partial_times.values() for a, b in itertools.pairwise(times)]
    live_text = " ".join(e.text for _, e in finals)
    duration = audio.size / SAMPLE_RATE
    return {
        "model": settings.asr_model,
        "audio_s": round(duration, 2),
        "speed": speed,
        "utterances": len(finals),
        "wer": round(word_error_rate(reference, live_text), 4),
        "offline_wer": round(word_error_rate(reference, offline.text), 4),
        "final_latency_p50_s": _round(_percentile(latencies, 0.5)),
        "final_latency_p95_s": _round(_percentile(latencies, 0.95)),
        "partial_interval_p50_s": _round(_percentile(intervals, 0.5)),
        "partials": sum(len(v) for v in partial_times.values()),
        "rtf": round(decode_busy / duration, 3),
        "final_latencies_s": [round(x, 2) for x in latencies],
        "offline_rtf": round(offline_s / duration, 3),
        "live_text": live_text,
        "offline_text": offline.text,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(args: argparse.Namespace) -> int:
    reference = args.text.read_text(encoding="utf-8")
    result = asyncio.run(run_asr_bench(args.wav, reference, args.speed, args.model, args.language, args.data_dir))
    print_result(result, args.json)
    return 0
