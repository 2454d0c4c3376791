"""Opus decoded once to 16 kHz mono float32 for speech recognition: resampling and the timeline."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from server.rtc.audio_tap import AudioTap, PacketClock, Resampler
from tests.fakes import RecordingSink


def test_resampler_48k_stereo_to_16k_mono() -> None:
    t = np.arange(48000) / 48000
    tone = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    stereo = np.repeat(tone, 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48000
    resample = Resampler()
    out = np.concatenate([resample(frame), resample(None)])
    assert out.dtype == np.float32
    assert abs(out.size - 16000) <= 32
    spectrum = np.abs(np.fft.rfft(out[1000:15000]))
    peak_hz = np.argmax(spectrum) * 16000 / 14000
    assert abs(peak_hz - 1000) < 5
    assert 0.3 < np.abs(out).max() <= 0.55


def opus_packets(seconds: float, hz: float = 440, amplitude: float = 0.3, left_only: bool = False) -> list[av.Packet]:
    """A stereo 48 kHz tone encoded as 20 ms Opus packets (like a browser's)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48000, "stereo", "s16"
    codec.time_base = Fraction(1, 48000)
    codec.bit_rate = 64000
    t = np.arange(int(48000 * seconds)) / 48000
    channels = np.repeat((amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16), 2).reshape(-1, 2)
    if left_only:
        channels[:, 1] = 0
    tone = channels.reshape(1, -1)
    packets = []
    for n in range(0, int(48000 * seconds), 960):
        frame = av.AudioFrame.from_ndarray(tone[:, 2 * n : 2 * (n + 960)], format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, n
        packets.extend(codec.encode(frame))
    return packets


def test_tap_decodes_and_keeps_a_continuous_timeline() -> None:
    sink = RecordingSink("r", "p", "Ada")
    clock = iter(1000.0 + i * 0.02 for i in range(10_000))
    tap = AudioTap(sink, clock=lambda: next(clock))
    packets = opus_packets(1.0)
    for packet in packets:
        packet.time_base = Fraction(1, 48000)
        tap.push_packet(packet)
    audio = sink.audio()
    assert abs(sink.seconds - 1.0) < 0.05
    assert float(np.sqrt(np.mean(audio[4000:] ** 2))) > 0.1
    times = [t for t, _ in sink.chunks]
    sizes = [c.size for _, c in sink.chunks]
    for (t1, n1), t2 in zip(zip(times, sizes, strict=True), times[1:], strict=False):
        assert abs(t2 - (t1 + n1 / 16000)) < 1e-6, "contiguous packets give a contiguous timeline"


def test_tap_fills_short_gaps_with_silence() -> None:
    sink = RecordingSink("r", "p", "Ada")
    now = [2000.0]
    tap = AudioTap(sink, clock=lambda: now[0])
    packets = opus_packets(0.4)
    for i, packet in enumerate(packets):
        if 5 <= i < 15:
            continue  # 200 ms lost (or silence not transmitted)
        now[0] = 2000.0 + i * 0.02
        packet.time_base = Fraction(1, 48000)
        tap.push_packet(packet)
    assert abs(sink.seconds - 0.4) < 0.05, "the gap is filled so voice-activity detection sees the pause"


def test_opus_1khz_stereo_becomes_16khz_mono() -> None:
    sink = RecordingSink("r", "p", "Ada")
    now = [3000.0]
    tap = AudioTap(sink, clock=lambda: now[0])
    for i, packet in enumerate(opus_packets(1.0, hz=1000, amplitude=0.5)):
        now[0] = 3000.0 + i * 0.02
        packet.time_base = Fraction(1, 48000)
        tap.push_packet(packet)
    audio = sink.audio()
    assert audio.dtype == np.float32
    assert abs(audio.size - 16000) <= 16000 * 0.03, "1 s of 48 kHz audio is 16000 samples at 16 kHz"
    steady = audio[1600:15600]
    peak_hz = np.argmax(np.abs(np.fft.rfft(steady))) * 16000 / steady.size
    assert abs(peak_hz - 1000) < 5
    assert 0.4 < np.abs(steady).max() < 0.6, "identical channels keep their level (no +3 dB downmix, no clipping)"
    assert tap.decode_errors == 0


def test_channels_are_averaged() -> None:
    sink = RecordingSink("r", "p", "Ada")
    tap = AudioTap(sink)
    for packet in opus_packets(0.5, hz=500, amplitude=0.5, left_only=True):
        packet.time_base = Fraction(1, 48000)
        tap.push_packet(packet)
    assert 0.18 < np.abs(sink.audio()[1600:]).max() < 0.32


def test_packet_clock_ignores_a_stall_and_a_late_first_packet() -> None:
    clock = PacketClock()
    # The first packet is held up 300 ms; the next ones arrive on time: they keep their RTP spacing, anchored on the
    # earliest arrival, and the late first packet is placed where the later ones say it belonged.
    times = [clock.time_of(0, 100.32)] + [clock.time_of(960 * i, 100.02 + 0.02 * i) for i in range(1, 50)]
    assert times[1:] == sorted(times[1:])
    assert times[-1] == pytest.approx(100.0 + 0.02 * 49)
    # A 1.5 s stall of the event loop delivers 75 packets at once: they keep their RTP times, nothing is re-anchored.
    burst = [clock.time_of(960 * i, 102.5) for i in range(50, 125)]
    assert burst == pytest.approx([100.0 + 0.02 * i for i in range(50, 125)])
    assert clock.time_of(960 * 125, 102.52) == pytest.approx(102.5)


def test_packet_clock_follows_a_persistently_late_stream_and_a_restart() -> None:
    clock = PacketClock()
    for i in range(50):
        clock.time_of(960 * i, 10.02 + 0.02 * i)
    # From here every packet arrives 2 s later than its timestamp says (a restarted stream, a slow sender clock):
    # after a second of such arrivals the clock follows.
    late = [clock.time_of(960 * i, 12.02 + 0.02 * i) for i in range(50, 150)]
    assert late[0] == pytest.approx(11.0)
    assert late[-1] == pytest.approx(12.0 + 0.02 * 149)
    # The timestamp jumps back (a new stream): re-anchored at once on its arrival.
    assert clock.time_of(0, 20.02) == pytest.approx(20.0)


def test_tap_timeline_never_runs_backwards() -> None:
    """A late first packet, then on-time ones: the timeline is contiguous and increasing (the anchor moves back, the
    samples already pushed keep their place)."""
    sink = RecordingSink("r", "p", "Ada")
    arrivals = iter([5000.4] + [5000.02 + 0.02 * i for i in range(1, 100)])
    tap = AudioTap(sink, clock=lambda: next(arrivals))
    for packet in opus_packets(1.0):
        packet.time_base = Fraction(1, 48000)
        tap.push_packet(packet)
    times = [t for t, _ in sink.chunks]
    assert times == sorted(times)
    assert abs(sink.seconds - 1.0) < 0.05, "no silence was invented"
