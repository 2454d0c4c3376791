"""The per-client send queue of the signaling WebSocket: one slow client never stalls the room, provisional updates
are dropped first, and a client too slow even for that is disconnected (and leaves the room)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.context import ServerContext
from server.core.bus import InProcessBus
from server.core.events import CaptionPartial, Error, Pong, VoiceActivity, decode_server_message
from server.core.settings import Settings
from server.signaling import ClientConnection, handle_signaling
from server.storage import Storage


class StuckSocket:
    """A WebSocket whose peer stopped reading: sends block until ``unblock`` is set."""

    def __init__(self, incoming: list[str] | None = None) -> None:
        self.sent: list[str] = []
        self.unblock = asyncio.Event()
        self.sending = asyncio.Event()  # set once a send has started (and is blocked until ``unblock``)
        self.closed_with: int | None = None
        self.closed = asyncio.Event()
        self._incoming = list(incoming or [])

    async def accept(self) -> None:
        return None

    async def receive(self) -> dict[str, Any]:
        if self._incoming:
            return {"type": "websocket.receive", "text": self._incoming.pop(0)}
        await self.closed.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send_text(self, text: str) -> None:
        self.sending.set()
        await self.unblock.wait()
        self.sent.append(text)

    async def close(self, code: int = 1000) -> None:
        self.closed_with = code
        self.closed.set()


def partial(n: int) -> CaptionPartial:
    return CaptionPartial(room_id="r", utterance_id=f"u{n}", participant_id="p", speaker_name="Ada", committed="",
                          tentative=f"word {n}", start=0.0)


async def test_provisional_messages_are_dropped_first() -> None:
    ws = StuckSocket()
    conn = ClientConnection(ws, limit=10)  # type: ignore[arg-type]
    conn.send(Pong())  # taken by the writer, which then blocks on the socket
    for n in range(5):
        conn.send(partial(n))
        conn.send(VoiceActivity(room_id="r", participant_id="p", speaking=bool(n % 2), t=float(n)))
    for _ in range(5):
        conn.send(Error(code="bad_message", message="kept"))
    assert conn.dropped >= 5 and not conn.failed.is_set()
    ws.unblock.set()
    await asyncio.wait_for(conn.flush_and_close(), 5)
    kinds = [decode_server_message(m).type for m in ws.sent]
    assert kinds.count("error") == 5, "nothing but provisional updates was dropped"
    assert kinds[0] == "pong"


async def test_closing_waits_for_the_message_being_sent() -> None:
    """The last message (e.g. the fatal error saying why) is on its way when the handler closes: the close waits for
    it rather than cancelling the send half-way (the queue is already empty then)."""
    ws = StuckSocket()
    conn = ClientConnection(ws)  # type: ignore[arg-type]
    conn.send(Error(code="reconnected", message="last words", fatal=True))
    await asyncio.wait_for(ws.sending.wait(), 5)  # the writer took the message off the queue and is sending it
    closing = asyncio.ensure_future(conn.flush_and_close())
    ws.unblock.set()  # the send completes only after the close has started
    await asyncio.wait_for(closing, 5)
    assert [decode_server_message(m).type for m in ws.sent] == ["error"] and ws.closed_with == 1000


async def test_closing_right_after_a_send_still_sends_it() -> None:
    """The close comes before the writer task has even woken for the message (the handler ends in the same turn of
    the event loop as the fatal error is queued): the message still goes out before the close (CI failure of
    test_rejoining_replaces_a_connection_the_server_still_holds)."""
    ws = StuckSocket()
    ws.unblock.set()
    conn = ClientConnection(ws)  # type: ignore[arg-type]
    await asyncio.wait_for(conn._drained.wait(), 5)  # the writer is idle, waiting for work
    conn.send(Error(code="reconnected", message="last words", fatal=True))
    async with asyncio.timeout(5):  # (not wait_for: that would run the close in a new task, after the writer)
        await conn.flush_and_close()  # in the same turn of the event loop as the send
    assert [decode_server_message(m).type for m in ws.sent] == ["error"] and ws.closed_with == 1000


async def test_a_client_too_slow_for_anything_is_disconnected() -> None:
    ws = StuckSocket()
    conn = ClientConnection(ws, limit=5)  # type: ignore[arg-type]
    for _ in range(10):
        conn.send(Error(code="bad_message", message="not droppable"))
    await asyncio.wait_for(conn.failed.wait(), 2)
    await asyncio.wait_for(conn.flush_and_close(), 5)
    assert ws.closed_with == 1013


async def test_handler_ends_the_session_of_a_stuck_client(tmp_path: Path) -> None:
    """A client that keeps sending but never reads: its queue overflows and the server ends its session."""
    settings = Settings(data_dir=tmp_path, asr_backend="none")
    storage = Storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    storage.create_schema()
    bus = InProcessBus()
    await bus.start()
    ctx = ServerContext(settings=settings, bus=bus, storage=storage)
    ctx.rooms = object()  # type: ignore[assignment]  # never used: the client does not join
    ws = StuckSocket(incoming=['{"type": "ping"}'] * 600)
    try:
        await asyncio.wait_for(handle_signaling(ws, "abcd1234", ctx), 10)  # type: ignore[arg-type]
        assert ws.closed_with == 1013
    finally:
        await bus.close()
        storage.close()
