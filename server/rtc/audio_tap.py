"""Decode each participant's Opus audio exactly once, for speech recognition.

The relay hands every encoded Opus packet of a published audio track to an ``AudioTap``; the tap decodes it (48 kHz
mono), resamples to 16 kHz float32 and pushes the samples, with the wall-clock time of the first sample, into the
speaker's ``SpeakerAudioSink``. Times come from RTP timestamps anchored to the arrival clock (``PacketClock``), so
network jitter and event-loop stalls do not bend the timeline, and the timeline never runs backwards; gaps (packet loss,
discontinuous transmission during silence) are filled with silence up to ``MAX_GAP_S`` so that voice-activity detection
sees the pause.

A sink that takes encoded audio (``EncodedAudioSink``: the speech tier in another process) gets each packet with its
time instead, undecoded; the speech worker feeds the packets to an ``AudioTap`` of its own (``push_opus``), which
decodes them exactly as here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from server.core.speech import SAMPLE_RATE, EncodedAudioSink, SpeakerAudioSink

logger = logging.getLogger(__name__)

OPUS_RATE = 48_000
MAX_GAP_S = 2.0
PACKET_S = 0.02
REANCHOR_DRIFT_S = 0.5
REANCHOR_AFTER_S = 1.0


class Resampler:
    """Any ``av.AudioFrame`` -> mono float32 at 16 kHz. Several channels are averaged (browsers send mono speech as
    identical left and right channels; FFmpeg's default downmix would add 3 dB and could clip loud speech)."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self._rate = rate
        self._resampler: av.AudioResampler | None = None
        self._mono = True

    def __call__(self, frame: av.AudioFrame | None) -> npt.NDArray[np.float32]:
        """Resample one frame (``None`` flushes what the resampler holds back)."""
        if self._resampler is None:
            if frame is None:
                return np.zeros(0, dtype=np.float32)
            self._mono = len(frame.layout.channels) == 1
            layout = "mono" if self._mono else "stereo"
            self._resampler = av.AudioResampler(format="flt" if self._mono else "fltp", layout=layout, rate=self._rate)
        if self._mono:
            chunks = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)]
        else:
            chunks = [out.to_ndarray().mean(axis=0) for out in self._resampler.resample(frame)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


class PacketClock:
    """Wall-clock time of each packet's first sample, from its RTP timestamp and its arrival time.

    The anchor is the earliest the stream has ever been heard (packets can arrive late, never early), so a packet that
    was held up (jitter, a stalled event loop delivering a burst) keeps the time its RTP timestamp gives it. Only
    lateness that persists over ``REANCHOR_AFTER_S`` of arrivals (a sender clock running slow, a stream restarted with
    a later timestamp base) moves the anchor forward; a timestamp that goes backwards (a restart, a 32-bit wrap)
    re-anchors at once. Deterministic: the caller passes the arrival time.
    """

    def __init__(self, rate: int = OPUS_RATE) -> None:
        self._rate = rate
        self._offset: float | None = None  # wall time of RTP timestamp 0, as inferred from the earliest arrival
        self._last_pts: int | None = None
        self._late_since: float | None = None

    def time_of(self, pts: int, arrival: float) -> float:
        heard = arrival - PACKET_S  # a packet leaves the sender once its 20 ms have been captured
        candidate = heard - pts / self._rate
        restarted = self._last_pts is not None and pts < self._last_pts - self._rate  # more than 1 s backwards
        self._last_pts = pts
        if self._offset is None or restarted or candidate < self._offset:
            self._offset, self._late_since = candidate, None
        elif candidate - self._offset > REANCHOR_DRIFT_S:
            if self._late_since is None:
                self._late_since = arrival
            elif arrival - self._late_since >= REANCHOR_AFTER_S:
                self._offset, self._late_since = candidate, None
        else:
            self._late_since = None
        return self._offset + pts / self._rate


class AudioTap:
    """Decodes one participant's Opus packets and feeds their speech-recognition sink."""

    def __init__(self, sink: SpeakerAudioSink, clock: Callable[[], float] = time.time) -> None:
        self._sink = sink
        self._forward = sink if isinstance(sink, EncodedAudioSink) else None
        self._clock = clock
        # Decoding to mono lets libopus average the channels itself: about 3x cheaper than decoding stereo and
        # resampling two channels, and this runs on the event loop for every packet of every speaker.
        self._decoder = av.CodecContext.create("libopus", "r")
        self._decoder.sample_rate = OPUS_RATE
        self._decoder.layout = "mono"
        self._decoder.format = "s16"
        self._resample = Resampler()
        self._packet_clock = PacketClock()
        self._next_t: float | None = None
        self.decode_errors = 0
        self.samples = 0

    def push_packet(self, packet: av.Packet) -> None:
        pts = int(packet.pts) if packet.pts is not None else 0
        if packet.time_base is not None and packet.time_base != Fraction(1, OPUS_RATE):
            pts = int(pts * packet.time_base * OPUS_RATE)
        t = self._packet_clock.time_of(pts, self._clock())
        if self._forward is not None:
            self._forward.push_opus(bytes(packet), t)
            return
        self.push_opus(bytes(packet), t)

    def push_opus(self, data: bytes, t: float) -> None:
        """Decode one Opus packet whose first sample was heard at ``t`` (wall clock) and push its samples."""
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.FFmpegError:
            self.decode_errors += 1
            return
        pcm = np.concatenate([self._resample(f) for f in frames]) if frames else np.zeros(0, dtype=np.float32)
        if pcm.size == 0:
            return
        if self._next_t is not None:
            gap = t - self._next_t
            if 0.03 < gap <= MAX_GAP_S:
                silence = np.zeros(int(gap * SAMPLE_RATE), dtype=np.float32)
                self._sink.push(silence, self._next_t)
                self.samples += silence.size
                t = self._next_t + silence.size / SAMPLE_RATE
            elif gap <= 0.03:
                t = self._next_t  # contiguous, or re-anchored earlier: the timeline stays exact and never runs back
        self._sink.push(pcm, t)
        self.samples += pcm.size
        self._next_t = t + pcm.size / SAMPLE_RATE
