"""The live caption service: ``create_caption_service(settings, bus)`` and the ``CaptionService`` it returns.

One ``WhisperCaptionService`` per process holds the speech backend (the model is loaded once, in a thread, never on the
event loop) and one ``DecodeScheduler`` worker thread shared by every speaker; ``open_speaker`` gives each participant a
``SpeakerStream`` (``server/asr/stream.py``), which segments their audio and publishes ``voice.activity``,
``caption.partial`` and ``caption.final`` events on the bus.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from server.asr.backends import AsrBackend, AsrUnavailable, create_backend
from server.asr.base import SAMPLE_RATE
from server.asr.scheduler import DecodeScheduler
from server.asr.stream import SpeakerStream
from server.asr.vad import StreamingVad
from server.bus import Bus
from server.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["AsrUnavailable", "SpeakerStream", "WhisperCaptionService", "create_caption_service"]


class WhisperCaptionService:
    """Implements ``CaptionService`` with any ``AsrBackend`` (faster-whisper by default)."""

    def __init__(self, settings: Settings, bus: Bus, backend: AsrBackend | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.backend: AsrBackend = backend or create_backend(settings)
        self.scheduler = DecodeScheduler(max_partials=settings.asr_max_waiting_partials)
        self._streams: list[SpeakerStream] = []
        self.finals = 0

    async def start(self) -> None:
        """Load the model and the voice-activity detector in threads; raises ``AsrUnavailable`` with what to
        install if the backend cannot run."""
        started = time.perf_counter()
        await asyncio.to_thread(self.backend.load)
        # The first decode of a fresh model is much slower (allocations, kernel selection): pay it before anyone talks.
        await asyncio.to_thread(self.backend.transcribe, np.zeros(SAMPLE_RATE, dtype=np.float32), "en")
        await asyncio.to_thread(StreamingVad)  # loads the VAD session once, off the event loop
        logger.info("caption service ready in %.1f s (%s)", time.perf_counter() - started, self.backend.name)

    def open_speaker(self, room_id: str, participant_id: str, speaker_name: str) -> SpeakerStream:
        """A sink for one participant's audio (call on the event loop)."""
        self._streams = [s for s in self._streams if not s.closing]
        stream = SpeakerStream(self, room_id, participant_id, speaker_name)
        self._streams.append(stream)
        return stream

    @property
    def dropped_samples(self) -> int:
        return sum(s.dropped_samples for s in self._streams)

    async def close(self) -> None:
        """Finish every open speaker's utterance, then stop the worker thread."""
        streams, self._streams = self._streams, []
        await asyncio.gather(*(s.aclose() for s in streams))
        await asyncio.to_thread(self.scheduler.close)


def create_caption_service(settings: Settings, bus: Bus) -> WhisperCaptionService | None:
    """The caption service ``settings.asr_backend`` names (``None`` for ``"none"``). Nothing heavy is imported or
    loaded here: ``await service.start()`` loads the model (in a thread) and raises ``AsrUnavailable`` if it cannot."""
    if settings.asr_backend == "none":
        return None
    return WhisperCaptionService(settings, bus)
