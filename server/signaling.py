"""The signaling WebSocket: one browser's (or test peer's) whole stay in a room.

Protocol in docs/architecture.md; message models in server/core/events.py. Everything the client sends is size-checked
and decoded into a known message type; bad input gets an ``error`` message and never an exception that could disturb
another participant. Outgoing messages go through a bounded per-client queue drained by a writer task, so one slow
client never stalls the room: when its queue is full, the oldest provisional updates (partial captions, voice
activity) are dropped; a client so far behind that nothing else can go is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from server.context import ServerContext
from server.core.bus import room_channel
from server.core.errors import Refused
from server.core.events import (
    AddStatement,
    Answer,
    BusEvent,
    CallModerator,
    CaptionPartial,
    EditStatement,
    Error,
    EventDecodeError,
    FlagSummary,
    HelpRequested,
    Join,
    Leave,
    MediaState,
    Ping,
    Pong,
    ServerMessage,
    SetLanguage,
    VoiceActivity,
    Vote,
    Welcome,
    decode_client_message,
    encode,
    visible_to,
)
from server.core.ids import new_id
from server.lobby.credentials import ParticipantClaims
from server.ratelimit import ConnectionLimits
from server.rooms import JoinRefused, Participant
from server.statements import StatementBoard, StatementRefused
from server.turn import browser_ice_servers

logger = logging.getLogger(__name__)

ROOM_ID = re.compile(r"^[a-z0-9]{4,32}$")
SEND_QUEUE_LIMIT = 500


class ClientConnection:
    """Outgoing side of one WebSocket: a bounded queue and a writer task."""

    def __init__(self, websocket: WebSocket, limit: int = SEND_QUEUE_LIMIT) -> None:
        self._ws = websocket
        self._limit = limit
        self._queue: deque[tuple[bool, str]] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._closed = False
        self.dropped = 0
        self.close_code = 1000
        self.failed = asyncio.Event()  # set when the client is gone or too slow: the handler then ends the session
        self._writer = asyncio.create_task(self._write(), name="signaling-writer")

    def send(self, message: ServerMessage | BusEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._limit:
            droppable = next((i for i, (provisional, _) in enumerate(self._queue) if provisional), None)
            if droppable is None:
                logger.warning("signaling client too slow: disconnecting it")
                self._closed = True
                self._queue.clear()
                self.close_code = 1013  # try again later
                self._writer.cancel()
                self.failed.set()
                return
            del self._queue[droppable]
            self.dropped += 1
        self._queue.append((isinstance(message, CaptionPartial | VoiceActivity), encode(message)))
        self._drained.clear()  # at once, not when the writer wakes: a close before then must still send this
        self._ready.set()

    async def _write(self) -> None:
        try:
            while True:
                while not self._queue:
                    self._drained.set()
                    self._ready.clear()
                    await self._ready.wait()
                self._drained.clear()
                await self._ws.send_text(self._queue.popleft()[1])
        except Exception:  # WebSocketDisconnect, RuntimeError, OSError, anyio's ClosedResourceError: the client is gone
            self._closed = True
            self.failed.set()

    async def flush_and_close(self, code: int | None = None) -> None:
        """Send what is queued (briefly), then close the socket. "Queued" includes the message the writer has taken
        off the queue and is still sending: it is not cut off half-way."""
        if not self._drained.is_set() and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), 2)
        self._closed = True
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        with contextlib.suppress(Exception):
            await self._ws.close(code or self.close_code)


def refusal_error(exc: Refused, fatal: bool = False, location: str | None = None) -> Error:
    """The ``error`` message for a refusal: its code, English words, and reason and particulars for the client to
    word in its reader's language."""
    return Error(code=exc.code, message=exc.message, fatal=fatal, location=location,  # type: ignore[arg-type]
                 reason=exc.reason, params=exc.params)


async def call_moderator(ctx: ServerContext, room_id: str, participant_id: str, name: str, note: str) -> None:
    """Store the call (one pending per participant) and alert the room's moderators."""
    request = HelpRequested(room_id=room_id, request_id=new_id(16), participant_id=participant_id,
                            participant_name=name, note=" ".join(note.split()))
    stored = await asyncio.to_thread(ctx.storage.add_help_request, request)
    if stored.request_id == request.request_id:  # (a repeated press while one is pending alerts nobody again)
        await ctx.bus.publish(request)


async def handle_signaling(websocket: WebSocket, room_id: str, ctx: ServerContext) -> None:
    await websocket.accept()
    conn = ClientConnection(websocket)
    participant: Participant | None = None
    forwarder: asyncio.Task[None] | None = None
    removed = asyncio.Event()
    rooms = ctx.rooms
    assert rooms is not None
    board = StatementBoard(ctx)
    limits = ConnectionLimits(clock=ctx.rate_clock)
    limit = ctx.settings.signaling_max_message_bytes
    stop: asyncio.Future[None] | None = None
    receive: asyncio.Future[Any] | None = None

    leave_reason = "left"
    explicit_leave = False

    def on_removed(code: str, message: str, location: str | None) -> None:
        nonlocal leave_reason
        leave_reason = code
        conn.send(Error(code=code, message=message, fatal=True, location=location))  # type: ignore[arg-type]
        removed.set()

    try:
        if not ROOM_ID.match(room_id):
            conn.send(Error(code="unknown_room", message="There is no room with this link.", fatal=True))
            return
        stop = asyncio.ensure_future(_first_set(removed, conn.failed))
        join_by = asyncio.get_running_loop().time() + ctx.settings.join_deadline_s
        while not stop.done():
            receive = asyncio.ensure_future(websocket.receive())
            # Until it joins, a connection holds a socket and a task for nothing: it gets a deadline.
            wait = None if participant is not None else max(0.0, join_by - asyncio.get_running_loop().time())
            done, _ = await asyncio.wait({receive, stop}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                deadline = ctx.settings.join_deadline_s
                conn.send(Error(code="join_timeout", fatal=True, params={"seconds": round(deadline)},
                                message=f"No join message within {deadline:g} s: reload to try again."))
                break
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receive
                break
            frame = receive.result()
            if frame["type"] == "websocket.disconnect":
                break
            raw = frame.get("text")
            if raw is None:
                raw_bytes = frame.get("bytes") or b""
                size = len(raw_bytes)
            else:
                size = len(raw.encode("utf-8", errors="replace"))
            if (flooding := limits.flood()) is not None:
                conn.send(refusal_error(flooding))
                continue
            if size > limit:
                conn.send(Error(code="too_large", message=f"message of {size} bytes is over the {limit}-byte limit"))
                continue
            if raw is None:
                conn.send(Error(code="bad_message", message="send JSON text messages, not binary"))
                continue
            try:
                message = decode_client_message(raw)
            except EventDecodeError as exc:
                conn.send(Error(code="bad_message", message=f"invalid message: {exc}"[:300]))
                continue

            if isinstance(message, Ping):
                conn.send(Pong())
            elif isinstance(message, Join):
                if participant is not None:
                    conn.send(Error(code="already_joined", message="you have already joined this room"))
                    continue
                if message.observe:
                    observer = await _observe(websocket, ctx, room_id, conn, on_removed)
                    if observer is None:
                        return
                    participant, forwarder = observer
                    continue
                if not message.consent:
                    conn.send(Error(code="consent_required",
                                    message="Please agree to transcription and the AI assistant to join."))
                    continue
                after_seq = None
                if message.resume is not None and await rooms.resume(room_id, message.resume.token) is not None:
                    after_seq = message.resume.after_seq  # a valid ticket: replay what this person missed
                try:
                    sub = await ctx.bus.subscribe(room_channel(room_id), maxsize=1000, after_seq=after_seq)
                    try:
                        participant = await rooms.join(room_id, message.name, message.audio, message.video,
                                                       conn.send, on_removed, message.credential, message.language)
                    except BaseException:
                        await sub.close()
                        raise
                except JoinRefused as exc:
                    fatal = exc.code in ("unknown_room", "room_full", "room_elsewhere", "credential_required",
                                         "not_your_room", "deliberation_closed", "room_ended")
                    conn.send(refusal_error(exc, fatal=fatal, location=exc.location))
                    if fatal:
                        return
                    continue
                conn.send(Welcome(
                    participant_id=participant.id,
                    room=participant.room.info(),
                    participants=rooms.participants(participant.room),
                    ice_servers=browser_ice_servers(ctx.settings, participant.id),
                    resume_token=rooms.resume_tickets.issue(room_id, participant.id),
                    observers=len(participant.room.observers),
                    credential=None if participant.room.deliberation_id else ctx.participant_signer().sign(
                        ParticipantClaims(participant.id, None, room_id)),
                ))
                forwarder = asyncio.create_task(_forward_events(sub, conn), name="signaling-forwarder")
            elif participant is None:
                conn.send(Error(code="not_joined", message="send a join message first"))
            elif participant.observer and not isinstance(message, Answer | Leave):
                conn.send(Error(code="not_allowed", message="an observer watches the room and takes no part"))
            elif (refusal := limits.check(message.type)) is not None:
                conn.send(refusal_error(refusal))
            elif isinstance(message, Answer):
                if not participant.peer.accept_answer(message.sdp):
                    conn.send(Error(code="bad_message", message="no offer is waiting for an answer"))
            elif isinstance(message, MediaState):
                await rooms.set_media(participant, message.audio, message.video)
            elif isinstance(message, SetLanguage):
                try:
                    await rooms.set_language(participant, message.language)
                except JoinRefused as exc:
                    conn.send(refusal_error(exc))
            elif isinstance(message, AddStatement | EditStatement | Vote | FlagSummary):
                try:
                    if isinstance(message, FlagSummary):
                        await board.flag_summary(room_id, participant.id, message.message_id, message.point,
                                                 message.note)
                    elif isinstance(message, AddStatement):
                        await board.add(room_id, participant.id, participant.name, message.text)
                    elif isinstance(message, EditStatement):
                        await board.edit(room_id, participant.id, message.statement_id, message.text,
                                         message.revision)
                    else:
                        await board.vote(room_id, participant.id, message.statement_id, message.choice,
                                         message.revision)
                except StatementRefused as exc:
                    conn.send(refusal_error(exc))
            elif isinstance(message, CallModerator):
                await call_moderator(ctx, room_id, participant.id, participant.name, message.note)
            elif isinstance(message, Leave):
                explicit_leave = True
                break
    except WebSocketDisconnect:
        pass
    except Exception:
        logger.exception("signaling failed in room %s", room_id)
        conn.send(Error(code="internal", message="internal server error", fatal=True))
    finally:
        for pending in (stop, receive):  # e.g. the handler itself was cancelled at server shutdown
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        if participant is not None:
            if leave_reason == "joined_elsewhere":
                pass  # the same participant's new connection holds the tickets now
            elif explicit_leave or leave_reason not in ("left", "room_moved"):
                rooms.resume_tickets.revoke(participant.id)  # left on purpose, or removed: no rejoin
            else:  # the connection dropped, or the room moved: may rejoin for a while (resumed if it is back here)
                rooms.resume_tickets.disconnected(participant.id)
            try:
                await rooms.leave(participant, reason=leave_reason)
            except Exception:
                logger.exception("leaving room %s failed", room_id)
        if forwarder is not None:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder
        await conn.flush_and_close()


async def _observe(websocket: WebSocket, ctx: ServerContext, room_id: str, conn: ClientConnection,
                   on_removed: Callable[[str, str, str | None], None],
                   ) -> tuple[Participant, asyncio.Task[None]] | None:
    """Admit a moderator as an observer (``join`` with ``observe``): the observer and its event forwarder, or None
    after telling the client why not (fatal)."""
    from server.ws_auth import may_observe

    rooms = ctx.rooms
    assert rooms is not None
    if not await may_observe(websocket, ctx, room_id):
        conn.send(Error(code="not_allowed", fatal=True,
                        message="Only this room's moderators may observe it: sign in as one, from this site."))
        return None
    sub = await ctx.bus.subscribe(room_channel(room_id), maxsize=1000)
    try:
        observer = await rooms.observe(room_id, conn.send, on_removed)
    except JoinRefused as exc:
        await sub.close()
        conn.send(refusal_error(exc, fatal=True))
        return None
    except BaseException:
        await sub.close()
        raise
    conn.send(Welcome(participant_id=observer.id, room=observer.room.info(),
                      participants=rooms.participants(observer.room),
                      ice_servers=browser_ice_servers(ctx.settings, observer.id), observing=True,
                      observers=len(observer.room.observers)))
    return observer, asyncio.create_task(_forward_events(sub, conn), name="signaling-forwarder")


async def _first_set(*events: asyncio.Event) -> None:
    """Return once any of ``events`` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def _forward_events(sub: object, conn: ClientConnection) -> None:
    """Relay every bus event of the room to this client."""
    from server.core.bus import Subscription

    assert isinstance(sub, Subscription)
    try:
        async for event in sub:
            if visible_to(event, "participant"):  # the one table: votes show only as tallies, flags go to moderators
                conn.send(event)
    finally:
        await sub.close()
