"""The caption service with real faster-whisper on real and synthetic speech (tiny.en for speed, the default
multilingual base once).

Audio goes in 20 ms chunks stamped with stream times. ``stepped`` pushes it half a second at a time and waits (with a
timeout) until the decode worker is idle, so every partial decode that falls due runs before more audio arrives, however
fast or loaded the machine is; ``push`` bursts everything at once (the worker then falls behind, as on an overloaded
server). Tests synchronise only on the worker and on bus events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from server.asr.policy import normalise
from server.asr.service import SpeakerStream, WhisperCaptionService
from server.bench.scoring import word_error_rate
from server.core.bus import InProcessBus
from server.core.events import BusEvent, CaptionFinal, CaptionPartial, VoiceActivity
from server.core.settings import Settings
from tests.test_captions import ROOM, T0, Recorder, check_captions, push

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
RATE = 16_000
HELLO_TEXT = "Hello everyone. I think we should build more homes near the station."
ARCTIC_TEXT = (DATA / "arctic_a0007.txt").read_text().strip()  # real recorded speech (CMU ARCTIC)
ARCTIC_SPEECH_END_S = 3.44  # the recording is 4.0 s; its speech energy ends here (then room tone)


def load(name: str) -> npt.NDArray[np.float32]:
    with wave.open(str(DATA / name), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, RATE, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(int(seconds * RATE), np.float32)


@pytest.fixture
async def recorder(bus: InProcessBus) -> Recorder:
    return Recorder(bus, await bus.subscribe("room:*"))


async def stepped(service: WhisperCaptionService, stream: SpeakerStream, audio: npt.NDArray[np.float32],
                  step_s: float = 0.5) -> None:
    step = int(step_s * RATE)
    for i in range(0, audio.size, step):
        await push(stream, audio[i : i + step], offset=i)
        await asyncio.wait_for(service.scheduler.idle(), timeout=60)


def words_of(text: str) -> list[str]:
    return [w for w in (normalise(x) for x in text.split()) if w]


def check_real_captions(events: list[BusEvent], expected: list[str], max_wer: float) -> list[CaptionFinal]:
    """Service invariants (``check_captions``), then: one final per spoken utterance, close to the expected text,
    with partials first whose committed text grows into the final, and times that only go forward."""
    finals = check_captions(events)
    assert [f.language for f in finals] == ["en"] * len(finals)
    assert len(finals) == len(expected), [f.text for f in finals]
    for final, reference in zip(finals, expected, strict=True):
        assert word_error_rate(reference, final.text) <= max_wer, (reference, final.text)
        partials = [e for e in events if isinstance(e, CaptionPartial) and e.utterance_id == final.utterance_id]
        assert len(partials) >= 2, "partials while the utterance is spoken"
        assert partials[-1].committed, "two hypotheses agreed on some words before the end"
        assert words_of(final.text)[: len(words_of(partials[-1].committed))] == words_of(partials[-1].committed)
        starts = [w.start for w in final.words]
        assert starts == sorted(starts) and all(w.start <= w.end for w in final.words)
        assert final.start <= final.words[0].start + 0.5 and final.words[-1].end <= final.end + 0.5
    for before, after in itertools.pairwise(finals):
        assert before.end < after.start
    return finals


async def test_tiny_en_real_and_synthetic_speech(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """Two utterances (espeak, then a real recording) from one speaker, language detected (tiny.en: English)."""
    hello, arctic = load("hello16.wav"), load("arctic_a0007.wav")
    gap = 1.2
    audio = np.concatenate([hello, silence(gap), arctic, silence(1.5)])
    service = WhisperCaptionService(Settings(asr_model="tiny.en", data_dir=tmp_path, asr_partial_interval_s=0.5), bus)
    await service.start()
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await stepped(service, stream, audio)
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_real_captions(events, [HELLO_TEXT, ARCTIC_TEXT], max_wer=0.25)
    for word in ("hello", "everyone", "station", "always", "superlative", "degree"):
        assert word in " ".join(words_of(" ".join(f.text for f in finals))), word
    second = (hello.size / RATE) + gap
    assert finals[0].start == pytest.approx(T0 + 0.1, abs=0.3)
    assert finals[1].start == pytest.approx(T0 + second + 0.1, abs=0.4)
    assert finals[1].end == pytest.approx(T0 + second + ARCTIC_SPEECH_END_S, abs=0.3)


async def test_tiny_en_with_the_worker_behind(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """All audio at once: partial decodes fall due faster than they run (at most one pending per speaker), and the
    final caption is still the whole sentence."""
    service = WhisperCaptionService(Settings(asr_model="tiny.en", data_dir=tmp_path), bus)
    await service.start()
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, np.concatenate([load("hello16.wav"), silence(1.5)]))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert len(finals) == 1
    assert word_error_rate(HELLO_TEXT, finals[0].text) <= 0.25, finals[0].text
    # Queued rather than skipped, a partial would fall due with every 20 ms chunk of speech (over a hundred). With
    # at most one pending per speaker, even instant decodes run no more than 10: a partial per second of audio (6), a
    # speculative final per pause in the sentence, and the final. A slower machine runs fewer.
    assert service.scheduler.completed <= 10, "stale partials were skipped, not queued"


async def test_tiny_en_two_speakers_share_the_worker(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    service = WhisperCaptionService(Settings(asr_model="tiny.en", data_dir=tmp_path), bus)
    await service.start()
    ada, bob = service.open_speaker(ROOM, "p1", "Ada"), service.open_speaker(ROOM, "p2", "Bob")
    a_audio = np.concatenate([load("hello16.wav"), silence(1.5)])
    b_audio = np.concatenate([silence(0.5), load("arctic_a0007.wav"), silence(1.8)])
    step = RATE // 2
    for i in range(0, a_audio.size, step):
        await push(ada, a_audio[i : i + step], offset=i)
        await push(bob, b_audio[i : i + step], T0 + 50, offset=i)
        await asyncio.wait_for(service.scheduler.idle(), timeout=60)
    await ada.aclose()
    await bob.aclose()
    events = await recorder.drain()
    await service.close()
    ada_finals = check_captions(events, "p1", "Ada")
    bob_finals = check_captions(events, "p2", "Bob", T0 + 50)
    assert len(ada_finals) == len(bob_finals) == 1
    assert word_error_rate(HELLO_TEXT, ada_finals[0].text) <= 0.25
    assert word_error_rate(ARCTIC_TEXT, bob_finals[0].text) <= 0.25
    assert bob_finals[0].start == pytest.approx(T0 + 50.6, abs=0.4)


async def test_non_speech_gives_no_caption(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """Noise, a tone and clicks never reach Whisper: the voice-activity detector never starts an utterance. (Reversed
    speech is not in this list: it sounds like speech to the detector, and tiny.en invents plausible sentences for it
    with confidence near real speech's, so no rule here can promise to drop it.)"""
    rng = np.random.default_rng(7)
    t = np.arange(2 * RATE) / RATE
    clicks = np.concatenate([np.concatenate([np.hanning(160) * 0.8, np.zeros(3200)]) for _ in range(8)])
    sounds = [
        (rng.standard_normal(2 * RATE) * 0.1).astype(np.float32),
        (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        clicks.astype(np.float32),
    ]
    service = WhisperCaptionService(Settings(asr_model="tiny.en", data_dir=tmp_path), bus)
    await service.start()
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, np.concatenate([x for sound in sounds for x in (silence(0.5), sound, silence(1.0))]))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = [e for e in events if isinstance(e, CaptionFinal)]
    assert all(not f.text for f in finals), [f.text for f in finals]
    assert not [e for e in events if isinstance(e, VoiceActivity)], "no utterance started"


async def test_default_base_model(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """The default configuration: multilingual base, assembled from the shipped packages into the data directory."""
    settings = Settings(data_dir=tmp_path, asr_partial_interval_s=0.5)  # two partials in a 3 s sentence
    assert settings.asr_model == "base" and settings.asr_backend == "whisper"
    service = WhisperCaptionService(settings, bus)
    await service.start()
    assert (tmp_path / "models" / "whisper-base" / "model.bin").is_file(), "the shipped model was assembled"
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await stepped(service, stream, np.concatenate([load("arctic_a0007.wav"), silence(1.5)]))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_real_captions(events, [ARCTIC_TEXT], max_wer=0.2)
    assert "superlative" in finals[0].text or "degree" in finals[0].text
