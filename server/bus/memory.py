"""In-process bus for the embedded deployment and for tests: delivery is immediate and in order."""

from __future__ import annotations

from server.bus.base import Bus, Subscription, room_channel
from server.events import BusEvent


class InProcessBus(Bus):
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        return None

    async def publish(self, event: BusEvent) -> None:
        channel = room_channel(event.room_id)
        for sub in list(self._subscriptions):
            if sub.matches(channel):
                sub.deliver(event)

    async def subscribe(self, pattern: str, maxsize: int = 1000) -> Subscription:
        sub = Subscription(pattern, maxsize, on_close=self._remove)
        self._subscriptions.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
