"""Moderators' actions on live rooms (remove, mute, move a participant; end a room) reach the node that hosts the
room: the API publishes a ``room.control`` event on the named channel ``room-control``; every node listens and the one
hosting the room carries it out (``RoomRegistry.control``). The same path serves one process (in-process bus) and many
nodes (Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.core.bus import Bus, Subscription
from server.core.events import RoomControl
from server.rooms import RoomRegistry

logger = logging.getLogger(__name__)

CHANNEL = "room-control"


async def send_control(bus: Bus, control: RoomControl) -> None:
    await bus.publish_to(CHANNEL, control)


class RoomControlListener:
    """A node component: carries out the ``room.control`` events for the rooms this node hosts."""

    def __init__(self, rooms: RoomRegistry, bus: Bus) -> None:
        self._rooms = rooms
        self._bus = bus
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.handled = 0

    async def start(self) -> None:
        self._subscription = await self._bus.subscribe(CHANNEL, maxsize=10_000)
        self._task = asyncio.create_task(self._run(self._subscription), name="room-control")

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def health(self) -> dict[str, object]:
        return {"ok": self._task is not None and not self._task.done(), "handled": self.handled}

    async def _run(self, subscription: Subscription) -> None:
        async for event in subscription:
            if not isinstance(event, RoomControl):
                continue
            try:
                if await self._rooms.control(event):
                    self.handled += 1
            except Exception:  # one failed action must not stop the next ones
                logger.exception("moderator action %s in room %s failed", event.action, event.room_id)
