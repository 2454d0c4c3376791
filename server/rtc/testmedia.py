"""Synthetic media sources for test peers and benchmarks: paced video frames, pre-encoded VP8, and WAV/tone audio.

Sources are paced in real time (as a camera or microphone would be). ``PreEncodedVideoTrack`` cycles through VP8
frames encoded once at start-up, so a benchmark with many publishers measures the server rather than the publishers'
encoders; every frame's bytes are unique, so a receiver can identify which frame it got (for latency measurement).
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


class MovingPatternVideoTrack(_Paced):
    """Raw frames with a moving bar (aiortc encodes them): for tests that decode what they receive."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: int = 30) -> None:
        super().__init__(1 / fps, VIDEO_CLOCK)
        self._width, self._height = width, height

    async def recv(self) -> av.VideoFrame:
        pts, _ = await self._next()
        image = np.full((self._height, self._width, 3), 40, dtype=np.uint8)
        x = (self._index * 4) % self._width
        image[:, x : x + 16] = (230, 200, 40)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


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
    """Plays a WAV file (any rate, mono or stereo, 16-bit) as 20 ms 48 kHz frames, then silence (or loops)."""

    kind = "audio"

    def __init__(self, path: Path | None = None, loop: bool = False, tone_hz: float | None = None) -> None:
        super().__init__(AUDIO_PTIME, AUDIO_RATE)
        self._repeat = loop
        samples = np.zeros(0, dtype=np.int16)
        if path is not None:
            samples = read_wav_48k_mono(path)
        elif tone_hz is not None:
            t = np.arange(AUDIO_RATE * 5) / AUDIO_RATE
            samples = (0.3 * 32767 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16)
        self._samples = samples
        self._pos = 0
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
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame


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
