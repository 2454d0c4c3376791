"""The live caption service: ``create_caption_service(settings, bus)`` and the ``CaptionService`` it returns.

One ``WhisperCaptionService`` per process holds the speech backend (the model is loaded once, in a thread, never on the
event loop) and one ``DecodeScheduler`` worker thread shared by every speaker, which batches their decodes
(``asr_max_batch``); ``open_speaker`` gives each participant a ``SpeakerStream`` (``server/asr/stream.py``), which
segments their audio and publishes ``voice.activity``, ``caption.partial`` and ``caption.final`` events on the bus.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from server.asr.backends import AsrBackend, AsrUnavailable, DecodeRequest, batches, create_backend
from server.asr.scheduler import DecodeScheduler
from server.asr.stream import SpeakerStream
from server.asr.vad import StreamingVad
from server.core.bus import Bus
from server.core.settings import Settings
from server.core.speech import SAMPLE_RATE

logger = logging.getLogger(__name__)

CPU_MAX_BATCH = 1
GPU_MAX_BATCH = 32

__all__ = ["AsrUnavailable", "SpeakerStream", "WhisperCaptionService", "create_caption_service"]


class WhisperCaptionService:
    """Implements ``CaptionService`` with any ``AsrBackend`` (faster-whisper by default)."""

    def __init__(self, settings: Settings, bus: Bus, backend: AsrBackend | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.backend: AsrBackend = backend or create_backend(settings)
        self.scheduler = DecodeScheduler(max_partials=settings.asr_max_waiting_partials, backend=self.backend,
                                         max_batch=settings.asr_max_batch or 1)
        self._streams: list[SpeakerStream] = []
        self.finals = 0
        # Whisper's translate task is the translation backend (nothing else is configured): speakers of other
        # languages get an English translation of each final caption while someone in their room reads English.
        from models.translation import registered_models

        has_models = settings.mt_backend == "auto" and bool(registered_models(settings.resolved_mt_models_dir()))
        self.translates_to_english = settings.resolved_mt_backend(has_models) == "whisper" and hasattr(
            self.backend, "translate")

    async def start(self) -> None:
        """Load the model and the voice-activity detector in threads; raises ``AsrUnavailable`` with what to
        install if the backend cannot run."""
        started = time.perf_counter()
        await asyncio.to_thread(self.backend.load)
        if self.settings.asr_max_batch is None:  # now that the device is known
            self.scheduler.max_batch = default_max_batch(self.backend)
        # The first decode of a fresh model is much slower (allocations, kernel selection): pay it before anyone talks,
        # on the path the worker uses (a full batch: a GPU's memory pool then holds the largest batch from the start).
        silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
        if batches(self.backend):
            await asyncio.to_thread(self.backend.transcribe_batch,  # type: ignore[attr-defined]
                                    [DecodeRequest(silence, "en")] * self.scheduler.max_batch)
        else:
            await asyncio.to_thread(self.backend.transcribe, silence, "en")
        await asyncio.to_thread(StreamingVad)  # loads the VAD session once, off the event loop
        logger.info("caption service ready in %.1f s (%s)", time.perf_counter() - started, self.backend.name)

    def open_speaker(self, room_id: str, participant_id: str, speaker_name: str, language: str | None = None,
                     session: str | None = None) -> SpeakerStream:
        """A sink for one participant's audio (call on the event loop); ``language``: the one they chose (else
        ``asr_language``, else detected); ``session`` names the speaker's audio session (utterance ids derive from
        it; default: new)."""
        self._streams = [s for s in self._streams if not s.closing]
        stream = SpeakerStream(self, room_id, participant_id, speaker_name, session)
        if language:
            stream.set_language(language)
        self._streams.append(stream)
        return stream

    @property
    def dropped_samples(self) -> int:
        return sum(s.dropped_samples for s in self._streams)

    def health(self) -> dict[str, object]:
        """Counters for health checks and benchmarks (no room data): decodes run, seconds spent decoding, partial
        decodes dropped under load, and how many decodes wait now."""
        scheduler = self.scheduler
        return {"ok": scheduler.running, "decodes": scheduler.completed, "busy_s": round(scheduler.busy_s, 3),
                "partials_dropped": scheduler.displaced, "audio_s": round(scheduler.audio_s, 3)}

    async def close(self) -> None:
        """Finish every open speaker's utterance, then stop the worker thread."""
        streams, self._streams = self._streams, []
        await asyncio.gather(*(s.aclose() for s in streams))
        await asyncio.to_thread(self.scheduler.close)


def default_max_batch(backend: AsrBackend) -> int:
    """Decodes per batch when ``asr_max_batch`` is not set. On a CPU a batch costs as much as its decodes one after
    the other (measured: docs/benchmarks.md), so batching only makes each decode wait for the others: one at a time
    (still through the batched path, whose language detection costs no second encoder pass). On a GPU a batch costs
    little more than one decode."""
    if not batches(backend):
        return 1
    return GPU_MAX_BATCH if getattr(backend, "device", "cpu") == "cuda" else CPU_MAX_BATCH


def create_caption_service(settings: Settings, bus: Bus) -> WhisperCaptionService | None:
    """The caption service ``settings.asr_backend`` names (``None`` for ``"none"``). Nothing heavy is imported or
    loaded here: ``await service.start()`` loads the model (in a thread) and raises ``AsrUnavailable`` if it cannot."""
    if settings.asr_backend == "none":
        return None
    return WhisperCaptionService(settings, bus)
