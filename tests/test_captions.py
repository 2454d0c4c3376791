"""The caption service end to end on real speech: scripted fake ASR for the timing logic, real faster-whisper for
recognition (tiny.en for speed, and the default multilingual base once)."""

from __future__ import annotations

import asyncio
import itertools
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from server.asr.backends import ScriptedBackend
from server.asr.service import WhisperCaptionService
from server.bus import InProcessBus, Subscription
from server.events import BusEvent, CaptionFinal, CaptionPartial, VoiceActivity
from server.settings import Settings

DATA = Path(__file__).parent / "data"
SCRIPT = [("Hello", 0.30, 0.55), ("everyone.", 0.55, 1.10), ("I", 1.60, 1.70), ("think", 1.70, 1.95),
          ("we", 1.95, 2.05), ("should", 2.05, 2.30), ("build", 2.30, 2.55), ("more", 2.55, 2.75),
          ("homes", 2.75, 3.10), ("near", 3.10, 3.30), ("the", 3.30, 3.40), ("station.", 3.40, 4.00)]


def speech() -> npt.NDArray[np.float32]:
    with wave.open(str(DATA / "hello16.wav"), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


async def play(service: WhisperCaptionService, audio: npt.NDArray[np.float32], t0: float, speed: float) -> None:
    """Push audio as 20 ms chunks paced like a microphone ``speed`` times faster than real time (the stream's own
    timestamps stay real-time), then close the speaker, finishing its last utterance."""
    stream = service.open_speaker("room1", "p1", "Ada")
    for i in range(0, audio.size, 320):
        stream.push(audio[i : i + 320], t0 + i / 16000)
        await asyncio.sleep(0.02 / speed)
    await stream.aclose()


async def collect(sub: Subscription, until_finals: int, timeout: float) -> list[BusEvent]:
    events: list[BusEvent] = []
    deadline = time.monotonic() + timeout
    while sum(isinstance(e, CaptionFinal) for e in events) < until_finals:
        events.append(await sub.get(timeout=max(0.1, deadline - time.monotonic())))
    return events


@pytest.fixture
async def bus() -> AsyncIterator[InProcessBus]:
    b = InProcessBus()
    yield b
    await b.close()


def check_invariants(events: list[BusEvent], t0: float) -> list[CaptionFinal]:
    finals = [e for e in events if isinstance(e, CaptionFinal)]
    for final in finals:
        partials = [e for e in events if isinstance(e, CaptionPartial) and e.utterance_id == final.utterance_id]
        committed = [p.committed for p in partials]
        for before, after in itertools.pairwise(committed):
            assert after.startswith(before), f"committed text was rewritten: {before!r} -> {after!r}"
        if committed:
            assert final.text.startswith(committed[-1])
        assert final.participant_id == "p1" and final.speaker_name == "Ada"
        assert t0 <= final.start < final.end
        for word in final.words:
            assert final.start - 0.5 <= word.start <= word.end <= final.end + 0.5
    activity = [e.speaking for e in events if isinstance(e, VoiceActivity)]
    assert activity and activity[0] is True and activity[-1] is False
    return finals


async def transcribe_speech(service: WhisperCaptionService, bus: InProcessBus, speed: float,
                            timeout: float) -> tuple[list[BusEvent], list[CaptionFinal]]:
    """Start the service, play the speech file then 1.5 s of silence, and check the invariants of what came out."""
    await service.start()
    sub = await bus.subscribe("room:*")
    t0 = 1_000_000.0
    await play(service, np.concatenate([speech(), np.zeros(24000, np.float32)]), t0, speed=speed)
    events = await collect(sub, until_finals=1, timeout=timeout)
    await service.close()
    return events, check_invariants(events, t0)


async def test_scripted_backend_timing_and_invariants(bus: InProcessBus, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, asr_backend="fake", asr_partial_interval_s=0.5, asr_min_silence_s=0.8)
    service = WhisperCaptionService(settings, bus, backend=ScriptedBackend(script=SCRIPT))
    events, finals = await transcribe_speech(service, bus, speed=10, timeout=10)
    assert len(finals) == 1
    assert finals[0].text == "Hello everyone. I think we should build more homes near the station."
    assert any(isinstance(e, CaptionPartial) for e in events)


async def test_bounded_input_drops_oldest(bus: InProcessBus, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, asr_backend="fake", audio_queue_seconds=1.0)
    service = WhisperCaptionService(settings, bus, backend=ScriptedBackend())
    stream = service.open_speaker("r", "p", "Ada")
    chunk = np.zeros(320, np.float32)
    for i in range(500):  # 10 s pushed before the stream's task gets to run
        stream.push(chunk, float(i) * 0.02)
    assert stream.dropped_samples >= 8 * 16000
    await stream.aclose()
    await service.close()


@pytest.mark.slow
@pytest.mark.parametrize("model, expected", [("tiny.en", ["hello", "everyone", "station"]), ("base", ["station"])])
async def test_real_whisper_captions(bus: InProcessBus, tmp_path: Path, model: str, expected: list[str]) -> None:
    service = WhisperCaptionService(Settings(data_dir=tmp_path, asr_model=model), bus)
    _, finals = await transcribe_speech(service, bus, speed=2, timeout=60)
    text = " ".join(f.text for f in finals).lower()
    for word in expected:
        assert word in text
    assert finals[-1].language == "en"
