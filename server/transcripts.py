"""The transcript recorder: stores what the bus carries for the record (final captions, AI facilitator messages posted
or waiting for a moderator, AI-proposed statements, safety flags, language-model call records).

It is one durable consumer group (``recorder``) on the ``rooms`` channel: however many processes run a recorder, each
event is stored by one of them, and it is acknowledged only after the database committed it. A recorder that dies
before acknowledging leaves the event pending, and another member (or itself, restarted) stores it; every write is
idempotent (keyed by the id its producer chose), so a redelivered event is stored once. An event that keeps failing
is set aside after ``MAX_ATTEMPTS`` (logged, published on the ``dead-letters`` channel) so it cannot block the rest.
An acknowledgement that fails (Redis unreachable for longer than the bus retries) leaves the event pending: it comes
back, is found stored, and is acknowledged then; the recorder carries on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.core.bus import Bus, Consumer, Delivery
from server.core.errors import connection_lost
from server.core.events import (
    AIMessage,
    AIMessageProposed,
    BusEvent,
    CaptionFinal,
    CaptionTranslated,
    LLMCallRecorded,
    SafetyFlagged,
    StatementAdded,
)
from server.core.ids import process_name
from server.storage import Storage

logger = logging.getLogger(__name__)

GROUP = "recorder"
MAX_ATTEMPTS = 8


class TranscriptRecorder:
    def __init__(self, bus: Bus, storage: Storage, name: str | None = None, reclaim_after_s: float = 30.0) -> None:
        self._bus = bus
        self._storage = storage
        self._name = name or process_name("recorder")
        self._reclaim_after_s = reclaim_after_s
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.stored = 0  # captions this recorder stored (not counting redeliveries of stored ones)
        self.failed = 0  # store attempts that raised (left pending for redelivery)
        self._progress = asyncio.Condition()
        self._closing = asyncio.Event()
        self._waiting = False

    async def start(self) -> None:
        self._consumer = await self._bus.consumer(GROUP, self._name, reclaim_after_s=self._reclaim_after_s)
        self._task = asyncio.create_task(self._run(self._consumer), name="transcript-recorder")

    async def _run(self, consumer: Consumer) -> None:
        while not self._closing.is_set():
            self._waiting = True  # close() may cancel the task only here: nothing is taken while waiting
            try:
                delivery = await consumer.get()
            except StopAsyncIteration:
                return
            finally:
                self._waiting = False
            await self._handle(consumer, delivery)
        await self._drain(consumer)

    async def _drain(self, consumer: Consumer) -> None:
        """Closing: store what is already there (a short wait for more, not a poll while running)."""
        while True:
            try:
                delivery = await consumer.get(timeout=0.2)
            except (TimeoutError, StopAsyncIteration):
                return
            await self._handle(consumer, delivery)

    async def _handle(self, consumer: Consumer, delivery: Delivery) -> None:
        try:
            await self._store(delivery.event)
        except Exception:
            self.failed += 1
            if delivery.attempt < MAX_ATTEMPTS:
                # Not acknowledged: it is delivered again after the reclaim time (to this or another member).
                logger.warning("could not store %s of room %s (attempt %d); it will be retried",
                               delivery.event.type, delivery.event.room_id, delivery.attempt, exc_info=True)
                return
            await self._set_aside(delivery)
        try:
            await consumer.ack(delivery)
        except Exception as exc:  # (the bus retried for a while): stored, so a redelivery finds it done
            logger.warning("could not acknowledge %s of room %s (%s); it will be delivered again",
                           delivery.event.type, delivery.event.room_id, exc, exc_info=not connection_lost(exc))
        async with self._progress:
            self._progress.notify_all()

    async def _store(self, event: BusEvent) -> None:
        storage = self._storage
        if isinstance(event, CaptionFinal):
            if await asyncio.to_thread(storage.add_caption, event):
                self.stored += 1
        elif isinstance(event, CaptionTranslated) and not event.partial:
            await asyncio.to_thread(storage.add_caption_translation, event)
        elif isinstance(event, AIMessage):
            await asyncio.to_thread(storage.add_ai_message, event)
        elif isinstance(event, AIMessageProposed):
            await asyncio.to_thread(storage.add_ai_message, event.message, "pending", event.statements)
        elif isinstance(event, SafetyFlagged):
            await asyncio.to_thread(storage.add_safety_flag, event)
        elif isinstance(event, StatementAdded) and event.ai_generated and not event.shared:
            # (participants' statements are stored when written; a shared copy is stored already)
            await asyncio.to_thread(storage.add_statement, event)
        elif isinstance(event, LLMCallRecorded):
            await asyncio.to_thread(storage.add_llm_call_record, event)

    async def _set_aside(self, delivery: Delivery) -> None:
        logger.error("giving up storing %s %s of room %s after %d attempts; published on dead-letters",
                     delivery.event.type, delivery.event.event_id, delivery.event.room_id, delivery.attempt)
        with contextlib.suppress(Exception):
            await self._bus.publish_to("dead-letters", delivery.event)

    def health(self) -> dict[str, object]:
        running = self._task is not None and not self._task.done()
        return {"ok": running, "stored": self.stored, "failed": self.failed}

    async def wait_stored(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` captions have been stored by this recorder."""
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.stored >= count), timeout)

    async def close(self) -> None:
        self._closing.set()
        if self._task is not None:
            if self._waiting:  # idle: stop waiting, then store what arrived meanwhile
                while not self._task.done():  # (cancel again should a library swallow the cancellation)
                    self._task.cancel()
                    await asyncio.wait({self._task}, timeout=1)
                if self._consumer is not None:
                    self._task = asyncio.create_task(self._drain(self._consumer), name="transcript-recorder-drain")
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):  # never hang shutdown
                await asyncio.wait_for(self._task, timeout=5)
        if self._consumer is not None:
            await self._consumer.close()  # what was not acknowledged stays pending for the next recorder
