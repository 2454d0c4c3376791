"""The room directory: which server node hosts a room, which facilitator worker facilitates it, which speech worker
transcribes it. Built from leases (``server.core.leases``): a holder keeps its entry alive with heartbeats (a
``LeaseKeeper``); a dead holder's entries expire after their ttl and another process takes them over.

With speech workers, a server node holds a ``speech-source`` lease for each speaker whose audio it sends to the
speech tier, and the worker transcribing that speaker holds its ``speech-speaker`` lease.

Server nodes take ``room-node`` leases when a room's first participant arrives (with the node's URL, so another node
can tell a client where the room lives); workers discover active rooms by listing them.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.core.leases import Lease, Leases

ROOM_NODE = "room-node"
ROOM_FACILITATOR = "room-facilitator"
ROOM_SPEECH = "room-speech"
SPEECH_SOURCE = "speech-source"  # a speaker whose audio a server node sends to the speech tier (key: its session)
SPEECH_SPEAKER = "speech-speaker"  # the speech worker that transcribes that speaker now (key: its session)


@dataclass(frozen=True)
class HostedElsewhere:
    """The room is leased to another node; ``url`` is where its clients should go."""

    node: str
    url: str


class RoomDirectory:
    def __init__(self, leases: Leases, holder: str, ttl_s: float = 10.0, url: str = "") -> None:
        self.leases = leases
        self.holder = holder  # this process (a node or a worker)
        self.url = url  # this node's base URL, given to clients that reach another node
        self.ttl_s = ttl_s

    async def claim(self, kind: str, room_id: str) -> Lease | HostedElsewhere:
        """Take (or keep) the room's ``kind`` lease for this process, or say who has it."""
        lease = await self.leases.acquire(kind, room_id, self.holder, self.ttl_s,
                                          {"url": self.url} if self.url else None)
        if lease is not None:
            return lease
        current = await self.leases.get(kind, room_id)
        if current is None:  # it expired between the two calls: try once more
            lease = await self.leases.acquire(kind, room_id, self.holder, self.ttl_s,
                                              {"url": self.url} if self.url else None)
            if lease is not None:
                return lease
            current = await self.leases.get(kind, room_id)
        return HostedElsewhere(current.holder if current else "", current.info.get("url", "") if current else "")

    async def where(self, kind: str, room_id: str) -> Lease | None:
        return await self.leases.get(kind, room_id)

    async def active_rooms(self) -> list[str]:
        """Rooms some server node hosts now."""
        return sorted(lease.key for lease in await self.leases.all(ROOM_NODE))
