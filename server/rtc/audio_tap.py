"""Decode each participant's Opus audio exactly once, for speech recognition.

The relay hands every encoded Opus packet of a published audio track to an ``AudioTap``; the tap decodes it (48 kHz
mono), resamples to 16 kHz float32 and pushes the samples, with the wall-clock time of the first sample, into the
speaker's ``SpeakerAudioSink``. Times come from RTP timestamps anchored to the arrival clock, so network jitter does not
bend the timeline; gaps (packet loss, discontinuous transmission during silence) are filled with silence up to
``MAX_GAP_S`` so that voice-activity detection sees the pause.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from server.asr.base import SAMPLE_RATE, SpeakerAudioSink

logger = logging.getLogger(__name__)

OPUS_RATE = 48_000
MAX_GAP_S = 2.0
REANCHOR_DRIFT_S = 0.5


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


class AudioTap:
    """Decodes one participant's Opus packets and feeds their speech-recognition sink."""

    def __init__(self, sink: SpeakerAudioSink, clock: Callable[[], float] = time.time) -> None:
        self._sink = sink
        self._clock = clock
        # Decoding to mono lets libopus average the channels itself: about 3x cheaper than decoding stereo and
        # resampling two channels, and this runs on the event loop for every packet of every speaker.
        self._decoder = av.CodecContext.create("libopus", "r")
        self._decoder.sample_rate = OPUS_RATE
        self._decoder.layout = "mono"
        self._decoder.format = "s16"
        self._resample = Resampler()
        self._anchor_wall: float | None = None
        self._anchor_pts = 0
        self._next_t: float | None = None
        self.decode_errors = 0
        self.samples = 0

    def _packet_time(self, pts: int) -> float:
        """Wall-clock time of a packet's first sample, from its RTP timestamp (48 kHz) and the arrival clock."""
        arrival = self._clock()
        if self._anchor_wall is None:
            self._anchor_wall, self._anchor_pts = arrival - 0.02, pts
        t = self._anchor_wall + (pts - self._anchor_pts) / OPUS_RATE
        if abs(arrival - 0.02 - t) > REANCHOR_DRIFT_S:  # clock drift or a stream restart: re-anchor
            self._anchor_wall, self._anchor_pts = arrival - 0.02, pts
            t = arrival - 0.02
        return t

    def push_packet(self, packet: av.Packet) -> None:
        pts = int(packet.pts) if packet.pts is not None else 0
        if packet.time_base is not None and packet.time_base != Fraction(1, OPUS_RATE):
            pts = int(pts * packet.time_base * OPUS_RATE)
        t = self._packet_time(pts)
        try:
            frames = self._decoder.decode(av.Packet(bytes(packet)))
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
            elif -0.1 < gap <= 0.03:
                t = self._next_t  # contiguous: keep the timeline exact
        self._sink.push(pcm, t)
        self.samples += pcm.size
        self._next_t = t + pcm.size / SAMPLE_RATE
