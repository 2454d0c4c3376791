"""Fan-out of one published track's encoded frames to every subscriber, without decoding.

A ``PublishedTrack`` reads ``av.Packet`` objects from the publisher's receiver track (see ``forwarding.py``) in one
task and hands each to every ``ForwardedTrack`` (one per subscriber). A forwarded video track starts with the next
keyframe and asks the publisher for one when it is created; when a subscriber falls behind, its queue drops frames, then
waits for the next keyframe (a VP8 stream cannot be decoded past a gap) and asks for one. Keyframe requests are
rate-limited per publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL_S = 0.5


def is_vp8_keyframe(packet: av.Packet) -> bool:
    """VP8 frame tag: bit 0 of the first byte is 0 for a key frame (RFC 6386, section 9.1)."""
    data = bytes(packet)
    return len(data) > 0 and data[0] & 1 == 0


class ForwardedTrack(MediaStreamTrack):
    """One subscriber's copy of a published track: a bounded queue of encoded frames for an ``RTCRtpSender``."""

    def __init__(self, source: PublishedTrack, max_queue: int) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._queue: deque[av.Packet] = deque()
        self._max_queue = max_queue
        self._ready = asyncio.Event()
        self._waiting_for_keyframe = source.kind == "video"
        self.dropped = 0
        self.forwarded = 0

    def push(self, packet: av.Packet) -> None:
        if self.readyState != "live":
            return
        if self._waiting_for_keyframe:
            if not is_vp8_keyframe(packet):
                return
            self._waiting_for_keyframe = False
        if len(self._queue) >= self._max_queue:
            self._queue.clear()
            self.dropped += self._max_queue
            if self.kind == "video":  # a gap in a VP8 stream: resume at the next keyframe
                self._waiting_for_keyframe = not is_vp8_keyframe(packet)
                if self._waiting_for_keyframe:
                    self.request_keyframe()
                    return
        self._queue.append(packet)
        self._ready.set()

    def request_keyframe(self) -> None:
        """Called when the subscriber reports picture loss (PLI/FIR) or after a gap."""
        self._source.request_keyframe()

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.forwarded += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()
        self._source.unsubscribe(self)


class PublishedTrack:
    """A participant's published audio or video track and its subscribers."""

    def __init__(
        self,
        track: MediaStreamTrack,
        request_keyframe: Callable[[], Awaitable[bool]],
        on_packet: Callable[[av.Packet], None] | None = None,
        max_queue: int | None = None,
    ) -> None:
        self.kind = track.kind
        self._track = track
        self._request_keyframe = request_keyframe
        self._on_packet = on_packet
        self._max_queue = max_queue or (60 if track.kind == "video" else 50)
        self._subscribers: list[ForwardedTrack] = []
        self._last_keyframe_request = 0.0
        self._pending_keyframe_request: asyncio.Task[None] | None = None
        self._task = asyncio.create_task(self._run(), name=f"relay-{track.kind}")
        self.packets = 0

    def subscribe(self) -> ForwardedTrack:
        forwarded = ForwardedTrack(self, self._max_queue)
        self._subscribers.append(forwarded)
        if self.kind == "video":
            self.request_keyframe()
        return forwarded

    def unsubscribe(self, forwarded: ForwardedTrack) -> None:
        if forwarded in self._subscribers:
            self._subscribers.remove(forwarded)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per ``KEYFRAME_REQUEST_INTERVAL_S``."""
        if self.kind != "video" or self._pending_keyframe_request is not None:
            return
        wait = self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL_S - time.monotonic()
        self._pending_keyframe_request = asyncio.create_task(self._send_keyframe_request(max(0.0, wait)))

    async def _send_keyframe_request(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            self._last_keyframe_request = time.monotonic()
            await self._request_keyframe()
        except ConnectionError:
            pass
        finally:
            self._pending_keyframe_request = None

    async def _run(self) -> None:
        try:
            while True:
                packet = await self._track.recv()
                if not isinstance(packet, av.Packet):  # the receiver must forward encoded frames (forwarding.py)
                    raise TypeError("PublishedTrack needs a receiver set up with forwarding.forward_encoded")
                self.packets += 1
                if self._on_packet is not None:
                    self._on_packet(packet)
                for subscriber in self._subscribers:
                    subscriber.push(packet)
        except MediaStreamError:
            pass
        finally:
            for subscriber in list(self._subscribers):
                subscriber.stop()

    async def close(self) -> None:
        for task in (self._task, self._pending_keyframe_request):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for subscriber in list(self._subscribers):
            subscriber.stop()
