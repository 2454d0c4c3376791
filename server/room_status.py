"""Every few seconds, each room this node hosts is published as a ``room.status`` event: its participants, their
media state and their connection health (``server/rtc/health.py``). Moderators' dashboards read it from the bus, so it
works the same whichever node hosts the room, and a dashboard opened mid-session learns each room's people within one
interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.core.bus import Bus
from server.core.events import RoomStatus
from server.rooms import RoomRegistry
from server.rtc.health import HealthSampler

logger = logging.getLogger(__name__)


class RoomStatusReporter:
    """A node component: one task that samples and publishes every hosted room each ``interval_s``."""

    def __init__(self, rooms: RoomRegistry, bus: Bus, interval_s: float, node: str = "") -> None:
        self._rooms = rooms
        self._bus = bus
        self.interval_s = interval_s
        self.node = node
        self._samplers: dict[str, HealthSampler] = {}
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="room-status")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def health(self) -> dict[str, object]:
        return {"ok": self._task is not None and not self._task.done(), "published": self.published}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.report()
            except Exception:  # a bus hiccup: the next interval tries again
                logger.exception("publishing room status failed")

    async def report(self) -> None:
        """Sample and publish every hosted room once."""
        present: set[str] = set()
        for room in self._rooms.hosted():
            people = list(room.participants.values())
            if not people:
                continue
            health = []
            for participant in people:
                present.add(participant.id)
                sampler = self._samplers.setdefault(participant.id, HealthSampler())
                health.append(await sampler.sample(participant.peer, participant.name, participant.audio,
                                                   participant.video))
            await self._bus.publish(RoomStatus(room_id=room.id, node=self.node, participants=health,
                                               observers=len(room.observers)))
            self.published += 1
        for gone in set(self._samplers) - present:
            del self._samplers[gone]
