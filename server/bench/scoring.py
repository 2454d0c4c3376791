"""Scoring shared by the speech benchmarks: reading recordings, percentiles, and the word error rate with Whisper's
English normaliser (``server/bench/wer.py``)."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.bench.wer import normalise_text, word_error_rate
from server.core.speech import SAMPLE_RATE

__all__ = ["normalise_text", "percentile", "read_wav_16k", "word_error_rate"]


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


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
