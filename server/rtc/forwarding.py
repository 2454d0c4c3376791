"""Encoded-frame forwarding for aiortc: the ONLY module that touches private aiortc/aioice internals.

aiortc 1.16 has no public API to receive encoded frames: ``RTCRtpReceiver`` always hands reassembled frames to a
decoder thread (``aiortc.rtcrtpreceiver.decoder_worker``). A forwarding server must not decode video, so this module:

- replaces the decoder queue of receivers passed to ``forward_encoded(receiver)``, so that each reassembled frame
  becomes an ``av.Packet`` (``pts`` = RTP timestamp, ``time_base`` = 1/clock rate) on the track at once, instead of
  going to aiortc's decoder thread; other receivers in the process (e.g. test peers) keep decoding as before;
- swaps such a receiver's jitter buffer: video frames are released as soon as the packet with the RTP marker bit
  completes them (aiortc waits for the next frame's first packet, one frame interval of extra delay per hop), and
  audio packets pass straight through (the receiving browser runs its own jitter buffer);
- lets a sender route keyframe requests (PLI/FIR from the subscriber) to a callback instead of its encoder;
- sends forwarded frames synchronously (``DirectSender``): in place of aiortc's per-sender task, which awaits the
  track, repacketises through the encoder, builds an ``RtpPacket`` with header extensions for every packet and awaits
  four coroutines down to the socket, a frame is packetised and written to the UDP socket in the publisher's own
  task, with a precomputed RTP header template (per-packet cost measured in docs/benchmarks.md);
- sends a PLI from a receiver to the publisher;
- gives a decoding receiver (a test peer's) an empty jitter buffer when its m-line changes hands;
- optionally offers 127.0.0.1 ICE candidates (aioice skips loopback), for tests and single-machine benchmarks;
- keeps aioice from starting consent checks on a connection already closed (``guard_consent_after_close``): when a
  peer closes while its ICE checks have just succeeded, aioice's ``connect()`` resumes after ``close()`` and starts a
  consent-freshness task that nothing ever stops (one leaked task per such participant, found by the churn test).

``RTCRtpSender`` already accepts pre-encoded ``av.Packet`` objects from a track (it calls ``encoder.pack``), so the
sending side needs no private API. aiortc is pinned in pyproject.toml; ``check_aiortc_version`` fails loudly on any
other version, and tests/test_forwarding.py exercises every hook against the installed aiortc.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender

logger = logging.getLogger(__name__)

SUPPORTED_AIORTC = "1.16."


class UnsupportedAiortcVersion(RuntimeError):
    pass


def check_aiortc_version() -> None:
    import aiortc

    version = getattr(aiortc, "__version__", "unknown")
    if not version.startswith(SUPPORTED_AIORTC):
        raise UnsupportedAiortcVersion(
            f"Moot's media forwarding needs aiortc {SUPPORTED_AIORTC}x (found {version}); "
            "install the version pinned in pyproject.toml: pip install 'aiortc==1.16.0'"
        )


_consent_guarded = False


def guard_consent_after_close() -> None:
    """Make aioice's consent-freshness task end at once on a connection that is already closing or closed."""
    global _consent_guarded
    if _consent_guarded:
        return
    from aioice.ice import Connection

    if not hasattr(Connection(ice_controlling=True), "_closing"):
        raise UnsupportedAiortcVersion("this aioice has no Connection._closing: check guard_consent_after_close")
    original = Connection.query_consent

    async def query_consent(self: Connection) -> None:
        if self._closing:  # connect() finished after close(): nothing will ever cancel this task
            return
        await original(self)

    Connection.query_consent = query_consent  # type: ignore[method-assign]
    _consent_guarded = True


# ---------------------------------------------------------------------------------------------------------------------
# Receiving encoded frames

class _DirectQueue:
    """Stands in for a receiver's decoder queue (a ``queue.Queue``): each reassembled frame becomes an ``av.Packet``
    on the track's asyncio queue at once, on the event loop, without the hop through aiortc's decoder thread.

    aiortc still starts its decoder thread with this object; that thread blocks in ``get()`` until the receiver stops
    (``put(None)``), then ends the track as usual."""

    def __init__(self, output: asyncio.Queue[Any]) -> None:
        self._output = output
        self._stopped = threading.Event()
        self._time_base: Fraction | None = None

    def put(self, task: Any) -> None:
        if task is None:
            self._stopped.set()
            return
        codec, encoded_frame = task
        if self._time_base is None:
            self._time_base = Fraction(1, codec.clockRate)
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = self._time_base
        self._output.put_nowait(packet)

    def get(self) -> None:
        """Called by the idle decoder thread: returns ``None`` (its stop signal) once the receiver stops."""
        self._stopped.wait()
        return None


class _FrameJitterFrame:
    """What the receiver hands its decoder queue (same attributes as aiortc's ``JitterFrame``)."""

    __slots__ = ("data", "timestamp")

    def __init__(self, data: bytes, timestamp: int) -> None:
        self.data = data
        self.timestamp = timestamp


class AudioPassThroughBuffer:
    """Every audio RTP packet is one encoded frame: release it at once, dropping late (reordered) packets."""

    capacity = 16

    def __init__(self) -> None:
        self._last_seq: int | None = None

    def add(self, packet: Any) -> tuple[bool, _FrameJitterFrame | None]:
        seq = packet.sequence_number
        if self._last_seq is not None and ((seq - self._last_seq) & 0xFFFF) >= 0x8000:
            return False, None  # older than what we already forwarded
        self._last_seq = seq
        return False, _FrameJitterFrame(packet._data, packet.timestamp)


class MarkerJitterBuffer:
    """Reassembles video frames and releases each one when its last packet (RTP marker bit) arrives.

    Packets are held by sequence number. A frame is released when the packets from the current origin up to a packet
    with the marker bit are all present and share one timestamp. When a gap cannot be filled (the next frame starts
    before the missing packet arrives, or the buffer overflows) the incomplete frame is discarded and a keyframe is
    requested (the ``bool`` in the return value), as aiortc's buffer does.
    """

    GIVE_UP_FRAMES = 3

    def __init__(self, capacity: int = 512) -> None:
        assert capacity & (capacity - 1) == 0
        self.capacity = capacity
        self._packets: list[Any] = [None] * capacity
        self._origin: int | None = None
        self._held: dict[int, int] = {}  # RTP timestamp -> packets held (``_resync`` scans only past GIVE_UP_FRAMES)

    def add(self, packet: Any) -> tuple[bool, _FrameJitterFrame | None]:
        seq = packet.sequence_number
        pli = False
        if self._origin is None:
            self._origin = seq
        delta = (seq - self._origin) & 0xFFFF
        if delta >= 0x8000:
            return False, None  # late packet of a frame already released or dropped
        if delta >= self.capacity:
            self._reset(seq)
            delta = 0
            pli = True
        slot = seq % self.capacity
        if self._packets[slot] is None:
            self._held[packet.timestamp] = self._held.get(packet.timestamp, 0) + 1
            self._packets[slot] = packet
        frame, dropped = self._release()
        if frame is None and dropped:  # resynchronised: a complete frame may now be at the origin
            frame, _ = self._release()
        return pli or dropped, frame

    def _reset(self, origin: int) -> None:
        self._packets = [None] * self.capacity
        self._held.clear()
        self._origin = origin

    def _release(self) -> tuple[_FrameJitterFrame | None, bool]:
        assert self._origin is not None
        first = self._packets[self._origin % self.capacity]
        if first is None:
            return None, self._resync()
        timestamp = first.timestamp
        parts = []
        for count in range(self.capacity):
            p = self._packets[(self._origin + count) % self.capacity]
            if p is None:
                return None, self._resync()
            if p.timestamp != timestamp:  # the marker packet was lost: this frame cannot complete
                return None, self._resync()
            parts.append(p._data)
            if p.marker:
                self._drop(count + 1)
                return _FrameJitterFrame(b"".join(parts), timestamp), False
        return None, False

    def _drop(self, count: int) -> None:
        assert self._origin is not None
        held = self._held
        for i in range(count):
            slot = (self._origin + i) % self.capacity
            p = self._packets[slot]
            if p is not None:
                self._packets[slot] = None
                left = held[p.timestamp] - 1
                if left:
                    held[p.timestamp] = left
                else:
                    del held[p.timestamp]
        self._origin = (self._origin + count) & 0xFFFF

    def _resync(self) -> bool:
        """The frame at the origin is incomplete. Wait while a retransmission (NACK) may still fill the gap; once
        packets of ``GIVE_UP_FRAMES`` later frames are held, drop the incomplete frame(s) and restart at the newest
        packet known to begin a frame (one after a packet with the marker bit). Returns True when it dropped."""
        assert self._origin is not None
        if len(self._held) <= self.GIVE_UP_FRAMES:  # the usual case: a frame still arriving
            return False
        held = [(c, p) for c in range(self.capacity) if (p := self._packets[(self._origin + c) % self.capacity])]
        starts = [c + 1 for c, p in held if p.marker and self._packets[(self._origin + c + 1) % self.capacity]]
        if not starts:
            return False
        # Restart at the newest frame start: the frames in between reference the lost one and cannot be decoded
        # before the next keyframe anyway, and holding them back would add latency.
        self._drop(starts[-1])
        return True


def forward_encoded(receiver: RTCRtpReceiver, estimate_bandwidth: bool = True) -> None:
    """Make ``receiver`` (of a remote track) deliver encoded frames as ``av.Packet`` instead of decoding them.

    Call it from the peer connection's ``track`` event, before media flows (aiortc starts the receiver right after
    that event). ``estimate_bandwidth=False`` skips receive-side bandwidth estimation (REMB feedback to the sender),
    for synthetic peers whose senders cannot adapt anyway.
    """
    check_aiortc_version()
    track = receiver.track
    if track is None:
        raise ValueError("the receiver has no track yet: call forward_encoded from the 'track' event")
    if getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None:
        raise RuntimeError("the receiver is already decoding: call forward_encoded from the 'track' event")
    if not hasattr(receiver, "_RTCRtpReceiver__decoder_queue"):
        raise UnsupportedAiortcVersion("aiortc's receiver internals changed: forwarding needs aiortc 1.16.x")
    receiver._RTCRtpReceiver__decoder_queue = _DirectQueue(track._queue)  # type: ignore[attr-defined]
    if not estimate_bandwidth:
        receiver._RTCRtpReceiver__remote_bitrate_estimator = None  # type: ignore[attr-defined]
    if track.kind == "video":
        receiver._RTCRtpReceiver__jitter_buffer = MarkerJitterBuffer()  # type: ignore[attr-defined]
    else:
        receiver._RTCRtpReceiver__jitter_buffer = AudioPassThroughBuffer()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------------------
# Sending encoded frames without aiortc's per-sender task

VP8_PACKET_MAX = 1300  # payload bytes per RTP packet, descriptor included (aiortc's PACKET_MAX)
RTP_HISTORY_SIZE = 128  # packets kept for retransmission (NACK), as aiortc's sender
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_time(now: float | None = None) -> int:
    """The 64-bit NTP timestamp of ``now`` (``time.time()``), as ``aiortc.clock.current_ntp_time`` without datetime."""
    t = time.time() if now is None else now
    seconds = int(t)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | int((t - seconds) * (1 << 32))


def vp8_payloads(frame: bytes, picture_id: int) -> list[bytes]:
    """One VP8 frame as RTP payloads (RFC 7741): a 4-byte descriptor (15-bit picture id, start bit on the first)
    before each chunk; the same packets aiortc's ``Vp8Encoder`` makes."""
    pid = struct.pack("!BH", 0x80, 0x8000 | picture_id)
    size = VP8_PACKET_MAX - 4
    first, rest = b"\x90" + pid, b"\x80" + pid
    return [(first if pos == 0 else rest) + frame[pos:pos + size] for pos in range(0, len(frame), size)]


def _dtls_connected() -> Any:
    from aiortc.rtcdtlstransport import State

    return State.CONNECTED


_DTLS_CONNECTED = _dtls_connected()


class _HistoryEntry:
    __slots__ = ("marker", "payload", "sequence_number", "timestamp")

    def __init__(self, sequence_number: int, timestamp: int, marker: int, payload: bytes) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload = payload


class DirectSender:
    """Writes forwarded frames straight to a sender's SRTP session and UDP socket, in the caller's task.

    ``install(sender, flush)`` replaces the sender's RTP task (``RTCRtpSender._run_rtp``, started once DTLS is up): the
    replacement only learns the negotiated codec, header extension ids and SSRC, calls ``flush`` (frames queued while
    the connection came up) and then waits to be stopped. ``send()`` returns False while the sender has not started
    (the caller queues the frame) and True once the frame was written or deliberately dropped (m-line disabled,
    transport gone). It keeps what aiortc's task keeps: the history of sent packets for retransmissions (NACK, with RTX
    when negotiated, through aiortc's own ``_retransmit``) and the counters of the RTCP sender reports. It omits the
    per-packet debug log and the DTLS transport's byte counters (``getStats``' transport bytes stay 0)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        self._active = False
        self._ssrc = sender._ssrc
        self._payload_type = 0
        self._clock_rate = 90_000
        self._video = sender.kind == "video"
        self._sequence = struct.unpack("!H", os.urandom(2))[0]
        self._timestamp_origin = struct.unpack("!L", os.urandom(4))[0]
        self._picture_id = 0
        self._ext_header = b""  # profile + length + extension values, abs-send-time zeroed
        self._abs_at = -1  # where abs-send-time's 3 bytes sit in _ext_header, -1 when not negotiated
        self._history: list[_HistoryEntry | None] = [None] * RTP_HISTORY_SIZE
        self.packets = 0

    @classmethod
    def install(cls, sender: RTCRtpSender, flush: Callable[[], None]) -> DirectSender:
        check_aiortc_version()
        if not hasattr(sender, "_RTCRtpSender__rtp_started") or not hasattr(sender, "_RTCRtpSender__rtp_history"):
            raise UnsupportedAiortcVersion("aiortc's sender internals changed: direct sending needs aiortc 1.16.x")
        direct = cls(sender)
        original_retransmit = sender._retransmit

        async def run_rtp(codec: Any) -> None:
            direct._start(codec)
            sender._RTCRtpSender__rtp_started.set()
            try:
                flush()
                await asyncio.Future()  # until RTCRtpSender.stop() cancels it
            except asyncio.CancelledError:
                pass
            finally:
                direct._active = False
                sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

        async def retransmit(sequence_number: int) -> None:
            entry = direct._history[sequence_number % RTP_HISTORY_SIZE]
            if entry is not None and entry.sequence_number == sequence_number:
                sender._RTCRtpSender__rtp_history[sequence_number % RTP_HISTORY_SIZE] = \
                    direct._rtp_packet(entry)
            await original_retransmit(sequence_number)

        sender._run_rtp = run_rtp  # type: ignore[method-assign]
        sender._retransmit = retransmit  # type: ignore[method-assign]
        return direct

    def _start(self, codec: Any) -> None:
        from aiortc.rtp import HeaderExtensions

        self._payload_type = codec.payloadType
        self._clock_rate = codec.clockRate
        extensions = self._sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        mid = self._sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        templates = []
        for abs_send_time in (0, 0xFFFFFF):
            profile, value = extensions.set(HeaderExtensions(mid=mid, abs_send_time=abs_send_time))
            templates.append(struct.pack("!HH", profile, len(value) >> 2) + value if value else b"")
        differ = [i for i, (a, b) in enumerate(zip(*templates, strict=True)) if a != b]
        self._ext_header = templates[0]
        self._abs_at = differ[0] if len(differ) == 3 and differ[2] - differ[0] == 2 else -1
        self._active = True

    def _rtp_packet(self, entry: _HistoryEntry) -> Any:
        from aiortc.rtp import RtpPacket

        packet = RtpPacket(payload_type=self._payload_type, marker=entry.marker,
                           sequence_number=entry.sequence_number, timestamp=entry.timestamp, ssrc=self._ssrc,
                           payload=entry.payload)
        packet.extensions.mid = self._sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        packet.extensions.abs_send_time = (ntp_time() >> 14) & 0xFFFFFF
        return packet

    def send(self, data: bytes, pts: int, time_base: Fraction | None) -> bool:
        """Packetise one encoded frame and write its RTP packets. False: not started yet (queue it)."""
        if not self._active:
            return False
        sender = self._sender
        if not sender._enabled:
            return True
        dtls = sender.transport
        if dtls._state is not _DTLS_CONNECTED:  # closing: nothing to send to
            return True
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return True
        if time_base is not None and time_base.denominator != self._clock_rate * time_base.numerator:
            pts = int(pts * time_base * self._clock_rate)
        timestamp = (self._timestamp_origin + pts) & 0xFFFFFFFF
        if self._video:
            payloads = vp8_payloads(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) & 0x7FFF
        else:
            payloads = [data]
        ntp = ntp_time()
        ext = self._ext_header
        if self._abs_at >= 0:
            at = self._abs_at
            ext = ext[:at] + ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big") + ext[at + 3:]
        first_byte = 0x90 if ext else 0x80
        protect = dtls._tx_srtp.protect
        sendto = pair.protocol.transport.sendto
        address = pair.remote_addr
        pack = struct.pack
        last = len(payloads) - 1
        sequence = self._sequence
        history = self._history
        octets = 0
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == last else 0
            header = pack("!BBHLL", first_byte, marker | self._payload_type, sequence, timestamp, self._ssrc)
            sendto(protect(header + ext + payload), address)
            history[sequence % RTP_HISTORY_SIZE] = _HistoryEntry(sequence, timestamp, marker >> 7, payload)
            octets += len(payload)
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence
        self.packets += len(payloads)
        sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]  # RTCP sender reports
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += len(payloads)  # type: ignore[attr-defined]
        return True


def restart_jitter_buffer(receiver: RTCRtpReceiver) -> None:
    """Empty the stock jitter buffer of a decoding receiver whose m-line now carries another sender (test peers).

    aiortc discards packets that arrive while an m-line is inactive (a client disables it on the offer, and the
    server's packets already on their way arrive after that) but its jitter buffer keeps waiting for them: it releases
    nothing of the next sender until 128 newer packets have come, seconds of video. Receivers set up by
    ``forward_encoded`` keep their own buffer (it resynchronises by itself)."""
    from aiortc.jitterbuffer import JitterBuffer

    old = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
    if type(old) is JitterBuffer:
        receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(  # type: ignore[attr-defined]
            capacity=old.capacity, prefetch=old._prefetch, is_video=old._is_video)


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a picture loss indication (PLI) for the receiver's media stream to the publisher. False if nothing usable
    has been received yet. Retransmission (RTX) streams are skipped: browsers probe bandwidth with RTX padding before
    any media, and a PLI naming the RTX stream is ignored."""
    rtx_streams = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
    media = [s.source for s in receiver.getSynchronizationSources() if s.source not in rtx_streams]
    if not media:
        media = list(dict.fromkeys(rtx_streams.values()))
    if not media:
        return False
    await receiver._send_rtcp_pli(media[0])
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Route PLI/FIR received for ``sender`` to ``callback`` (the encoder path would ignore it for packets)."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------------------------------
# ICE on loopback (tests and benchmarks on one machine)

_loopback_installed = False


def enable_loopback_candidates() -> None:
    """Gather only 127.0.0.1 host candidates in this process (aioice normally skips loopback)."""
    global _loopback_installed
    if _loopback_installed:
        return
    import aioice.ice

    def loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_only
    _loopback_installed = True
