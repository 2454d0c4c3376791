"""The speech tier in one process: a server node's ``RemoteCaptionService`` sends a speaker's Opus packets over the bus,
a ``SpeechWorker`` transcribes them (fake recogniser, real voice-activity detection) and the captions come back on
the room's channel; a worker that stops dead mid-utterance is replaced by another, which replays the unfinished
utterance from the checkpoint and publishes its final caption once, under the same utterance id.
(Real processes, a real kill and Redis: tests/test_speech_worker_process.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.asr.remote import RemoteCaptionService, checkpoint_channel
from server.asr.service import WhisperCaptionService
from server.core.bus import InProcessBus
from server.core.directory import SPEECH_SPEAKER
from server.core.events import CaptionFinal, CaptionPartial, SpeakerAudio, SpeechCheckpoint, VoiceActivity
from server.core.leases import InMemoryLeases
from server.core.settings import Settings
from server.workers.speech import SpeechWorker
from tests.speech_tier import PACKET_S, T0, next_matching, opus_speech, send

ROOM = "room1"


@dataclass
class Tier:
    settings: Settings
    bus: InProcessBus
    audio_bus: InProcessBus
    leases: InMemoryLeases
    node: RemoteCaptionService

    async def worker(self, name: str) -> SpeechWorker:
        service = WhisperCaptionService(self.settings, self.bus)
        await service.start()
        worker = SpeechWorker(self.settings, self.bus, self.audio_bus, self.leases, name, service)
        await worker.start()
        return worker


@pytest.fixture
async def tier() -> AsyncIterator[Tier]:
    settings = Settings(asr_backend="fake", speech_lease_ttl_s=0.6, asr_partial_interval_s=0.3)
    bus, audio_bus, leases = InProcessBus(), InProcessBus(log=0), InMemoryLeases()
    node = RemoteCaptionService(settings, bus, audio_bus, leases, "node-1")
    await node.start()
    yield Tier(settings, bus, audio_bus, leases, node)
    await node.close()


async def crash(worker: SpeechWorker) -> None:
    """The worker stops dead: no more renewals, nothing finished, nothing handed over (as after SIGKILL)."""
    worker._closed = True
    keeper_task = worker._keeper._task
    tasks = [*worker._tasks, *(s.task for s in worker._speakers.values() if s.task is not None)]
    tasks += [keeper_task] if keeper_task is not None else []
    for speaker in worker._speakers.values():
        if speaker.stream is not None:
            speaker.stream.abort()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    worker._speakers.clear()


async def test_captions_come_back_from_the_speech_worker(tier: Tier) -> None:
    worker = await tier.worker("worker-a")
    room = await tier.bus.subscribe(f"room:{ROOM}")
    sink = tier.node.open_speaker(ROOM, "p1", "Ada")
    audio = await tier.audio_bus.subscribe(sink.channel)
    packets = opus_speech()
    send(sink, packets)
    await sink.aclose()
    started = await next_matching(room, VoiceActivity, speaking=True)
    assert isinstance(started, VoiceActivity) and T0 <= started.t < T0 + 0.5  # the server's times, kept
    final = await next_matching(room, CaptionFinal)
    assert isinstance(final, CaptionFinal) and final.text.startswith("word")
    assert final.utterance_id.startswith(f"{sink.session}-") and final.participant_id == "p1"
    assert final.speaker_name == "Ada" and T0 <= final.start < final.end <= T0 + len(packets) * PACKET_S
    # About 100 ms of audio per event, and an end marker when the speaker leaves.
    batches: list[SpeakerAudio] = []
    while not batches or not batches[-1].end:
        event = await audio.get(timeout=10)
        assert isinstance(event, SpeakerAudio)
        batches.append(event)
    assert {len(b.packets) for b in batches[:-2]} == {5}
    assert sum(len(b.packets) for b in batches) == len(packets)
    await worker.close()
    await worker.service.close()


async def test_a_language_change_reaches_the_worker_serving_the_speaker(tier: Tier) -> None:
    """The participant changes language mid-call: the worker already serving them recognises their next utterance
    in it (the placeholder recogniser labels a caption with the language it was asked for)."""
    worker = await tier.worker("worker-a")
    room = await tier.bus.subscribe(f"room:{ROOM}")
    sink = tier.node.open_speaker(ROOM, "p1", "Ada", "en")
    packets = opus_speech()
    send(sink, packets)
    first = await next_matching(room, CaptionFinal)
    assert first.language == "en"
    sink.set_language("de-AT")
    send(sink, packets, t0=T0 + len(packets) * PACKET_S)
    second = await next_matching(room, CaptionFinal)
    assert second.language == "de" and second.utterance_id != first.utterance_id
    await sink.aclose()
    await worker.close()
    await worker.service.close()


async def test_another_worker_finishes_the_utterance_of_one_that_died(tier: Tier) -> None:
    first = await tier.worker("worker-a")
    room = await tier.bus.subscribe(f"room:{ROOM}")
    sink = tier.node.open_speaker(ROOM, "p1", "Ada")
    checkpoints = await tier.audio_bus.subscribe(checkpoint_channel(sink.session))
    packets = opus_speech()
    middle = int(3.0 / PACKET_S)  # hello16.wav: speech until 4.3 s (one utterance: its pause is short)
    send(sink, packets[:middle])
    # A partial of the utterance, and the checkpoint that reopens it elsewhere.
    partial = await next_matching(room, CaptionPartial)
    assert isinstance(partial, CaptionPartial)
    checkpoint = await next_matching(checkpoints, SpeechCheckpoint, open_utterance=partial.utterance_id)
    assert isinstance(checkpoint, SpeechCheckpoint) and checkpoint.open_utterance_start is not None
    assert checkpoint.index <= checkpoint.open_utterance_start
    await crash(first)
    second = await tier.worker("worker-b")
    send(sink, packets, first=middle)
    await sink.aclose()
    final = await next_matching(room, CaptionFinal, utterance_id=partial.utterance_id)
    assert isinstance(final, CaptionFinal) and final.text.startswith("word")
    lease = await tier.leases.get(SPEECH_SPEAKER, sink.session)
    assert lease is None or lease.holder == "worker-b"
    await second.close()
    await second.service.close()
    history = await tier.bus.history(f"room:{ROOM}")
    finals = [e.utterance_id for e in history if isinstance(e, CaptionFinal)]
    assert finals.count(partial.utterance_id) == 1 and len(finals) == len(set(finals))


async def test_a_stopping_worker_finishes_its_utterance_and_hands_the_speaker_over(tier: Tier) -> None:
    first = await tier.worker("worker-a")
    second = await tier.worker("worker-b")
    room = await tier.bus.subscribe(f"room:{ROOM}")
    sink = tier.node.open_speaker(ROOM, "p1", "Ada")
    packets = opus_speech()
    middle = int(3.0 / PACKET_S)
    send(sink, packets[:middle])
    partial = await next_matching(room, CaptionPartial)
    lease = await tier.leases.get(SPEECH_SPEAKER, sink.session)
    assert lease is not None
    serving, other = (first, second) if lease.holder == "worker-a" else (second, first)
    await serving.close()  # SIGTERM: the utterance so far gets its final caption, then the speaker moves
    cut = await next_matching(room, CaptionFinal, utterance_id=partial.utterance_id)
    assert isinstance(cut, CaptionFinal) and cut.text.startswith("word")
    send(sink, packets, first=middle)
    await sink.aclose()
    rest = await next_matching(room, CaptionFinal)
    assert isinstance(rest, CaptionFinal) and rest.utterance_id != partial.utterance_id
    assert int(rest.utterance_id.rsplit("-", 1)[1]) >= int(partial.utterance_id.rsplit("-", 1)[1])
    assert rest.start >= cut.end - 0.05  # the new worker went on after the audio the first one had captioned
    await other.close()
    for worker in (first, second):
        await worker.service.close()


def test_compose_runs_speech_workers_and_nodes_send_them_audio() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
    services = compose["services"]
    gpu, cpu = services["speech"], services["speech-cpu"]
    for service, profile in ((gpu, "gpu"), (cpu, "cpu")):
        assert service["command"][:3] == ["moot", "worker", "speech"] and "--health-port" in service["command"]
        assert service["profiles"] == [profile] and "healthcheck" in service
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["MOOT_BUS"] == "redis"
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["environment"]["MOOT_ASR_DEVICE"] == "cuda" and cpu["environment"]["MOOT_ASR_DEVICE"] == "cpu"
    assert services["moot"]["environment"]["MOOT_SPEECH_PLACEMENT"] == "remote"  # the node processes
