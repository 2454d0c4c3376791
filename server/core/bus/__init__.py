"""The event bus: one interface (``base.Bus``), an in-process implementation (embedded default) and one on Redis
Streams (scaled deployment). See ``base`` for the channels and the two ways to read them."""

from __future__ import annotations

from server.core.bus.base import ROOMS, Bus, Consumer, Delivery, Subscription, room_channel
from server.core.bus.memory import InProcessBus

__all__ = ["ROOMS", "Bus", "Consumer", "Delivery", "InProcessBus", "Subscription", "create_bus", "room_channel"]


def create_bus(kind: str, redis_url: str | None = None, source: str = "local", prefix: str = "moot:",
               history: int | None = None, log: int | None = None, ttl_s: float | None = None) -> Bus:
    """Build the bus named in settings (``memory`` or ``redis``); ``source`` names this process in event envelopes.
    The rest override how much each channel keeps: ``history`` (entries), ``log`` (entries of the consumer groups'
    log; 0: none, for channels nobody reads as a group) and, on Redis, ``ttl_s`` (after the last event)."""
    sizes = {k: v for k, v in (("history", history), ("log", log)) if v is not None}
    if kind == "memory":
        return InProcessBus(source=source, **sizes)
    if kind == "redis":
        from server.core.bus.redis import RedisBus

        if not redis_url:
            raise ValueError("bus=redis needs MOOT_REDIS_URL")
        bus = RedisBus(redis_url, source=source, prefix=prefix, **sizes)
        if ttl_s is not None:
            bus.ttl_s = ttl_s
        return bus
    raise ValueError(f"unknown bus {kind!r}: use 'memory' or 'redis'")
