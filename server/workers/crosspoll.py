"""Cross-pollination as a worker component (run wherever the recorder runs): when a deliberation's room enters its
voting stage, it also gets ``cross_pollination`` statements written in the other rooms (``server/deliberations/
crosspoll.py`` chooses them), stored as shared with the room and published into it as ``statement.added`` with
``shared``; its participants vote on them like on their own. Once per room: the stage is announced again to every
newcomer, and a room that has its shares keeps them. A consumer group on the rooms channel, so any number of these
share the work and none is lost while one restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from server.core.bus import Bus, Consumer
from server.core.events import StageChanged, StatementAdded
from server.deliberations.crosspoll import Candidate, choose
from server.storage import Storage

logger = logging.getLogger(__name__)

GROUP = "crosspoll"


class CrossPollinator:
    def __init__(self, bus: Bus, storage: Storage, name: str = "crosspoll") -> None:
        self._bus = bus
        self._storage = storage
        self._name = name
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.shared = 0

    async def start(self) -> None:
        self._consumer = await self._bus.consumer(GROUP, self._name)
        self._task = asyncio.create_task(self._run(self._consumer), name="crosspoll")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.close()

    def health(self) -> dict[str, object]:
        return {"ok": self._task is not None and not self._task.done(), "shared": self.shared}

    async def _run(self, consumer: Consumer) -> None:
        async for delivery in consumer:
            event = delivery.event
            try:
                if isinstance(event, StageChanged) and event.kind == "voting":
                    await self.share_into(event.room_id)
            except Exception:  # the vote goes on without shares; the next announcement tries again
                logger.exception("cross-pollination for room %s failed", event.room_id)
            await consumer.ack(delivery)

    async def share_into(self, room_id: str) -> int:
        """Share other rooms' statements into ``room_id`` (once); how many were shared now."""
        shared = await asyncio.to_thread(self._choose_and_store, room_id)
        for statement in shared:
            await self._bus.publish(statement)
        self.shared += len(shared)
        if shared:
            logger.info("shared %d statements of other rooms into room %s", len(shared), room_id)
        return len(shared)

    def _choose_and_store(self, room_id: str) -> list[StatementAdded]:
        from server.deliberations.store import DeliberationStore

        room = self._storage.get_room(room_id)
        if room is None or room.deliberation_id is None:
            return []
        record = DeliberationStore(self._storage.sessions).get(room.deliberation_id)
        if record is None or record.spec.cross_pollination <= 0:
            return []
        count = record.spec.cross_pollination

        def pick(statements: list[tuple[StatementAdded, set[str]]]) -> list[str]:
            candidates = [Candidate(st.statement_id, st.room_id, st.ts, frozenset(rooms)) for st, rooms in statements]
            return choose(room_id, candidates, count)

        shared = set(self._storage.share_once(room_id, room.deliberation_id, pick, time.time()))
        return [st for st in self._storage.statements(room_id) if st.statement_id in shared]
