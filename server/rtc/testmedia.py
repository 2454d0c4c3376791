"""Synthetic media sources for test peers and benchmarks: paced video frames, pre-encoded VP8, and WAV/tone audio.

Sources are paced in real time (as a camera or microphone would be). ``PreEncodedVideoTrack`` cycles through VP8
frames encoded once at start-up, so a benchmark with many publishers measures the server rather than the publishers'
encoders; every frame's bytes are unique, so a receiver can identify which frame it got (for latency measurement).

Tests with several senders give each one distinct media, so a receiver can tell whose media a track really carries:
``MovingPatternVideoTrack(mark=n)`` draws ``n`` into every frame (``read_video_mark`` reads it back from a decoded
frame) and ``WavAudioTrack(tone_hz=f)`` plays a continuous tone (``dominant_frequency`` finds it again).
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import time
import wave
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.02


class _Paced(MediaStreamTrack):
    """Paces frames at ``interval`` seconds, with timestamps in ``clock`` units."""

    def __init__(self, interval: float, clock: int) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._start: float | None = None
        self._index = 0

    async def _next(self) -> tuple[int, float]:
        """Wait for the next frame's due time; returns (pts, due wall-clock time)."""
        if self._start is None:
            self._start = time.time()
        due = self._start + self._index * self._interval
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pts = round(self._index * self._interval * self._clock)
        self._index += 1
        return pts, due


# A sender's mark: a row of cells across the top quarter of the frame, a white and a black guard cell, then the mark's
# bits (most significant first), white for 1. Big flat cells survive VP8 at any bitrate aiortc uses.
MARK_BITS = 6
_MARK_CELLS = 2 + MARK_BITS


def _mark_cells(mark: int) -> list[bool]:
    if not 0 <= mark < 2**MARK_BITS:
        raise ValueError(f"a video mark is 0 to {2**MARK_BITS - 1}, not {mark}")
    return [True, False] + [bool(mark >> (MARK_BITS - 1 - i) & 1) for i in range(MARK_BITS)]


class MovingPatternVideoTrack(_Paced):
    """Raw frames (aiortc encodes them) for tests that decode what they receive: ``mark`` drawn across the top, and
    a bar moving below it so that every frame differs."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30, mark: int = 0) -> None:
        super().__init__(1 / fps, VIDEO_CLOCK)
        self._width, self._height = width, height
        self._background = np.full((height, width, 3), 40, dtype=np.uint8)
        self._band = height // 4
        cell = width // _MARK_CELLS
        for i, white in enumerate(_mark_cells(mark)):
            self._background[: self._band, i * cell : (i + 1) * cell] = 255 if white else 0

    async def recv(self) -> av.VideoFrame:
        pts, _ = await self._next()
        image = self._background.copy()
        x = (self._index * 4) % self._width
        image[self._band :, x : x + 16] = (230, 200, 40)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


def read_video_mark(frame: av.VideoFrame) -> int | None:
    """The mark a ``MovingPatternVideoTrack`` drew into this (decoded) frame; None if the frame carries none."""
    gray = frame.to_ndarray(format="gray")
    height, width = gray.shape
    band, cell = height // 4, width // _MARK_CELLS
    # The middle of each cell, away from the edges that compression blurs.
    levels = [float(gray[band // 4 : 3 * band // 4, i * cell + cell // 4 : (i + 1) * cell - cell // 4].mean())
              for i in range(_MARK_CELLS)]
    if any(80 < level < 176 for level in levels):
        return None  # neither clearly black nor clearly white: not a mark
    cells = [level >= 176 for level in levels]
    if cells[:2] != [True, False]:
        return None
    return sum(1 << (MARK_BITS - 1 - i) for i, white in enumerate(cells[2:]) if white)


def encode_vp8_sequence(count: int, width: int = 640, height: int = 480, fps: int = 30,
                        bitrate: int = 500_000, keyframe_interval: int = 60) -> tuple[list[bytes], list[bytes]]:
    """Encode ``count`` distinct frames; returns (delta sequence, keyframe version of each frame)."""
    def make_encoder() -> av.video.codeccontext.VideoCodecContext:
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = bitrate
        codec.framerate = fractions.Fraction(fps, 1)
        codec.time_base = fractions.Fraction(1, fps)
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1"}
        codec.gop_size = keyframe_interval
        return codec

    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, size=(height // 8, width // 8, 3), dtype=np.uint8)
    images = []
    for i in range(count):
        tile = np.roll(base, shift=i * 2, axis=1)
        image = np.kron(tile, np.ones((8, 8, 1), dtype=np.uint8))
        image[(i * 3) % height : (i * 3) % height + 20, :, :] = 255
        images.append(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p"))

    def run(encoder: av.video.codeccontext.VideoCodecContext, frames: list[av.VideoFrame],
            force_key: bool) -> list[bytes]:
        out: list[bytes] = []
        for n, frame in enumerate(frames):
            frame.pts = n
            frame.pict_type = av.video.frame.PictureType.I if force_key else av.video.frame.PictureType.NONE
            out.extend(bytes(p) for p in encoder.encode(frame))
        out.extend(bytes(p) for p in encoder.encode(None))
        return out

    deltas = run(make_encoder(), images, force_key=False)
    keys = [run(make_encoder(), [img], force_key=True)[0] for img in images]
    return deltas, keys


def frame_id(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


class PreEncodedVideoTrack(_Paced):
    """Publishes pre-encoded VP8 frames in a loop; a keyframe request makes the next frame a keyframe.

    ``sent`` maps each frame's id to the wall-clock times it was due (for latency measurement at receivers)."""

    kind = "video"

    def __init__(self, deltas: list[bytes], keys: list[bytes], fps: int = 30) -> None:
        super().__init__(1 / fps, VIDEO_CLOCK)
        self._deltas, self._keys = deltas, keys
        self._want_key = True
        self.sent: dict[bytes, float] = {}

    def request_keyframe(self) -> None:
        self._want_key = True

    async def recv(self) -> av.Packet:
        pts, due = await self._next()
        i = (self._index - 1) % len(self._deltas)
        data = self._keys[i] if (self._want_key or i == 0) else self._deltas[i]
        self._want_key = False
        self.sent[frame_id(data)] = due
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return packet


class WavAudioTrack(_Paced):
    """Plays a WAV file (any rate, mono or stereo, 16-bit) as 20 ms 48 kHz frames, then silence (or loops).

    ``tone_hz`` adds a continuous sine tone, alone (level 0.3) or under the file's sound (level 0.1, loud enough to be
    the dominant frequency of speech), that lasts as long as the track: receivers tell senders apart by it."""

    kind = "audio"

    def __init__(self, path: Path | None = None, loop: bool = False, tone_hz: float | None = None) -> None:
        super().__init__(AUDIO_PTIME, AUDIO_RATE)
        self._repeat = loop
        self._samples = read_wav_48k_mono(path) if path is not None else np.zeros(0, dtype=np.int16)
        self._tone_hz = tone_hz
        self._tone_level = 0.1 if path is not None else 0.3
        self._pos = 0
        self._played = 0
        self.started_at: float | None = None

    async def recv(self) -> av.AudioFrame:
        pts, due = await self._next()
        self.started_at = self.started_at or due
        n = int(AUDIO_RATE * AUDIO_PTIME)
        chunk = self._samples[self._pos : self._pos + n]
        self._pos += n
        if self._repeat and self._pos >= self._samples.size and self._samples.size:
            self._pos = 0
        if chunk.size < n:
            chunk = np.concatenate([chunk, np.zeros(n - chunk.size, dtype=np.int16)])
        if self._tone_hz is not None:
            t = (self._played + np.arange(n)) / AUDIO_RATE
            tone = self._tone_level * 32767 * np.sin(2 * np.pi * self._tone_hz * t)
            chunk = np.clip(chunk + tone, -32768, 32767).astype(np.int16)
        self._played += n
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak above 50 Hz in ``samples`` (mono)."""
    signal = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft((signal - signal.mean()) * np.hanning(signal.size)))
    freqs = np.fft.rfftfreq(signal.size, 1 / rate)
    spectrum[freqs < 50] = 0
    return float(freqs[int(spectrum.argmax())])


def read_wav_48k_mono(path: Path) -> np.ndarray:
    """Read a 16-bit PCM WAV and resample it to 48 kHz mono int16 (with PyAV)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
        rate, channels = w.getframerate(), w.getnchannels()
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(raw.reshape(1, -1), format="s16", layout="stereo" if channels == 2 else "mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, dtype=np.int16)
