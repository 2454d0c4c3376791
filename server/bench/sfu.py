"""``moot bench sfu``: N synthetic participants publish 640x480 VP8 at 30 fps plus Opus through the real server.

The server runs as its own process (``moot serve``, loopback ICE) so its CPU and memory can be measured alone. By
default it forwards only (no speech recognition); ``--captions`` runs it as in production, decoding every participant's
audio for live captions in the same process. ``fps_min`` is the worst one-second window of any received video stream
(a stall of one second shows, however long the run), not an average over the run.

The participants run in this process: each publishes pre-encoded VP8 frames (encoded once at start-up, every
frame unique) and pre-encoded Opus, and keeps what it receives encoded, so the clients' codecs do not compete with the
server for the CPU. Latency is measured per video frame from the moment the publisher hands it to its RTP sender to
its arrival, reassembled, at each subscriber (matched by the frame's bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import fractions
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import numpy as np

from server.bench import print_result
from server.rtc import forwarding
from server.rtc.testmedia import PreEncodedVideoTrack, _Paced, encode_vp8_sequence, frame_id
from server.rtc.testpeer import ReceivedStream, TestPeer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sfu`` subcommand to ``moot bench``."""
    p = subparsers.add_parser(
        "sfu",
        help="media forwarding: N participants at 640x480 VP8 30 fps + Opus through the real server",
        description="Start the real server in a child process and N synthetic participants here; print frame rates, "
        "publisher-to-subscriber latency and the server's CPU and memory.",
    )
    add_arguments(p)
    p.set_defaults(func=main)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--participants", type=int, default=4, help="participants in one room (default 4)")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement time after everyone is connected")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds to settle before measuring")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile", type=Path, default=None,
                   help="record the server with py-spy (pip install py-spy) into this file (raw folded stacks)")
    p.add_argument("--captions", action="store_true",
                   help="production configuration: the server also decodes every participant's audio for live "
                   "captions (Whisper, assembled in MOOT_MODEL_CACHE_DIR or ./data/models: run 'moot models' first)")
    p.add_argument("--asr-backend", choices=["whisper", "fake"], default="whisper",
                   help="speech recognition with --captions (default whisper; fake: decode audio, no model)")


class PreEncodedOpusTrack(_Paced):
    """20 ms Opus packets of a quiet tone, encoded once, looped."""

    kind = "audio"

    def __init__(self, packets: list[bytes]) -> None:
        super().__init__(0.02, 48_000)
        self._packets = packets

    async def recv(self) -> av.Packet:
        pts, _ = await self._next()
        packet = av.Packet(self._packets[(self._index - 1) % len(self._packets)])
        packet.pts = pts
        packet.time_base = fractions.Fraction(1, 48_000)
        return packet


def encode_opus_tone(seconds: float = 1.0) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48_000
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32_000
    codec.time_base = fractions.Fraction(1, 48_000)
    t = np.arange(int(48_000 * seconds)) / 48_000
    tone = (0.05 * 32767 * np.sin(2 * np.pi * 330 * t)).astype(np.int16)
    stereo = np.repeat(tone, 2).reshape(1, -1)
    packets: list[bytes] = []
    for n in range(0, tone.size, 960):
        frame = av.AudioFrame.from_ndarray(stereo[:, 2 * n : 2 * (n + 960)], format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frame.pts = n
        packets.extend(bytes(p) for p in codec.encode(frame))
    return packets


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def worst_window_rate(arrivals: list[float], start: float, end: float, window: float = 1.0) -> float:
    """The fewest events per second in any ``window``-long interval ``(t, t + window]`` inside ``[start, end]``.

    ``arrivals``: event times, sorted. Every window counts, not only ones aligned to ``start``: a one-second stall
    that straddles two aligned windows still shows. A measurement shorter than ``window`` gives its average rate.
    """
    if end <= start:
        raise ValueError("the measurement interval is empty")
    inside = arrivals[bisect.bisect_left(arrivals, start):bisect.bisect_right(arrivals, end)]
    if end - start <= window:
        return len(inside) / (end - start)
    # The count in (t, t + window] drops only when t reaches an event: the minimum is at t = start or at an event.
    latest = end - window
    worst = len(inside)
    for t in [start, *(a for a in inside if a <= latest)]:
        count = bisect.bisect_right(inside, t + window) - bisect.bisect_right(inside, t)
        worst = min(worst, count)
    return worst / window


def run_sfu_bench(participants: int, seconds: float, warmup: float = 5.0, profile: Path | None = None,
                  frames: int = 300, captions: str | None = None) -> dict[str, Any]:
    """Run the benchmark (starts and stops its own server process and event loop); returns the result object.
    ``captions``: the server's speech recognition backend ("whisper", "fake"), or ``None`` for forwarding only."""
    return asyncio.run(measure_sfu(participants, seconds, warmup, profile, frames, captions))


async def measure_sfu(participants: int, seconds: float, warmup: float = 5.0, profile: Path | None = None,
                      frames: int = 300, captions: str | None = None) -> dict[str, Any]:
    """``run_sfu_bench`` inside a running event loop. ``frames``: distinct pre-encoded VP8 frames to cycle through."""
    import psutil

    forwarding.enable_loopback_candidates()
    deltas, keys = encode_vp8_sequence(frames)
    opus = encode_opus_tone()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = _server_env(captions)
        wrapper = ["py-spy", "record", "--format", "raw", "--rate", "200", "-o", str(profile), "--"] if profile else []
        server = await asyncio.create_subprocess_exec(
            *wrapper, sys.executable, "-m", "server", "serve", "--port", str(port), "--data-dir", tmp,
            "--asr-backend", captions or "none", "--max-participants", str(max(participants, 1)),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        peers: list[TestPeer] = []
        try:
            base = f"http://127.0.0.1:{port}"
            await _wait_healthy(base, server)
            room = (await asyncio.to_thread(_post_json, f"{base}/api/rooms", {"title": "bench"}))["id"]
            videos: dict[str, PreEncodedVideoTrack] = {}
            latencies: list[float] = []
            measuring = {"on": False}
            arrivals: dict[tuple[int, str], list[float]] = {}  # (receiving stream, publisher) -> video frame times

            def on_frame(stream: ReceivedStream, packet: Any, now: float) -> None:
                if stream.kind != "video" or not measuring["on"]:
                    return
                arrivals.setdefault((id(stream), stream.participant_id or ""), []).append(now)
                sent = videos.get(stream.participant_id or "")
                if sent is not None:
                    due = sent.sent.get(frame_id(bytes(packet)))
                    if due is not None:
                        latencies.append(now - due)

            for i in range(participants):
                video = PreEncodedVideoTrack(deltas, keys)
                peer = TestPeer(f"ws://127.0.0.1:{port}/ws/rooms/{room}", f"P{i}", audio=PreEncodedOpusTrack(opus),
                                video=video, decode=False, on_frame=on_frame)
                peers.append(peer)
                welcome = await peer.join(timeout=30)
                videos[welcome.participant_id] = video
            for peer in peers:  # everyone receives everyone else before the clock starts
                for pid in videos:
                    if pid != peer.participant_id:
                        await peer.wait_media(pid, "video", frames=10, timeout=60)
            await asyncio.sleep(warmup)
            proc = psutil.Process(server.pid)
            if profile:  # measure the server, not the profiler
                proc = next(c for c in proc.children() if "server" in " ".join(c.cmdline()))
            proc.cpu_percent(None)
            counts_before, audio_before = _counts(peers), _counts(peers, "audio")
            measuring["on"] = True
            started, started_wall = time.monotonic(), time.time()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - started
            measuring["on"] = False
            cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss / 2**20
            counts_after, audio_after = _counts(peers), _counts(peers, "audio")
            fps = [(counts_after[k] - counts_before.get(k, 0)) / elapsed for k in counts_after]
            # Streams that delivered nothing while measuring have no arrivals: their worst window is 0.
            worst = [worst_window_rate(arrivals.get(k, []), started_wall, started_wall + elapsed)
                     for k in _stream_keys(peers)]
            audio_pps = [(audio_after[k] - audio_before.get(k, 0)) / elapsed for k in audio_after]
            return {
                "participants": participants,
                "seconds": seconds,
                "streams": len(fps),
                "captions": captions or "off",
                "fps_min": round(min(worst), 2) if worst else 0.0,  # worst one-second window of any stream
                "fps_min_run_average": round(min(fps), 2) if fps else 0.0,  # slowest stream, averaged over the run
                "fps_mean": round(statistics.fmean(fps), 2) if fps else 0.0,
                "latency_p50_ms": round(1000 * _percentile(latencies, 0.5), 1) if latencies else None,
                "latency_p95_ms": round(1000 * _percentile(latencies, 0.95), 1) if latencies else None,
                "latency_samples": len(latencies),
                "audio_streams": len(audio_pps),
                "audio_packets_per_s_min": round(min(audio_pps), 1) if audio_pps else 0.0,
                "server_cpu_percent": round(cpu, 1),
                "server_rss_mb": round(rss, 1),
                "cpu_count": os.cpu_count(),
            }
        finally:
            for peer in peers:
                await peer.close()
            server.send_signal(2) if profile else server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 20)
            except TimeoutError:
                server.kill()
                await server.wait()


def _counts(peers: list[TestPeer], kind: str = "video") -> dict[tuple[str, str], int]:
    return {
        (peer.name, stream.participant_id or mid): stream.frames
        for peer in peers
        for mid, stream in peer.streams.items()
        if stream.kind == kind and stream.participant_id is not None
    }


def _server_env(captions: str | None) -> dict[str, str]:
    """No AI facilitator (nor its language model) in the measured process; speech recognition only with captions."""
    env = {**os.environ, "MOOT_RTC_LOOPBACK_CANDIDATES": "true", "MOOT_LOG_LEVEL": "WARNING",
           "MOOT_FACILITATOR_ENABLED": "false"}
    if captions and "MOOT_MODEL_CACHE_DIR" not in env:  # where 'moot models' assembles the models by default
        env["MOOT_MODEL_CACHE_DIR"] = os.path.abspath(os.path.join("data", "models"))
    return env


def _stream_keys(peers: list[TestPeer]) -> list[tuple[int, str]]:
    """Every received video stream that carries another participant, keyed as ``on_frame`` records it."""
    return [
        (id(stream), stream.participant_id)
        for peer in peers
        for stream in peer.streams.values()
        if stream.kind == "video" and stream.participant_id is not None
    ]


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def _wait_healthy(base: str, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.returncode is not None:
            error = (await server.stderr.read()).decode() if server.stderr else ""
            raise RuntimeError(f"server exited: {error}")
        if await asyncio.to_thread(_healthy, f"{base}/healthz"):
            return
        await asyncio.sleep(0.2)  # the server is another process: poll its health endpoint
    raise RuntimeError("server did not become healthy within 60 s")


def main(args: argparse.Namespace) -> int:
    if args.participants < 2:
        print("error: --participants must be at least 2", file=sys.stderr)
        return 2
    result = run_sfu_bench(args.participants, args.seconds, args.warmup, args.profile,
                           captions=args.asr_backend if args.captions else None)
    print_result(result, args.json)
    return 0
