"""Background task that stores what the bus carries for the record: final captions, AI facilitator messages (posted
or waiting for a moderator), AI-proposed statements and safety flags."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.bus import Bus, Subscription
from server.events import AIMessage, AIMessageProposed, CaptionFinal, SafetyFlagged, StatementAdded
from server.storage import Storage

logger = logging.getLogger(__name__)


class TranscriptRecorder:
    """Subscribes to ``room:*`` and writes ``caption.final`` events to storage (idempotent per utterance)."""

    def __init__(self, bus: Bus, storage: Storage) -> None:
        self._bus = bus
        self._storage = storage
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self.stored = 0
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        self._sub = await self._bus.subscribe("room:*", maxsize=10_000)
        self._task = asyncio.create_task(self._run(self._sub), name="transcript-recorder")

    async def _run(self, sub: Subscription) -> None:
        async for event in sub:
            try:
                if isinstance(event, CaptionFinal):
                    if await asyncio.to_thread(self._storage.add_caption, event):
                        self.stored += 1
                elif isinstance(event, AIMessage):
                    await asyncio.to_thread(self._storage.add_ai_message, event)
                elif isinstance(event, AIMessageProposed):
                    await asyncio.to_thread(self._storage.add_ai_message, event.message, "pending", event.statements)
                elif isinstance(event, SafetyFlagged):
                    await asyncio.to_thread(self._storage.add_safety_flag, event)
                elif isinstance(event, StatementAdded) and event.ai_generated:  # participants' are stored at once
                    await asyncio.to_thread(self._storage.add_statement, event)
                else:
                    continue
            except Exception:
                logger.exception("could not store %s of room %s", event.type, event.room_id)
            async with self._progress:
                self._progress.notify_all()

    async def wait_stored(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` captions have been stored by this recorder."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.stored >= count), timeout)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()
        if self._task is not None:
            # Let the recorder drain what was queued before the end marker, but never hang shutdown.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=5)
