"""One speaker's live captions: buffering, voice activity, utterances, partial and final decodes, events in order.

``push`` (on the event loop, never blocking) queues audio, bounded by ``audio_queue_seconds`` (the oldest is dropped
and counted). The stream's task appends it to a ``Timeline`` and runs voice-activity detection on every 32 ms window.
An utterance runs from speech start (padded back a little, never across a jump in time) to ``asr_min_silence_s`` of
silence; one longer than ``asr_max_utterance_s`` is split at its quietest recent moment. While it runs, a partial
decode of the utterance so far is queued ``asr_partial_interval_s`` after the previous one finished (at most one
pending per speaker) and fed to the LocalAgreement policy; ``caption.partial`` carries committed and tentative text.
After a short silence the final decode starts speculatively (discarded if speech resumes), so recognition overlaps the
silence needed to end the utterance. Utterance ids are ``<session>-<first sample index>``: a speech worker that
resumes a speaker from a checkpoint (``resume``, ``resume_point``) gives the unfinished utterance the same id. Exactly
one ``caption.final`` per utterance that produced any words is published,
in order, beginning with the committed words (if partials were shown but the whole utterance decodes to nothing, its
final has empty text: it closes the provisional caption); a speaker's events go to the bus through one ordered outbox.

Context: every decode is prompted with the tail of the speaker's previous final captions (``PriorText``,
``asr_prompt_chars``; read in the decode worker when the decode starts, so a final that has just come in counts), as
offline transcription of a whole recording hears each sentence after the ones before it.

Language: decodes detect it (on the batch's encoding; faster-whisper's own ``transcribe`` pays a second encoder pass)
until a detection is confident; the utterance then keeps it, and once two utterances in a row agree the speaker keeps
it (``asr_language`` fixes it from the start).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from server.asr import metrics
from server.asr.backends import DecodeRequest, Transcription
from server.asr.context import PriorText
from server.asr.policy import LocalAgreement, join_words
from server.asr.scheduler import FINAL, PARTIAL
from server.asr.timeline import Clock, Timeline
from server.asr.vad import WINDOW, Segmenter, StreamingVad
from server.core.events import (
    BusEvent,
    CaptionFinal,
    CaptionPartial,
    CaptionTranslated,
    CaptionWord,
    VoiceActivity,
    base_language,
)
from server.core.ids import new_id
from server.core.speech import SAMPLE_RATE

if TYPE_CHECKING:
    from server.asr.service import WhisperCaptionService

logger = logging.getLogger(__name__)

PAD_S = 0.2  # audio kept before the detected speech start
END_PAD_S = 0.1  # and after the end of speech, for the final decode
SPECULATE_AFTER_S = 0.15  # silence before the final decode starts (shorter pauses are mostly mid-sentence)
MIN_SPEECH_S = 0.1  # utterances with less confident speech than this (clicks, bumps) are not decoded
SPLIT_SEARCH_S = 3.0  # a long utterance is split at the quietest window of its last seconds
LANGUAGE_PROBABILITY = 0.5
LANGUAGE_MIN_AUDIO_S = 1.0
YIELD_EVERY = 25  # chunks processed between yields to the event loop when catching up
CONTEXT_WAIT_S = 1.0  # longest a decode waits in the worker for the previous final's text to reach the context


@dataclass(eq=False)
class Utterance:
    id: str
    start: int  # absolute sample index of its first (padded) sample
    last_partial_at: int  # sample index by which the previous partial was done
    policy: LocalAgreement = field(default_factory=LocalAgreement)
    language: str | None = None
    speech_windows: int = 0
    recent: collections.deque[tuple[int, float]] = field(default_factory=collections.deque)  # (window end, prob)
    partial: asyncio.Future[Transcription] | None = None
    speculative: asyncio.Future[Transcription] | None = None
    finished: bool = False
    last_sent: tuple[str, str] | None = None
    audio: npt.NDArray[np.float32] | None = None  # kept for Whisper's translate task (``translate_to_english``)


class SpeakerStream:
    """Implements ``SpeakerAudioSink`` for one participant."""

    def __init__(self, service: WhisperCaptionService, room_id: str, participant_id: str, speaker_name: str,
                 session: str | None = None) -> None:
        self._service = service
        self.session = session or f"{participant_id}-{new_id(6)}"  # utterance ids derive from it
        s = self._settings = service.settings
        self.room_id, self.participant_id, self.speaker_name = room_id, participant_id, speaker_name
        self._incoming: collections.deque[tuple[npt.NDArray[np.float32], float]] = collections.deque()
        self._incoming_samples = 0
        self._max_incoming = max(1, int(s.audio_queue_seconds * SAMPLE_RATE))
        self._wake = asyncio.Event()
        self.closing = False
        self.dropped_samples = 0
        self.timeline = Timeline(s.asr_max_utterance_s + SPLIT_SEARCH_S + 5)
        self._vad = StreamingVad()
        self._vad_index = 0  # absolute index of the next VAD window's first sample
        self._segmenter = Segmenter(s.asr_min_silence_s)
        self._utterance: Utterance | None = None
        self._silence_at: int | None = None
        self._count = 0
        self._unfinished: dict[str, int] = {}  # utterances whose final is not published yet: id -> start (oldest first)
        self.settled_until = 0  # where the last utterance ended
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_final: asyncio.Task[None] | None = None
        self.language: str | None = s.asr_language
        self.translate_to_english = False  # see set_readers
        self._detected: list[str] = []  # languages detected in recent utterances
        self.context = PriorText(s.asr_prompt_chars)
        # Set once the latest ended utterance's final text is in the context (None: nothing pending).
        self._context_ready: threading.Event | None = None
        self._outbox: asyncio.Queue[BusEvent | None] = asyncio.Queue()
        self._publisher = asyncio.create_task(self._publish_loop(), name=f"captions-out-{participant_id}")
        self._task = asyncio.create_task(self._run(), name=f"captions-{participant_id}")

    def set_readers(self, languages: list[str]) -> None:
        """The languages the speaker's room reads now: with Whisper as the translation backend, each final caption
        in another language is also translated into English (Whisper's translate task) while someone reads it."""
        self.translate_to_english = self._service.translates_to_english and "en" in {
            base_language(x) for x in languages}

    def set_language(self, language: str) -> None:
        """The participant chose (or changed to) ``language``: their next utterances are recognised in it (Whisper
        takes the base code: ``pt-BR`` -> ``pt``)."""
        self.language = base_language(language)

    # Input -------------------------------------------------------------------------------------------------------
    def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        if self.closing or pcm.size == 0:
            return
        self._incoming.append((pcm, t))
        self._incoming_samples += pcm.size
        while self._incoming_samples > self._max_incoming and len(self._incoming) > 1:
            old, _ = self._incoming.popleft()
            self._incoming_samples -= old.size
            if not self.dropped_samples:
                logger.warning("captions for %s fall behind: dropping the oldest audio", self.participant_id)
            self.dropped_samples += old.size
        self._wake.set()

    @property
    def queued_samples(self) -> int:
        """Audio pushed and not processed yet."""
        return self._incoming_samples

    def resume(self, index: int, utterance_id: str | None = None, utterance_start: int | None = None,
               language: str | None = None) -> None:
        """Continue a speaker from a checkpoint (call before the first ``push``): the next pushed sample is number
        ``index``, and ``utterance_id`` (begun at ``utterance_start``) is open again under the same id."""
        self.timeline.restart_at(index)
        self._vad_index = self.settled_until = index
        if self.language is None and language:
            self.language = language
        if utterance_id is not None:
            start = max(index, utterance_start if utterance_start is not None else index)
            self._utterance = Utterance(utterance_id, start, start)
            self._unfinished[utterance_id] = start
            self._segmenter.speaking = True

    @property
    def resume_point(self) -> tuple[int, str | None]:
        """Where to resume this speaker elsewhere: the start (and id) of the oldest utterance whose final caption is
        not published yet; otherwise a second before the latest audio, never before the end of the last utterance."""
        for utterance_id, start in self._unfinished.items():
            return start, utterance_id
        return max(self.settled_until, self.timeline.total - SAMPLE_RATE), None

    def abort(self) -> None:
        """Stop at once, finishing nothing (another worker took the speaker over)."""
        self.closing = True
        self._task.cancel()

    async def aclose(self) -> None:
        """Finish the utterance in progress (its final caption is published), then stop."""
        self.closing = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # Main loop ---------------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                processed = 0
                while self._incoming:
                    pcm, t = self._incoming.popleft()
                    self._incoming_samples -= pcm.size
                    self._process(np.asarray(pcm, dtype=np.float32).reshape(-1), t)
                    processed += 1
                    if processed % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # catching up on a backlog: let the loop breathe
                if self.closing:
                    break
            if self._utterance is not None:
                self._end_utterance(self.timeline.total)
            if self._last_final is not None:
                await self._last_final
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._outbox.put_nowait(None)
            await self._publisher

    def _process(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        self.timeline.append(pcm, t)
        for probability in self._vad(pcm):
            self._vad_index += WINDOW
            self._on_window(float(probability), self._vad_index)
        # Keep what the current utterance needs, and a little before speech for the padding.
        u = self._utterance
        self.timeline.trim(u.start if u is not None else self.timeline.total - int(2 * SAMPLE_RATE))

    def _on_window(self, probability: float, end: int) -> None:
        s = self._settings
        decision = self._segmenter.feed(probability)
        if decision.speech_started:
            speech = end - WINDOW
            start = max(speech - int(PAD_S * SAMPLE_RATE), self.timeline.last_jump_at_or_before(speech),
                        self.timeline.start)
            self._begin(start)
            self._emit(VoiceActivity(room_id=self.room_id, participant_id=self.participant_id, speaking=True,
                                     t=self.timeline.time_of(start)))
        u = self._utterance
        if u is None:
            return
        u.recent.append((end, probability))
        while u.recent[0][0] < end - SPLIT_SEARCH_S * SAMPLE_RATE:
            u.recent.popleft()
        if probability >= self._segmenter.start_threshold:
            u.speech_windows += 1
        if decision.silence_started:
            self._silence_at = end - WINDOW
        if decision.speech_resumed:
            self._silence_at = None
            if u.speculative is not None:
                u.speculative.cancel()
                u.speculative = None
        if decision.speech_ended:
            self._end_utterance(self._silence_at if self._silence_at is not None else end)
            return
        if end - u.start >= s.asr_max_utterance_s * SAMPLE_RATE:
            self._split(u, end)
            return
        if not self._enough_speech(u):
            return
        if self._silence_at is not None:
            if u.speculative is None and end - self._silence_at >= SPECULATE_AFTER_S * SAMPLE_RATE:
                u.speculative = self._decode(FINAL, u, end)
        elif u.partial is None and end - u.last_partial_at >= s.asr_partial_interval_s * SAMPLE_RATE:
            u.partial = self._decode(PARTIAL, u, end)
            self._spawn(self._partial(u, u.partial, end))

    def _begin(self, start: int) -> None:
        self._count += 1
        self._utterance = Utterance(f"{self.session}-{start}", start, start)
        self._unfinished[self._utterance.id] = start
        self._silence_at = None

    def _enough_speech(self, u: Utterance) -> bool:
        return u.speech_windows * WINDOW >= MIN_SPEECH_S * SAMPLE_RATE

    # Decodes -----------------------------------------------------------------------------------------------------
    def _decode(self, priority: int, u: Utterance, end: int) -> asyncio.Future[Transcription]:
        language = self.language or u.language
        context, at, ready = self.context, self.timeline.time_of(u.start), self._context_ready

        def prompt() -> str | None:
            # In the worker thread. The previous utterance's final decode ran before this one (finals first, in
            # order), but its text reaches the context on the event loop: wait for it (briefly), then read the prompt.
            if ready is not None:
                ready.wait(CONTEXT_WAIT_S)
            return context.prompt(at, language)

        window = self._settings.asr_partial_window_s if priority == PARTIAL else None
        request = DecodeRequest(self.timeline.audio(u.start, end), language=language, prompt_from=prompt,
                                min_window_s=window)
        return self._service.scheduler.decode(priority, request, room=self.room_id)

    def _learn_language(self, u: Utterance, result: Transcription, seconds: float) -> None:
        if self.language is not None or u.language is not None or not result.language:
            return
        if seconds >= LANGUAGE_MIN_AUDIO_S and result.language_probability >= LANGUAGE_PROBABILITY:
            u.language = result.language
            self._detected = [*self._detected[-1:], result.language]
            if len(self._detected) == 2 and self._detected[0] == self._detected[1]:
                self.language = result.language
                logger.info("captions for %s: language %s", self.participant_id, self.language)

    async def _partial(self, u: Utterance, pending: asyncio.Future[Transcription], end: int) -> None:
        try:
            result = await _outcome(pending)
        finally:
            u.partial = None
            # The next partial waits a full interval after this one *finished*, so partials leave the worker free
            # for finals much of the time.
            u.last_partial_at = self.timeline.total
        if result is None or u.finished or not result.words:
            return
        self._learn_language(u, result, (end - u.start) / SAMPLE_RATE)
        u.policy.update(result.words)
        committed, tentative = join_words(u.policy.committed), join_words(u.policy.tentative)
        if (committed, tentative) == u.last_sent or not (committed or tentative):
            return
        u.last_sent = (committed, tentative)
        self._emit(CaptionPartial(
            room_id=self.room_id, utterance_id=u.id, participant_id=self.participant_id,
            speaker_name=self.speaker_name, committed=committed, tentative=tentative,
            start=self.timeline.time_of(u.start), language=result.language or u.language,
        ))

    def _split(self, u: Utterance, end: int) -> None:
        """Speech goes on past the longest utterance: end this one at its quietest recent window after the committed
        words, and go on with a new one from there."""
        committed_end = u.start + int(u.policy.committed_end * SAMPLE_RATE)
        candidates = [(p, i) for i, p in u.recent if committed_end <= i - WINDOW // 2 <= end - WINDOW]
        cut = min(candidates)[1] - WINDOW // 2 if candidates else end
        self._end_utterance(cut, split=True)
        self._begin(cut)

    def _end_utterance(self, end: int, split: bool = False) -> None:
        u = self._utterance
        assert u is not None
        self._utterance = None
        self._silence_at = None
        u.finished = True
        if u.partial is not None:
            u.partial.cancel()  # stale: skipped if it has not started
        pending: asyncio.Future[Transcription] | None = None
        if u.speculative is not None and not split:
            pending = u.speculative
        else:
            if u.speculative is not None:
                u.speculative.cancel()
            if self._enough_speech(u):
                pad = 0 if split else int(END_PAD_S * SAMPLE_RATE)
                pending = self._decode(FINAL, u, min(end + pad, self.timeline.total))
        if pending is not None and self.translate_to_english:
            u.audio = self.timeline.audio(u.start, min(end + int(END_PAD_S * SAMPLE_RATE), self.timeline.total))
        self.settled_until = max(self.settled_until, end)
        t_end = self.timeline.end_time_of(end)
        if not split:
            self._emit(VoiceActivity(room_id=self.room_id, participant_id=self.participant_id, speaking=False,
                                     t=t_end))
        if pending is not None:
            # The audio may be trimmed before the decode is done: keep its time mapping.
            clock = self.timeline.clock(u.start, self.timeline.total)
            self._context_ready = ready = threading.Event()
            self._last_final = self._spawn(self._final(u, pending, clock, t_end, self._last_final, ready))
        else:
            self._unfinished.pop(u.id, None)

    async def _final(self, u: Utterance, pending: asyncio.Future[Transcription], clock: Clock, t_end: float,
                     previous: asyncio.Task[None] | None, context_ready: threading.Event) -> None:
        try:
            result = await _outcome(pending) or Transcription()
            if previous is not None:  # one speaker's finals go out in order
                with contextlib.suppress(Exception):
                    await previous
            words = u.policy.finish(result.words)
            if result.words:
                self._learn_language(u, result, result.words[-1].end)
            text = join_words(words)
            self.context.add(text, t_end, result.language or u.language)
        finally:
            context_ready.set()  # even if cancelled or failed: the next decodes must not wait for nothing
        if not text:
            if u.last_sent is not None:
                # Partials were shown, but the whole utterance decodes to nothing (typically not speech after all,
                # and what the partials said was invented): an empty final closes their provisional caption.
                self._emit(CaptionFinal(
                    room_id=self.room_id, utterance_id=u.id, participant_id=self.participant_id,
                    speaker_name=self.speaker_name, text="", start=clock.time_of(u.start), end=t_end,
                    language=result.language or u.language,
                ))
            else:
                self._unfinished.pop(u.id, None)
            return

        def index(seconds: float) -> int:  # a point in the utterance's audio (mapped across any jumps in time)
            return u.start + round(seconds * SAMPLE_RATE)

        caption_words = [CaptionWord(word=w.text.strip(), start=clock.time_of(index(w.start)),
                                     end=clock.end_time_of(index(w.end)), probability=w.probability) for w in words]
        origin = clock.time_of(u.start)
        start = min(max(caption_words[0].start, origin), t_end)
        self._service.finals += 1
        logger.debug("final caption %s: %r", u.id, text)
        language = result.language or u.language
        self._emit(CaptionFinal(
            room_id=self.room_id, utterance_id=u.id, participant_id=self.participant_id,
            speaker_name=self.speaker_name, text=text, start=start, end=max(t_end, start), words=caption_words,
            language=language,
        ))
        audio, u.audio = u.audio, None
        if audio is not None and language and base_language(language) != "en" and self.translate_to_english:
            self._spawn(self._translate(u.id, audio, language))

    async def _translate(self, utterance_id: str, audio: npt.NDArray[np.float32], language: str) -> None:
        """Whisper's translate task on the utterance's audio, after the finals (it waits like a final's decode)."""
        backend: Any = self._service.backend
        try:
            text = await self._service.scheduler.submit(FINAL, lambda: backend.translate(audio, language),
                                                        room=self.room_id)
        except Exception as exc:  # (cancelled at close, or the model failed): the caption stays untranslated
            logger.warning("Whisper translation for %s failed: %s", self.participant_id, exc)
            return
        if text:
            self._emit(CaptionTranslated(room_id=self.room_id, utterance_id=utterance_id,
                                         participant_id=self.participant_id, source_language=language,
                                         language="en", text=text, backend="whisper:translate"))

    # Output ------------------------------------------------------------------------------------------------------
    def _emit(self, event: BusEvent) -> None:
        self._outbox.put_nowait(event)

    async def _publish_loop(self) -> None:
        while (event := await self._outbox.get()) is not None:
            try:
                await self._service.bus.publish(event)
                if isinstance(event, CaptionFinal):
                    self._unfinished.pop(event.utterance_id, None)
                    metrics.finals_total.inc()
                    metrics.final_latency_seconds.observe(max(0.0, time.time() - event.end))
            except Exception:
                logger.exception("could not publish %s for %s", event.type, self.participant_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _outcome(pending: asyncio.Future[Transcription]) -> Transcription | None:
    """The decode's result; ``None`` if it failed or was cancelled (the awaiting task itself may still be cancelled)."""
    try:
        return await pending
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if pending.cancelled() and not (task is not None and task.cancelling()):
            return None
        raise
    except Exception:
        logger.exception("speech recognition failed")
        return None

