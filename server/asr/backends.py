"""Speech-recognition backends behind one small interface: faster-whisper, and fakes for tests.

A backend transcribes one mono 16 kHz float32 buffer (an utterance so far) into words with times relative to the start
of the buffer. Calls block: they run in worker threads, never on the event loop (``WhisperBackend`` refuses to). The
Whisper model is loaded once per process and shared by every backend instance with the same settings.

Whisper invents text on audio that is not speech ("Thank you." on noise, "[Music]", repeated phrases). The voice
activity detector only lets speech through, and segments are also dropped when Whisper itself thinks they are not
speech (``no_speech_prob`` high and ``avg_logprob`` low), when they are repetition loops (``compression_ratio``), and
when they are sound annotations in brackets.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from server.core.errors import Unavailable
from server.core.settings import Settings
from server.core.speech import SAMPLE_RATE

logger = logging.getLogger(__name__)

NO_SPEECH_PROB = 0.6  # with AVG_LOGPROB: Whisper's own "this segment is silence" rule, a little stricter
AVG_LOGPROB = -0.8
VERY_UNSURE_LOGPROB = -1.2  # below this a segment is dropped whatever no_speech_prob says
MAX_COMPRESSION_RATIO = 2.4  # above: "the the the the ..." loops
_ANNOTATION = re.compile(r"^\s*[\[(♪*].*[\])♪*]\s*$|^[\s♪.,!?-]*$")


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


@dataclass(frozen=True, eq=False)
class DecodeRequest:
    """One decode: a mono 16 kHz buffer, its language (``None``: detect it) and text to prompt the decoder with (what
    was said just before, names; ``None``: no prompt)."""

    audio: npt.NDArray[np.float32]
    language: str | None = None
    prompt: str | None = None
    # Called in the decode worker just before the decode runs, to get the prompt then (it may wait briefly: the
    # speaker's previous final caption may still be on its way to the context); replaces ``prompt``.
    prompt_from: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    # The shortest input window for this decode, in seconds (``None``: the backend's setting, ``asr_min_window_s``).
    min_window_s: float | None = None

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE

    def resolved(self) -> DecodeRequest:
        """This request with its prompt read now (call in the worker thread)."""
        if self.prompt_from is None:
            return self
        return replace(self, prompt=self.prompt_from(), prompt_from=None)


class AsrBackend(Protocol):
    name: str

    def load(self) -> None:
        """Load the model (blocking; call from a thread)."""

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription: ...


class BatchingBackend(AsrBackend, Protocol):
    """A backend that decodes several buffers in one call (one model pass for the batch): much cheaper per decode
    than one call each on a GPU."""

    def transcribe_batch(self, requests: Sequence[DecodeRequest]) -> list[Transcription]:
        """One ``Transcription`` per request, in order; results match ``transcribe`` of each request closely."""
        ...


def batches(backend: AsrBackend) -> bool:
    """Whether ``backend`` can decode a batch in one call."""
    return callable(getattr(backend, "transcribe_batch", None))


class AsrUnavailable(Unavailable):
    """The configured speech backend cannot run here; the message says what to install or change."""


def _refuse_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("Whisper must not run on the event loop: call it from a worker thread")


_models: dict[tuple[str, str, str, int], Any] = {}
_models_lock = threading.Lock()


def _shared_model(path: str, device: str, compute_type: str, cpu_threads: int) -> Any:
    """One ``WhisperModel`` per process and configuration (loading base takes seconds and ~150 MB)."""
    key = (path, device, compute_type, cpu_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:  # pragma: no cover - faster-whisper is a dependency
                raise AsrUnavailable("live captions need faster-whisper: pip install 'faster-whisper==1.2.1' "
                                     "(or run with --asr-backend none)") from exc
            model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
            _models[key] = model
        return model


def keep_segment(text: str, no_speech_prob: float, avg_logprob: float, compression_ratio: float) -> bool:
    """Whether a decoded segment looks like real speech rather than Whisper's inventions on non-speech."""
    if no_speech_prob > NO_SPEECH_PROB and avg_logprob < AVG_LOGPROB:
        return False
    if avg_logprob < VERY_UNSURE_LOGPROB or compression_ratio > MAX_COMPRESSION_RATIO:
        return False
    return not _ANNOTATION.match(text)


class WhisperBackend:
    """faster-whisper with word timestamps; segments that look like non-speech are dropped."""

    name = "whisper"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._model: Any = None
        self.model_path: str | None = None

    def load(self) -> None:
        if self._model is not None:
            return
        from models.whisper import ModelNotAvailable, resolve_whisper_model

        s = self._settings
        try:
            path = resolve_whisper_model(s.asr_model, s.resolved_model_cache_dir())
        except ModelNotAvailable as exc:
            raise AsrUnavailable(str(exc)) from exc
        self.model_path = str(path)
        self._model = _shared_model(self.model_path, s.asr_device, s.asr_compute_type, s.asr_cpu_threads)
        logger.info("Whisper model %s ready (%s, %s)", s.asr_model, s.asr_device, s.asr_compute_type)

    @property
    def device(self) -> str:
        """Where the model runs: "cpu" or "cuda" (what ``asr_device`` "auto" chose, once loaded)."""
        if self._model is not None:
            return str(self._model.model.device)
        return self._settings.asr_device

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        _refuse_event_loop()
        if self._model is None:
            self.load()
        s = self._settings
        segments, info = self._model.transcribe(
            audio,
            language=language or s.asr_language,
            beam_size=s.asr_beam_size,
            word_timestamps=True,
            vad_filter=False,  # the caption service segments speech itself
            condition_on_previous_text=False,
            initial_prompt=prompt,
            temperature=0.0,
        )
        words: list[Word] = []
        for segment in segments:  # the generator does the work: iterated here, in the worker thread
            if _keep(segment.text, segment.no_speech_prob, segment.avg_logprob, segment.compression_ratio):
                words.extend(Word(w.word, float(w.start), float(w.end), float(w.probability))
                             for w in segment.words or [])
        return Transcription(words=words, language=info.language, language_probability=info.language_probability)

    def translate(self, audio: npt.NDArray[np.float32], language: str | None) -> str:
        """Whisper's own translate task: the speech in ``audio`` (in ``language``; None: detected) as English text.
        Whisper's translations of poor audio can be invented: only the fallback when no translation model is set."""
        _refuse_event_loop()
        if self._model is None:
            self.load()
        segments, _ = self._model.transcribe(audio, task="translate", language=language,
                                             beam_size=self._settings.asr_beam_size, vad_filter=False,
                                             condition_on_previous_text=False, temperature=0.0)
        # Kept unless Whisper itself says it heard no speech or the text loops (its translations are less sure of
        # themselves than its transcriptions, so the captions' confidence filter would drop most of them).
        return " ".join(s.text.strip() for s in segments
                        if s.no_speech_prob < 0.6 and s.compression_ratio < 2.4).strip()

    def transcribe_batch(self, requests: Sequence[DecodeRequest]) -> list[Transcription]:
        """The requests in one batched model call (``server/asr/whisper_batch.py``): same options, prompts and
        segment filter as ``transcribe``."""
        _refuse_event_loop()
        if self._model is None:
            self.load()
        if not requests:
            return []
        from server.asr.whisper_batch import decode_batch

        s = self._settings
        decoded = decode_batch(self._model, [r.audio for r in requests],
                               [r.language or s.asr_language for r in requests], [r.prompt for r in requests],
                               s.asr_beam_size,
                               min_window=[round((r.min_window_s or s.asr_min_window_s) * 100) for r in requests])
        results = []
        for segments, language, probability in decoded:
            words = [Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
                     for segment in segments
                     if _keep(segment["text"], segment["no_speech_prob"], segment["avg_logprob"],
                              segment["compression_ratio"])
                     for w in segment["words"]]
            results.append(Transcription(words=words, language=language, language_probability=probability))
        return results


def _keep(text: str, no_speech_prob: float, avg_logprob: float, compression_ratio: float) -> bool:
    if keep_segment(text, no_speech_prob, avg_logprob, compression_ratio):
        return True
    logger.debug("dropped segment %r (no_speech %.2f, logprob %.2f, compression %.2f)", text, no_speech_prob,
                 avg_logprob, compression_ratio)
    return False


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
        self.prompts: list[str | None] = []  # the prompt of each call
        self.offset = 0.0  # stream time of the current buffer's first sample (set by the caller in tests)

    def load(self) -> None:
        return None

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        duration = audio.size / SAMPLE_RATE
        self.calls.append(duration)
        self.prompts.append(prompt)
        if float(np.abs(audio).max(initial=0.0)) < 1e-4:
            return Transcription([], self.language)
        words = [Word(" " + text, start - self.offset, end - self.offset)
                 for text, start, end in self.script
                 if start >= self.offset - 0.05 and end - self.offset <= duration + 0.05]
        if self.garble_last and words:
            last = words[-1]
            words[-1] = Word(last.text + "s", last.start, last.end)
        return Transcription(words, self.language, 1.0)


class PlaceholderBackend:
    """``asr_backend="fake"``: no model. Each 0.4 s of the buffer with some sound becomes one numbered word
    ("word1 word2 ..."), so the whole caption path (partials, commits, finals) runs without Whisper."""

    name = "fake"
    SLOT_S = 0.4

    def load(self) -> None:
        return None

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        slot = int(self.SLOT_S * SAMPLE_RATE)
        words = []
        for n, i in enumerate(range(0, audio.size - slot + 1, slot), 1):
            if float(np.sqrt(np.mean(np.square(audio[i : i + slot])))) > 0.01:
                start = i / SAMPLE_RATE
                words.append(Word(f" word{n}", start, start + self.SLOT_S))
        return Transcription(words, language or "en", 1.0)

    def translate(self, audio: npt.NDArray[np.float32], language: str | None) -> str:
        """The placeholder words, marked as an English translation."""
        return "[en] " + " ".join(w.text.strip() for w in self.transcribe(audio, language).words)


def create_backend(settings: Settings) -> AsrBackend:
    if settings.asr_backend == "whisper":
        return WhisperBackend(settings)
    if settings.asr_backend == "fake":
        return PlaceholderBackend()
    raise AsrUnavailable(f"no speech backend for asr_backend={settings.asr_backend!r}")
