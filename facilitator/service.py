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
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Container, Coroutine
from typing import Any

from facilitator.engine import EngineSettings, RoomFacilitator
from facilitator.llm import LLMBackend, LLMCallRecord
from facilitator.messages import say
from facilitator.proposals import propose_statements
from facilitator.quotes import key_points
from facilitator.safety import review_lines, screen_utterance
from facilitator.summaries import write_summary
from facilitator.template import Template
from server.core.bus import Bus, Subscription, room_channel
from server.core.clock import Clock, ManualClock, SystemClock
from server.core.directory import ROOM_FACILITATOR, HostedElsewhere, RoomDirectory
from server.core.embeddings import Embedder
from server.core.errors import connection_lost
from server.core.events import (
    AIMessage,
    AIMessageProposed,
    BusEvent,
    CaptionFinal,
    FacilitatorControl,
    LLMCallRecorded,
    SafetyFlagged,
    SpeakingBalance,
    StageChanged,
    StatementAdded,
)
from server.core.ids import new_id
from server.core.leases import Lease, LeaseKeeper

logger = logging.getLogger(__name__)

TemplateLookup = Callable[[str], Awaitable[Template | None]]
OWN_EVENTS = (AIMessage, AIMessageProposed, StageChanged, SpeakingBalance, SafetyFlagged, LLMCallRecorded)
INACTIVE_ROOMS_REMEMBERED = 10_000  # ended rooms and rooms without a template, most recently seen kept
REPLAY_TICKS_MAX = 100_000  # a bound on the wake-ups replayed between two events (a template has far fewer)
SAFETY_REVIEW_EVERY = 8  # final captions between two language-model safety reviews of a room


class FacilitatorService:
    """Facilitates every room with a template. Per-room state (engine, caption buffers, timers) lives while the
    session runs and is released when it ends: when the template is over, or when the room has stayed empty for
    ``empty_room_end_s`` (while a room is empty its stage clock is stopped and it has no wake-ups at all; someone
    coming back within that time resumes the stage where it was). Ended rooms and rooms without a template are
    remembered in a bounded cache so their later events cost one dictionary lookup."""

    def __init__(self, bus: Bus, templates: TemplateLookup, clock: Clock | None = None,
                 settings: EngineSettings | None = None, llm: LLMBackend | None = None,
                 record_llm_call: Callable[[str, LLMCallRecord], Awaitable[None]] | None = None,
                 llm_safety_review: bool = True, empty_room_end_s: float = 600.0,
                 directory: RoomDirectory | None = None, quotes: Embedder | None = None) -> None:
        self._bus = bus
        # With a directory, this process facilitates a room only while it holds the room's facilitator lease, and
        # a room claimed from a worker that died is rebuilt by replaying its events (any number of workers).
        self._directory = directory
        self._leases: dict[str, Lease] = {}
        self._elsewhere: OrderedDict[str, float] = OrderedDict()  # room -> when to look again (monotonic)
        self._replayed: dict[str, int] = {}  # room -> the last seq its engine was rebuilt from
        self._scanner: asyncio.Task[None] | None = None
        self._scanning = False
        self._scan_due: float | None = None
        self._closed = False
        self._building: dict[str, asyncio.Future[RoomFacilitator | None]] = {}
        self._llm = llm
        # Key points as selected quotes (no capable model): summaries are quotes picked with the embedding model.
        self._quotes = quotes
        self._llm_safety_review = llm_safety_review and llm is not None
        self._llm_started = False
        self._unreviewed: dict[str, list[CaptionFinal]] = {}
        self._reviewing: set[str] = set()
        self._record_llm_call = record_llm_call
        self._captions: dict[str, list[CaptionFinal]] = {}
        self._llm_tasks: set[asyncio.Task[None]] = set()
        self._templates = templates
        self._clock = clock or SystemClock()
        self._keeper = LeaseKeeper(directory.leases, self._lost, self._clock) if directory is not None else None
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

    def health(self) -> dict[str, object]:
        """For health checks: running, and how many rooms it facilitates now."""
        running = self._task is not None and not self._task.done() and not self._closed
        return {"ok": running, "rooms": len(self._engines), "leases": len(self._leases)}

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
        while not self._closed:
            self._changed.clear()
            now = self._clock.now()
            sub = self._sub
            scan_done = not self._scanning and (self._scanner is None or (self._scan_due or now) > now
                                                or self._scanner.done())
            if (not self._handling and (sub is None or sub.pending == 0) and scan_done
                    and all(when > now for when, _ in self._timers.values())):
                return
            await self._changed.wait()

    async def start(self) -> None:
        self._sub = await self._bus.subscribe("room:*", maxsize=10_000)
        self._task = asyncio.create_task(self._run(self._sub), name="facilitator")
        if self._directory is not None:
            self._scanner = asyncio.create_task(self._scan(self._directory), name="facilitator-scan")

    async def _scan(self, directory: RoomDirectory) -> None:
        """Look for hosted rooms nobody facilitates (a worker died, or a room went quiet before anyone claimed it)
        every half lease, so a room is taken over within about one lease time even when nothing happens in it."""
        while True:
            self._scanning = True
            try:
                for room_id in await directory.active_rooms():
                    if room_id not in self._engines and room_id not in self._inactive:
                        engine = await self._engine_for(room_id)
                        if engine is not None:
                            self._after(room_id, engine)
            except Exception as exc:
                logger.warning("facilitator scan of the room directory failed (%s); trying again", exc,
                               exc_info=not connection_lost(exc))
            finally:
                self._scanning = False
                self._scan_due = self._clock.now() + directory.ttl_s / 2
                self._changed.set()
            await self._clock.sleep_until(self._scan_due)

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
        """The room's engine, built (claimed and replayed) on first need; one build per room at a time (an event
        and the directory scan may ask together)."""
        engine = self._engines.get(room_id)
        if engine is not None:
            return engine
        building = self._building.get(room_id)
        if building is not None:
            return await asyncio.shield(building)
        future: asyncio.Future[RoomFacilitator | None] = asyncio.get_running_loop().create_future()
        self._building[room_id] = future
        try:
            engine = await self._build(room_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else has to
            raise
        else:
            future.set_result(engine)
            return engine
        finally:
            del self._building[room_id]

    async def _build(self, room_id: str) -> RoomFacilitator | None:
        if room_id in self._inactive:
            self._inactive.move_to_end(room_id)
            return None
        look_again = self._elsewhere.get(room_id)
        if look_again is not None and self._clock.now() < look_again:
            return None  # another worker facilitates it; its lease is checked again now and then
        template = await self._templates(room_id)
        if template is None:
            self._remember_inactive(room_id, "no template")
            return None
        engine = RoomFacilitator(room_id, template, self._settings)
        if self._directory is not None:
            assert self._keeper is not None
            claim = await self._directory.claim(ROOM_FACILITATOR, room_id)
            if isinstance(claim, HostedElsewhere):
                self._elsewhere[room_id] = self._clock.now() + self._directory.ttl_s / 2
                self._elsewhere.move_to_end(room_id)
                while len(self._elsewhere) > INACTIVE_ROOMS_REMEMBERED:
                    self._elsewhere.popitem(last=False)
                return None
            self._elsewhere.pop(room_id, None)
            self._leases[room_id] = claim
            self._keeper.keep(claim)
            history = await self._bus.history(room_channel(room_id))
            tail, replayed_to = self._replay(room_id, engine, history)
            self._engines[room_id] = engine
            await self._start_llm()
            await self._answer(room_id, engine, tail, replayed_to)
            return engine
        self._engines[room_id] = engine
        await self._start_llm()
        return engine

    async def _start_llm(self) -> None:
        if self._llm is not None and not self._llm_started:
            self._llm_started = True  # the first facilitated room: a local model starts loading (background)
            await self._llm.start()

    def _replay(self, room_id: str, engine: RoomFacilitator,
                history: list[BusEvent]) -> tuple[list[BusEvent], float]:
        """Rebuild a room's engine from the room's retained events: the engine is deterministic, so feeding it the
        same events at the same times (and running the wake-ups due between them) brings it to the state the
        previous worker had when it posted its last message; what the engine returns on the way was published
        already and is dropped. Returns the events after that point (nobody answered them yet: ``_answer``).
        Language-model work the previous worker had in flight is not redone. Also returns the replayed time."""
        said = max((n for n, event in enumerate(history) if isinstance(event, OWN_EVENTS)), default=-1)
        at = float("-inf")
        for event in history[:said + 1]:
            at = max(at, self._replay_time(event.ts))  # never backwards
            self._catch_up(engine, at)
            if isinstance(event, FacilitatorControl):
                (engine.pause if event.action == "pause" else engine.resume)(at)
            elif isinstance(event, SafetyFlagged):
                engine.respond_to_flag(event.category, at)
            elif not isinstance(event, OWN_EVENTS):
                engine.handle(event, at)
                if isinstance(event, CaptionFinal) and event.text:
                    self._captions.setdefault(room_id, []).append(event)
        engine.take_summary_requests()
        engine.take_statement_requests()
        del self._captions.get(room_id, [])[:-500]
        if history:
            self._replayed[room_id] = history[-1].seq  # live deliveries up to here are the replay's
        logger.info("facilitating room %s from its %d retained events (stage %d, %d not answered yet)", room_id,
                    len(history), engine.stage_index, len(history) - said - 1)
        return history[said + 1:], at

    def _replay_time(self, ts: float) -> float:
        """Event times come from the publishers' clocks: never past this process's now."""
        return min(ts, self._clock.now())

    async def _answer(self, room_id: str, engine: RoomFacilitator, events: list[BusEvent], at: float) -> None:
        """Answer events nobody facilitated yet, in order, at their own times (and the wake-ups due between)."""
        for event in events:
            at = max(at, self._replay_time(event.ts))
            await self._publish(engine, self._catch_up(engine, at))
            await self._apply(room_id, engine, event, at)

    @staticmethod
    def _catch_up(engine: RoomFacilitator, until: float) -> list[BusEvent]:
        out: list[BusEvent] = []
        for _ in range(REPLAY_TICKS_MAX):
            wake = engine.next_wakeup()
            if wake is None or wake > until:
                break
            out += engine.tick(wake)
        return out

    async def _lost(self, lease: Lease) -> None:
        """Another worker has the room now (this one was too slow to renew): stop facilitating it."""
        room_id = lease.key
        if self._leases.get(room_id) != lease:
            return
        logger.warning("lost the facilitator lease of room %s; another worker facilitates it now", room_id)
        self._release(room_id)
        self._elsewhere[room_id] = self._clock.now() + lease.ttl_s / 2

    def _release(self, room_id: str) -> None:
        self._engines.pop(room_id, None)
        self._captions.pop(room_id, None)
        self._unreviewed.pop(room_id, None)
        self._replayed.pop(room_id, None)
        self._leases.pop(room_id, None)
        timer = self._timers.pop(room_id, None)
        if timer is not None and timer[1] is not asyncio.current_task():
            timer[1].cancel()

    def _remember_inactive(self, room_id: str, why: str) -> None:
        self._inactive[room_id] = why
        self._inactive.move_to_end(room_id)
        while len(self._inactive) > INACTIVE_ROOMS_REMEMBERED:
            self._inactive.popitem(last=False)

    def _end(self, room_id: str, why: str) -> None:
        """The room's session is over: release everything held for it."""
        logger.info("facilitation of room %s ended (%s)", room_id, why)
        lease = self._leases.get(room_id)
        self._release(room_id)
        if lease is not None and self._keeper is not None:
            self._spawn(self._keeper.drop(lease), f"release-{room_id}")
        self._remember_inactive(room_id, "ended")

    async def _handle(self, event: BusEvent) -> None:
        room_id = event.room_id
        engine = await self._engine_for(room_id)
        if engine is None:
            return
        if event.seq and event.seq <= self._replayed.get(room_id, 0):
            if room_id not in self._timers:  # the replay that built the engine fed it this event: schedule it
                self._after(room_id, engine)
            return
        await self._apply(room_id, engine, event, self._clock.now())
        self._after(room_id, engine)

    async def _apply(self, room_id: str, engine: RoomFacilitator, event: BusEvent, now: float) -> None:
        """Answer one room event: the engine's response, the caption buffer for summaries, safety screening."""
        if isinstance(event, FacilitatorControl):
            await (self.pause(room_id) if event.action == "pause" else self.resume(room_id))
            return
        await self._publish(engine, engine.handle(event, now))
        if isinstance(event, CaptionFinal) and event.text:
            buffer = self._captions.setdefault(room_id, [])
            buffer.append(event)
            del buffer[:-500]  # bounded: summaries look at recent talk only
            await self._screen(room_id, engine, event)

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
            lines = [c for c in self._captions.get(room_id, []) if c.end >= since]
            if self._quotes is not None:
                self._spawn(self._quote(engine, stage_id, lines), f"quotes-{room_id}")
            elif self._llm is not None:
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
        """Every model call goes on the bus for the record (the recorder stores it), and to the optional hook."""
        for call in calls:
            await self._bus.publish(LLMCallRecorded(
                room_id=room_id, ts=call.at, call_id=new_id(16), purpose=call.purpose, model=call.model,
                messages=[dict(m) for m in call.messages], output=call.output, latency_s=call.latency_s,
                outcome=call.outcome, error=call.error))
            if self._record_llm_call is not None:
                await self._record_llm_call(room_id, call)

    async def _propose(self, engine: RoomFacilitator, stage_id: str, lines: list[CaptionFinal]) -> None:
        assert self._llm is not None
        room_id = engine.room_id
        calls: list[LLMCallRecord] = []
        try:
            statements = await propose_statements(self._llm, room_id, lines, self._clock.now(), calls.append,
                                                  language=engine.language)
        except Exception:
            logger.exception("statement proposals failed in room %s", room_id)
            return
        await self._record(room_id, calls)
        if not statements:
            return
        message = AIMessage(
            room_id=room_id, ts=self._clock.now(), message_id=f"{room_id}-proposals-{statements[0].statement_id}",
            kind="statements", stage_id=stage_id, generated_by=f"llm:{calls[0].model}" if calls else "llm",
            sources=list(dict.fromkeys(s for st in statements for s in st.sources)), language=engine.language,
            key="statements.proposed", params={"count": len(statements)},
            text=say(engine.language, "statements.proposed", count=len(statements)))
        await self._post(engine, message, statements)

    async def _quote(self, engine: RoomFacilitator, stage_id: str, lines: list[CaptionFinal]) -> None:
        assert self._quotes is not None
        room_id = engine.room_id
        try:
            message = await key_points(self._quotes, room_id, stage_id, lines, self._clock.now(),
                                       f"{room_id}-quotes-{len(lines)}-{int(self._clock.now())}")
        except Exception:  # (e.g. the embedding model is missing): no key points, the session goes on
            logger.exception("selecting quotes failed in room %s", room_id)
            return
        if message is not None:
            await self._post(engine, message)

    async def _summarise(self, engine: RoomFacilitator, stage_id: str, lines: list[CaptionFinal]) -> None:
        assert self._llm is not None
        room_id = engine.room_id
        calls: list[LLMCallRecord] = []
        try:
            message = await write_summary(self._llm, room_id, stage_id, lines, self._clock.now(),
                                          f"{room_id}-summary-{len(lines)}-{int(self._clock.now())}", calls.append,
                                          language=engine.language)
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

    async def close(self, hand_over: bool = True) -> None:
        """Stop. ``hand_over``: release this worker's room leases so another takes them at once (a crash leaves them
        to expire instead; tests pass False to act one out)."""
        self._closed = True
        self._changed.set()
        if self._sub is not None:
            await self._sub.close()
        for task in [self._task, self._scanner, *(t for _, t in self._timers.values()), *self._llm_tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._timers.clear()
        if self._keeper is not None:
            await self._keeper.close(release=hand_over)
