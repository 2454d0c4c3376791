"""The event bus: one interface, an in-process implementation (embedded default) and a Redis one (scaled deployment).

Events are published to a room's channel (``room:<room_id>``); subscribers name a channel or a glob pattern such as
``room:*``. Each subscription has a bounded queue: a slow subscriber loses its oldest events (counted in ``dropped``)
rather than stalling publishers.
"""

from __future__ import annotations

from server.bus.base import Bus, Subscription, room_channel
from server.bus.memory import InProcessBus

__all__ = ["Bus", "InProcessBus", "Subscription", "create_bus", "room_channel"]


def create_bus(kind: str, redis_url: str | None = None) -> Bus:
    """Build the bus named in settings (``memory`` or ``redis``)."""
    if kind == "memory":
        return InProcessBus()
    if kind == "redis":
        from server.bus.redis import RedisBus

        if not redis_url:
            raise ValueError("bus=redis needs MOOT_REDIS_URL")
        return RedisBus(redis_url)
    raise ValueError(f"unknown bus {kind!r}: use 'memory' or 'redis'")
