"""``moot worker speech``: live captions as their own scalable tier. Any number of these may run beside the server
nodes (``speech_placement=remote``; see ``server/asr/remote.py`` for the node's side).

One ``WhisperCaptionService`` per process (the model loads once, at start) transcribes every speaker the worker
serves, exactly as in-process: each speaker's Opus packets, read from its bus channel, are decoded by an ``AudioTap``
and pushed into a ``SpeakerStream``, which publishes ``voice.activity`` and ``caption.*`` events on the room's channel.

Claiming: a speaker is served by the worker holding its ``speech-speaker`` lease (renewed every third of
``speech_lease_ttl_s``). New speakers are announced on the ``speech`` channel, whose consumer group hands each
announcement to one worker; every half lease each worker also scans the server nodes' ``speech-source`` leases for
speakers that nobody serves (their worker died) and claims them.

Takeover: while serving, the worker publishes checkpoints (``speech.ckpt.<session>``): the bus seq and sample index
of the audio to replay from, and the oldest utterance whose final caption is not out yet. A worker taking over reads
the latest checkpoint, reopens that utterance under the same id (ids are ``<session>-<sample index>``), and replays
the audio from there, so the final caption of an utterance cut by a crash still arrives, once, replacing the partial.

SIGTERM: the worker stops reading audio, finishes the utterances in progress (their final captions go out), writes a
checkpoint just after the audio it has handled, releases its leases and announces the speakers again, so that
another worker continues them at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

from server.asr.remote import (
    SPEAKERS_CHANNEL,
    SPEAKERS_GROUP,
    audio_channel,
    checkpoint_channel,
    open_speech_audio_bus,
)
from server.asr.service import WhisperCaptionService
from server.asr.stream import SpeakerStream
from server.core.bus import Bus, Consumer, Subscription
from server.core.directory import SPEECH_SOURCE, SPEECH_SPEAKER
from server.core.errors import connection_lost
from server.core.events import SpeakerAudio, SpeakerOpened, SpeechCheckpoint
from server.core.leases import Lease, LeaseKeeper, Leases
from server.core.settings import Settings
from server.core.speech import SAMPLE_RATE
from server.rtc.audio_tap import AudioTap
from server.runtime import Runtime

logger = logging.getLogger(__name__)

IDLE_CHECKPOINT_EVERY = 20  # audio events (2 s by default) between checkpoints while nobody speaks
IDLE_CHECK_S = 0.25  # while no audio comes: how often the checkpoint is brought up to date
MAX_BACKLOG_S = 2.0  # audio pushed into a stream and not processed yet before the reader waits

speakers_served = Gauge("moot_speech_speakers", "Speakers this speech worker transcribes now")
takeovers_total = Counter("moot_speech_takeovers_total", "Speakers resumed from another worker's checkpoint")
audio_delay_seconds = Histogram(
    "moot_speech_audio_delay_seconds", "Audio sent by the server node to its arrival at the speech worker",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0))


@dataclass(eq=False)
class _Speaker:
    lease: Lease
    room_id: str
    participant_id: str
    speaker_name: str
    language: str | None = None  # the one the participant chose
    task: asyncio.Task[None] | None = None
    stream: SpeakerStream | None = None
    sub: Subscription | None = None
    stopping: bool = False  # the worker is shutting down: finish, checkpoint, hand over
    ended: bool = False  # the speaker left (or its server node is gone): nothing to hand over
    source_gone_at: float | None = None
    last_audio: float = field(default_factory=time.monotonic)

    @property
    def session(self) -> str:
        return self.lease.key


class SpeechWorker:
    def __init__(self, settings: Settings, bus: Bus, audio_bus: Bus, leases: Leases, name: str,
                 service: WhisperCaptionService) -> None:
        self.settings = settings
        self.bus = bus
        self.audio_bus = audio_bus
        self.leases = leases
        self.name = name
        self.service = service
        self.ttl_s = settings.speech_lease_ttl_s
        self._keeper = LeaseKeeper(leases, self._lost)
        self._speakers: dict[str, _Speaker] = {}
        self._claiming: set[str] = set()
        self._consumer: Consumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def health(self) -> dict[str, object]:
        running = bool(self._tasks) and all(not t.done() for t in self._tasks) and not self._closed
        return {"ok": running, "speakers": len(self._speakers)}

    async def start(self) -> None:
        self._consumer = await self.bus.consumer(SPEAKERS_GROUP, self.name, SPEAKERS_CHANNEL,
                                                 reclaim_after_s=self.ttl_s, prefetch=8)
        self._tasks = [asyncio.create_task(self._announcements(self._consumer), name="speech-announcements"),
                       asyncio.create_task(self._scan(), name="speech-scan")]

    # Claiming ----------------------------------------------------------------------------------------------------
    async def _announcements(self, consumer: Consumer) -> None:
        while True:
            try:
                delivery = await consumer.get()
            except StopAsyncIteration:
                return
            event = delivery.event
            try:
                # (A speaker whose node no longer sends it, or whose session is over, is not claimed: an old
                # announcement, e.g. read by a consumer group created after it.)
                if isinstance(event, SpeakerOpened) and await self.leases.get(SPEECH_SOURCE, event.session):
                    await self._claim(event.session, event.room_id, event.participant_id, event.speaker_name,
                                      event.language)
            except Exception as exc:
                logger.warning("could not claim a speaker (%s)", exc, exc_info=not connection_lost(exc))
            with contextlib.suppress(Exception):
                await consumer.ack(delivery)

    async def _scan(self) -> None:
        """Every half lease: claim speakers that nobody serves; notice served speakers whose node is gone."""
        while True:
            try:
                sources = {lease.key: lease for lease in await self.leases.all(SPEECH_SOURCE)}
                for session, source in sources.items():
                    if session not in self._speakers and await self.leases.get(SPEECH_SPEAKER, session) is None:
                        await self._claim(session, source.info.get("room_id", ""),
                                          source.info.get("participant_id", ""), source.info.get("speaker_name", ""),
                                          source.info.get("language") or None)
                now = time.monotonic()
                for session, speaker in self._speakers.items():
                    if session in sources:
                        speaker.source_gone_at = None
                    elif speaker.source_gone_at is None:
                        speaker.source_gone_at = now
            except Exception as exc:
                logger.warning("speech scan failed (%s); trying again", exc, exc_info=not connection_lost(exc))
            await asyncio.sleep(self.ttl_s / 2)

    async def _claim(self, session: str, room_id: str, participant_id: str, speaker_name: str,
                     language: str | None = None) -> None:
        if self._closed or session in self._speakers or session in self._claiming or not room_id:
            return
        self._claiming.add(session)
        try:
            lease = await self.leases.acquire(SPEECH_SPEAKER, session, self.name, self.ttl_s)
        finally:
            self._claiming.discard(session)
        if lease is None or self._closed:
            return
        self._keeper.keep(lease)
        speaker = _Speaker(lease, room_id, participant_id, speaker_name, language)
        self._speakers[session] = speaker
        speakers_served.set(len(self._speakers))
        speaker.task = asyncio.create_task(self._serve(speaker), name=f"speech-{participant_id}")

    def _lost(self, lease: Lease) -> None:
        """Another worker has the speaker now (this one could not renew in time): stop at once, publish nothing."""
        speaker = self._speakers.pop(lease.key, None)
        speakers_served.set(len(self._speakers))
        if speaker is not None:
            logger.warning("lost speaker %s to another speech worker", speaker.participant_id)
            if speaker.stream is not None:
                speaker.stream.abort()
            if speaker.task is not None:
                speaker.task.cancel()

    # Serving -----------------------------------------------------------------------------------------------------
    async def _latest_checkpoint(self, session: str) -> SpeechCheckpoint | None:
        events = await self.audio_bus.history(checkpoint_channel(session))
        checkpoints = [e for e in events if isinstance(e, SpeechCheckpoint)]
        return checkpoints[-1] if checkpoints else None

    async def _serve(self, speaker: _Speaker) -> None:
        session = speaker.session
        try:
            checkpoint = await self._latest_checkpoint(session)
            if checkpoint is not None and checkpoint.done:
                speaker.ended = True
                return
            stream = self.service.open_speaker(speaker.room_id, speaker.participant_id, speaker.speaker_name,
                                               speaker.language, session=session)
            speaker.stream = stream
            after_seq, base = 0, 0
            if checkpoint is not None:
                stream.resume(checkpoint.index, checkpoint.open_utterance, checkpoint.open_utterance_start,
                              checkpoint.language)
                after_seq, base = checkpoint.resume_seq - 1, checkpoint.index
                takeovers_total.inc()
                logger.info("resuming speaker %s (room %s) at sample %d", speaker.participant_id, speaker.room_id,
                            base)
            await self._transcribe(speaker, stream, after_seq, base, checkpoint)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("speech worker failed on speaker %s", speaker.participant_id)
        finally:
            if self._speakers.get(session) is speaker:
                del self._speakers[session]
                speakers_served.set(len(self._speakers))
                await self._keeper.drop(speaker.lease)
                if speaker.stopping and not speaker.ended:
                    await self._announce(speaker)

    async def _transcribe(self, speaker: _Speaker, stream: SpeakerStream, after_seq: int, base: int,
                          checkpoint: SpeechCheckpoint | None) -> None:
        tap = AudioTap(stream)
        chunks: deque[tuple[int, int]] = deque()  # (seq, index of its first sample) of the audio since the resume point
        last: tuple[int, str | None] = (checkpoint.resume_seq, checkpoint.open_utterance) if checkpoint else (0, None)
        next_seq = after_seq + 1
        sub = speaker.sub = await self.audio_bus.subscribe(audio_channel(speaker.session), maxsize=100_000,
                                                           after_seq=after_seq)
        me = asyncio.current_task()
        try:
            while not speaker.stopping:
                try:
                    event = await sub.get(timeout=IDLE_CHECK_S)
                    if me is not None and me.cancelling():  # (Python 3.11's wait_for can swallow a cancellation)
                        raise asyncio.CancelledError
                except TimeoutError:
                    if chunks:  # no audio now, but a final caption may have gone out: the resume point moved
                        last = await self._checkpoint(speaker, stream, chunks, last)
                    gone = speaker.source_gone_at
                    if gone is not None and time.monotonic() - gone > self.ttl_s:
                        speaker.ended = True  # its server node is gone and no audio comes: finish
                        break
                    continue
                except StopAsyncIteration:
                    break
                if not isinstance(event, SpeakerAudio):
                    continue
                if event.end:
                    speaker.ended = True
                    break
                speaker.last_audio = time.monotonic()
                if event.language and event.language != speaker.language:  # the participant changed language
                    speaker.language = event.language
                    stream.set_language(event.language)
                audio_delay_seconds.observe(max(0.0, time.time() - event.ts))
                chunks.append((event.seq, base + tap.samples))
                next_seq = event.seq + 1
                for packet, t in zip(event.packets, event.t, strict=False):
                    tap.push_opus(base64.b64decode(packet), t)
                last = await self._checkpoint(speaker, stream, chunks, last)
                for _ in range(500):  # the stream is behind (a replay, a slow model): do not read far ahead of it
                    if stream.queued_samples <= MAX_BACKLOG_S * SAMPLE_RATE or speaker.stopping:
                        break
                    await asyncio.sleep(0.02)
        finally:
            await sub.close()
        await stream.aclose()  # the utterance in progress is finished: its final caption goes out
        if speaker.ended or speaker.stopping:  # done, or handed over just after the audio handled here
            await self._publish_checkpoint(speaker, stream, next_seq, base + tap.samples, None, None,
                                           done=speaker.ended)

    async def _checkpoint(self, speaker: _Speaker, stream: SpeakerStream, chunks: deque[tuple[int, int]],
                          last: tuple[int, str | None]) -> tuple[int, str | None]:
        point, utterance_id = stream.resume_point
        while len(chunks) > 1 and chunks[1][1] <= point:
            chunks.popleft()
        seq, index = chunks[0]
        if (seq, utterance_id) == last or (utterance_id == last[1] and seq - last[0] < IDLE_CHECKPOINT_EVERY):
            return last
        start = point if utterance_id is not None else None
        await self._publish_checkpoint(speaker, stream, seq, index, utterance_id, start)
        return seq, utterance_id

    async def _publish_checkpoint(self, speaker: _Speaker, stream: SpeakerStream, seq: int, index: int,
                                  utterance_id: str | None, start: int | None, done: bool = False) -> None:
        try:
            await self.audio_bus.publish_to(checkpoint_channel(speaker.session), SpeechCheckpoint(
                room_id=speaker.room_id, session=speaker.session, resume_seq=seq, index=index,
                open_utterance=utterance_id, open_utterance_start=start, language=stream.language, done=done))
        except Exception as exc:
            logger.warning("could not checkpoint speaker %s (%s)", speaker.participant_id, exc,
                           exc_info=not connection_lost(exc))

    async def _announce(self, speaker: _Speaker) -> None:
        with contextlib.suppress(Exception):
            await self.bus.publish_to(SPEAKERS_CHANNEL, SpeakerOpened(
                room_id=speaker.room_id, session=speaker.session, participant_id=speaker.participant_id,
                speaker_name=speaker.speaker_name, language=speaker.language))

    async def close(self) -> None:
        """Stop claiming, finish every speaker's utterance in progress and hand the speakers over."""
        self._closed = True
        if self._consumer is not None:
            await self._consumer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        speakers = list(self._speakers.values())
        for speaker in speakers:
            speaker.stopping = True
            if speaker.sub is not None:
                await speaker.sub.close()  # wakes its reader
        await asyncio.gather(*(s.task for s in speakers if s.task is not None), return_exceptions=True)


async def assemble(runtime: Runtime) -> None:
    """``moot worker speech``: the speech model (loaded once, now) and the speakers this worker claims."""
    settings = runtime.settings
    resources = runtime.resources
    bus = await resources.bus()
    leases = await resources.leases()
    audio_bus = open_speech_audio_bus(settings, resources.name)
    await audio_bus.start()
    runtime.add("audio-bus", audio_bus)  # closed after the components added below
    service = WhisperCaptionService(settings, bus)
    await service.start()
    runtime.add("asr", service)
    worker = SpeechWorker(settings, bus, audio_bus, leases, resources.name, service)
    await worker.start()
    runtime.add("speech", worker)
