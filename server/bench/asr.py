"""``moot bench asr``: live captions against offline transcription of the same file with the same model.

The WAV is played through exactly the live caption path (``WhisperCaptionService`` with an in-process bus) in 20 ms
chunks, in real time or ``--speed`` times faster. Reported: word error rate of the concatenated final captions (``wer``)
and of one offline transcription of the whole file (``offline_wer``), both after Whisper's English text normaliser
(``server.bench.wer``); final-caption latency from the end of each utterance's speech to its final caption, the
interval between partial captions, and the real-time factor of the decoding worker.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from server.bench import print_result
from server.bench.scoring import percentile as _percentile
from server.bench.scoring import read_wav_16k, word_error_rate
from server.core.speech import SAMPLE_RATE

CHUNK_S = 0.02


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "asr",
        help="live captions vs offline transcription: WER and latency",
        description="Play a WAV through the live caption path and compare with offline transcription. "
        "Make a test file with scripts/make_speech_fixture.",
    )
    p.add_argument("--wav", type=Path, required=True, action="append",
                   help="speech recording (WAV, 16-bit PCM, any rate); repeat with --text for more speakers' files")
    p.add_argument("--text", type=Path, required=True, action="append", help="reference transcript (plain text)")
    p.add_argument("--streams", type=int, default=None,
                   help="N speakers at once, each in its own room, through the caption tier (see --placement)")
    p.add_argument("--placement", choices=("local", "remote"), default="local",
                   help="with --streams: the caption service in this process (local), or --workers speech worker "
                   "processes behind Redis, fed Opus packets as a server node feeds them (remote)")
    p.add_argument("--workers", type=int, default=1, help="with --placement remote: speech worker processes")
    p.add_argument("--redis-url", default=None, help="with --placement remote: default redis://127.0.0.1:6379/0")
    p.add_argument("--speed", type=float, default=1.0, help="play this many times faster than real time")
    p.add_argument("--model", default=None, help="ASR model (default: the server default, 'base')")
    p.add_argument("--language", default=None, help="language hint (default: detect)")
    p.add_argument("--prompt-chars", type=int, default=None,
                   help="prior-text prompt per speaker, in characters (default: the server default; 0: none)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory holding the model cache")
    p.add_argument("--json", action="store_true", help="print one JSON object (default: also human-readable)")
    p.set_defaults(func=main)


async def run_asr_bench(wav: Path, reference: str, speed: float = 1.0, model: str | None = None,
                        language: str | None = None, data_dir: Path | None = None,
                        prompt_chars: int | None = None) -> dict[str, Any]:
    from server.asr.service import WhisperCaptionService
    from server.core.bus import InProcessBus
    from server.core.events import CaptionFinal, CaptionPartial
    from server.core.settings import Settings

    overrides: dict[str, Any] = {"asr_backend": "whisper", "asr_language": language}
    if model:
        overrides["asr_model"] = model
    if data_dir:
        overrides["data_dir"] = data_dir
    if prompt_chars is not None:
        overrides["asr_prompt_chars"] = prompt_chars
    settings = Settings(**overrides)
    audio = read_wav_16k(wav)
    audio = np.concatenate([audio, np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)])  # let the last one end
    bus = InProcessBus()
    service = WhisperCaptionService(settings, bus)
    await service.start()

    offline_started = time.perf_counter()
    offline = await asyncio.to_thread(service.backend.transcribe, audio, language)
    offline_s = time.perf_counter() - offline_started
    busy_before, completed_before = service.scheduler.busy_s, service.scheduler.completed

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
    decodes = service.scheduler.completed - completed_before
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
        "prompt_chars": settings.asr_prompt_chars,
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
        "decodes": decodes,
        "decode_mean_s": round(decode_busy / decodes, 3) if decodes else None,
        "final_latencies_s": [round(x, 2) for x in latencies],
        "offline_rtf": round(offline_s / duration, 3),
        "live_text": live_text,
        "offline_text": offline.text,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main(args: argparse.Namespace) -> int:
    if len(args.wav) != len(args.text):
        raise SystemExit("give one --text per --wav")
    if args.streams is not None:
        from server.bench.asr_load import main_streams

        return main_streams(args)
    reference = args.text[0].read_text(encoding="utf-8")
    result = asyncio.run(run_asr_bench(args.wav[0], reference, args.speed, args.model, args.language,
                                       args.data_dir, args.prompt_chars))
    print_result(result, args.json)
    return 0
