"""``moot worker speech`` as real processes on a private Redis: two workers, the one serving a speaker is killed
(SIGKILL) in the middle of an utterance, and the other takes the speaker over; the utterance's final caption arrives
once, from the survivor, under the id its partials had. The survivor serves /health and /metrics and stops cleanly on
SIGTERM. (The same in one process, faster: tests/test_speech_tier.py.)"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from server.asr.remote import RemoteCaptionService, checkpoint_channel, open_speech_audio_bus
from server.core.bus import Subscription
from server.core.bus.redis import RedisBus
from server.core.directory import SPEECH_SPEAKER
from server.core.events import CaptionFinal, CaptionPartial, SpeechCheckpoint
from server.core.leases import RedisLeases
from server.core.settings import Settings
from tests.private_redis import RedisProcess, started_redis
from tests.servers import drain
from tests.speech_tier import PACKET_S, next_matching, opus_speech, send

ROOM = "speechroom"
LEASE_TTL_S = 2.0
WHISPER_LEASE_TTL_S = 6.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = started_redis(tmp_path)
    yield server
    server.kill()


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    name: str
    health_port: int
    output: list[str]

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=10) as reply:
            return str(reply.read().decode())


def start_worker(tmp_path: Path, redis_url: str, extra: list[str] | None = None,
                 lease_ttl_s: float = LEASE_TTL_S) -> Worker:
    env = {**os.environ, "MOOT_DATA_DIR": str(tmp_path), "MOOT_SPEECH_LEASE_TTL_S": str(lease_ttl_s),
           "MOOT_ASR_PARTIAL_INTERVAL_S": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "server", "worker", "speech", "--redis-url", redis_url,
                             "--health-port", "0", "--asr-backend", "fake", *(extra or [])],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the worker to say it listens (its model loaded), rather than sleeping
        ready = re.search(r"speech worker (\S+): listening on the redis bus, health on port (\d+)", line)
        if ready:
            return Worker(proc, ready.group(1), int(ready.group(2)), drain(proc))
    pytest.fail(f"the speech worker exited ({proc.wait()}) before listening")


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisProcess) -> Iterator[list[Worker]]:
    started = [start_worker(tmp_path, redis_server.url) for _ in range(2)]
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


async def test_killed_speech_worker_is_taken_over_mid_utterance(workers: list[Worker],
                                                                redis_server: RedisProcess) -> None:
    settings = Settings(bus="redis", redis_url=SecretStr(redis_server.url), speech_lease_ttl_s=LEASE_TTL_S)
    bus = RedisBus(redis_server.url, source="server:test-node")  # stands in for a server node
    audio_bus = open_speech_audio_bus(settings, "server:test-node")
    leases = RedisLeases(redis_server.url)
    for part in (bus, audio_bus, leases):
        await part.start()
    node = RemoteCaptionService(settings, bus, audio_bus, leases, "server:test-node")
    try:
        room = await bus.subscribe(f"room:{ROOM}")
        sink = node.open_speaker(ROOM, "p1", "Ada")
        checkpoints = await audio_bus.subscribe(checkpoint_channel(sink.session))
        packets = opus_speech()
        middle = int(3.0 / PACKET_S)  # hello16.wav: one utterance, speech until 4.3 s
        send(sink, packets[:middle])
        partial = await next_matching(room, CaptionPartial)
        assert isinstance(partial, CaptionPartial)
        checkpoint = await next_matching(checkpoints, SpeechCheckpoint, open_utterance=partial.utterance_id)
        assert isinstance(checkpoint, SpeechCheckpoint)
        lease = await leases.get(SPEECH_SPEAKER, sink.session)
        assert lease is not None and lease.holder == partial.source  # the worker publishing is the one leasing
        serving = next(w for w in workers if w.name == lease.holder)
        survivor = next(w for w in workers if w is not serving)
        serving.proc.send_signal(signal.SIGKILL)
        serving.proc.wait(timeout=10)
        killed_at = time.monotonic()
        send(sink, packets, first=middle)  # the rest of the utterance, then silence
        await sink.aclose()
        final = await next_matching(room, CaptionFinal, timeout=60, utterance_id=partial.utterance_id)
        took = time.monotonic() - killed_at
        assert isinstance(final, CaptionFinal) and final.source == survivor.name and final.text.startswith("word")
        print(f"final caption {took:.2f} s after the kill (lease ttl {LEASE_TTL_S} s)")
        history = await bus.history(f"room:{ROOM}")
        finals = [e for e in history if isinstance(e, CaptionFinal)]
        assert [f.utterance_id for f in finals] == [partial.utterance_id]  # once, under the partial's id
        metrics = await asyncio.to_thread(survivor.get, "/metrics")
        assert "moot_asr_decode_seconds_count" in metrics and "moot_speech_takeovers_total 1.0" in metrics
        assert '"ok": true' in await asyncio.to_thread(survivor.get, "/health")
        survivor.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(survivor.proc.wait, 30) == 0, "".join(survivor.output)
    finally:
        await node.close()
        for part in (audio_bus, bus, leases):
            await part.close()


async def test_server_node_sends_speech_to_a_worker_process(tmp_path: Path, redis_server: RedisProcess) -> None:
    """``moot server``'s path end to end: a real peer speaks to the node (speech_placement=remote), the node forwards
    the Opus packets over Redis, a ``moot worker speech`` process transcribes them with real Whisper (tiny.en), and
    another participant reads the captions."""
    from server.core.events import CaptionFinal as Final
    from server.rtc.testmedia import WavAudioTrack
    from server.rtc.testpeer import TestPeer
    from tests.servers import running_server

    worker = start_worker(tmp_path, redis_server.url, ["--asr-backend", "whisper", "--asr-model", "tiny.en",
                                                       "--asr-language", "en"])
    settings = Settings(data_dir=tmp_path, bus="redis", redis_url=SecretStr(redis_server.url),
                        speech_placement="remote", rtc_loopback_candidates=True, facilitator_enabled=False)
    try:
        with running_server(settings) as server:
            room = server.ctx.storage.create_room("Speech tier", 4).id
            ada = TestPeer(server.ws(room), "Ada", audio=WavAudioTrack(Path(__file__).parent / "data" / "hello16.wav"))
            bo = TestPeer(server.ws(room), "Bo")
            try:
                await ada.join()
                await bo.join()

                def finals() -> list[Final]:
                    return [m for m in bo.messages if isinstance(m, Final) and m.text]

                await bo.wait_for(lambda m: "station" in " ".join(f.text.lower() for f in finals()), timeout=90)
                assert {(f.speaker_name, f.source) for f in finals()} == {("Ada", worker.name)}
                assert isinstance(server.ctx.captions, RemoteCaptionService)  # the node transcribed nothing itself
            finally:
                await ada.close()
                await bo.close()
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.proc.wait, 30) == 0, "".join(worker.output)


async def next_partial_starting_within(room: Subscription, from_s: float, to_s: float) -> CaptionPartial:
    """The next partial caption of an utterance that starts between ``from_s`` and ``to_s`` of the speech."""
    while True:
        partial = await next_matching(room, CaptionPartial, timeout=120)
        if from_s * 16_000 <= int(partial.utterance_id.rsplit("-", 1)[1]) <= to_s * 16_000:
            return partial


def speech_fixture(tmp_path: Path) -> Path:
    """The multi-sentence speech WAV (scripts/make_speech_fixture), made here when /tmp/moot-speech has none."""
    fixture = Path("/tmp/moot-speech/speech.wav")
    if not fixture.exists():
        subprocess.run([str(Path(__file__).parent.parent / "scripts" / "make_speech_fixture"), str(tmp_path / "fx")],
                       check=True, capture_output=True)
        fixture = tmp_path / "fx" / "speech.wav"
    return fixture


@pytest.mark.slow
async def test_whisper_worker_killed_mid_sentence_is_taken_over(tmp_path: Path, redis_server: RedisProcess) -> None:
    """The takeover with the real model (Whisper base) on the multi-sentence speech fixture: the worker serving the
    speaker is killed in the middle of the second sentence; the survivor's final caption of that sentence has the id
    of the partials shown and the sentence's words, and no caption is published twice."""
    fixture = speech_fixture(tmp_path)
    whisper = ["--asr-backend", "whisper", "--asr-model", "base", "--asr-language", "en"]
    # Two Whisper workers share the test machine's cores with everything else: leases long enough that a busy
    # moment does not pass for a dead worker (or node), which would end the utterance before the kill.
    started = [start_worker(tmp_path, redis_server.url, whisper, WHISPER_LEASE_TTL_S) for _ in range(2)]
    # The test hands the node audio faster than real time: let its queue hold all of it rather than drop the oldest.
    settings = Settings(bus="redis", redis_url=SecretStr(redis_server.url), speech_lease_ttl_s=WHISPER_LEASE_TTL_S,
                        audio_queue_seconds=120)
    bus = RedisBus(redis_server.url, source="server:test-node")
    audio_bus = open_speech_audio_bus(settings, "server:test-node")
    leases = RedisLeases(redis_server.url)
    for part in (bus, audio_bus, leases):
        await part.start()
    node = RemoteCaptionService(settings, bus, audio_bus, leases, "server:test-node")
    try:
        room = await bus.subscribe(f"room:{ROOM}")
        sink = node.open_speaker(ROOM, "p1", "Ada")
        checkpoints = await audio_bus.subscribe(checkpoint_channel(sink.session))
        packets = opus_speech(fixture, silence_after_s=0)
        # The fixture's second sentence ("I think the council should build more affordable homes near the train
        # station.") is spoken from 6.2 s to 10.6 s. Speak (at 0.4x the speaking rate: partial captions follow the
        # audio, and a loaded machine decodes slowly; the test is about the takeover, not speed) until its first
        # partial caption shows, and cut the audio there, in the middle of the sentence.
        second = asyncio.create_task(next_partial_starting_within(room, 5.0, 9.0))
        cut, sentence_end, end = 0, int(10.0 / PACKET_S), int(26.0 / PACKET_S)  # then on to the fourth sentence
        while not second.done():
            assert cut < sentence_end, "no partial caption of the second sentence while it was spoken"
            send(sink, packets[:cut + 5], first=cut)
            cut += 5
            await asyncio.wait({second}, timeout=5 * PACKET_S / 0.4)  # the pace, or the partial
        partial = second.result()
        await next_matching(checkpoints, SpeechCheckpoint, timeout=60, open_utterance=partial.utterance_id)
        lease = await leases.get(SPEECH_SPEAKER, sink.session)
        assert lease is not None
        serving = next(w for w in started if w.name == lease.holder)
        survivor = next(w for w in started if w is not serving)
        serving.proc.send_signal(signal.SIGKILL)
        serving.proc.wait(timeout=10)
        killed_at = time.monotonic()
        send(sink, packets[:end], first=cut)
        await sink.aclose()
        final = await next_matching(room, CaptionFinal, timeout=180, utterance_id=partial.utterance_id)
        print(f"whisper: final caption {time.monotonic() - killed_at:.2f} s after the kill: {final.text!r}")
        assert final.source == survivor.name
        assert "council" in final.text.lower() and "station" in final.text.lower()
        last = await next_matching(room, CaptionFinal, timeout=180, source=survivor.name)
        while "children" not in last.text.lower():  # the fourth sentence's final: everything before it is out
            last = await next_matching(room, CaptionFinal, timeout=180, source=survivor.name)
        finals = [e.utterance_id for e in await bus.history(f"room:{ROOM}") if isinstance(e, CaptionFinal)]
        assert len(finals) == len(set(finals)) and partial.utterance_id in finals
    except BaseException:
        for worker in started:  # what the workers said, to explain the failure
            print(f"--- speech worker {worker.name} ---\n{''.join(worker.output)}")
        raise
    finally:
        await node.close()
        for part in (audio_bus, bus, leases):
            await part.close()
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(timeout=10)
