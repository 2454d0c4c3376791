"""A participant's connection health, from the server peer's own WebRTC statistics (aiortc ``getStats``): what the
moderators' dashboard shows beside each name.

- **loss**: the fraction of the RTP packets the participant sent that never reached the server, over the interval
  since the previous sample (counters from the server's ``inbound-rtp`` stats, so a loss long ago does not colour the
  connection forever);
- **rtt_ms**: the round-trip time to the participant, from the RTCP receiver reports their browser sends about the
  media the server forwards to them (known once they receive someone's media);
- **audio_silent_s**: seconds since the last audio packet arrived while their microphone is on: a microphone that
  sends nothing (a broken device, a blocked permission, a network that drops only UDP media) shows as "no audio".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from server.core.events import ParticipantHealth
from server.rtc.peer import Peer

logger = logging.getLogger(__name__)


@dataclass
class HealthSampler:
    """Samples one peer's statistics; keeps the previous counters so loss is measured per interval."""

    joined_at: float = field(default_factory=time.monotonic)
    _received: int = 0
    _lost: int = 0

    async def sample(self, peer: Peer, name: str, audio: bool, video: bool) -> ParticipantHealth:
        received = lost = 0
        rtts: list[float] = []
        try:
            report = list((await peer.pc.getStats()).values())
        except Exception:  # a peer closing meanwhile: report what is known without statistics
            logger.debug("getStats failed for %s", peer.participant_id, exc_info=True)
            report = []
        for stats in report:
            if stats.type == "inbound-rtp":
                received += int(stats.packetsReceived)
                lost += max(0, int(stats.packetsLost))
            elif stats.type == "remote-inbound-rtp" and stats.roundTripTime is not None:
                rtts.append(float(stats.roundTripTime))
        sent = (received - self._received) + (lost - self._lost)
        loss = None
        if sent > 0:
            loss = max(0.0, min(1.0, (lost - self._lost) / sent))
        self._received, self._lost = received, lost
        return ParticipantHealth(
            participant_id=peer.participant_id, name=name, audio=audio, video=video,
            connection=str(peer.pc.connectionState), loss=loss,
            rtt_ms=round(max(rtts) * 1000, 1) if rtts else None,
            audio_silent_s=self.audio_silent_s(peer, audio),
        )

    def audio_silent_s(self, peer: Peer, audio: bool, now: float | None = None) -> float | None:
        """Seconds without an audio packet while the microphone is on, counted from the join when none ever came."""
        if not audio:
            return None
        now = time.monotonic() if now is None else now
        published = peer.published.get("audio")
        last = published.last_packet_at if published is not None and published.last_packet_at else self.joined_at
        silent = now - last
        return round(silent, 1) if silent >= 2.0 else None
