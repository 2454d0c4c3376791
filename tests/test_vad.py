"""Voice-activity detection: Silero on real speech, chunking invariance, and the segmenter's hysteresis."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from server.asr.vad import WINDOW, WINDOW_S, Segmenter, StreamingVad, VadDecision

DATA = Path(__file__).parent / "data"
RATE = 16_000


def speech() -> npt.NDArray[np.float32]:
    """'Hello everyone. I think we should build more homes near the station.' (espeak, 16 kHz mono, 4.8 s)."""
    with wave.open(str(DATA / "hello16.wav"), "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, RATE, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(int(seconds * RATE), np.float32)


def feed(vad: StreamingVad, audio: npt.NDArray[np.float32], chunk: int) -> npt.NDArray[np.float32]:
    return np.concatenate([vad(audio[i : i + chunk]) for i in range(0, audio.size, chunk)])


def window_of(seconds: float) -> int:
    return int(seconds / WINDOW_S)


# StreamingVad --------------------------------------------------------------------------------------------------------


def test_speech_is_detected_and_silence_is_not() -> None:
    audio = np.concatenate([silence(1.0), speech(), silence(1.5)])
    probs = feed(StreamingVad(), audio, 320)
    assert probs.dtype == np.float32 and ((probs >= 0) & (probs <= 1)).all()
    lead, speech_end = window_of(1.0), window_of(1.0 + speech().size / RATE)
    assert probs[: lead - 1].max() < 0.1, "leading silence"
    # "Hello everyone." lies in 1.1-2.0 s, the rest of the sentence in 2.4-5.4 s (a pause between them).
    assert np.median(probs[window_of(1.15) : window_of(1.95)]) > 0.8
    assert np.median(probs[window_of(2.5) : window_of(5.4)]) > 0.8
    assert np.mean(probs[lead:speech_end] > 0.5) > 0.7
    assert probs[speech_end + window_of(0.3) :].max() < 0.1, "appended silence"


def test_one_probability_per_complete_window() -> None:
    vad = StreamingVad()
    assert vad(silence(0.01)).size == 0  # 160 samples: no complete window yet
    assert vad(np.zeros(WINDOW - 160, np.float32)).size == 1
    assert vad(np.zeros(0, np.float32)).size == 0
    assert vad(np.zeros(3 * WINDOW + 5, np.float32)).size == 3


@pytest.mark.parametrize("chunk", [1000, 512, 511, 7919])
def test_chunk_size_does_not_change_probabilities(chunk: int) -> None:
    audio = np.concatenate([speech(), silence(0.5)])
    reference = feed(StreamingVad(), audio, 320)
    probs = feed(StreamingVad(), audio, chunk)
    assert reference.size == probs.size == audio.size // WINDOW
    np.testing.assert_array_equal(probs, reference)


def test_whole_buffer_at_once_matches_streaming() -> None:
    audio = speech()
    np.testing.assert_array_equal(StreamingVad()(audio), feed(StreamingVad(), audio, 320))


def test_streams_are_independent() -> None:
    """Two detectors (two speakers) share the ONNX session but not its recurrent state."""
    audio = speech()
    alone = feed(StreamingVad(), audio, 320)
    a, b = StreamingVad(), StreamingVad()
    interleaved_a, interleaved_b = [], []
    for i in range(0, audio.size, 320):
        interleaved_a.append(a(audio[i : i + 320]))
        interleaved_b.append(b(silence(0.02)))
    np.testing.assert_array_equal(np.concatenate(interleaved_a), alone)
    assert np.concatenate(interleaved_b).max() < 0.1


# Segmenter -----------------------------------------------------------------------------------------------------------


def events(decision: VadDecision) -> set[str]:
    return {name for name, value in vars(decision).items() if value}


def test_min_silence_in_windows() -> None:
    assert Segmenter(min_silence_s=4 * WINDOW_S).min_silence_windows == 4
    assert Segmenter(min_silence_s=0.5).min_silence_windows == round(0.5 / WINDOW_S) == 16
    assert Segmenter(min_silence_s=0.001).min_silence_windows == 1


def test_speech_starts_at_the_start_threshold() -> None:
    seg = Segmenter(min_silence_s=0.5)
    assert events(seg.feed(0.0)) == set()
    assert events(seg.feed(0.49)) == set()
    assert not seg.speaking
    assert events(seg.feed(0.5)) == {"speech_started"}
    assert seg.speaking
    assert events(seg.feed(0.9)) == set(), "already speaking: no second start"


def test_silence_resume_and_end() -> None:
    seg = Segmenter(min_silence_s=4 * WINDOW_S)
    assert events(seg.feed(0.9)) == {"speech_started"}
    assert events(seg.feed(0.2)) == {"silence_started"}  # the first low window
    assert events(seg.feed(0.1)) == set()
    assert events(seg.feed(0.9)) == {"speech_resumed"}  # back before min silence: the utterance goes on
    assert seg.speaking
    decisions = [events(seg.feed(0.1)) for _ in range(4)]
    assert decisions == [{"silence_started"}, set(), set(), {"speech_ended"}]
    assert not seg.speaking
    assert events(seg.feed(0.1)) == set()
    assert events(seg.feed(0.7)) == {"speech_started"}, "a new utterance"


def test_end_needs_consecutive_low_windows() -> None:
    """Low windows interrupted by speech start counting again."""
    seg = Segmenter(min_silence_s=3 * WINDOW_S)
    seg.feed(0.9)
    for _ in range(5):
        assert events(seg.feed(0.1)) == {"silence_started"}
        assert events(seg.feed(0.1)) == set()
        assert events(seg.feed(0.9)) == {"speech_resumed"}
    assert seg.speaking


def test_between_thresholds_is_hysteresis() -> None:
    """While speaking, a window between the end and start thresholds is speech; during a pause it neither resumes
    the speech nor counts as silence."""
    seg = Segmenter(min_silence_s=3 * WINDOW_S)
    seg.feed(0.9)
    assert events(seg.feed(0.4)) == set()  # speech goes on
    assert events(seg.feed(0.1)) == {"silence_started"}
    assert events(seg.feed(0.4)) == set()  # not a resume
    assert events(seg.feed(0.1)) == set()
    assert events(seg.feed(0.4)) == set()
    assert events(seg.feed(0.1)) == {"speech_ended"}  # the third low window


def test_silence_only_never_starts() -> None:
    seg = Segmenter(min_silence_s=0.5)
    probs = StreamingVad()(silence(3.0))
    assert probs.size == 3 * RATE // WINDOW
    assert not any(events(seg.feed(float(p))) for p in probs)
    assert not seg.speaking


def test_low_noise_never_starts() -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(3 * RATE) * 0.002).astype(np.float32)
    seg = Segmenter(min_silence_s=0.5)
    assert not any(seg.feed(float(p)).speech_started for p in StreamingVad()(noise))


# End to end ----------------------------------------------------------------------------------------------------------


def segment(audio: npt.NDArray[np.float32], min_silence_s: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of each utterance: speech start to the start of the silence that ended it."""
    seg = Segmenter(min_silence_s=min_silence_s)
    utterances: list[tuple[float, float]] = []
    start = silence_at = None
    for i, p in enumerate(feed(StreamingVad(), audio, 320)):
        d = seg.feed(float(p))
        if d.speech_started:
            start = i * WINDOW_S
        if d.silence_started:
            silence_at = i * WINDOW_S
        if d.speech_ended:
            assert start is not None and silence_at is not None
            utterances.append((start, silence_at))
            start = None
    assert start is None, "speech still going on at the end of the audio"
    return utterances


def test_one_sentence_with_a_short_pause_is_one_utterance() -> None:
    utterances = segment(np.concatenate([speech(), silence(1.0)]))
    assert len(utterances) == 1
    start, end = utterances[0]
    assert start < 0.3 and 4.2 < end < 4.8


def test_two_utterances_separated_by_a_pause() -> None:
    one = speech()
    gap = 1.2
    audio = np.concatenate([one, silence(gap), one, silence(1.0)])
    utterances = segment(audio)
    assert len(utterances) == 2
    (s1, e1), (s2, e2) = utterances
    second = one.size / RATE + gap
    assert s1 < 0.3 and 4.2 < e1 < 4.8
    assert second <= s2 < second + 0.3 and second + 4.2 < e2 < second + 4.8
    assert e2 - s2 == pytest.approx(e1 - s1, abs=0.2)
