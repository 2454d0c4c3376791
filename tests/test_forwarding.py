"""The private-aiortc-API module and the relay: jitter buffers, keyframe gating, PLI routing, and the version pin."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from fractions import Fraction

import aiortc
import av
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.rtc import forwarding
from server.rtc.forwarding import AudioPassThroughBuffer, MarkerJitterBuffer
from server.rtc.relay import ForwardedTrack, PublishedTrack, is_vp8_keyframe


@dataclass
class FakeRtp:
    sequence_number: int
    timestamp: int
    marker: int
    _data: bytes


def test_pinned_aiortc_version() -> None:
    assert aiortc.__version__.startswith(forwarding.SUPPORTED_AIORTC)
    forwarding.check_aiortc_version()


def test_version_check_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(forwarding.UnsupportedAiortcVersion, match=r"1\.16"):
        forwarding.check_aiortc_version()


async def test_private_receiver_internals_still_exist() -> None:
    """The attributes forwarding.py replaces exist on a real aiortc receiver and sender."""
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        receiver = transceiver.receiver
        for name in ("decoder_queue", "jitter_buffer", "remote_bitrate_estimator", "rtx_ssrc", "decoder_thread"):
            assert hasattr(receiver, f"_RTCRtpReceiver__{name}"), name
        assert callable(receiver._send_rtcp_pli)
        assert callable(transceiver.sender._send_keyframe)
    finally:
        await pc.close()


async def test_keyframe_requests_reach_the_callback_through_a_real_sender() -> None:
    """A subscriber's PLI and FIR, as aiortc's RTCRtpSender parses them, go to our callback (not to an encoder)."""
    from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        calls: list[int] = []
        forwarding.on_keyframe_request(sender, lambda: calls.append(1))
        for fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=sender._ssrc))
        assert calls == [1, 1]
    finally:
        await pc.close()


async def test_restart_jitter_buffer_forgets_what_the_receiver_waited_for() -> None:
    """A decoding receiver whose m-line changes hands starts from an empty stock jitter buffer; a forwarding
    receiver's own buffer is left alone."""
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtp import RtpPacket

    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        stuck = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert type(stuck) is JitterBuffer
        stuck.add(RtpPacket(sequence_number=100, timestamp=1))
        stuck.add(RtpPacket(sequence_number=120, timestamp=2))  # waits for 101..119, discarded while inactive
        forwarding.restart_jitter_buffer(receiver)
        fresh = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        assert fresh is not stuck and fresh._origin is None and fresh.capacity == stuck.capacity
        marker = MarkerJitterBuffer(capacity=16)
        receiver._RTCRtpReceiver__jitter_buffer = marker  # type: ignore[attr-defined]
        forwarding.restart_jitter_buffer(receiver)
        assert receiver._RTCRtpReceiver__jitter_buffer is marker  # type: ignore[attr-defined]
    finally:
        await pc.close()


def test_marker_buffer_releases_on_the_last_packet() -> None:
    buf = MarkerJitterBuffer(capacity=16)
    assert buf.add(FakeRtp(100, 9000, 0, b"a")) == (False, None)
    assert buf.add(FakeRtp(101, 9000, 0, b"b")) == (False, None)
    pli, frame = buf.add(FakeRtp(102, 9000, 1, b"c"))
    assert not pli and frame is not None and frame.data == b"abc" and frame.timestamp == 9000
    pli, frame = buf.add(FakeRtp(103, 12000, 1, b"d"))  # a one-packet frame is released at once
    assert frame is not None and frame.data == b"d"


def test_marker_buffer_reorders_and_wraps() -> None:
    buf = MarkerJitterBuffer(capacity=16)
    assert buf.add(FakeRtp(65535, 1, 0, b"x"))[1] is None
    assert buf.add(FakeRtp(1, 1, 1, b"z"))[1] is None  # arrives before the packet it follows
    _, frame = buf.add(FakeRtp(0, 1, 0, b"y"))
    assert frame is not None and frame.data == b"xyz"
    assert buf.add(FakeRtp(65534, 0, 1, b"late"))[1] is None  # older than what was released: ignored


def test_marker_buffer_gives_up_on_a_lost_packet_and_asks_for_a_keyframe() -> None:
    buf = MarkerJitterBuffer(capacity=64)
    buf.add(FakeRtp(10, 100, 0, b"a"))  # packet 11 (end of this frame) is lost
    released = []
    for n, ts in enumerate((200, 300, 400)):
        pli, frame = buf.add(FakeRtp(12 + n, ts, 1, b"f%d" % n))
        released.append((pli, frame))
    assert any(pli for pli, _ in released), "a keyframe is requested after dropping the broken frame"
    assert released[-1][1] is not None and released[-1][1].data == b"f2", "restarts at the newest frame"
    pli, frame = buf.add(FakeRtp(15, 500, 1, b"next"))
    assert frame is not None and frame.data == b"next"


def test_audio_pass_through_drops_only_late_packets() -> None:
    buf = AudioPassThroughBuffer()
    assert buf.add(FakeRtp(5, 960, 0, b"a"))[1].data == b"a"  # type: ignore[union-attr]
    assert buf.add(FakeRtp(7, 2880, 0, b"c"))[1].data == b"c"  # type: ignore[union-attr]
    assert buf.add(FakeRtp(6, 1920, 0, b"b"))[1] is None


def test_vp8_keyframe_bit() -> None:
    assert is_vp8_keyframe(av.Packet(b"\x10\x02\x00"))
    assert not is_vp8_keyframe(av.Packet(b"\x11\x02\x00"))
    assert not is_vp8_keyframe(av.Packet(b""))


class PacketSource(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[av.Packet | None] = asyncio.Queue()

    def feed(self, key: bool, n: int, pts: int | None = None) -> av.Packet:
        packet = av.Packet(bytes([0x10 if key else 0x11, n]))
        packet.pts, packet.time_base = (n if pts is None else pts), Fraction(1, 90000)
        self.queue.put_nowait(packet)
        return packet

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def recv(self) -> av.Packet:
        item = await self.queue.get()
        if item is None:
            raise MediaStreamError
        return item


async def test_new_subscriber_starts_at_a_keyframe_and_requests_one() -> None:
    source = PacketSource()
    requests: list[float] = []

    async def request() -> bool:
        requests.append(asyncio.get_running_loop().time())
        return True

    published = PublishedTrack(source, request)
    source.feed(True, 0)
    source.feed(False, 1)
    for _ in range(100):  # let the relay task consume what was published before this subscriber arrives
        if published.packets == 2:
            break
        await asyncio.sleep(0)
    subscriber = published.subscribe()
    for n in (2, 3):
        source.feed(False, n)  # deltas before any keyframe: never forwarded to the new subscriber
    source.feed(True, 4)
    source.feed(False, 5)
    first = await asyncio.wait_for(subscriber.recv(), 2)
    second = await asyncio.wait_for(subscriber.recv(), 2)
    assert bytes(first) == b"\x10\x04" and bytes(second) == b"\x11\x05"
    await asyncio.sleep(0)  # let the keyframe request task run
    assert len(requests) == 1
    # Further requests within the interval are merged into one.
    for _ in range(5):
        subscriber.request_keyframe()
    await published.close()
    assert len(requests) <= 2


async def test_keyframe_request_is_repeated_while_a_subscriber_waits() -> None:
    """The first request can find nothing to send it for (no media from the publisher yet) or be lost: while the
    subscriber still waits, each packet from the publisher brings a new request (rate-limited)."""
    source = PacketSource()
    sent: list[bool] = []
    asked = asyncio.Event()

    async def request() -> bool:
        sent.append(len(sent) > 0)  # the first one cannot be sent: the publisher's stream is not known yet
        asked.set()
        return sent[-1]

    published = PublishedTrack(source, request)
    subscriber = published.subscribe()
    await asyncio.wait_for(asked.wait(), 5)
    n = 0
    while len(sent) < 2:  # the publisher keeps sending deltas; the subscriber still waits for a keyframe
        asked.clear()
        source.feed(False, n)
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asked.wait(), 0.1)
    assert sent == [False, True]
    source.feed(True, n)  # the publisher answers the request that reached it
    assert bytes(await asyncio.wait_for(subscriber.recv(), 5))[0] == 0x10
    await published.close()


async def test_slow_subscriber_is_bounded_and_resumes_at_a_keyframe() -> None:
    source = PacketSource()

    async def request() -> bool:
        return True

    published = PublishedTrack(source, request, max_queue=5)
    subscriber = published.subscribe()
    source.feed(True, 0)
    for n in range(1, 20):
        source.feed(False, n)
    source.feed(True, 20)
    source.feed(False, 21)
    got = [bytes(await asyncio.wait_for(subscriber.recv(), 2)) for _ in range(2)]
    assert got == [b"\x10\x14", b"\x11\x15"], "after overflowing it resumes at the next keyframe"
    assert subscriber.dropped >= 5
    source.queue.put_nowait(None)
    await published.close()


async def no_request() -> bool:
    return True


async def test_forwarded_track_outlives_its_publisher_and_moves_to_another() -> None:
    """An m-line's track survives its publisher leaving (aiortc's sender would stop reading for good otherwise), then
    carries another publisher from its next keyframe on, with RTP time still running forward."""
    first, second = PacketSource(), PacketSource()
    a, b = PublishedTrack(first, no_request), PublishedTrack(second, no_request)
    forwarded = ForwardedTrack("video")
    forwarded.attach(a)
    first.feed(True, 0, pts=900_000)
    first.feed(False, 1, pts=903_000)
    got = [await asyncio.wait_for(forwarded.recv(), 2) for _ in range(2)]
    assert [p.pts for p in got] == [900_000, 903_000]
    first.end()
    await asyncio.wait_for(a._task, 2)
    assert forwarded.readyState == "live" and forwarded.source is None

    forwarded.attach(b)
    assert forwarded.source is b
    second.feed(False, 2, pts=10)  # not a keyframe: skipped
    original = second.feed(True, 3, pts=3010)
    second.feed(False, 4, pts=6010)
    moved = [await asyncio.wait_for(forwarded.recv(), 2) for _ in range(2)]
    assert [bytes(p) for p in moved] == [b"\x10\x03", b"\x11\x04"]
    assert moved[0].pts > 903_000, "the m-line's timeline continues forward"
    assert moved[1].pts - moved[0].pts == 3000, "and keeps the new publisher's frame spacing"
    assert original.pts == 3010, "the packet shared with other subscribers is not modified"
    forwarded.stop()
    with pytest.raises(MediaStreamError):
        await forwarded.recv()
    await a.close()
    await b.close()


async def test_detached_track_waits_and_drops_nothing_into_the_void() -> None:
    source = PacketSource()
    published = PublishedTrack(source, no_request)
    forwarded = published.subscribe()
    forwarded.attach(None)
    source.feed(True, 0)
    source.end()
    await asyncio.wait_for(published._task, 2)
    assert published.ended and forwarded.forwarded == 0 and forwarded.readyState == "live"
    forwarded.stop()
    await published.close()


async def test_a_failing_audio_tap_does_not_stop_forwarding() -> None:
    source = PacketSource()

    def broken(_packet: av.Packet) -> None:
        raise ValueError("boom")

    published = PublishedTrack(source, no_request, on_packet=broken)
    forwarded = published.subscribe()
    source.feed(True, 0)
    source.feed(False, 1)
    assert bytes(await asyncio.wait_for(forwarded.recv(), 2)) == b"\x10\x00"
    assert bytes(await asyncio.wait_for(forwarded.recv(), 2)) == b"\x11\x01"
    assert published.tap_errors == 2
    source.end()
    await published.close()


def test_vp8_payloads_are_aiortcs_packets() -> None:
    from aiortc.codecs.vpx import Vp8Encoder

    for size in (1, 1296, 1297, 5000):
        frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
        for picture_id in (0, 1, 0x7FFF):
            assert forwarding.vp8_payloads(frame, picture_id) == Vp8Encoder._packetize(frame, picture_id)


def test_ntp_time_matches_aiortcs_clock() -> None:
    from aiortc import clock

    assert abs(forwarding.ntp_time() - clock.current_ntp_time()) < (1 << 32) // 10  # within 0.1 s


class _FakeUdp:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, address: object) -> None:
        self.sent.append(data)


class _FakeProtocol:
    def __init__(self) -> None:
        self.transport = _FakeUdp()

    async def send_data(self, data: bytes, address: object) -> None:  # aiortc's own path (retransmissions)
        self.transport.sendto(data, address)


class _IdentitySrtp:
    def protect(self, data: bytes) -> bytes:
        return data

    def protect_rtcp(self, data: bytes) -> bytes:
        return data


async def test_direct_sender_writes_aiortcs_rtp_and_retransmits() -> None:
    """Frames sent by DirectSender parse as RTP with the negotiated payload type, SSRC, MID and abs-send-time, one
    marker per frame, consecutive sequence numbers and the frame's timestamp; a NACKed packet is resent through
    aiortc's own retransmission (as RTX when negotiated). The socket and SRTP are fakes; the sender is aiortc's."""
    from aiortc.codecs.vpx import vp8_depayload
    from aiortc.rtcdtlstransport import State
    from aiortc.rtcrtpparameters import (
        RTCRtpCodecParameters,
        RTCRtpHeaderExtensionParameters,
        RTCRtpSendParameters,
    )
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        flushed: list[int] = []
        direct = forwarding.DirectSender.install(sender, lambda: flushed.append(1))
        assert not direct.send(b"\x00early", 0, Fraction(1, 90_000))  # not started: the caller queues it
        protocol = _FakeProtocol()
        dtls = sender.transport
        dtls._state = State.CONNECTED
        dtls._tx_srtp = _IdentitySrtp()  # type: ignore[assignment]
        pair = type("Pair", (), {"protocol": protocol, "remote_addr": ("x", 1)})
        dtls.transport._connection._nominated = {1: pair}  # type: ignore[dict-item]
        vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
        rtx = RTCRtpCodecParameters(mimeType="video/rtx", clockRate=90_000, payloadType=97, parameters={"apt": 96})
        extensions = [
            RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            RTCRtpHeaderExtensionParameters(id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        ]
        parameters = RTCRtpSendParameters(codecs=[vp8, rtx], headerExtensions=extensions, muxId="4")
        await sender.send(parameters)
        await asyncio.wait_for(sender._RTCRtpSender__rtp_started.wait(), 5)  # type: ignore[attr-defined]
        assert flushed == [1]

        frames = [bytes([0]) + bytes(range(256)) * 11, bytes([1]) + b"delta"]
        for n, frame in enumerate(frames):
            assert direct.send(frame, 3000 * n, Fraction(1, 90_000))
        parse_map = HeaderExtensionsMap()
        parse_map.configure(parameters)
        packets = [RtpPacket.parse(data, parse_map) for data in protocol.transport.sent]
        assert len(packets) == 3 + 1  # 2817 bytes: three packets, then one
        assert {p.payload_type for p in packets} == {96} and {p.ssrc for p in packets} == {sender._ssrc}
        assert all(p.extensions.mid == "4" and p.extensions.abs_send_time is not None for p in packets)
        assert [p.marker for p in packets] == [0, 0, 1, 1]
        assert [(p.sequence_number - packets[0].sequence_number) & 0xFFFF for p in packets] == [0, 1, 2, 3]
        assert packets[3].timestamp - packets[0].timestamp == 3000
        assert b"".join(vp8_depayload(p.payload) for p in packets[:3]) == frames[0]
        assert vp8_depayload(packets[3].payload) == frames[1]

        await sender._retransmit(packets[1].sequence_number)
        resent = RtpPacket.parse(protocol.transport.sent[-1], parse_map)
        assert resent.payload_type == 97 and resent.payload[2:] == packets[1].payload  # RTX: original seq + payload

        sender._enabled = False  # the m-line is inactive: frames are dropped, not queued
        assert direct.send(frames[1], 6000, Fraction(1, 90_000))
        assert len(protocol.transport.sent) == 5
    finally:
        await sender.stop()
        await pc.close()
