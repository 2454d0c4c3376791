"""Runs a stage engine for every room with a deliberation template, driven by bus events and a clock.

The service only talks to rooms through the bus: it subscribes to ``room:*``, feeds each room's engine, and publishes
what the engine returns. It can run inside ``moot serve`` (the default) or in a separate process with the Redis bus;
exactly one facilitator process must serve a room. The clock is injectable: ``ManualClock`` moves time by hand so a
whole session can be driven in tests without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Container, Coroutine
from typing import Any, Protocol

from facilitator.engine import EngineSettings, RoomFacilitator
from facilitator.llm import LLMBackend, LLMCallRecord
from facilitator.proposals import propose_statements
from facilitator.safety import review_lines, screen_utterance
from facilitator.summaries import write_summary
from facilitator.template import Template
from server.bus import Bus, Subscription
from server.events import (
    AIMessage,
    AIMessageProposed,
    BusEvent,
    CaptionFinal,
    FacilitatorControl,
    SafetyFlagged,
    SpeakingBalance,
    StageChanged,
    StatementAdded,
)

logger = logging.getLogger(__name__)

TemplateLookup = Callable[[str], Awaitable[Template | None]]
OWN_EVENTS = (AIMessage, AIMessageProposed, StageChanged, SpeakingBalance, SafetyFlagged)
INACTIVE_ROOMS_REMEMBERED = 10_000  # ended rooms and rooms without a template, most recently seen kept
SAFETY_REVIEW_EVERY = 8  # final captions between two language-model safety reviews of a room


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, when: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.time()))


class ManualClock:
    """Virtual time for tests and benchmarks: ``await advance(seconds, step)`` moves time forward one step at a time;
    after each step it waits until everything driven by this clock has settled (each ``settles_with`` callback: e.g.
    a facilitator service has handled every event and run every wake-up that is due), so no test counts yields."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._changed = asyncio.Condition()
        self._settlers: list[Callable[[], Awaitable[None]]] = []

    def now(self) -> float:
        return self._now

    def settles_with(self, settled: Callable[[], Awaitable[None]]) -> None:
        self._settlers.append(settled)

    async def sleep_until(self, when: float) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= when)

    async def settle(self) -> None:
        for settled in self._settlers:
            await settled()

    async def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self._now + seconds
        await self.settle()
        while self._now < end:
            async with self._changed:
                self._now = min(end, self._now + step)
                self._changed.notify_all()
            await self.settle()


class FacilitatorService:
    """Facilitates every room with a template. Per-room state (engine, caption buffers, timers) lives while the
    session runs and is released when it ends: when the template is over, or when the room has stayed empty for
    ``empty_room_end_s`` (while a room is empty its stage clock is stopped and it has no wake-ups at all; someone
    coming back within that time resumes the stage where it was). Ended rooms and rooms without a template are
    remembered in a bounded cache so their later events cost one dictionary lookup."""

    def __init__(self, bus: Bus, templates: TemplateLookup, clock: Clock | None = None,
                 settings: EngineSettings | None = None, llm: LLMBackend | None = None,
                 record_llm_call: Callable[[str, LLMCallRecord], Awaitable[None]] | None = None,
                 llm_safety_review: bool = True, empty_room_end_s: float = 600.0) -> None:
        self._bus = bus
        self._llm = llm
        self._llm_safety_review = llm_safety_review and llm is not None
        self._llm_started = False
        self._unreviewed: dict[str, list[CaptionFinal]] = {}
        self._reviewing: set[str] = set()
        self._record_llm_call = record_llm_call
        self._captions: dict[str, list[CaptionFinal]] = {}
        self._llm_tasks: set[asyncio.Task[None]] = set()
        self._templates = templates
        self._clock = clock or SystemClock()
        self._settings = settings or EngineSettings()
        self._empty_room_end_s = empty_room_end_s
        self._engines: dict[str, RoomFacilitator] = {}
        self._inactive: OrderedDict[str, str] = OrderedDict()  # room id -> "ended" or "no template" (bounded)
        self._timers: dict[str, tuple[float, asyncio.Task[None]]] = {}  # room id -> (when, wake-up task)
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._handling = False
        self._changed = asyncio.Event()  # set whenever handling or a wake-up finishes (see settled)
        self.wakeups = 0  # timer wake-ups run so far (an idle service does not wake)
        if isinstance(self._clock, ManualClock):
            self._clock.settles_with(self.settled)

    def engine(self, room_id: str) -> RoomFacilitator | None:
        return self._engines.get(room_id)

    def held(self, room_id: str) -> list[str]:
        """Which per-room structures still hold state for ``room_id`` (empty once its session has ended)."""
        holders: dict[str, Container[str]] = {"engine": self._engines, "timer": self._timers,
                                              "captions": self._captions, "unreviewed": self._unreviewed,
                                              "reviewing": self._reviewing}
        return [name for name, store in holders.items() if room_id in store]

    async def settled(self) -> None:
        """Wait until every event delivered so far is handled and no wake-up is due at the clock's current time
        (virtual-time tests: the clock calls this after each step)."""
        while True:
            self._changed.clear()
            now = self._clock.now()
            sub = self._sub
            if (not self._handling and (sub is None or sub.pending == 0)
                    and all(when > now for when, _ in self._timers.values())):
                return
            await self._changed.wait()

    async def start(self) -> None:
        self._sub = await self._bus.subscribe("room:*", maxsize=10_000)
        self._task = asyncio.create_task(self._run(self._sub), name="facilitator")

    async def _run(self, sub: Subscription) -> None:
        async for event in sub:
            self._handling = True
            try:
                if not isinstance(event, OWN_EVENTS):
                    await self._handle(event)
            except Exception:  # one room's failure must not stop the facilitator for the others
                logger.exception("facilitator failed on %s in room %s", event.type, event.room_id)
            finally:
                self._handling = False
                self._changed.set()  # also for events skipped: settled() counts what is still queued

    async def _engine_for(self, room_id: str) -> RoomFacilitator | None:
        engine = self._engines.get(room_id)
        if engine is not None:
            return engine
        if room_id in self._inactive:
            self._inactive.move_to_end(room_id)
            return None
        template = await self._templates(room_id)
        if template is None:
            self._remember_inactive(room_id, "no template")
            return None
        engine = self._engines[room_id] = RoomFacilitator(room_id, template, self._settings)
        if self._llm is not None and not self._llm_started:
            self._llm_started = True  # the first facilitated room: a local model starts loading (background)
            await self._llm.start()
        return engine

    def _remember_inactive(self, room_id: str, why: str) -> None:
        self._inactive[room_id] = why
        self._inactive.move_to_end(room_id)
        while len(self._inactive) > INACTIVE_ROOMS_REMEMBERED:
            self._inactive.popitem(last=False)

    def _end(self, room_id: str, why: str) -> None:
        """The room's session is over: release everything held for it."""
        logger.info("facilitation of room %s ended (%s)", room_id, why)
        self._engines.pop(room_id, None)
        self._captions.pop(room_id, None)
        self._unreviewed.pop(room_id, None)
        timer = self._timers.pop(room_id, None)
        if timer is not None and timer[1] is not asyncio.current_task():
            timer[1].cancel()
        self._remember_inactive(room_id, "ended")

    async def _handle(self, event: BusEvent) -> None:
        room_id = event.room_id
        engine = await self._engine_for(room_id)
        if engine is None:
            return
        if isinstance(event, FacilitatorControl):
            await (self.pause(room_id) if event.action == "pause" else self.resume(room_id))
            return
        await self._publish(engine, engine.handle(event, self._clock.now()))
        if isinstance(event, CaptionFinal) and event.text:
            buffer = self._captions.setdefault(room_id, [])
            buffer.append(event)
            del buffer[:-500]  # bounded: summaries look at recent talk only
            await self._screen(room_id, engine, event)
        self._after(room_id, engine)

    async def _screen(self, room_id: str, engine: RoomFacilitator, caption: CaptionFinal) -> None:
        """Rules on every caption at once; a language-model review every few captions (in the background)."""
        flag = screen_utterance(caption)
        if flag is not None:
            await self._flagged(engine, [flag])
        if not self._llm_safety_review:
            return
        pending = self._unreviewed.setdefault(room_id, [])
        pending.append(caption)
        if len(pending) >= SAFETY_REVIEW_EVERY and room_id not in self._reviewing:
            self._unreviewed[room_id] = []
            self._reviewing.add(room_id)
            self._spawn(self._review(room_id, engine, pending), f"safety-{room_id}")

    async def _review(self, room_id: str, engine: RoomFacilitator, lines: list[CaptionFinal]) -> None:
        assert self._llm is not None
        calls: list[LLMCallRecord] = []
        try:
            flags = await review_lines(self._llm, engine.template.question, lines, calls.append)
        except Exception:
            logger.exception("safety review failed in room %s", room_id)
            return
        finally:
            self._reviewing.discard(room_id)
        await self._record(room_id, calls)
        await self._flagged(engine, flags)

    async def _flagged(self, engine: RoomFacilitator, flags: list[SafetyFlagged]) -> None:
        for flag in flags:
            logger.info("utterance %s in room %s flagged (%s, by %s)", flag.utterance_id, flag.room_id, flag.category,
                        flag.detected_by)
            await self._bus.publish(flag)
        for category in dict.fromkeys(f.category for f in flags):
            await self._publish(engine, engine.respond_to_flag(category, self._clock.now()))

    def _after(self, room_id: str, engine: RoomFacilitator) -> None:
        """Start the LLM work the engine asked for (never awaited here: a slow model delays nothing), then
        schedule the engine's next wake-up."""
        for stage_id, since in engine.take_summary_requests():
            if self._llm is None:
                continue
            lines = [c for c in self._captions.get(room_id, []) if c.end >= since]
            self._spawn(self._summarise(engine, stage_id, lines), f"summary-{room_id}")
        for stage_id in engine.take_statement_requests():
            if self._llm is not None:
                self._spawn(self._propose(engine, stage_id, list(self._captions.get(room_id, []))),
                            f"statements-{room_id}")
        self._schedule(room_id, engine)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._llm_tasks.add(task)
        task.add_done_callback(self._llm_tasks.discard)

    async def _record(self, room_id: str, calls: list[LLMCallRecord]) -> None:
        if self._record_llm_call is not None:
            for call in calls:
                await self._record_llm_call(room_id, call)

    async def _propose(self, engine: RoomFacilitator, stage_id: str, lines: list[CaptionFinal]) -> None:
        assert self._llm is not None
        room_id = engine.room_id
        calls: list[LLMCallRecord] = []
        try:
            statements = await propose_statements(self._llm, room_id, lines, self._clock.now(), calls.append)
        except Exception:
            logger.exception("statement proposals failed in room %s", room_id)
            return
        await self._record(room_id, calls)
        if not statements:
            return
        message = AIMessage(
            room_id=room_id, ts=self._clock.now(), message_id=f"{room_id}-proposals-{statements[0].statement_id}",
            kind="statements", stage_id=stage_id, generated_by=f"llm:{calls[0].model}" if calls else "llm",
            sources=list(dict.fromkeys(s for st in statements for s in st.sources)),
            text=f"I have proposed {len(statements)} statements based on what you said. Please edit them, add your "
                 "own, or say what is missing.")
        await self._post(engine, message, statements)

    async def _summarise(self, engine: RoomFacilitator, stage_id: str, lines: list[CaptionFinal]) -> None:
        assert self._llm is not None
        room_id = engine.room_id
        calls: list[LLMCallRecord] = []
        try:
            message = await write_summary(self._llm, room_id, stage_id, lines, self._clock.now(),
                                          f"{room_id}-summary-{len(lines)}-{int(self._clock.now())}", calls.append)
        except Exception:
            logger.exception("summary failed in room %s", room_id)
            return
        await self._record(room_id, calls)
        if message is not None:
            await self._post(engine, message)

    async def _post(self, engine: RoomFacilitator, message: AIMessage,
                    statements: list[StatementAdded] | None = None) -> None:
        """Publish an AI message (after the statements it announces), or propose both to the moderators when the
        deliberation wants approval first (also for work that finishes after the session ended)."""
        if engine.template.ai_messages == "approve":
            await self._bus.publish(AIMessageProposed(room_id=engine.room_id, ts=message.ts, message=message,
                                                      statements=statements or []))
            return
        for statement in statements or []:
            await self._bus.publish(statement)
        await self._bus.publish(message)

    async def _publish(self, engine: RoomFacilitator, events: list[BusEvent]) -> None:
        for event in events:
            if isinstance(event, AIMessage):
                await self._post(engine, event)
            else:
                await self._bus.publish(event)

    def _schedule(self, room_id: str, engine: RoomFacilitator) -> None:
        """One timer per room: the engine's next wake-up, or (in an empty room) the end of the session."""
        timer = self._timers.pop(room_id, None)
        if timer is not None and not timer[1].done():
            timer[1].cancel()
        if engine.finished:
            self._end(room_id, "template finished")
            return
        wake = engine.next_wakeup()
        empty_since = engine.empty_since
        if wake is None and empty_since is not None:
            end = empty_since + self._empty_room_end_s
            self._timers[room_id] = (end, asyncio.create_task(self._end_when_empty(room_id, engine, end),
                                                              name=f"facilitator-end-{room_id}"))
        elif wake is not None:
            self._timers[room_id] = (wake, asyncio.create_task(self._wake(room_id, engine, wake),
                                                               name=f"facilitator-{room_id}"))

    async def _wake(self, room_id: str, engine: RoomFacilitator, when: float) -> None:
        await self._clock.sleep_until(when)
        self._timers.pop(room_id, None)  # from here on nothing cancels this wake-up half-way through publishing
        self.wakeups += 1
        try:
            await self._publish(engine, engine.tick(self._clock.now()))
            self._after(room_id, engine)
        finally:
            self._changed.set()

    async def _end_when_empty(self, room_id: str, engine: RoomFacilitator, when: float) -> None:
        await self._clock.sleep_until(when)
        try:
            if self._engines.get(room_id) is engine and engine.empty_since is not None:
                self._end(room_id, f"empty for {self._empty_room_end_s:.0f} s")
        finally:
            self._changed.set()

    async def llm_idle(self) -> None:
        """Wait until no summary (or other LLM work) is in progress."""
        while self._llm_tasks:
            await asyncio.gather(*list(self._llm_tasks), return_exceptions=True)

    async def pause(self, room_id: str) -> bool:
        engine = self._engines.get(room_id)
        if engine is None:
            return False
        engine.pause(self._clock.now())
        await self._publish(engine, engine.current_stage(self._clock.now()))  # the room sees the clock stopped
        self._schedule(room_id, engine)
        return True

    async def resume(self, room_id: str) -> bool:
        engine = self._engines.get(room_id)
        if engine is None:
            return False
        engine.resume(self._clock.now())
        await self._publish(engine, engine.current_stage(self._clock.now()) + engine.tick(self._clock.now()))
        self._schedule(room_id, engine)
        return True

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.close()
        for task in [self._task, *(t for _, t in self._timers.values()), *self._llm_tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._timers.clear()
