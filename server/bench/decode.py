"""``moot bench decode``: how fast the speech worker decodes utterances one at a time and in batches.

The WAV is cut into utterances at its pauses (``split_utterances``). For each mode the same utterances are decoded
(cycling through them until ``--decodes`` are done), and the modes take turns ``--rounds`` times: ``single`` is
``WhisperBackend.transcribe`` (faster-whisper's own ``transcribe``, what the worker ran before it batched), ``N`` is
``transcribe_batch`` with N utterances per call (the worker's path, ``asr_max_batch`` N). Reported per mode:
throughput (seconds of audio decoded per second), wall and CPU seconds per decode (CPU time is the steadier figure on a
shared machine), the latency of one call (every decode in a batch waits for the whole batch), and how many decodes
gave the same words as ``single``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.bench import print_result
from server.bench.asr import _percentile, read_wav_16k
from server.core.speech import SAMPLE_RATE

WINDOW_S = 0.02


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "decode",
        help="speech decode throughput and latency, one at a time and batched",
        description="Decode the utterances of a WAV one at a time and in batches of N with the speech backend. "
        "Make a test file with scripts/make_speech_fixture.",
    )
    p.add_argument("--wav", type=Path, required=True, help="speech with pauses (WAV, 16-bit PCM, any rate)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4, 8], help="batch sizes to measure")
    p.add_argument("--decodes", type=int, default=8, help="decodes per mode and round (utterances are reused)")
    p.add_argument("--rounds", type=int, default=3, help="rounds: the modes take turns, once per round")
    p.add_argument("--no-single", action="store_true", help="skip the one-at-a-time faster-whisper baseline")
    p.add_argument("--model", default=None, help="ASR model (default: the server default, 'base')")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the server default, cpu)")
    p.add_argument("--compute-type", default=None, help="CTranslate2 compute type (default: int8; float16 on a GPU)")
    p.add_argument("--cpu-threads", type=int, default=None, help="CPU threads of the model (default: 2)")
    p.add_argument("--language", default=None, help="language hint (default: detect)")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory holding the model cache")
    p.add_argument("--json", action="store_true", help="one JSON object per mode")
    p.set_defaults(func=main)


def split_utterances(audio: npt.NDArray[np.float32], min_silence_s: float = 0.3, threshold: float = 0.01,
                     pad_s: float = 0.2) -> list[npt.NDArray[np.float32]]:
    """The stretches of ``audio`` between pauses of at least ``min_silence_s`` (20 ms windows whose RMS is below
    ``threshold``), each with ``pad_s`` of what surrounds it."""
    window = int(WINDOW_S * SAMPLE_RATE)
    frames = audio[: audio.size // window * window].reshape(-1, window)
    voiced = np.sqrt(np.mean(np.square(frames), axis=1)) > threshold
    quiet_needed = int(min_silence_s / WINDOW_S)
    spans: list[tuple[int, int]] = []
    start: int | None = None
    quiet = 0
    for i, v in enumerate(voiced):
        if v:
            start = i if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= quiet_needed:
                spans.append((start, i - quiet + 1))
                start = None
    if start is not None:
        spans.append((start, len(voiced)))
    pad = int(pad_s * SAMPLE_RATE)
    return [audio[max(0, a * window - pad) : b * window + pad] for a, b in spans]


def run_decode_bench(wav: Path, batch_sizes: list[int], decodes: int = 8, rounds: int = 3, single: bool = True,
                     overrides: dict[str, Any] | None = None, language: str | None = None) -> list[dict[str, Any]]:
    from server.asr.backends import DecodeRequest, WhisperBackend
    from server.core.settings import Settings

    settings = Settings(**{"asr_backend": "whisper", **(overrides or {})})
    backend = WhisperBackend(settings)
    backend.load()
    utterances = split_utterances(read_wav_16k(wav))
    if not utterances:
        raise SystemExit(f"{wav}: no speech found")
    requests = [DecodeRequest(u, language) for u in itertools.islice(itertools.cycle(utterances), decodes)]
    warm = DecodeRequest(utterances[0], language)
    backend.transcribe(warm.audio, language)  # the first decodes of a fresh model are slower
    backend.transcribe_batch([warm] * max(batch_sizes))
    reference = [[w.text for w in backend.transcribe(u, language).words] for u in utterances]
    expected = [reference[i % len(utterances)] for i in range(decodes)]
    common = {"model": settings.asr_model, "device": settings.asr_device, "compute_type": settings.asr_compute_type,
              "cpu_threads": settings.asr_cpu_threads, "utterances": len(utterances),
              "utterance_s_mean": round(float(np.mean([u.size for u in utterances])) / SAMPLE_RATE, 2)}
    modes: list[int | None] = ([None] if single else []) + list(batch_sizes)
    calls: dict[int | None, list[float]] = {m: [] for m in modes}
    wall: dict[int | None, float] = dict.fromkeys(modes, 0.0)
    cpu: dict[int | None, float] = dict.fromkeys(modes, 0.0)
    same: dict[int | None, int] = dict.fromkeys(modes, 0)
    for _ in range(rounds):  # modes take turns, so that a busy moment of a shared machine hits them all alike
        for size in modes:
            started, cpu_started = time.perf_counter(), time.process_time()
            words: list[list[str]] = []
            for i in range(0, decodes, size or 1):
                chunk = requests[i : i + (size or 1)]
                t0 = time.perf_counter()
                if size is None:
                    out = [backend.transcribe(r.audio, r.language) for r in chunk]
                else:
                    out = backend.transcribe_batch(chunk)
                calls[size].append(time.perf_counter() - t0)
                words.extend([w.text for w in t.words] for t in out)
            wall[size] += time.perf_counter() - started
            cpu[size] += time.process_time() - cpu_started
            same[size] += sum(a == b for a, b in zip(words, expected, strict=True))
    audio_s = rounds * sum(r.seconds for r in requests)
    return [{
        **common,
        "mode": "single" if size is None else f"batch {size}",
        "decodes": rounds * decodes,
        "audio_s": round(audio_s, 1),
        "wall_s": round(wall[size], 2),
        "throughput_audio_s_per_s": round(audio_s / wall[size], 2),
        "wall_s_per_decode": round(wall[size] / (rounds * decodes), 3),
        "cpu_s_per_decode": round(cpu[size] / (rounds * decodes), 3),
        "call_latency_p50_s": round(_percentile(calls[size], 0.5) or 0.0, 3),
        "call_latency_p95_s": round(_percentile(calls[size], 0.95) or 0.0, 3),
        "same_words_as_single": same[size],
    } for size in modes]


def main(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    for key, value in (("asr_model", args.model), ("asr_device", args.device),
                       ("asr_compute_type", args.compute_type), ("asr_cpu_threads", args.cpu_threads),
                       ("data_dir", args.data_dir)):
        if value is not None:
            overrides[key] = value
    for result in run_decode_bench(args.wav, args.batch, args.decodes, args.rounds, not args.no_single, overrides,
                                   args.language):
        print_result(result, args.json)
        if not args.json:
            print(flush=True)
    return 0
