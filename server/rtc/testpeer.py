"""A Python participant that speaks Moot's signaling protocol: used by integration tests and ``moot bench sfu``.

It joins a room over the WebSocket, answers the server's offers (publishing its audio/video tracks on the first audio
and video m-lines), consumes every track it receives and records per sender what arrived. Received media is either
decoded (tests: proves the forwarded stream is valid, and whose it is: the sender's video mark and audio tone, see
``server.rtc.testmedia``) or kept encoded (benchmarks: measures the server, not the client's decoder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import websockets
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.core.events import (
    Error,
    Offer,
    Pong,
    ServerMessage,
    Welcome,
    decode_server_message,
)
from server.rtc import forwarding
from server.rtc.testmedia import dominant_frequency, read_video_mark

logger = logging.getLogger(__name__)

AUDIO_TAIL_FRAMES = 50  # decoded audio kept per stream: the last second (20 ms frames)


@dataclass
class ReceivedStream:
    """What one received m-line delivered."""

    kind: str
    participant_id: str | None = None
    frames: int = 0
    first_at: float | None = None
    last_at: float | None = None
    frame_sizes: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of each decoded video frame
    arrivals: list[tuple[float, Any]] = field(default_factory=list)  # (time, frame or packet) when recording
    marks: list[int | None] = field(default_factory=list)  # read_video_mark of each decoded video frame
    audio_tail: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=AUDIO_TAIL_FRAMES))  # decoded, mono
    audio_rate: int = 0

    def dominant_frequency(self) -> float:
        """The strongest frequency (Hz) of the last second of decoded audio (a sender's tone: whose audio it is)."""
        if not self.audio_tail:
            raise ValueError("no decoded audio received on this stream")
        return dominant_frequency(np.concatenate(list(self.audio_tail)), self.audio_rate)


class TestPeer:
    """One participant. Use ``async with TestPeer(...) as peer`` or call ``join()`` and ``close()``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        ws_url: str,
        name: str,
        audio: MediaStreamTrack | None = None,
        video: MediaStreamTrack | None = None,
        decode: bool = True,
        record: bool = False,
        on_frame: Callable[[ReceivedStream, Any, float], None] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.ws_url = ws_url
        self.headers = headers or {}  # e.g. a moderator's session cookie and the site's Origin (observing)
        self.name = name
        self._tracks = {"audio": audio, "video": video}
        self._decode = decode
        self._record = record
        self._on_frame = on_frame
        # No ICE servers: aiortc would otherwise look up its default public STUN server (no use on loopback).
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("track", self._on_track)
        self.messages: list[ServerMessage] = []
        self._changed = asyncio.Condition()
        self._read_all = False  # the reader has seen the connection close
        self.streams: dict[str, ReceivedStream] = {}
        self._mid_owner: dict[str, str] = {}
        self._ws: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.participant_id: str | None = None
        self.offers = 0

    # Connection --------------------------------------------------------------------------------------------------
    async def connect(self) -> None:
        self._ws = await websockets.connect(self.ws_url, max_size=2**22, additional_headers=self.headers)
        self._tasks.append(asyncio.create_task(self._read(), name=f"peer-{self.name}-read"))

    async def send(self, message: dict[str, Any] | str) -> None:
        await self._ws.send(message if isinstance(message, str) else json.dumps(message))

    async def join(self, timeout: float = 20, **extra: Any) -> Welcome:
        if self._ws is None:
            await self.connect()
        await self.send({"type": "join", "name": self.name, "consent": True, **extra})
        message = await self.wait_for(lambda m: isinstance(m, Welcome | Error), timeout)
        if isinstance(message, Error):
            raise RuntimeError(f"join refused: {message.code}: {message.message}")
        assert isinstance(message, Welcome)
        self.participant_id = message.participant_id
        return message

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = decode_server_message(raw)
                if isinstance(message, Offer):
                    await self._answer(message)
                async with self._changed:
                    self.messages.append(message)
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            async with self._changed:
                self._read_all = True  # every message the server sent is in self.messages
                self._changed.notify_all()

    async def _answer(self, offer: Offer) -> None:
        self.offers += 1
        self._mid_owner = {mid: info.participant_id for mid, info in offer.tracks.items()}
        for transceiver in self.pc.getTransceivers():
            stream = self.streams.get(transceiver.mid or "")
            owner = self._mid_owner.get(transceiver.mid or "")
            if stream is not None and owner != stream.participant_id:
                # The server reused this m-line: count the new owner's media afresh, from an empty jitter buffer.
                self.streams[transceiver.mid or ""] = ReceivedStream(kind=stream.kind, participant_id=owner)
                forwarding.restart_jitter_buffer(transceiver.receiver)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        used: set[str] = set()
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            if transceiver.mid in offer.tracks or kind in used:
                continue
            used.add(kind)  # the first audio/video m-line without an owner is ours to publish on
            track = self._tracks.get(kind)
            if track is not None and transceiver.sender.track is None:
                transceiver.sender.replaceTrack(track)
                if hasattr(track, "request_keyframe"):  # pre-encoded sources make keyframes on request
                    forwarding.on_keyframe_request(transceiver.sender, track.request_keyframe)
            transceiver.direction = "sendonly"
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        mid = transceiver.mid or ""
        stream = ReceivedStream(kind=track.kind, participant_id=self._mid_owner.get(mid))
        self.streams[mid] = stream
        if not self._decode:
            forwarding.forward_encoded(transceiver.receiver, estimate_bandwidth=False)
        self._tasks.append(asyncio.create_task(self._consume(track, mid), name=f"peer-{self.name}-{mid}"))

    async def _consume(self, track: MediaStreamTrack, mid: str) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.time()
                stream = self.streams[mid]
                stream.frames += 1
                stream.first_at = stream.first_at or now
                stream.last_at = now
                if isinstance(frame, av.VideoFrame):
                    stream.frame_sizes.append((frame.width, frame.height))
                    stream.marks.append(read_video_mark(frame))
                elif isinstance(frame, av.AudioFrame):
                    samples = frame.to_ndarray()  # planar: one row per channel; packed: channels interleaved
                    channels = len(frame.layout.channels)
                    mono = samples.mean(axis=0) if frame.format.is_planar else \
                        samples.reshape(-1, channels).mean(axis=1)
                    stream.audio_tail.append(mono)
                    stream.audio_rate = frame.sample_rate
                if self._record:
                    stream.arrivals.append((now, frame))
                if self._on_frame is not None:
                    self._on_frame(stream, frame, now)

    # Waiting -----------------------------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[ServerMessage], bool], timeout: float) -> ServerMessage:
        """The first message (already received or arriving within ``timeout``) that satisfies ``predicate``."""
        async with self._changed:
            found: list[ServerMessage] = []

            def check() -> bool:
                found[:] = [m for m in self.messages if predicate(m)][:1]
                # Closed means: the reader has taken every message that arrived before the close (the socket's
                # state turns CLOSED while earlier messages may still wait in its queue).
                return bool(found) or self._read_all

            await asyncio.wait_for(self._changed.wait_for(check), timeout)
            if not found:
                raise ConnectionError(f"{self.name}: connection closed while waiting")
            return found[0]

    async def sync(self, timeout: float = 10) -> None:
        """Send a ping and wait for its pong: every message the server sent this client before answering it has
        arrived (for checking that something did *not* arrive)."""
        earlier = {id(m) for m in self.messages if isinstance(m, Pong)}
        await self.send({"type": "ping"})
        await self.wait_for(lambda m: isinstance(m, Pong) and id(m) not in earlier, timeout)

    def streams_from(self, participant_id: str, kind: str) -> list[ReceivedStream]:
        return [s for s in self.streams.values() if s.participant_id == participant_id and s.kind == kind]

    async def wait_media(self, participant_id: str, kind: str, frames: int, timeout: float) -> ReceivedStream:
        """Wait until at least ``frames`` frames of ``kind`` from ``participant_id`` have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for stream in self.streams_from(participant_id, kind):
                if stream.frames >= frames:
                    return stream
            await asyncio.sleep(0.05)  # media arrives on aiortc's own tasks; poll under the deadline
        counts = {m: (s.participant_id, s.kind, s.frames) for m, s in self.streams.items()}
        raise TimeoutError(f"{self.name}: {frames} {kind} frames from {participant_id} not received; got {counts}")

    # Teardown ----------------------------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TestPeer:
        await self.join()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
