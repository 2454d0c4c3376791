"""``moot bench asr --streams N``: many speakers talking at once through the caption tier, as in production.

Each of N speakers plays a recording (``--wav``/``--text`` pairs, given once or repeated; speaker i gets pair
i mod count) in real time, in 20 ms chunks, in a room of its own (concurrent speakers are in different rooms: in a
room one person talks at a time). Their starts are spread over a few seconds so utterance ends do not all coincide.
Captions are read back from the bus, as a server node would.

Two placements: ``local`` (the caption service inside this process, as ``moot serve`` runs it: one decode worker) and
``remote`` (speech workers as separate processes on Redis, as the scaled deployment runs them). Reported:

- ``final_latency_p50_s`` / ``final_latency_p95_s`` / ``final_latency_max_s``: end of an utterance's speech (the
  time the last audio of the final caption was pushed) to the final caption arriving on the bus;
- ``wer``: word error rate of every speaker's final captions against its reference (all words of all speakers);
  ``offline_wer``: the same model transcribing each recording whole, in one call, with nothing else running;
- ``audio_seconds_per_second``: seconds of speech captioned per second of wall time (the N speakers' audio over the
  time from the first push to the last final caption): it falls below N when the tier cannot keep up;
- ``partials_dropped`` (partial decodes dropped under load, by design) and ``finals_lost`` (utterances that showed a
  partial caption but never got their final: must be 0);
- ``workers``: for each decode worker, the fraction of the run it spent decoding (``utilisation``) and its decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from server.bench.scoring import normalise_text, percentile, read_wav_16k, word_error_rate
from server.core.speech import SAMPLE_RATE, SpeakerAudioSink

logger = logging.getLogger(__name__)

CHUNK_S = 0.02
TAIL_S = 1.5  # silence after each recording, so its last utterance ends
SPREAD_S = 5.0  # speakers' starts are spread over this long
GOLDEN = 0.6180339887498949


@dataclass
class Recording:
    audio: npt.NDArray[np.float32]
    reference: str

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


class CaptionTier(Protocol):
    """Where the speakers' audio goes: the caption service in this process, or speech workers behind the bus."""

    async def open_speaker(self, room_id: str, participant_id: str, name: str) -> SpeakerAudioSink: ...

    async def offline(self, audio: npt.NDArray[np.float32]) -> str:
        """One whole-file transcription by the same model, for ``offline_wer``."""

    async def drained(self, timeout_s: float) -> None:
        """Wait until the captions of the audio already sent are all out (the speakers have been closed)."""

    def partials_dropped(self) -> int: ...

    def workers(self, wall_s: float) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


@dataclass
class _Speaker:
    index: int
    room_id: str
    recording: Recording
    start_delay_s: float
    started_at: float = 0.0  # epoch time of its first sample
    finals: list[tuple[float, Any]] = field(default_factory=list)  # (received at, CaptionFinal)


def start_delays(streams: int, spread_s: float = SPREAD_S) -> list[float]:
    """Speakers' start delays, spread evenly but not in order over ``spread_s`` (a low-discrepancy sequence), so
    utterance ends are spread out whatever ``streams`` is."""
    return [round(((i * GOLDEN) % 1.0) * spread_s, 3) if streams > 1 else 0.0 for i in range(streams)]


def finals_lost(partial_ids: set[tuple[str, str]], final_ids: set[tuple[str, str]]) -> int:
    """Utterances (room, utterance id) that showed a partial caption but never got a final one."""
    return len(partial_ids - final_ids)


def pooled_wer(pairs: Sequence[tuple[str, str]]) -> float:
    """Word error rate over all speakers together: total word errors over total reference words."""
    words = [len(normalise_text(reference)) for reference, _ in pairs]
    total = sum(words)
    if total == 0:
        return 0.0
    return sum(word_error_rate(reference, hypothesis) * n for (reference, hypothesis), n in zip(pairs, words,
                                                                                              strict=True)) / total


async def _play(speaker: _Speaker, sink: SpeakerAudioSink) -> None:
    """The speaker's microphone: the recording plus a tail of silence, paced in real time."""
    await asyncio.sleep(speaker.start_delay_s)  # when this speaker starts talking (pacing, not synchronisation)
    audio = np.concatenate([speaker.recording.audio, np.zeros(int(TAIL_S * SAMPLE_RATE), dtype=np.float32)])
    chunk = int(CHUNK_S * SAMPLE_RATE)
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    speaker.started_at = time.time()
    for i, n in enumerate(range(0, audio.size, chunk)):
        delay = wall0 + i * CHUNK_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the speaking rate
        sink.push(audio[n : n + chunk], speaker.started_at + n / SAMPLE_RATE)
    await sink.aclose()


async def run_load(tier: CaptionTier, bus: Any, recordings: Sequence[Recording], streams: int,
                   settle_s: float = 30.0) -> dict[str, Any]:
    """Play ``streams`` speakers through ``tier`` and measure what their rooms receive on ``bus``."""
    from server.core.events import CaptionFinal, CaptionPartial

    offline_texts = [await tier.offline(r.audio) for r in recordings]
    run_id = f"{int(time.time() * 1000) % 10**8:08d}"
    speakers = [_Speaker(i, f"bench-{run_id}-{i:03d}", recordings[i % len(recordings)], delay)
                for i, delay in enumerate(start_delays(streams))]
    by_room = {s.room_id: s for s in speakers}
    partial_ids: set[tuple[str, str]] = set()
    final_ids: set[tuple[str, str]] = set()
    last_final = 0.0
    subscription = await bus.subscribe("room:*", maxsize=1_000_000)
    changed = asyncio.Condition()

    async def collect() -> None:
        nonlocal last_final
        async for event in subscription:
            speaker = by_room.get(event.room_id)
            if speaker is None:
                continue
            if isinstance(event, CaptionPartial):
                partial_ids.add((event.room_id, event.utterance_id))
            elif isinstance(event, CaptionFinal):
                now = time.time()
                final_ids.add((event.room_id, event.utterance_id))
                speaker.finals.append((now, event))
                last_final = now
            async with changed:
                changed.notify_all()

    collector = asyncio.create_task(collect(), name="bench-asr-collect")
    sinks = [await tier.open_speaker(s.room_id, f"speaker-{s.index}", f"Speaker {s.index}") for s in speakers]
    began = time.time()
    await asyncio.gather(*(_play(s, sink) for s, sink in zip(speakers, sinks, strict=True)))
    await tier.drained(settle_s)  # remote workers may still be decoding utterances that never showed a partial
    # Finals of the last utterances may still be on their way (remote workers): wait until every utterance that
    # showed a partial has its final, or ``settle_s`` passes.
    async with changed:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait_for(lambda: not partial_ids - final_ids), settle_s)
    await subscription.close()
    await collector
    wall_s = (last_final or time.time()) - began

    latencies = [received - final.end for s in speakers for received, final in s.finals if final.text]
    pairs = [(s.recording.reference, " ".join(f.text for _, f in s.finals)) for s in speakers]
    offline_pairs = [(r.reference, text) for r, text in zip(recordings, offline_texts, strict=True)]
    audio_s = sum(s.recording.seconds + TAIL_S for s in speakers)
    return {
        "streams": streams,
        "final_latency_p50_s": _round(percentile(latencies, 0.5)),
        "final_latency_p95_s": _round(percentile(latencies, 0.95)),
        "final_latency_max_s": _round(max(latencies, default=None)),
        "wer": round(pooled_wer(pairs), 4),
        "offline_wer": round(pooled_wer(offline_pairs), 4),
        "audio_seconds_per_second": round(audio_s / wall_s, 3) if wall_s > 0 else None,
        "partials_dropped": tier.partials_dropped(),
        "finals": len(final_ids),
        "finals_lost": finals_lost(partial_ids, final_ids),
        "wall_s": round(wall_s, 2),
        "workers": tier.workers(wall_s),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class LocalTier:
    """The caption service in this process (``moot serve``): one model, one decode worker thread."""

    def __init__(self, settings: Any, bus: Any) -> None:
        from server.asr.service import WhisperCaptionService

        self.service = WhisperCaptionService(settings, bus)
        self._busy_before = 0.0
        self._completed_before = 0
        self._displaced_before = 0

    async def start(self) -> None:
        await self.service.start()

    async def offline(self, audio: npt.NDArray[np.float32]) -> str:
        result = await asyncio.to_thread(self.service.backend.transcribe, audio, self.service.settings.asr_language)
        scheduler = self.service.scheduler  # the live run is measured from here
        self._busy_before, self._completed_before = scheduler.busy_s, scheduler.completed
        self._displaced_before = scheduler.displaced
        return result.text

    async def open_speaker(self, room_id: str, participant_id: str, name: str) -> SpeakerAudioSink:
        return self.service.open_speaker(room_id, participant_id, name)

    async def drained(self, timeout_s: float) -> None:
        """Nothing to wait for: closing a speaker here publishes its last final caption."""

    def partials_dropped(self) -> int:
        return self.service.scheduler.displaced - self._displaced_before

    def workers(self, wall_s: float) -> list[dict[str, Any]]:
        scheduler = self.service.scheduler
        busy = scheduler.busy_s - self._busy_before
        return [{"worker": "in-process", "utilisation": round(busy / wall_s, 3) if wall_s > 0 else None,
                 "decodes": scheduler.completed - self._completed_before}]

    async def close(self) -> None:
        await self.service.close()


async def run_local(recordings: Sequence[Recording], streams: int, settings: Any) -> dict[str, Any]:
    from server.core.bus import InProcessBus

    bus = InProcessBus()
    tier = LocalTier(settings, bus)
    await tier.start()
    try:
        result = await run_load(tier, bus, recordings, streams)
    finally:
        await tier.close()
    return {"placement": "local", "model": settings.asr_model, **result}


class _OpusFeed:
    """A speaker's microphone as a server node hands it to the speech tier: the 16 kHz chunks ``_play`` pushes are
    encoded as a browser would send them (20 ms Opus packets) and given to the node's remote sink with the time of each
    packet's first sample."""

    def __init__(self, sink: Any) -> None:
        from server.bench.speech_wire import OpusStream

        self._sink = sink
        self._encoder = OpusStream(SAMPLE_RATE)
        self._t0: float | None = None
        self._packets = 0

    def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        if self._t0 is None:
            self._t0 = t
        for packet in self._encoder.encode(pcm):
            self._sink.push_opus(packet, self._t0 + self._packets * CHUNK_S)
            self._packets += 1

    async def aclose(self) -> None:
        await self._sink.aclose()


@dataclass
class _WorkerProcess:
    proc: Any  # subprocess.Popen[str]
    name: str
    health_port: int
    before: dict[str, float] = field(default_factory=dict)

    def asr(self) -> dict[str, Any]:
        import json
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=10) as reply:
            health = json.loads(reply.read())
        return dict(health["components"]["asr"])


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


class RemoteTier:
    """``--workers`` speech worker processes (``moot worker speech``) on Redis, and this process as the server node:
    the speakers' audio travels as Opus packets over the bus, their captions come back on their rooms' channels."""

    def __init__(self, settings: Any, workers: int) -> None:
        self.settings = settings
        self.count = workers
        self.processes: list[_WorkerProcess] = []
        self._parts: list[Any] = []
        self.bus: Any = None
        self.node: Any = None
        self.backend: Any = None

    def _spawn(self) -> _WorkerProcess:
        import os
        import re
        import subprocess
        import sys
        import threading

        s = self.settings
        command = [sys.executable, "-m", "server", "worker", "speech", "--redis-url", s.redis_address(),
                   "--health-port", "0", "--asr-backend", s.asr_backend, "--asr-model", s.asr_model,
                   "--data-dir", str(s.data_dir), "--log-level", "WARNING"]
        if s.asr_language:
            command += ["--asr-language", s.asr_language]
        env = {**os.environ, "MOOT_ASR_PROMPT_CHARS": str(s.asr_prompt_chars), "MOOT_REDIS_PREFIX": s.redis_prefix}
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:  # the worker says when it listens (its model loaded)
            seen.append(line)
            ready = re.search(r"speech worker (\S+): listening on the redis bus, health on port (\d+)", line)
            if ready:
                threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()  # keep the pipe flowing
                return _WorkerProcess(proc, ready.group(1), int(ready.group(2)))
        raise RuntimeError(f"a speech worker exited ({proc.wait()}) before listening:\n{''.join(seen[-20:])}")

    async def start(self) -> None:
        from server.asr.backends import create_backend
        from server.asr.remote import RemoteCaptionService, open_speech_audio_bus
        from server.core.bus import create_bus
        from server.core.leases import create_leases

        s = self.settings
        for _ in range(self.count):
            self.processes.append(await asyncio.to_thread(self._spawn))
        self.bus = create_bus("redis", s.redis_address(), source="server:bench", prefix=s.redis_prefix)
        audio_bus = open_speech_audio_bus(s, "server:bench")
        leases = create_leases("redis", s.redis_address(), prefix=s.redis_prefix)
        for part in (self.bus, audio_bus, leases):
            await part.start()
            self._parts.append(part)
        self.node = RemoteCaptionService(s, self.bus, audio_bus, leases, "server:bench")
        await self.node.start()
        self.backend = create_backend(s)  # the same model, for the offline transcription
        await asyncio.to_thread(self.backend.load)

    async def offline(self, audio: npt.NDArray[np.float32]) -> str:
        result = await asyncio.to_thread(self.backend.transcribe, audio, self.settings.asr_language)
        for worker in self.processes:  # the live run is measured from here
            worker.before = await asyncio.to_thread(worker.asr)
        return str(result.text)

    async def open_speaker(self, room_id: str, participant_id: str, name: str) -> SpeakerAudioSink:
        feed: SpeakerAudioSink = _OpusFeed(self.node.open_speaker(room_id, participant_id, name))
        return feed

    async def drained(self, timeout_s: float) -> None:
        if not await self.node.drained(timeout_s):
            logger.warning("the speech workers had not finished every speaker after %.0f s", timeout_s)

    def _deltas(self) -> list[tuple[_WorkerProcess, dict[str, Any]]]:
        out = []
        for worker in self.processes:
            now = worker.asr()
            counters = ("decodes", "busy_s", "partials_dropped")
            out.append((worker, {k: now[k] - worker.before.get(k, 0) for k in counters}))
        return out

    def partials_dropped(self) -> int:
        return int(sum(d["partials_dropped"] for _, d in self._deltas()))

    def workers(self, wall_s: float) -> list[dict[str, Any]]:
        return [{"worker": w.name, "utilisation": round(d["busy_s"] / wall_s, 3) if wall_s > 0 else None,
                 "decodes": int(d["decodes"])} for w, d in self._deltas()]

    async def close(self) -> None:
        import signal
        import subprocess

        if self.node is not None:
            await self.node.close()
        for part in reversed(self._parts):
            await part.close()
        for worker in self.processes:
            worker.proc.send_signal(signal.SIGTERM)
        for worker in self.processes:
            try:
                await asyncio.to_thread(worker.proc.wait, 30)
            except subprocess.TimeoutExpired:
                worker.proc.kill()


async def run_remote(recordings: Sequence[Recording], streams: int, settings: Any, workers: int) -> dict[str, Any]:
    tier = RemoteTier(settings, workers)
    try:
        await tier.start()
        result = await run_load(tier, tier.bus, recordings, streams)
    finally:
        await tier.close()
    return {"placement": "remote", "model": settings.asr_model, **result}


def main_streams(args: Any) -> int:
    """``moot bench asr --streams N``."""
    from server.bench import print_result
    from server.core.settings import Settings

    if args.streams < 1:
        raise SystemExit("--streams must be at least 1")
    recordings = [Recording(read_wav_16k(wav), text.read_text(encoding="utf-8"))
                  for wav, text in zip(args.wav, args.text, strict=True)]
    overrides: dict[str, Any] = {"asr_backend": "whisper", "asr_language": args.language}
    if args.model:
        overrides["asr_model"] = args.model
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if getattr(args, "prompt_chars", None) is not None:
        overrides["asr_prompt_chars"] = args.prompt_chars
    if getattr(args, "placement", "local") == "remote":
        if args.workers < 1:
            raise SystemExit("--workers must be at least 1")
        overrides.update(bus="redis", speech_placement="remote")
        if args.redis_url:
            overrides["redis_url"] = args.redis_url
        result = asyncio.run(run_remote(recordings, args.streams, Settings(**overrides), args.workers))
    else:
        result = asyncio.run(run_local(recordings, args.streams, Settings(**overrides)))
    print_result(result, args.json)
    return 0
