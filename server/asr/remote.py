"""Speech placement ``remote``: a server node sends speakers' audio to the speech tier (``moot worker speech``) over
the bus instead of transcribing it itself.

``RemoteCaptionService`` is the server node's ``CaptionService``. Its sinks take the participant's Opus packets as they
arrive (``EncodedAudioSink``: the media side then never decodes audio, its main CPU cost per speaker) and publish them,
``speech_audio_batch_ms`` at a time (five 20 ms packets by default), as ``speech.audio`` events on the speaker's own
channel ``speech.audio.<session>``, each packet with the wall-clock time of its first sample so that the worker
rebuilds the same timeline (pauses and lost packets included). A speaker's audio session is announced on the channel
``speech`` (a ``speech.speaker`` event, read by the workers' consumer group) and kept alive by a ``speech-source``
lease that the node renews until the session is over; workers scan those leases to take over speakers whose worker
died. When the participant leaves, an ``end`` event closes the session; the node keeps the lease until the worker's
``done`` checkpoint says the last caption is out (at most ``LINGER_TTLS`` lease times), so that a worker dying after the
participant left is still replaced.

The audio channels live on their own bus object (``open_speech_audio_bus``): each keeps only the last
``speech_audio_retention_s`` of audio (enough to replay an unfinished utterance after a takeover), expires soon after
the speaker leaves, and writes no consumer-group log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging

import numpy as np
import numpy.typing as npt

from server.core.bus import Bus, create_bus
from server.core.directory import SPEECH_SOURCE
from server.core.errors import connection_lost
from server.core.events import SpeakerAudio, SpeakerOpened, SpeechCheckpoint
from server.core.ids import new_id
from server.core.leases import Lease, LeaseKeeper, Leases
from server.core.settings import Settings

logger = logging.getLogger(__name__)

SPEAKERS_CHANNEL = "speech"  # speech.speaker announcements, read by the speech workers' consumer group
SPEAKERS_GROUP = "speech"
PACKET_S = 0.02  # one Opus packet as browsers send it
LINGER_TTLS = 6  # lease times the source lease outlives its speaker, waiting for the session's done checkpoint


def audio_channel(session: str) -> str:
    return f"speech.audio.{session}"


def checkpoint_channel(session: str) -> str:
    return f"speech.ckpt.{session}"


def open_speech_audio_bus(settings: Settings, source: str) -> Bus:
    """The bus object for speakers' audio and checkpoints (start it before use, close it after)."""
    events = max(100, int(settings.speech_audio_retention_s * 1000 / settings.speech_audio_batch_ms))
    return create_bus(settings.bus, settings.redis_address(), source=source, prefix=settings.redis_prefix,
                      history=events, log=0, ttl_s=max(600.0, 5 * settings.speech_audio_retention_s))


class RemoteSpeakerSink:
    """One participant's audio on its way to the speech tier. ``push_opus`` never blocks: batches wait in a queue
    bounded by ``audio_queue_seconds`` (the oldest is dropped and counted while the bus is unreachable)."""

    def __init__(self, service: RemoteCaptionService, room_id: str, participant_id: str, speaker_name: str,
                 language: str | None = None) -> None:
        self._service = service
        s = service.settings
        self.room_id, self.participant_id, self.speaker_name = room_id, participant_id, speaker_name
        self.language = language  # the speech worker recognises the speaker in it (sent with every batch of audio)
        self.session = new_id(12)
        self.channel = audio_channel(self.session)
        self._per_batch = max(1, round(s.speech_audio_batch_ms / 1000 / PACKET_S))
        self._max_batches = max(1, int(s.audio_queue_seconds / (self._per_batch * PACKET_S)))
        self._times: list[float] = []
        self._packets: list[str] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._outbox: asyncio.Queue[SpeakerAudio | None] = asyncio.Queue()
        self.closing = False
        self.dropped_batches = 0
        self.sent_batches = 0
        self.sent_bytes = 0  # JSON bytes of the audio events published (what travels per speaker)
        self._task = asyncio.create_task(self._run(), name=f"speech-out-{participant_id}")

    # Input -------------------------------------------------------------------------------------------------------
    def set_language(self, language: str) -> None:
        """The participant changed language: their next batches of audio carry it, so the speech worker serving
        them recognises their next utterances in it (and one that takes them over starts in it)."""
        self.language = language

    def push_opus(self, packet: bytes, t: float) -> None:
        if self.closing:
            return
        self._times.append(round(t, 4))
        self._packets.append(base64.b64encode(packet).decode("ascii"))
        if len(self._packets) >= self._per_batch:
            self._flush()
        elif self._flush_timer is None:  # a pause in the packets (a muted microphone) does not hold audio back
            self._flush_timer = asyncio.get_running_loop().call_later(self._per_batch * PACKET_S * 1.5, self._flush)

    def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        """Decoded audio is not sent to the speech tier (the media side forwards packets to ``push_opus``)."""
        if pcm.size and not self.closing:
            logger.warning("remote speech sink for %s got decoded audio: ignored", self.participant_id)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._packets:
            return
        batch = SpeakerAudio(room_id=self.room_id, session=self.session, t=self._times, packets=self._packets,
                             language=self.language)
        self._times, self._packets = [], []
        if self._outbox.qsize() >= self._max_batches:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._outbox.get_nowait()
                self.dropped_batches += 1
                if self.dropped_batches in (1, 100) or self.dropped_batches % 1000 == 0:
                    logger.warning("audio of %s for the speech tier is dropped: the bus is not keeping up (%d)",
                                   self.participant_id, self.dropped_batches)
        self._outbox.put_nowait(batch)

    async def aclose(self) -> None:
        """The participant left: send what is buffered and the end of the session."""
        if self.closing:
            await self._task
            return
        self._flush()
        self.closing = True
        self._outbox.put_nowait(None)
        await self._task

    # Output ------------------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        service = self._service
        lease: Lease | None = None
        try:
            lease = await service.keep_source(self)
            await self._publish(SPEAKERS_CHANNEL, SpeakerOpened(
                room_id=self.room_id, session=self.session, participant_id=self.participant_id,
                speaker_name=self.speaker_name, language=self.language))
            while (batch := await self._outbox.get()) is not None:
                published = await self._publish(self.channel, batch, service.audio_bus)
                if published:
                    self.sent_batches += 1
            await self._publish(self.channel, SpeakerAudio(room_id=self.room_id, session=self.session, end=True),
                                service.audio_bus)
        finally:
            if lease is not None:
                service.drop_source_when_done(lease)

    async def _publish(self, channel: str, event: SpeakerOpened | SpeakerAudio, bus: Bus | None = None) -> bool:
        try:
            published = await (bus or self._service.bus).publish_to(channel, event)
        except Exception as exc:
            logger.warning("could not send %s of %s to the speech tier (%s)", event.type, self.participant_id, exc,
                           exc_info=not connection_lost(exc))
            return False
        if isinstance(published, SpeakerAudio):
            self.sent_bytes += len(published.model_dump_json())
        return True


class RemoteCaptionService:
    """Implements ``CaptionService`` by sending speakers' audio to speech workers (see the module docstring). The
    captions come back on the room's channel from the worker, as they do from the in-process service."""

    def __init__(self, settings: Settings, bus: Bus, audio_bus: Bus, leases: Leases, holder: str) -> None:
        self.settings = settings
        self.bus = bus
        self.audio_bus = audio_bus
        self._leases = leases
        self._holder = holder
        self._keeper = LeaseKeeper(leases)
        self._sinks: list[RemoteSpeakerSink] = []
        self._lingering: dict[asyncio.Task[None], Lease] = {}

    async def start(self) -> None:
        logger.info("speakers' audio goes to the speech tier (speech workers on the %s bus)", self.settings.bus)

    def open_speaker(self, room_id: str, participant_id: str, speaker_name: str,
                     language: str | None = None) -> RemoteSpeakerSink:
        self._sinks = [s for s in self._sinks if not s.closing]
        sink = RemoteSpeakerSink(self, room_id, participant_id, speaker_name, language)
        self._sinks.append(sink)
        return sink

    async def keep_source(self, sink: RemoteSpeakerSink) -> Lease | None:
        """Take and keep the speaker's ``speech-source`` lease (workers find speakers to take over by it)."""
        info = {"room_id": sink.room_id, "participant_id": sink.participant_id, "speaker_name": sink.speaker_name,
                "language": sink.language or ""}
        try:
            lease = await self._leases.acquire(SPEECH_SOURCE, sink.session, self._holder,
                                               self.settings.speech_lease_ttl_s, info)
        except Exception as exc:
            logger.warning("could not register speaker %s with the speech tier (%s)", sink.participant_id, exc,
                           exc_info=not connection_lost(exc))
            return None
        if lease is not None:
            self._keeper.keep(lease)
        return lease

    def drop_source_when_done(self, lease: Lease) -> None:
        """Give the speaker's lease up once the speech tier says the session is done (in the background)."""
        task = asyncio.create_task(self._linger(lease), name=f"speech-linger-{lease.key}")
        self._lingering[task] = lease
        task.add_done_callback(lambda t: self._lingering.pop(t, None))

    async def _linger(self, lease: Lease) -> None:
        try:
            async with asyncio.timeout(LINGER_TTLS * self.settings.speech_lease_ttl_s):
                sub = await self.audio_bus.subscribe(checkpoint_channel(lease.key), after_seq=0)
                async with sub:
                    async for event in sub:
                        if isinstance(event, SpeechCheckpoint) and event.done:
                            break
        except TimeoutError:
            logger.warning("the speech tier did not confirm the end of a speaker's session in time")
        except Exception as exc:
            logger.warning("waiting for the end of a speaker's session failed (%s)", exc,
                           exc_info=not connection_lost(exc))
        finally:
            await self._keeper.drop(lease)

    async def drained(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until the speech tier has confirmed the end of every closed speaker's session,
        i.e. their last final captions are out; False if some are still pending."""
        pending = list(self._lingering)
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        return not still

    async def close(self) -> None:
        sinks, self._sinks = self._sinks, []
        await asyncio.gather(*(s.aclose() for s in sinks))
        lingering, self._lingering = dict(self._lingering), {}
        for task in lingering:
            task.cancel()
        await asyncio.gather(*lingering, return_exceptions=True)
