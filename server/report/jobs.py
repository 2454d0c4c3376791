"""The cross-room report as a background job, never inside a request: ``start`` claims the deliberation's report row
(one job per deliberation at a time, across every node: the claim is one conditional write), and a task builds the
report in a worker thread, writing which step it is on; the result (or the error) lands in the same row, where any
node answers ``GET .../report`` from. A job whose node died is stale after ``STALE_S`` and may be started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from facilitator.llm import LLMBackend
from server.core.embeddings import Embedder
from server.report.build import STEPS, build_report
from server.report.naming import name_themes
from server.storage import Storage
from server.storage.tables import ReportRow

logger = logging.getLogger(__name__)

STALE_S = 1800.0


@dataclass(frozen=True)
class ReportState:
    status: str  # none | running | done | failed
    step: int
    step_name: str
    steps: int
    started_at: float | None
    finished_at: float | None
    error: str | None
    result: dict[str, Any] | None


class ReportStore:
    def __init__(self, storage: Storage) -> None:
        self._sessions = storage.sessions

    def claim(self, deliberation_id: str, now: float) -> bool:
        """Mark the report as running; False if a fresh job already runs."""
        with self._sessions() as s, s.begin():
            claimed = s.connection().execute(
                update(ReportRow).where(ReportRow.deliberation_id == deliberation_id,
                                        (ReportRow.status != "running") | (ReportRow.started_at < now - STALE_S))
                .values(status="running", step=0, step_name=STEPS[0], started_at=now, finished_at=None, error=None))
            if claimed.rowcount == 1:
                return True
            if s.get(ReportRow, deliberation_id) is not None:
                return False
        try:
            with self._sessions() as s, s.begin():
                s.add(ReportRow(deliberation_id=deliberation_id, status="running", step=0, step_name=STEPS[0],
                                started_at=now))
        except IntegrityError:  # another node claimed it between the two writes
            return False
        return True

    def progress(self, deliberation_id: str, step: int, name: str) -> None:
        with self._sessions() as s, s.begin():
            s.connection().execute(update(ReportRow).where(ReportRow.deliberation_id == deliberation_id)
                                   .values(step=step, step_name=name))

    def finish(self, deliberation_id: str, result: dict[str, Any] | None, error: str | None, now: float) -> None:
        values: dict[str, Any] = {"status": "failed" if error else "done", "finished_at": now, "error": error}
        if result is not None:
            values["result"] = result
        with self._sessions() as s, s.begin():
            s.connection().execute(update(ReportRow).where(ReportRow.deliberation_id == deliberation_id)
                                   .values(**values))

    def state(self, deliberation_id: str) -> ReportState:
        with self._sessions() as s:
            row = s.scalar(select(ReportRow).where(ReportRow.deliberation_id == deliberation_id))
            if row is None:
                return ReportState("none", 0, "", len(STEPS), None, None, None, None)
            return ReportState(row.status, row.step, row.step_name, len(STEPS), row.started_at, row.finished_at,
                               row.error, row.result)


class ReportJobs:
    """A process component: runs the report jobs this process started; ``close`` cancels what still runs."""

    def __init__(self, storage: Storage, embedder: Embedder | None, llm: LLMBackend | None = None) -> None:
        self.store = ReportStore(storage)
        self._storage = storage
        self._embedder = embedder
        self._llm = llm  # a capable model names the themes; without one they keep their central quote
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._llm is not None:
            await self._llm.aclose()

    async def begin(self, deliberation_id: str) -> bool:
        """Start building the report; False if it is already being built."""
        if not await asyncio.to_thread(self.store.claim, deliberation_id, time.time()):
            return False
        task = asyncio.create_task(self._run(deliberation_id), name="report-job")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def wait(self) -> None:
        """Until every job this process started has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, deliberation_id: str) -> None:
        def step(n: int, name: str) -> None:
            self.store.progress(deliberation_id, n, name)

        try:
            report = await asyncio.to_thread(build_report, self._storage, deliberation_id, self._embedder, step)
            if self._llm is not None and report.themes:
                await asyncio.to_thread(step, len(STEPS) - 1, STEPS[-1])
                report = report.model_copy(update={"themes": await name_themes(self._llm, report.themes)})
        except asyncio.CancelledError:
            await asyncio.to_thread(self.store.finish, deliberation_id, None, "stopped: the server shut down",
                                    time.time())
            raise
        except Exception as exc:
            logger.exception("the report of deliberation %s failed", deliberation_id)
            await asyncio.to_thread(self.store.finish, deliberation_id, None, f"{type(exc).__name__}: {exc}"[:500],
                                    time.time())
            return
        await asyncio.to_thread(self.store.finish, deliberation_id, report.model_dump(mode="json"), None, time.time())
        logger.info("the report of deliberation %s is ready", deliberation_id)
