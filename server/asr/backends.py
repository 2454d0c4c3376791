"""Speech-recognition backends behind one small interface: faster-whisper, and a scripted fake for tests.

A backend transcribes one mono 16 kHz float32 buffer (an utterance so far) into words with times relative to the start
of the buffer. Calls block (they run in worker threads); the Whisper model is loaded once per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from server.asr.base import SAMPLE_RATE
from server.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Word:
    text: str  # as produced, with its leading space if any
    start: float  # seconds from the start of the buffer
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Transcription:
    words: list[Word] = field(default_factory=list)
    language: str | None = None
    language_probability: float = 0.0

    @property
    def text(self) -> str:
        return "".join(w.text for w in self.words).strip()


class AsrBackend(Protocol):
    name: str

    def load(self) -> None:
        """Load the model (blocking; call from a thread)."""

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription: ...


class AsrUnavailable(RuntimeError):
    """The configured speech backend cannot run here; the message says what to install or change."""


class WhisperBackend:
    """faster-whisper with word timestamps; segments that look like non-speech are dropped."""

    name = "whisper"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: Any = None
        self._lock = threading.Lock()
        self.model_path: str | None = None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:  # pragma: no cover - faster-whisper is a dependency
                raise AsrUnavailable("live captions need faster-whisper: pip install 'faster-whisper==1.2.1'") from exc
            from models.whisper import resolve_whisper_model

            s = self._settings
            path = resolve_whisper_model(s.asr_model, s.resolved_model_cache_dir())
            self.model_path = str(path)
            self._model = WhisperModel(
                str(path), device=s.asr_device, compute_type=s.asr_compute_type, cpu_threads=s.asr_cpu_threads
            )
            logger.info("Whisper model %s loaded (%s, %s)", s.asr_model, s.asr_device, s.asr_compute_type)

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        if self._model is None:
            self.load()
        s = self._settings
        segments, info = self._model.transcribe(
            audio,
            language=language or s.asr_language,
            beam_size=s.asr_beam_size,
            word_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            temperature=0.0,
            without_timestamps=False,
        )
        words: list[Word] = []
        for segment in segments:  # the generator does the work: iterated here, in the worker thread
            if segment.no_speech_prob > 0.6 and segment.avg_logprob < -0.8:
                continue  # Whisper's "thank you" on noise
            for w in segment.words or []:
                words.append(Word(w.word, float(w.start), float(w.end), float(w.probability)))
        return Transcription(words=words, language=info.language, language_probability=info.language_probability)


class ScriptedBackend:
    """A fake for tests: the script gives the words of the speech with their times (seconds from the start of the
    audio stream); a call returns the words that have ended within the buffer, as Whisper would, optionally with the
    last word garbled to exercise the commit policy."""

    name = "fake"

    def __init__(self, script: Sequence[tuple[str, float, float]] = (), language: str = "en",
                 garble_last: bool = False) -> None:
        self.script = list(script)
        self.language = language
        self.garble_last = garble_last
        self.calls: list[float] = []  # buffer durations seen
        self.offset = 0.0  # stream time of the current buffer's first sample (set by the caller in tests)

    def load(self) -> None:
        return None

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        duration = audio.size / SAMPLE_RATE
        self.calls.append(duration)
        if float(np.abs(audio).max(initial=0.0)) < 1e-4:
            return Transcription([], self.language)
        words = [Word(" " + text, start - self.offset, end - self.offset)
                 for text, start, end in self.script
                 if start >= self.offset - 0.05 and end - self.offset <= duration + 0.05]
        if self.garble_last and words:
            last = words[-1]
            words[-1] = Word(last.text + "s", last.start, last.end)
        return Transcription(words, self.language, 1.0)


def create_backend(settings: Settings) -> AsrBackend:
    if settings.asr_backend == "whisper":
        return WhisperBackend(settings)
    if settings.asr_backend == "fake":
        return ScriptedBackend()
    raise AsrUnavailable(f"no speech backend for asr_backend={settings.asr_backend!r}")
