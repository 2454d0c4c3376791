"""Streaming voice-activity detection with the Silero VAD v6 model that ships with faster-whisper.

``StreamingVad`` takes audio in any chunk sizes and returns one speech probability per 32 ms window (512 samples at
16 kHz, with the model's 64 samples of context), carrying the model's recurrent state between calls; every speaker has
its own state and all share one ONNX session (single-threaded). One window costs about 0.15 ms of CPU (about 0.5% of a
core per speaker in real time), so it runs inline on the event loop; the caller yields between chunks when catching up
on a backlog. ``Segmenter`` turns probabilities into speech start/end decisions with hysteresis: speech starts when a
window reaches ``start_threshold`` and ends after ``min_silence_s`` of windows below ``end_threshold``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

WINDOW = 512
CONTEXT = 64
WINDOW_S = WINDOW / 16_000

_session: Any = None
_session_lock = threading.Lock()


def _load_session() -> Any:
    """One ONNX session per process (thread-safe for concurrent ``run`` calls)."""
    global _session
    with _session_lock:
        if _session is None:
            import os

            try:
                import onnxruntime
                from faster_whisper.utils import get_assets_path
            except ImportError as exc:
                from server.asr.backends import AsrUnavailable

                raise AsrUnavailable("voice-activity detection needs faster-whisper and onnxruntime: "
                                     "pip install 'faster-whisper==1.2.1' (or run with --asr-backend none)") from exc
            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            options.log_severity_level = 4
            _session = onnxruntime.InferenceSession(
                os.path.join(get_assets_path(), "silero_vad_v6.onnx"), providers=["CPUExecutionProvider"],
                sess_options=options,
            )
        return _session


class StreamingVad:
    def __init__(self) -> None:
        self._session = _load_session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def __call__(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Speech probabilities for every complete window now available."""
        self._pending = np.concatenate([self._pending, audio]) if self._pending.size else audio
        n = self._pending.size // WINDOW
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        windows = self._pending[: n * WINDOW].reshape(n, WINDOW)
        self._pending = self._pending[n * WINDOW :].copy()
        probs = np.empty(n, dtype=np.float32)
        for i in range(n):
            window = np.concatenate([self._context, windows[i]])[None, :]
            out, self._h, self._c = self._session.run(None, {"input": window, "h": self._h, "c": self._c})
            probs[i] = float(np.asarray(out).reshape(-1)[0])
            self._context = windows[i, -CONTEXT:]
        return probs


@dataclass
class VadDecision:
    speech_started: bool = False
    silence_started: bool = False  # speech may be over (confirmed by speech_ended after min_silence_s)
    speech_resumed: bool = False  # the silence was a pause: the utterance goes on
    speech_ended: bool = False


class Segmenter:
    """Hysteresis over window probabilities. Feed one probability per window, in order."""

    def __init__(self, min_silence_s: float, start_threshold: float = 0.5, end_threshold: float = 0.35) -> None:
        self.start_threshold = start_threshold
        self.end_threshold = end_threshold
        self.min_silence_windows = max(1, round(min_silence_s / WINDOW_S))
        self.speaking = False
        self._silent_windows = 0

    def feed(self, probability: float) -> VadDecision:
        decision = VadDecision()
        if not self.speaking:
            if probability >= self.start_threshold:
                self.speaking = True
                self._silent_windows = 0
                decision.speech_started = True
            return decision
        if probability < self.end_threshold:
            self._silent_windows += 1
            if self._silent_windows == 1:
                decision.silence_started = True
            if self._silent_windows >= self.min_silence_windows:
                self.speaking = False
                self._silent_windows = 0
                decision.speech_ended = True
        elif probability >= self.start_threshold or self._silent_windows == 0:
            if self._silent_windows:
                decision.speech_resumed = True
            self._silent_windows = 0
        return decision
