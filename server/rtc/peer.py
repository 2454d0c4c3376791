"""One participant's server-side WebRTC peer: what they publish, what they receive, and server-driven negotiation.

The server is always the offerer. The first audio and video transceivers are the participant's publishing slots
(``recvonly`` here); every other transceiver carries another participant's media (``sendonly``) and is reused when
that subscription ends (aiortc cannot remove m-lines). Each such transceiver keeps one ``ForwardedTrack`` for its whole
life; a subscription attaches it to the publisher only once the client has accepted the offer that announces it (so
the first frame the client's decoder sees is a keyframe, and aiortc's sender is enabled by then). ``negotiate()`` may be
called at any time: changes made while a negotiation is in flight are batched into the next offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack

from server.core.events import Error, Offer, ServerMessage, TrackInfo
from server.core.speech import SpeakerAudioSink
from server.rtc import forwarding
from server.rtc.audio_tap import AudioTap
from server.rtc.relay import ForwardedTrack, PublishedTrack

logger = logging.getLogger(__name__)

KINDS = ("audio", "video")
GATHER_WAIT_S = 15.0  # ICE gathering with a STUN server takes at most ~5 s (aioice's STUN timeout)
CODEC_MIME = {"audio": "audio/opus", "video": "video/VP8"}


class NegotiationFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _preferred_codecs(kind: str) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpReceiver.getCapabilities(kind)
    assert caps is not None
    wanted = [c for c in caps.codecs if c.mimeType == CODEC_MIME[kind]]
    # keep retransmission (rtx) for video so NACKs work
    extra = [c for c in caps.codecs if c.mimeType.lower() == "video/rtx"] if kind == "video" else []
    return wanted + extra


@dataclass
class Subscription:
    """One ``sendonly`` m-line and, while it is in use, whose track it carries."""

    kind: str
    transceiver: RTCRtpTransceiver
    track: ForwardedTrack
    publisher_id: str | None = None
    source: PublishedTrack | None = None


class Peer:
    """A participant's peer connection on the server."""

    def __init__(
        self,
        participant_id: str,
        send: Callable[[ServerMessage], None],
        negotiation_timeout_s: float,
        on_published: Callable[[Peer, PublishedTrack], None],
        audio_sink: SpeakerAudioSink | None,
        stun_urls: list[str] | None = None,
    ) -> None:
        self.participant_id = participant_id
        self._send = send
        self._timeout = negotiation_timeout_s
        self._on_published = on_published
        self.audio_sink = audio_sink
        self.audio_tap: AudioTap | None = AudioTap(audio_sink) if audio_sink is not None else None
        # STUN lets a server behind 1:1 NAT (most cloud VMs) also offer its public address; TURN is for browsers only.
        ice = [RTCIceServer(urls=url) for url in (stun_urls or [])]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.published: dict[str, PublishedTrack] = {}
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self._free: list[Subscription] = []
        self._publish_slots: list[RTCRtpTransceiver] = []
        for kind in KINDS:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(_preferred_codecs(kind))
            self._publish_slots.append(transceiver)
        self._drains: set[asyncio.Task[None]] = set()
        self._closed = False
        self._answers: asyncio.Queue[str] = asyncio.Queue(maxsize=4)
        self._awaiting_answer = False
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._local_description: asyncio.Future[None] | None = None  # setLocalDescription (ICE gathering) in flight
        self._desired: dict[tuple[str, str], PublishedTrack] = {}
        self.on_failed: Callable[[Peer, NegotiationFailed], None] | None = None

    def _on_connection_state(self) -> None:
        if self.pc.connectionState == "failed":
            logger.info("media connection with %s failed", self.participant_id)
            self._send(Error(code="media_failed", message="Your audio and video could not reach the server. "
                             "A firewall may be blocking them: the organiser can configure a TURN server."))

    # Publishing --------------------------------------------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None or transceiver not in self._publish_slots or track.kind in self.published:
            # Not a publishing slot: still consume it so its receive queue cannot grow.
            task = asyncio.create_task(_drain(track))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
            return
        receiver = transceiver.receiver
        forwarding.forward_encoded(receiver)
        on_packet = self.audio_tap.push_packet if (track.kind == "audio" and self.audio_tap) else None
        published = PublishedTrack(track, lambda: forwarding.request_keyframe(receiver), on_packet=on_packet)
        self.published[track.kind] = published
        self._on_published(self, published)

    # Subscribing -------------------------------------------------------------------------------------------------
    def set_subscriptions(self, wanted: dict[tuple[str, str], PublishedTrack]) -> None:
        """The tracks (by (publisher id, kind)) this participant should receive; applied at the next negotiation.
        Nothing is renegotiated when they are the ones already wanted (after the first offer)."""
        unchanged = wanted.keys() == self._desired.keys() and all(wanted[k] is self._desired[k] for k in wanted)
        if unchanged and self._task is not None:
            return
        self._desired = dict(wanted)
        self.negotiate()

    def _apply_subscriptions(self) -> None:
        """Make the m-lines match the desired subscriptions. New ones are attached after the answer (``_attach``)."""
        for key, sub in list(self.subscriptions.items()):
            if self._desired.get(key) is not sub.source:
                sub.track.attach(None)
                sub.transceiver.direction = "inactive"
                sub.publisher_id, sub.source = None, None
                del self.subscriptions[key]
                self._free.append(sub)
        for key, source in self._desired.items():
            if key in self.subscriptions:
                continue
            publisher_id, kind = key
            free = next((s for s in self._free if s.kind == kind), None)
            if free is not None:
                self._free.remove(free)
                free.transceiver.direction = "sendonly"
                sub = free
            else:
                track = ForwardedTrack(kind)
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(_preferred_codecs(kind))
                forwarding.on_keyframe_request(transceiver.sender, track.request_keyframe)
                track.set_sink(forwarding.DirectSender.install(transceiver.sender, track.flush).send)
                sub = Subscription(kind, transceiver, track)
            sub.publisher_id, sub.source = publisher_id, source
            self.subscriptions[key] = sub

    def _attach(self) -> None:
        """The client accepted the offer: start forwarding on every m-line it now expects media on."""
        for sub in self.subscriptions.values():
            if sub.source is not None and sub.track.source is not sub.source and not sub.source.ended:
                sub.track.attach(sub.source)

    # Negotiation -------------------------------------------------------------------------------------------------
    def negotiate(self) -> None:
        """Start a negotiation, or mark one in flight to be followed by another."""
        if self._closed:
            return
        if self._task is not None and not self._task.done():
            self._dirty = True
            return
        self._task = asyncio.create_task(self._negotiate(), name=f"negotiate-{self.participant_id}")

    async def _negotiate(self) -> None:
        try:
            while True:
                self._dirty = False
                self._apply_subscriptions()
                await self._offer_and_wait()
                self._attach()
                if not self._dirty:
                    return
        except NegotiationFailed as exc:
            if self.on_failed is not None:
                self.on_failed(self, exc)
        except Exception:  # never let a negotiation bug take the server down
            if self.pc.connectionState in ("closed", "failed"):
                # The media connection itself is gone (e.g. ICE consent expired): not a server bug.
                logger.info("media connection with %s lost during negotiation", self.participant_id)
                failure = NegotiationFailed("media_failed", "Your audio and video connection to the server was lost.")
            else:
                logger.exception("negotiation with %s failed", self.participant_id)
                failure = NegotiationFailed("internal", "the server could not negotiate media")
            if self.on_failed is not None:
                self.on_failed(self, failure)

    async def _offer_and_wait(self) -> None:
        offer = await self.pc.createOffer()
        # Setting the first local description gathers ICE candidates, binding UDP sockets one by one; cancelled half
        # way, aioice loses the sockets already bound (they leak for good). So it is never cancelled: close() waits.
        self._local_description = asyncio.ensure_future(self.pc.setLocalDescription(offer))
        await asyncio.shield(self._local_description)
        tracks = {
            sub.transceiver.mid: TrackInfo(participant_id=sub.publisher_id, kind=sub.kind)  # type: ignore[arg-type]
            for sub in self.subscriptions.values()
            if sub.transceiver.mid is not None and sub.publisher_id is not None
        }
        while not self._answers.empty():  # stale answers to an earlier offer
            self._answers.get_nowait()
        self._awaiting_answer = True
        self._send(Offer(sdp=self.pc.localDescription.sdp, tracks=tracks))
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NegotiationFailed("negotiation_timeout", "no valid answer to the server's offer in time")
                try:
                    sdp = await asyncio.wait_for(self._answers.get(), remaining)
                except TimeoutError:
                    continue
                try:
                    await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                    return
                except Exception as exc:  # aiortc raises many types on malformed SDP
                    logger.info("invalid answer from %s: %s", self.participant_id, exc)
                    self._send(Error(code="bad_sdp", message=f"invalid SDP answer: {exc}"[:300]))
        finally:
            self._awaiting_answer = False

    def accept_answer(self, sdp: str) -> bool:
        """Hand over an answer from the client; False if no offer is waiting for one."""
        if not self._awaiting_answer:
            return False
        with contextlib.suppress(asyncio.QueueFull):
            self._answers.put_nowait(sdp)
        return True

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        pending = self._local_description
        if pending is not None and not pending.done():
            done, _ = await asyncio.wait({pending}, timeout=GATHER_WAIT_S)  # then pc.close() closes every socket
            if not done:
                logger.warning("ICE gathering for %s did not finish in %.0f s", self.participant_id, GATHER_WAIT_S)
        if pending is not None and pending.done() and not pending.cancelled():
            pending.exception()  # retrieved: a failure here is moot once the peer closes
        try:
            for sub in [*self.subscriptions.values(), *self._free]:
                sub.track.stop()
            for published in self.published.values():
                await published.close()
            await self.pc.close()
            for task in self._drains:
                task.cancel()
            await asyncio.gather(*self._drains, return_exceptions=True)
        finally:
            if self.audio_sink is not None:  # finalises the speaker's last utterance
                await self.audio_sink.aclose()


async def _drain(track: MediaStreamTrack) -> None:
    from aiortc.mediastreams import MediaStreamError

    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
