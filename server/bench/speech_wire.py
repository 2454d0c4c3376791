"""``moot bench speech-wire``: what one speaker's audio costs on the bus with ``speech_placement=remote``, and what
the media node saves by forwarding Opus packets instead of decoding them.

The WAV is encoded as a browser sends speech (20 ms mono Opus packets, 32 kb/s by default) and handed, packet by
packet, to the server node's ``RemoteSpeakerSink`` on an in-process bus, exactly as the media side hands it over.
Reported per speaker-second: ``opus_bytes_per_s`` (the packets themselves), ``bus_bytes_per_s`` (the JSON of the
``speech.audio`` events published, envelope and base64 included), ``events_per_s``, the same envelope carrying 16 kHz
16-bit PCM instead (``pcm16_bus_bytes_per_s``, the alternative not taken), and the CPU time the node would spend
decoding and resampling the packets itself (``decode_cpu_s_per_speaker_s``, what forwarding saves).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from server.bench import print_result

PACKET_S = 0.02


def read_wav(path: Path) -> tuple[npt.NDArray[np.int16], int]:
    """A 16-bit PCM WAV (mono, or the first channel)."""
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.reshape(-1, channels)[:, 0].copy(), rate


class OpusStream:
    """Audio at any rate in, 20 ms mono Opus packets at 48 kHz out as they fill, as a browser sends speech: for
    playing a recording into the speech tier in real time (``encode``), or encoding it whole (``encode_opus``)."""

    def __init__(self, rate: int, bitrate: int = 32_000) -> None:
        self._rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate, self._codec.layout, self._codec.format = 48_000, "mono", "s16"
        self._codec.time_base = Fraction(1, 48_000)
        self._codec.bit_rate = bitrate
        self._pending = np.zeros(0, dtype=np.int16)
        self._pts = 0

    def encode(self, pcm: npt.NDArray[np.float32] | npt.NDArray[np.int16]) -> list[bytes]:
        """Audio at the stream's rate (16-bit, or float in [-1, 1]); the packets completed by it."""
        samples = pcm if pcm.dtype == np.int16 else (np.clip(pcm, -1.0, 1.0) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        return self._packets(self._resampler.resample(frame))

    def flush(self) -> list[bytes]:
        """The end of the audio: what the resampler and the encoder still hold (an unfinished last 20 ms is left
        out)."""
        return self._packets(self._resampler.resample(None)) + [bytes(p) for p in self._codec.encode(None)]

    def _packets(self, resampled: list[av.AudioFrame]) -> list[bytes]:
        self._pending = np.concatenate([self._pending, *(f.to_ndarray().reshape(-1) for f in resampled)])
        packets: list[bytes] = []
        while self._pending.size >= 960:
            chunk = av.AudioFrame.from_ndarray(self._pending[:960].reshape(1, -1), format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 48_000, self._pts
            self._pending, self._pts = self._pending[960:], self._pts + 960
            packets.extend(bytes(p) for p in self._codec.encode(chunk))
        return packets


def encode_opus(pcm: npt.NDArray[np.int16], rate: int, bitrate: int = 32_000) -> list[bytes]:
    """Mono 16-bit audio as 20 ms mono Opus packets at 48 kHz, as a browser sends speech."""
    stream = OpusStream(rate, bitrate)
    return stream.encode(pcm) + stream.flush()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "speech-wire",
        help="bytes per second per speaker sent to speech workers, and the decode CPU the media node saves",
        description="Measures one speaker's audio on the bus with speech_placement=remote.",
    )
    p.add_argument("--wav", type=Path, required=True, help="speech recording (WAV, 16-bit PCM)")
    p.add_argument("--bitrate", type=int, default=32_000, help="Opus bitrate (default 32000, browsers' usual)")
    p.add_argument("--batch-ms", type=int, default=100, help="audio per bus event (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


async def _measure(packets: list[bytes], batch_ms: int) -> dict[str, float]:
    from server.asr.remote import RemoteCaptionService
    from server.core.bus import InProcessBus
    from server.core.events import SpeakerAudio
    from server.core.leases import InMemoryLeases
    from server.core.settings import Settings

    settings = Settings(speech_audio_batch_ms=batch_ms)
    bus, audio_bus = InProcessBus(), InProcessBus(log=0)
    node = RemoteCaptionService(settings, bus, audio_bus, InMemoryLeases(), "bench")
    sink = node.open_speaker("bench-room", "speaker", "Speaker")
    t0 = time.time()
    for n, packet in enumerate(packets):
        sink.push_opus(packet, t0 + n * PACKET_S)
        await asyncio.sleep(0)  # the sink publishes as it goes (faster than real time, nothing is dropped)
    await sink.aclose()
    assert not sink.dropped_batches
    events = [e for e in await audio_bus.history(sink.channel) if isinstance(e, SpeakerAudio) and not e.end]
    await node.close()
    seconds = len(packets) * PACKET_S
    # The alternative: the same events carrying the decoded 16 kHz 16-bit PCM of their packets.
    pcm_batch = base64.b64encode(bytes(int(16_000 * batch_ms / 1000) * 2)).decode()
    pcm_bytes = sum(len(e.model_copy(update={"packets": [pcm_batch], "t": e.t[:1]}).model_dump_json())
                    for e in events)
    return {"seconds": round(seconds, 1), "events_per_s": round(len(events) / seconds, 2),
            "opus_bytes_per_s": round(sum(map(len, packets)) / seconds),
            "bus_bytes_per_s": round(sink.sent_bytes / seconds),
            "pcm16_bus_bytes_per_s": round(pcm_bytes / seconds)}


def _decode_cpu(packets: list[bytes]) -> float:
    """CPU seconds the media node spends decoding and resampling one speaker-second (what forwarding saves)."""
    from server.rtc.audio_tap import AudioTap

    class Discard:
        def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
            return None

        async def aclose(self) -> None:
            return None

    tap = AudioTap(Discard())
    started = time.process_time()
    for n, packet in enumerate(packets):
        tap.push_opus(packet, n * PACKET_S)
    return (time.process_time() - started) / (len(packets) * PACKET_S)


def main(args: argparse.Namespace) -> int:
    pcm, rate = read_wav(args.wav)
    packets = encode_opus(pcm, rate, args.bitrate)
    result: dict[str, object] = {"bitrate": args.bitrate, "batch_ms": args.batch_ms}
    result.update(asyncio.run(_measure(packets, args.batch_ms)))
    result["decode_cpu_s_per_speaker_s"] = round(_decode_cpu(packets), 5)
    print_result(result, args.json)
    return 0
