"""The live caption service: per-speaker segmentation, partial and final decodes, and caption events on the bus.

Per speaker (``SpeakerStream``): audio pushed by the media layer is buffered (bounded: the oldest audio is dropped and
counted), voice-activity detection runs on every 32 ms window, and an utterance runs from speech start to
``asr_min_silence_s`` of silence (or ``asr_max_utterance_s``). While it runs, a partial decode of the utterance so far
is scheduled every ``asr_partial_interval_s`` (never two at once per speaker) and fed to the LocalAgreement policy; a
``caption.partial`` event carries committed and tentative text. When silence begins, the final decode starts at once
(speculatively: it is thrown away if speech resumes), so recognition overlaps the silence needed to end the utterance.
Exactly one ``caption.final`` is published per utterance, in order, beginning with the committed words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.asr.backends import AsrBackend, Transcription, create_backend
from server.asr.base import SAMPLE_RATE
from server.asr.policy import LocalAgreement, join_words
from server.asr.scheduler import FINAL, PARTIAL, DecodeScheduler
from server.asr.vad import WINDOW, Segmenter, StreamingVad
from server.bus import Bus
from server.events import CaptionFinal, CaptionPartial, CaptionWord, VoiceActivity
from server.settings import Settings

logger = logging.getLogger(__name__)

PAD_S = 0.2
LANGUAGE_LOCK_PROBABILITY = 0.5
SPECULATE_AFTER_S = 0.15  # silence before the final decode starts (shorter pauses are mostly mid-sentence)


@dataclass
class Utterance:
    id: str
    start: int  # absolute sample index
    policy: LocalAgreement = field(default_factory=LocalAgreement)
    last_partial_at: int = 0
    partial_pending: bool = False
    speculative: asyncio.Future[Transcription] | None = None
    finished: bool = False
    last_sent: tuple[str, str] | None = None


class SpeakerStream:
    """Implements ``SpeakerAudioSink`` for one participant."""

    def __init__(self, service: WhisperCaptionService, room_id: str, participant_id: str, speaker_name: str) -> None:
        self._service = service
        self._settings = service.settings
        self.room_id, self.participant_id, self.speaker_name = room_id, participant_id, speaker_name
        self._incoming: list[tuple[npt.NDArray[np.float32], float]] = []
        self._incoming_samples = 0
        self._max_incoming = int(self._settings.audio_queue_seconds * SAMPLE_RATE)
        self._wake = asyncio.Event()
        self._closing = False
        self.dropped_samples = 0
        # audio buffer: samples [self._buf_start, self._buf_start + len(self._buf)) in absolute sample indices
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0
        self._total = 0  # absolute index of the next sample
        self._anchors: list[tuple[int, float]] = []
        self._vad = StreamingVad()
        self._vad_index = 0  # absolute index of the next VAD window's first sample
        self._segmenter = Segmenter(self._settings.asr_min_silence_s)
        self._utterance: Utterance | None = None
        self._silence_at: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_final: asyncio.Task[None] | None = None
        self._count = 0
        # Language detection costs a second encoder pass per decode: detect until one is clear, then keep it.
        self.language: str | None = self._settings.asr_language
        self._task = asyncio.create_task(self._run(), name=f"captions-{participant_id}")

    # Input -------------------------------------------------------------------------------------------------------
    def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        if self._closing or pcm.size == 0:
            return
        self._incoming.append((pcm, t))
        self._incoming_samples += pcm.size
        while self._incoming_samples > self._max_incoming and len(self._incoming) > 1:
            old, _ = self._incoming.pop(0)
            self._incoming_samples -= old.size
            self.dropped_samples += old.size
        self._wake.set()

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # Timeline ----------------------------------------------------------------------------------------------------
    def time_of(self, index: int) -> float:
        anchor_index, anchor_t = self._anchors[0]
        for i, t in reversed(self._anchors):
            if i <= index:
                anchor_index, anchor_t = i, t
                break
        return anchor_t + (index - anchor_index) / SAMPLE_RATE

    def _append(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        if not self._anchors or abs(self.time_of(self._total) - t) > 0.05:
            self._anchors.append((self._total, t))
        self._buf = np.concatenate([self._buf, pcm]) if self._buf.size else pcm.astype(np.float32, copy=True)
        self._total += pcm.size
        # Keep what the current utterance needs (plus padding), and at most the configured bound otherwise.
        keep_from = self._total - int((self._settings.asr_max_utterance_s + 2 * PAD_S + 1) * SAMPLE_RATE)
        if self._utterance is None:
            keep_from = max(keep_from, self._total - int(2 * SAMPLE_RATE))
        else:
            keep_from = min(max(keep_from, 0), self._utterance.start)
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        if len(self._anchors) > 64:
            self._anchors = [a for a in self._anchors if a[0] >= self._buf_start - SAMPLE_RATE] or self._anchors[-1:]

    def _audio(self, start: int, end: int) -> npt.NDArray[np.float32]:
        start = max(start, self._buf_start)
        return self._buf[start - self._buf_start : max(start, end) - self._buf_start].copy()

    # Main loop ---------------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                chunks, self._incoming, self._incoming_samples = self._incoming, [], 0
                for pcm, t in chunks:
                    self._append(pcm, t)
                    for prob in self._vad(pcm):
                        self._vad_index += WINDOW
                        self._on_window(float(prob), self._vad_index)
                if self._closing:
                    if self._utterance is not None:
                        self._end_utterance(self._total)
                    break
            if self._last_final is not None:
                await self._last_final
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_window(self, probability: float, end: int) -> None:
        s = self._settings
        decision = self._segmenter.feed(probability)
        if decision.speech_started:
            start = max(end - WINDOW - int(PAD_S * SAMPLE_RATE), self._buf_start)
            self._count += 1
            self._utterance = Utterance(f"{self.participant_id}-{self._count}-{uuid.uuid4().hex[:6]}", start)
            self._utterance.last_partial_at = end
            self._silence_at = None
            self._publish(VoiceActivity(room_id=self.room_id, participant_id=self.participant_id, speaking=True,
                                        t=self.time_of(start)))
            return
        utterance = self._utterance
        if utterance is None:
            return
        if decision.silence_started:
            self._silence_at = end - WINDOW
        if (self._silence_at is not None and utterance.speculative is None
                and end - self._silence_at >= SPECULATE_AFTER_S * SAMPLE_RATE):
            utterance.speculative = self._decode(FINAL, utterance.start, end)
        if decision.speech_resumed:
            self._silence_at = None
            if utterance.speculative is not None:
                utterance.speculative.cancel()
                utterance.speculative = None
        if decision.speech_ended:
            self._end_utterance(self._silence_at if self._silence_at is not None else end)
            return
        if end - utterance.start >= s.asr_max_utterance_s * SAMPLE_RATE:
            self._end_utterance(end, split=True)
            return
        if (self._silence_at is None and not utterance.partial_pending
                and end - utterance.last_partial_at >= s.asr_partial_interval_s * SAMPLE_RATE):
            utterance.partial_pending = True
            utterance.last_partial_at = end
            self._spawn(self._partial(utterance, self._decode(PARTIAL, utterance.start, end)))

    def _decode(self, priority: int, start: int, end: int) -> asyncio.Future[Transcription]:
        audio = self._audio(start, end)
        backend = self._service.backend
        language = self.language
        return self._service.scheduler.submit(priority, lambda: backend.transcribe(audio, language=language))

    def _learn_language(self, result: Transcription, seconds: float) -> None:
        if self.language is None and result.language and seconds >= 1.0 \
                and result.language_probability >= LANGUAGE_LOCK_PROBABILITY:
            self.language = result.language

    async def _partial(self, utterance: Utterance, pending: asyncio.Future[Transcription]) -> None:
        try:
            result = await pending
        except Exception:
            logger.exception("partial decode failed")
            return
        finally:
            utterance.partial_pending = False
            # The next partial waits a full interval after this one *finished*, so partials use at most about half of
            # the worker and a final rarely queues behind one.
            utterance.last_partial_at = self._total
        if utterance.finished or not result.words:
            return
        self._learn_language(result, result.words[-1].end)
        utterance.policy.update(result.words)
        committed = join_words(utterance.policy.committed)
        tentative = join_words(utterance.policy.tentative)
        if (committed, tentative) == utterance.last_sent or not (committed or tentative):
            return
        utterance.last_sent = (committed, tentative)
        self._publish(CaptionPartial(
            room_id=self.room_id, utterance_id=utterance.id, participant_id=self.participant_id,
            speaker_name=self.speaker_name, committed=committed, tentative=tentative,
            start=self.time_of(utterance.start), language=result.language,
        ))

    def _end_utterance(self, end: int, split: bool = False) -> None:
        utterance = self._utterance
        assert utterance is not None
        self._utterance = None
        self._silence_at = None
        utterance.finished = True
        if utterance.speculative is not None and not split:
            pending = utterance.speculative
        else:
            if utterance.speculative is not None:
                utterance.speculative.cancel()
            pending = self._decode(FINAL, utterance.start, min(end + int(PAD_S * SAMPLE_RATE / 2), self._total))
        t_end = self.time_of(end)
        if split:  # speech goes on: the next utterance starts where this one was cut
            self._count += 1
            self._utterance = Utterance(f"{self.participant_id}-{self._count}-{uuid.uuid4().hex[:6]}", end)
            self._utterance.last_partial_at = end
        else:
            self._publish(VoiceActivity(room_id=self.room_id, participant_id=self.participant_id, speaking=False,
                                        t=t_end))
        previous = self._last_final
        self._last_final = self._spawn(self._final(utterance, pending, t_end, previous))

    async def _final(self, utterance: Utterance, pending: asyncio.Future[Transcription], t_end: float,
                     previous: asyncio.Task[None] | None) -> None:
        try:
            result = await pending
        except Exception:
            logger.exception("final decode failed")
            result = Transcription([], None)
        if previous is not None:  # finals of one speaker go out in order
            with contextlib.suppress(Exception):
                await previous
        words = utterance.policy.finish(result.words)
        if result.words:
            self._learn_language(result, result.words[-1].end)
        text = join_words(words)
        if not text:
            return
        origin = self.time_of(utterance.start)
        caption_words = [CaptionWord(word=w.text.strip(), start=origin + w.start, end=origin + w.end,
                                     probability=w.probability) for w in words]
        start = min(origin + (words[0].start if words else 0.0), t_end)
        end = max(t_end, start)
        self._service.finals += 1
        logger.debug("final caption %s (%d words)", utterance.id, len(words))
        await self._service.bus.publish(CaptionFinal(
            room_id=self.room_id, utterance_id=utterance.id, participant_id=self.participant_id,
            speaker_name=self.speaker_name, text=text, start=max(start, origin), end=end, language=result.language,
            words=caption_words,
        ))

    # Helpers -----------------------------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _publish(self, event: CaptionPartial | VoiceActivity) -> None:
        self._spawn(self._service.bus.publish(event))


class WhisperCaptionService:
    """Implements ``CaptionService`` with any ``AsrBackend`` (faster-whisper by default)."""

    def __init__(self, settings: Settings, bus: Bus, backend: AsrBackend | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.backend: AsrBackend = backend or create_backend(settings)
        self.scheduler = DecodeScheduler()
        self._streams: list[SpeakerStream] = []
        self.finals = 0

    async def start(self) -> None:
        started = time.perf_counter()
        await asyncio.to_thread(self.backend.load)
        # The first decode of a fresh model is much slower (allocations, kernel selection): pay it before anyone talks.
        await asyncio.to_thread(self.backend.transcribe, np.zeros(SAMPLE_RATE, dtype=np.float32), "en")
        await asyncio.to_thread(StreamingVad)  # loads the VAD session once, off the event loop
        logger.info("caption service ready in %.1f s (%s)", time.perf_counter() - started, self.backend.name)

    def open_speaker(self, room_id: str, participant_id: str, speaker_name: str) -> SpeakerStream:
        stream = SpeakerStream(self, room_id, participant_id, speaker_name)
        self._streams = [s for s in self._streams if not s._closing]
        self._streams.append(stream)
        return stream

    async def close(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()
        await asyncio.to_thread(self.scheduler.close)


def create_caption_service(settings: Settings, bus: Bus) -> WhisperCaptionService | None:
    if settings.asr_backend == "none":
        return None
    return WhisperCaptionService(settings, bus)


