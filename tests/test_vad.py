"""Voice-activity detection: Silero on real speech, chunking invariance, and the segmenter's hysteresis."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.asr.vad import WINDOW, WINDOW_S, Segmenter, StreamingVad

DATA = Path(__file__).parent / "data"


def speech() -> npt.NDArray[np.float32]:
    with wave.open(str(DATA / "hello16.wav"), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def feed(vad: StreamingVad, audio: npt.NDArray[np.float32], chunk: int) -> npt.NDArray[np.float32]:
    return np.concatenate([vad(audio[i : i + chunk]) for i in range(0, audio.size, chunk)])


def test_speech_is_detected_and_silence_is_not() -> None:
    audio = np.concatenate([np.zeros(16000, np.float32), speech(), np.zeros(16000, np.float32)])
    probs = feed(StreamingVad(), audio, 320)
    lead = int(1.0 / WINDOW_S)
    assert probs[: lead - 2].max() < 0.2
    assert np.mean(probs[lead + 5 : lead + 60] > 0.5) > 0.7  # the sentence pause after "everyone." is in here
    assert probs[-20:].max() < 0.2


def test_chunk_size_does_not_change_results() -> None:
    audio = speech()
    a = feed(StreamingVad(), audio, 320)
    b = feed(StreamingVad(), audio, 1000)
    assert a.size == b.size == audio.size // WINDOW
    assert np.allclose(a, b, atol=1e-5)


def test_segmenter_hysteresis() -> None:
    seg = Segmenter(min_silence_s=4 * WINDOW_S)
    assert not seg.feed(0.3).speech_started
    assert seg.feed(0.9).speech_started
    assert seg.feed(0.2).silence_started
    assert seg.feed(0.9).speech_resumed
    decisions = [seg.feed(0.1) for _ in range(4)]
    assert decisions[0].silence_started and decisions[-1].speech_ended
    assert not seg.speaking


def test_silence_only_never_starts() -> None:
    seg = Segmenter(min_silence_s=0.5)
    probs = StreamingVad()(np.zeros(16000 * 3, np.float32))
    assert not any(seg.feed(float(p)).speech_started for p in probs)


def test_two_utterances_separated_by_a_pause() -> None:
    pause = np.zeros(int(1.2 * 16000), np.float32)
    audio = np.concatenate([speech(), pause, speech(), pause])
    seg = Segmenter(min_silence_s=0.5)
    decisions = [seg.feed(float(p)) for p in StreamingVad()(audio)]
    assert sum(d.speech_started for d in decisions) == 2
    assert sum(d.speech_ended for d in decisions) == 2
