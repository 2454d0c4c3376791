"""Redis pub/sub bus for the scaled deployment: any number of server nodes and workers share rooms through it.

One Redis connection per process reads a pattern subscription and fans events out to local subscriptions; messages
that are not known event types are logged and dropped, never passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from server.bus.base import Bus, Subscription, room_channel
from server.events import BusEvent, EventDecodeError, decode_bus_event, encode

logger = logging.getLogger(__name__)

PREFIX = "moot:"


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._subscriptions: list[Subscription] = []
        self._patterns: dict[str, int] = {}
        self._confirmations: dict[str, asyncio.Event] = {}
        self.rejected = 0

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.from_url(self._url)
        await self._client.ping()
        self._pubsub = self._client.pubsub()
        # Subscribe to one always-present pattern so the reader has something to listen on from the start.
        await self._pubsub.psubscribe(PREFIX + "__control__")
        self._reader = asyncio.create_task(self._read(), name="redis-bus-reader")

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("redis bus read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            if message.get("type") == "psubscribe":
                confirmed = self._confirmations.pop(channel, None)
                if confirmed is not None:
                    confirmed.set()
                continue
            if message.get("type") not in ("pmessage", "message"):
                continue
            try:
                event = decode_bus_event(message["data"])
            except EventDecodeError as exc:
                self.rejected += 1
                logger.warning("dropped an unknown or malformed bus message on %s: %s", channel, exc)
                continue
            local_channel = channel.removeprefix(PREFIX)
            for sub in list(self._subscriptions):
                if sub.matches(local_channel):
                    sub.deliver(event)

    async def publish(self, event: BusEvent) -> None:
        assert self._client is not None, "RedisBus.start() was not awaited"
        await self._client.publish(PREFIX + room_channel(event.room_id), encode(event))

    async def subscribe(self, pattern: str, maxsize: int = 1000) -> Subscription:
        assert self._pubsub is not None, "RedisBus.start() was not awaited"
        sub = Subscription(pattern, maxsize, on_close=self._remove)
        self._subscriptions.append(sub)
        self._patterns[pattern] = self._patterns.get(pattern, 0) + 1
        if self._patterns[pattern] == 1:
            # Wait until Redis confirms, so that events published after subscribe() returns are received.
            confirmed = self._confirmations.setdefault(PREFIX + pattern, asyncio.Event())
            await self._pubsub.psubscribe(PREFIX + pattern)
            await asyncio.wait_for(confirmed.wait(), timeout=10)
        return sub

    async def _remove(self, sub: Subscription) -> None:
        if sub not in self._subscriptions:
            return
        self._subscriptions.remove(sub)
        self._patterns[sub.pattern] -= 1
        if self._patterns[sub.pattern] == 0 and self._pubsub is not None:
            del self._patterns[sub.pattern]
            with contextlib.suppress(Exception):
                await self._pubsub.punsubscribe(PREFIX + sub.pattern)

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()
