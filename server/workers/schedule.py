"""Timed work on deliberations: the first round at a deliberation's scheduled start, and transcript retention.

``due_rounds`` (a pure function) says which deliberations' first round is due; ``DeliberationScheduler`` is its thin
host: every ``every_s`` of its clock it starts the due rounds and applies retention, in threads (the database is
blocking). Several processes may run one (every recorder does): a round is one locked transaction that finds nobody
left waiting the second time, and retention deletes what is already gone without harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import exists, select

from server.core.clock import Clock
from server.deliberations.erasure import Erasure
from server.deliberations.store import DeliberationStore
from server.lobby.store import LobbyClosed, LobbyStore
from server.storage import Storage
from server.storage.tables import DeliberationRow, RoomRow

logger = logging.getLogger(__name__)

EVERY_S = 30.0


@dataclass(frozen=True)
class Scheduled:
    deliberation_id: str
    status: str
    starts_at: float | None
    has_rooms: bool


def due_rounds(deliberations: Iterable[Scheduled], now: float) -> list[str]:
    """Open deliberations whose scheduled start has come and that have had no round yet."""
    return sorted(d.deliberation_id for d in deliberations
                  if d.status == "open" and d.starts_at is not None and d.starts_at <= now and not d.has_rooms)


class DeliberationScheduler:
    def __init__(self, storage: Storage, clock: Clock, every_s: float = EVERY_S) -> None:
        self._storage = storage
        self._clock = clock
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None
        self._next_pass: float | None = None  # clock time of the next pass, once a pass is done
        self._passed = asyncio.Condition()
        self.rounds_started = 0
        self.passes = 0
        self.failures = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deliberation-scheduler")

    def health(self) -> dict[str, object]:
        running = self._task is not None and not self._task.done()
        return {"ok": running, "passes": self.passes, "rounds_started": self.rounds_started,
                "failures": self.failures}

    async def rested(self) -> None:
        """Wait until every pass due by the clock's time is done (``ManualClock.settles_with``)."""
        async with self._passed:
            await self._passed.wait_for(lambda: self._next_pass is not None and self._next_pass > self._clock.now())

    async def _run(self) -> None:
        while True:
            now = self._clock.now()
            try:
                await asyncio.to_thread(self._pass, now)
            except Exception:
                self.failures += 1
                logger.exception("scheduled deliberation work failed; trying again at the next pass")
            self.passes += 1
            async with self._passed:
                self._next_pass = now + self._every_s
                self._passed.notify_all()
            await self._clock.sleep_until(now + self._every_s)

    def _pass(self, now: float) -> None:
        sessions = self._storage.sessions
        with sessions() as s:
            has_rooms = exists().where(RoomRow.deliberation_id == DeliberationRow.id)
            rows = s.execute(select(DeliberationRow.id, DeliberationRow.status, DeliberationRow.starts_at,
                                    has_rooms).where(DeliberationRow.status == "open",
                                                     DeliberationRow.starts_at.is_not(None)))
            scheduled = [Scheduled(i, status, at, bool(rooms)) for i, status, at, rooms in rows]
        deliberations, lobby = DeliberationStore(sessions), LobbyStore(sessions)
        for deliberation_id in due_rounds(scheduled, now):
            record = deliberations.get(deliberation_id)
            if record is None:
                continue
            with contextlib.suppress(LobbyClosed):  # closed or paused meanwhile
                result = lobby.start_round(record, now)
                self.rounds_started += 1
                logger.info("deliberation %s: scheduled round formed %d rooms (%d still waiting)",
                            deliberation_id, len(result.rooms), len(result.waiting))
        for deliberation_id in Erasure(sessions).apply_retention(now):
            logger.info("deliberation %s: transcripts deleted (retention period over)", deliberation_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
