"""The synthetic test media tells senders apart: a video mark survives VP8 encoding, and a tone is found again."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

from server.rtc.testmedia import (
    AUDIO_RATE,
    MovingPatternVideoTrack,
    WavAudioTrack,
    dominant_frequency,
    read_video_mark,
)

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("size", [(320, 240), (160, 120)])
async def test_video_mark_survives_vp8(size: tuple[int, int]) -> None:
    width, height = size
    for mark in (0, 1, 2, 42, 63):
        track = MovingPatternVideoTrack(width, height, fps=10_000, mark=mark)
        encoder = av.CodecContext.create("libvpx", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.bit_rate = 100_000  # low, as at the start of a call
        encoder.time_base = fractions.Fraction(1, 30)
        encoder.options = {"deadline": "realtime", "cpu-used": "8"}
        decoder = av.CodecContext.create("vp8", "r")
        marks = []
        for n in range(8):
            frame = (await track.recv()).reformat(format="yuv420p")
            frame.pts = n
            for packet in encoder.encode(frame):
                marks += [read_video_mark(decoded) for decoded in decoder.decode(packet)]
        assert marks and marks == [mark] * len(marks)
    plain = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 40, np.uint8), format="rgb24")
    assert read_video_mark(plain) is None, "a frame without a mark is not read as one"
    with pytest.raises(ValueError):
        MovingPatternVideoTrack(mark=64)


async def test_tone_is_dominant_alone_and_under_speech() -> None:
    alone, under_speech = WavAudioTrack(tone_hz=440), WavAudioTrack(DATA / "hello16.wav", tone_hz=1000)
    for track, tone in ((alone, 440.0), (under_speech, 1000.0)):
        track._interval = 0.0  # no real-time pacing
        samples = np.concatenate([(await track.recv()).to_ndarray().reshape(-1) for _ in range(400)])  # 8 s
        for start in range(0, samples.size - AUDIO_RATE // 2, AUDIO_RATE // 2):  # every half second, speech or not
            window = samples[start : start + AUDIO_RATE // 2]
            assert dominant_frequency(window, AUDIO_RATE) == pytest.approx(tone, abs=2), start / AUDIO_RATE
