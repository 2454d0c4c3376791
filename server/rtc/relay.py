"""Fan-out of one published track's encoded frames to every subscriber, without decoding.

A ``PublishedTrack`` reads ``av.Packet`` objects from the publisher's receiver track (see ``forwarding.py``) in one
task and hands each to every ``ForwardedTrack`` attached to it. A ``ForwardedTrack`` is the track of one ``sendonly``
m-line on a subscriber's peer connection and lives as long as that m-line: aiortc's ``RTCRtpSender`` stops reading
for good once its track ends, and m-lines are reused when subscriptions change, so a forwarded track is re-attached to
another publisher rather than replaced. On each attachment it drops video until the next VP8 keyframe, asks the
publisher for one, and shifts the new publisher's timestamps so that the m-line's RTP timeline keeps running forward.
When a subscriber falls behind, its queue drops frames, then waits for the next keyframe (a VP8 stream cannot be
decoded past a gap) and asks for one. Keyframe requests are rate-limited per publisher and repeated while a subscriber
still waits (a request can be lost, or arrive before the publisher's first packet, when it cannot be sent at all).
A forwarded track given a ``sink`` (the server's peers: ``forwarding.DirectSender``) hands each frame to it at once,
in the publisher's task, once the sink has started; until then frames queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from fractions import Fraction

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

KEYFRAME_REQUEST_INTERVAL_S = 0.5
DEFAULT_QUEUE = {"video": 60, "audio": 50}  # frames: about 2 s of 30 fps video, 1 s of 20 ms Opus


FrameSink = Callable[[bytes, int, Fraction | None], bool]
"""Takes (encoded frame, pts, time base) and sends it; False when it cannot yet (the frame is queued instead)."""


def is_vp8_keyframe(packet: av.Packet | bytes) -> bool:
    """VP8 frame tag: bit 0 of the first byte is 0 for a key frame (RFC 6386, section 9.1)."""
    data = packet if isinstance(packet, bytes) else bytes(packet)
    return len(data) > 0 and data[0] & 1 == 0


class ForwardedTrack(MediaStreamTrack):
    """One subscriber m-line's track: a bounded queue of encoded frames from the publisher it is attached to."""

    def __init__(self, kind: str, max_queue: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._source: PublishedTrack | None = None
        self._queue: deque[av.Packet] = deque()
        self._max_queue = max_queue or DEFAULT_QUEUE[kind]
        self._ready = asyncio.Event()
        self._waiting_for_keyframe = kind == "video"
        self._offset = 0  # added to the source's pts so the RTP timeline continues across attachments
        self._rebase = False
        self._last_pts: int | None = None
        self._last_at = 0.0
        self._sink: FrameSink | None = None
        self.dropped = 0
        self.forwarded = 0

    def set_sink(self, sink: FrameSink) -> None:
        """Hand frames to ``sink`` as they arrive instead of waiting for ``recv()``."""
        self._sink = sink

    def flush(self) -> None:
        """Hand the queued frames to the sink (it has just started)."""
        while self._queue and self._sink is not None:
            packet = self._queue[0]
            if not self._sink(bytes(packet), self._retime(int(packet.pts or 0), packet.time_base), packet.time_base):
                return
            self._queue.popleft()
            self.forwarded += 1

    @property
    def source(self) -> PublishedTrack | None:
        return self._source

    @property
    def waiting_for_keyframe(self) -> bool:
        return self._waiting_for_keyframe

    def attach(self, source: PublishedTrack | None) -> None:
        """Forward ``source`` from now on (``None``: nothing). Video resumes at the source's next keyframe."""
        if source is self._source or self.readyState != "live":
            return
        if self._source is not None:
            self._source.remove_subscriber(self)
        self._source = source
        self._queue.clear()
        self._waiting_for_keyframe = self.kind == "video"
        self._rebase = self._last_pts is not None
        if source is not None:
            source.add_subscriber(self)

    def source_ended(self, source: PublishedTrack) -> None:
        if self._source is source:
            self.attach(None)

    def push(self, packet: av.Packet, data: bytes | None = None, pts: int | None = None,
             time_base: Fraction | None = None) -> None:
        """One frame from the source. ``data``, ``pts``, ``time_base``: the packet's, when the caller has them already
        (the source reads them once for all its subscribers)."""
        if self.readyState != "live":
            return
        if data is None:
            data = bytes(packet)
        if self._waiting_for_keyframe:
            if not is_vp8_keyframe(data):
                return
            self._waiting_for_keyframe = False
        if self._sink is not None and not self._queue:
            if pts is None:
                pts, time_base = int(packet.pts or 0), packet.time_base
            if self._sink(data, self._retime(pts, time_base), time_base):
                self.forwarded += 1
                return
        if len(self._queue) >= self._max_queue:
            self.dropped += len(self._queue)
            self._queue.clear()
            if self.kind == "video":  # a gap in a VP8 stream: resume at the next keyframe
                self._waiting_for_keyframe = not is_vp8_keyframe(data)
                if self._waiting_for_keyframe:
                    self.request_keyframe()
                    return
        self._queue.append(packet)
        self._ready.set()

    def request_keyframe(self) -> None:
        """Called when the subscriber reports picture loss (PLI/FIR) or after a gap."""
        if self._source is not None:
            self._source.request_keyframe()

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        packet = self._queue.popleft()
        self.forwarded += 1
        pts = self._retime(int(packet.pts or 0), packet.time_base)
        if pts != packet.pts:
            shifted = av.Packet(bytes(packet))  # the original is shared with the other subscribers: do not modify it
            shifted.pts = pts
            shifted.time_base = packet.time_base
            packet = shifted
        return packet

    def _retime(self, pts: int, time_base: Fraction | None) -> int:
        """A source pts on this m-line's timeline."""
        now = time.monotonic()
        if self._rebase and self._last_pts is not None and time_base is not None:
            # Another publisher now feeds this m-line: continue the m-line's timeline by the wall-clock time since
            # its last frame.
            step = max(1, round((now - self._last_at) / time_base))
            self._offset = self._last_pts + step - pts
            self._rebase = False
        self._last_pts, self._last_at = pts + self._offset, now
        return pts + self._offset

    def stop(self) -> None:
        super().stop()
        self._ready.set()
        if self._source is not None:
            self._source.remove_subscriber(self)
            self._source = None


class PublishedTrack:
    """A participant's published audio or video track and the forwarded tracks attached to it."""

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
        self._max_queue = max_queue
        self._subscribers: list[ForwardedTrack] = []
        self._last_keyframe_request = 0.0
        self._pending_keyframe_request: asyncio.Task[None] | None = None
        self._task = asyncio.create_task(self._run(), name=f"relay-{track.kind}")
        self.packets = 0
        self.last_packet_at = 0.0  # time.monotonic() of the latest packet (0: none yet): "no audio" on the dashboard
        self.tap_errors = 0

    @property
    def ended(self) -> bool:
        return self._task.done()

    def subscribe(self) -> ForwardedTrack:
        """A new forwarded track attached to this one (tests; peers attach their m-line tracks)."""
        forwarded = ForwardedTrack(self.kind, self._max_queue)
        forwarded.attach(self)
        return forwarded

    def add_subscriber(self, forwarded: ForwardedTrack) -> None:
        if forwarded in self._subscribers:
            return
        self._subscribers.append(forwarded)
        if self.kind == "video":
            self.request_keyframe()

    def remove_subscriber(self, forwarded: ForwardedTrack) -> None:
        if forwarded in self._subscribers:
            self._subscribers.remove(forwarded)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per ``KEYFRAME_REQUEST_INTERVAL_S``."""
        if self.kind != "video" or self._pending_keyframe_request is not None or self.ended:
            return
        wait = self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL_S - time.monotonic()
        self._pending_keyframe_request = asyncio.create_task(self._send_keyframe_request(max(0.0, wait)),
                                                             name="relay-keyframe-request")

    async def _send_keyframe_request(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            self._last_keyframe_request = time.monotonic()
            await self._request_keyframe()
        except ConnectionError:
            pass
        except Exception:  # the publisher's transport may already be closing
            logger.debug("keyframe request failed", exc_info=True)
        finally:
            self._pending_keyframe_request = None

    async def _run(self) -> None:
        try:
            while True:
                packet = await self._track.recv()
                if not isinstance(packet, av.Packet):  # the receiver must forward encoded frames (forwarding.py)
                    raise TypeError("PublishedTrack needs a receiver set up with forwarding.forward_encoded")
                self.packets += 1
                self.last_packet_at = time.monotonic()
                if self._on_packet is not None:
                    try:
                        self._on_packet(packet)
                    except Exception:  # the audio tap must never stop the forwarding
                        self.tap_errors += 1
                        if self.tap_errors == 1:
                            logger.exception("processing a published %s packet failed", self.kind)
                waiting = False
                if self._subscribers:  # read once for all subscribers (each PyAV access makes a new object)
                    data, pts, time_base = bytes(packet), int(packet.pts or 0), packet.time_base
                for subscriber in self._subscribers:
                    subscriber.push(packet, data, pts, time_base)
                    waiting = waiting or subscriber.waiting_for_keyframe
                if waiting:  # the request was lost or came before the publisher's media: ask again (rate-limited)
                    self.request_keyframe()
        except MediaStreamError:
            pass
        finally:
            self._detach_all()

    def _detach_all(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.source_ended(self)
        self._subscribers.clear()

    async def close(self) -> None:
        for task in (self._task, self._pending_keyframe_request):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._detach_all()
