"""The moderators' live dashboard WebSocket (``/ws/deliberations/{id}/dashboard``): one view of every room of a
deliberation, pushed from the bus, never polled.

On connect the signed-in account (the session cookie; the ``Origin`` must be this site, so another site cannot open
it with the moderator's cookie) must be allowed to view the deliberation: its organiser, its moderators, an
administrator. The server then subscribes to every room's channel, reads what storage knows of the deliberation's
rooms (``Storage.room_overviews``), sends a ``snapshot`` of all room cards and, from then on, at most every
``FLUSH_S``, one ``rooms`` message with the cards that changed (a busy deliberation sends a bounded rate however many
events its rooms publish). A room formed by a later round joins the view with its first event. A client that lost the
connection reconnects and gets a fresh snapshot: nothing to replay.

Messages (JSON): ``{"type": "snapshot", "deliberation": {...}, "server_time": t, "rooms": [card, ...]}``,
``{"type": "rooms", "server_time": t, "rooms": [card, ...]}``, ``{"type": "error", "code": ..., "message": ...}``
(then the socket closes: 4401 sign in, 4403 refused origin, 4404 unknown or not yours). The client may send
``{"type": "ping"}`` (answered ``pong``); anything else is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from fastapi import WebSocket, WebSocketDisconnect

from server.accounts.service import Principal
from server.context import ServerContext
from server.core.bus import Subscription
from server.core.events import BusEvent
from server.dashboard.board import SHOWN_TYPES, CaptionLine, DashboardBoard, RoomSeed
from server.deliberations.store import DeliberationRecord, DeliberationStore
from server.storage import RoomOverview
from server.ws_auth import same_origin, session_principal

logger = logging.getLogger(__name__)

FLUSH_S = 0.5
MAX_CLIENT_MESSAGE = 1024


class DashboardRefused(Exception):
    def __init__(self, code: str, close_code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.close_code = close_code


async def authorise(websocket: WebSocket, ctx: ServerContext,
                    deliberation_id: str) -> tuple[Principal, DeliberationRecord]:
    """The principal and the deliberation record, or ``DashboardRefused``."""
    from server.deliberations import access

    if not same_origin(websocket):
        raise DashboardRefused("bad_origin", 4403, "this dashboard can only be opened from its own site")
    principal = await session_principal(websocket, ctx)
    if principal is None:
        raise DashboardRefused("sign_in", 4401, "sign in first (or again: your session may have ended)")
    store = DeliberationStore(ctx.storage.sessions)
    record = await asyncio.to_thread(access.viewable, store, principal, deliberation_id)
    if record is None:
        raise DashboardRefused("not_found", 4404, "unknown deliberation")
    return principal, record


def seed(overview: RoomOverview) -> RoomSeed:
    return RoomSeed(
        title=overview.title, present=list(overview.present), help=list(overview.help),
        queued_ai=list(overview.queued_ai), flags=overview.flags,
        captions=[CaptionLine(utterance_id=c.utterance_id, speaker=c.speaker_name, text=c.text, ts=None)
                  for c in overview.captions],
    )


class DashboardFeed:
    """One open dashboard: the board, the bus subscription and the rooms known not to be this deliberation's."""

    def __init__(self, ctx: ServerContext, deliberation_id: str, subscription: Subscription) -> None:
        self.ctx = ctx
        self.deliberation_id = deliberation_id
        self.subscription = subscription
        self.board = DashboardBoard()
        self._foreign: set[str] = set()

    async def load(self) -> None:
        from server.lobby.store import LobbyStore

        status = await asyncio.to_thread(LobbyStore(self.ctx.storage.sessions).status, self.deliberation_id)
        overviews = await asyncio.to_thread(self.ctx.storage.room_overviews, [r.room_id for r in status.rooms])
        for room in status.rooms:
            if room.room_id in overviews:
                self.board.add_room(room.room_id, seed(overviews[room.room_id]))

    async def admit(self, event: BusEvent) -> str | None:
        """Apply one bus event; the room whose card changed, if any."""
        if event.type not in SHOWN_TYPES or event.room_id in self._foreign:
            return None
        if event.room_id not in self.board:
            room = await asyncio.to_thread(self.ctx.storage.get_room, event.room_id)
            if room is None or room.deliberation_id != self.deliberation_id:
                if len(self._foreign) > 100_000:
                    self._foreign.clear()
                self._foreign.add(event.room_id)
                return None
            overview = (await asyncio.to_thread(self.ctx.storage.room_overviews, [room.id])).get(room.id)
            if overview is None:
                return None
            self.board.add_room(room.id, seed(overview))
            self.board.apply(event)
            return room.id  # (the seed may already include this event's effect: the card is sent either way)
        return self.board.apply(event)


async def serve_dashboard(websocket: WebSocket, deliberation_id: str, ctx: ServerContext) -> None:
    await websocket.accept()
    try:
        _principal, record = await authorise(websocket, ctx, deliberation_id)
    except DashboardRefused as refused:
        with contextlib.suppress(Exception):
            await websocket.send_text(json.dumps({"type": "error", "code": refused.code, "message": str(refused)}))
            await websocket.close(refused.close_code)
        return
    subscription = await ctx.bus.subscribe("room:*", maxsize=10_000)  # before reading storage: nothing falls between
    reader: asyncio.Task[None] | None = None
    try:
        feed = DashboardFeed(ctx, record.id, subscription)
        await feed.load()
        await websocket.send_text(json.dumps({
            "type": "snapshot", "server_time": time.time(),
            "deliberation": {"id": record.id, "title": record.spec.title, "status": record.status},
            "rooms": [card.model_dump(mode="json") for card in feed.board.cards()],
        }))
        outgoing: asyncio.Queue[str] = asyncio.Queue(maxsize=8)  # pongs (a ping flood gets no more)
        reader = asyncio.create_task(_read_client(websocket, outgoing), name="dashboard-reader")
        await _push(websocket, feed, reader, outgoing)
    except (WebSocketDisconnect, RuntimeError, OSError, StopAsyncIteration):
        pass  # the moderator closed the page or lost the connection; their client reconnects
    finally:
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        await subscription.close()
        with contextlib.suppress(Exception):
            await websocket.close()


async def _push(websocket: WebSocket, feed: DashboardFeed, reader: asyncio.Task[None],
                outgoing: asyncio.Queue[str]) -> None:
    changed: set[str] = set()
    flush_at = time.monotonic() + FLUSH_S
    while not reader.done():
        while not outgoing.empty():
            await websocket.send_text(outgoing.get_nowait())
        wait = max(0.0, flush_at - time.monotonic())
        try:
            event = await feed.subscription.get(timeout=wait)
        except TimeoutError:
            event = None
        if event is not None:
            room_id = await feed.admit(event)
            if room_id is not None:
                changed.add(room_id)
        if time.monotonic() >= flush_at:
            if changed:
                cards = [feed.board.card(room_id).model_dump(mode="json") for room_id in sorted(changed)]
                changed.clear()
                await websocket.send_text(json.dumps({"type": "rooms", "server_time": time.time(), "rooms": cards}))
            flush_at = time.monotonic() + FLUSH_S


async def _read_client(websocket: WebSocket, outgoing: asyncio.Queue[str]) -> None:
    """Answer pings; ignore anything else; return when the client goes."""
    while True:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        text = frame.get("text") or ""
        if len(text) > MAX_CLIENT_MESSAGE:
            continue
        with contextlib.suppress(ValueError, AttributeError, asyncio.QueueFull):
            if json.loads(text).get("type") == "ping":
                outgoing.put_nowait(json.dumps({"type": "pong", "server_time": time.time()}))
