"""Statements and votes over the signaling WebSocket: add, edit (only until the first vote), vote on the revision
one read, tallies, privacy, summary flags stored once, and bad input (each bad message gets its own error)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.core.bus import room_channel
from server.core.bus.base import Subscription
from server.core.events import (
    AIMessage,
    AIMessagePoint,
    BusEvent,
    Error,
    ServerMessage,
    StatementAdded,
    StatementEdited,
    SummaryFlagged,
    VoteTally,
)
from server.core.settings import Settings
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="none", rtc_loopback_candidates=True)
    with running_server(settings) as running:
        yield running


async def next_message(peer: TestPeer, after: int, predicate: Callable[[ServerMessage], bool],
                       timeout: float = 5) -> tuple[ServerMessage, int]:
    """The first message matching ``predicate`` among those ``peer`` received after its first ``after``, and the
    count to pass as ``after`` for the one following it."""

    def matching() -> int | None:
        return next((i for i in range(after, len(peer.messages)) if predicate(peer.messages[i])), None)

    await peer.wait_for(lambda _: matching() is not None, timeout)
    index = matching()
    assert index is not None
    return peer.messages[index], index + 1


async def errors_in_order(peer: TestPeer, after: int, codes: list[str]) -> int:
    """Wait for one error per expected code, in order, then for the pong of a ping sent after them; asserts that no
    other error came in between. Returns the count of messages seen."""
    for code in codes:
        error, after = await next_message(peer, after, lambda m: isinstance(m, Error))
        assert isinstance(error, Error) and error.code == code, (code, error)
    await peer.send({"type": "ping"})
    _, end = await next_message(peer, after, lambda m: m.type == "pong")
    assert not [m for m in peer.messages[after:end] if isinstance(m, Error)], "one error per bad message"
    return end


async def test_statements_and_votes(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Votes", 8).id
    other_room = server.ctx.storage.create_room("Other", 8).id
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    eve = TestPeer(server.ws(other_room), "Eve")
    try:
        for peer in (ada, bo, eve):
            await peer.join()
        await ada.send({"type": "statement.add", "text": "  The council   should build homes near the station "})
        added = await bo.wait_for(lambda m: isinstance(m, StatementAdded), 5)
        assert isinstance(added, StatementAdded)
        assert added.text == "The council should build homes near the station" and added.author_name == "Ada"
        assert added.revision == 0
        sid = added.statement_id

        await bo.send({"type": "statement.edit", "statement_id": sid, "text": "Bo rewrites it"})
        refused = await bo.wait_for(lambda m: isinstance(m, Error), 5)
        assert isinstance(refused, Error) and refused.code == "not_allowed"
        # Before anyone votes, the author may edit: the statement moves to revision 1 and everyone sees it.
        await ada.send({"type": "statement.edit", "statement_id": sid, "text": "Build homes near the station",
                        "revision": 0})
        edited = await bo.wait_for(lambda m: isinstance(m, StatementEdited), 5)
        assert isinstance(edited, StatementEdited) and edited.text == "Build homes near the station"
        assert edited.revision == 1
        stored = server.ctx.storage.get_statement(sid)
        assert stored is not None and (stored.text, stored.revision) == ("Build homes near the station", 1)

        # A vote on the text Bo read before the edit is refused: he must read it again.
        mark = len(bo.messages)
        await bo.send({"type": "vote", "statement_id": sid, "choice": "disagree", "revision": 0})
        stale, _ = await next_message(bo, mark, lambda m: isinstance(m, Error))
        assert isinstance(stale, Error) and stale.code == "statement_changed" and "read it again" in stale.message
        assert server.ctx.storage.tally(sid) == {"agree": 0, "disagree": 0, "pass": 0}

        await ada.send({"type": "vote", "statement_id": sid, "choice": "agree", "revision": 1})
        await bo.send({"type": "vote", "statement_id": sid, "choice": "disagree", "revision": 1})
        await bo.send({"type": "vote", "statement_id": sid, "choice": "pass", "revision": 1})  # changing one's vote
        final = await ada.wait_for(
            lambda m: isinstance(m, VoteTally) and (m.agree, m.disagree, m.passed) == (1, 0, 1), 5)
        assert isinstance(final, VoteTally)
        assert all("vote.cast" != m.type for m in [*ada.messages, *bo.messages]), "individual votes stay private"
        assert sorted(server.ctx.storage.votes(room)) == sorted([(sid, ada.participant_id, "agree"),
                                                                 (sid, bo.participant_id, "pass")])

        # Another room's participant can neither vote on nor edit this room's statement, nor see it.
        await eve.send({"type": "vote", "statement_id": sid, "choice": "agree", "revision": 1})
        error = await eve.wait_for(lambda m: isinstance(m, Error), 5)
        assert isinstance(error, Error) and error.code == "unknown_statement"
        assert not [m for m in eve.messages if isinstance(m, StatementAdded | VoteTally)]

        # Bad input: each message gets its own error, in order; blank and invisible-only statements included.
        mark = len(ada.messages)
        bad: list[dict[str, Any]] = [
            {"type": "vote", "statement_id": sid, "choice": "maybe", "revision": 1},
            {"type": "vote", "statement_id": sid, "choice": "agree"},  # which revision did the voter read?
            {"type": "statement.add", "text": "x"},
            {"type": "statement.add", "text": "y" * 600},
            {"type": "statement.add", "text": "     "},
            {"type": "statement.add", "text": "\u200b\u200b\u200b\u200b\u200b"},
            {"type": "statement.add", "text": "\u00a0\u2060 \ufeff\u3164\u200d\t\n"},
            {"type": "statement.add", "text": "a\u200b \u200bb"},  # two visible characters
            {"type": "statement.edit", "statement_id": sid, "text": " \u200b\u200c\u2800 "},
        ]
        for message in bad:
            await ada.send(json.dumps(message))
        await errors_in_order(ada, mark, ["bad_message"] * len(bad))
        blank = next(m for m in ada.messages[mark:] if isinstance(m, Error) and "visible" in m.message)
        assert isinstance(blank, Error) and blank.message.endswith(
            "a statement needs at least 3 visible characters (spaces and invisible ones do not count)")
        assert [s.statement_id for s in server.ctx.storage.statements(room)] == [sid]
        assert server.ctx.storage.tally(sid) == {"agree": 1, "disagree": 0, "pass": 1}
    finally:
        for peer in (ada, bo, eve):
            await peer.close()


async def test_a_statement_cannot_be_edited_once_voted_on(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Locked", 8).id
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    try:
        await ada.join()
        await bo.join()
        await ada.send({"type": "statement.add", "text": "The council should build homes near the station"})
        added = await bo.wait_for(lambda m: isinstance(m, StatementAdded), 5)
        assert isinstance(added, StatementAdded)
        sid = added.statement_id
        await bo.send({"type": "vote", "statement_id": sid, "choice": "agree", "revision": 0})
        await ada.wait_for(lambda m: isinstance(m, VoteTally) and m.agree == 1, 5)

        # The author turns "should" into "should NOT": refused, with or without the revision read.
        mark = len(ada.messages)
        await ada.send({"type": "statement.edit", "statement_id": sid, "revision": 0,
                        "text": "The council should NOT build homes near the station"})
        await ada.send({"type": "statement.edit", "statement_id": sid,
                        "text": "The council should NOT build homes near the station"})
        await errors_in_order(ada, mark, ["statement_locked", "statement_locked"])
        locked = next(m for m in ada.messages[mark:] if isinstance(m, Error))
        assert isinstance(locked, Error) and "propose a revised statement" in locked.message

        # What the room is told next (the revised proposal) arrives after anything published before it, so Bo has
        # had every event the refused edits could have caused.
        await ada.send({"type": "statement.add", "text": "The council should NOT build homes near the station"})
        await bo.wait_for(lambda m: isinstance(m, StatementAdded) and m.statement_id != sid, 5)
        assert not [m for m in bo.messages if isinstance(m, StatementEdited)]
        kept = server.ctx.storage.get_statement(sid)
        assert kept is not None and (kept.text, kept.revision) == (added.text, 0)
        assert server.ctx.storage.tally(sid) == {"agree": 1, "disagree": 0, "pass": 0}
        listed = {s.statement_id: (s.text, tally) for s, tally in server.ctx.storage.statements_with_tallies(room)}
        assert listed[sid] == (added.text, {"agree": 1, "disagree": 0, "pass": 0})
    finally:
        await ada.close()
        await bo.close()


def _subscribe(server: RunningServer, room: str) -> Subscription:
    """A subscription to the room's bus channel, on the server's event loop."""
    loop = server.app.state.loop
    return asyncio.run_coroutine_threadsafe(server.ctx.bus.subscribe(room_channel(room)), loop).result(5)


def _close_and_drain(server: RunningServer, sub: Subscription) -> list[BusEvent]:
    """Everything the subscription received (closing it first, so that its queue ends)."""

    async def drain() -> list[BusEvent]:
        await sub.close()
        return [event async for event in sub]

    return asyncio.run_coroutine_threadsafe(drain(), server.app.state.loop).result(5)


async def test_flagging_a_summary_point(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Flags", 8).id
    other = server.ctx.storage.create_room("Other", 8).id
    summary = AIMessage(room_id=room, message_id="sum-1", kind="summary", text="Summary",
                        points=[AIMessagePoint(label="Key point", text="Everyone wants parks", sources=["u1"])])
    server.ctx.storage.add_ai_message(summary)
    server.ctx.storage.add_ai_message(summary.model_copy(update={"room_id": other, "message_id": "sum-2"}))
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    bus = _subscribe(server, room)
    try:
        await ada.join()
        await bo.join()
        mark = len(ada.messages)
        await ada.send({"type": "summary.flag", "message_id": "sum-1", "point": 0, "note": "  Nobody said parks "})
        for bad in ({"message_id": "sum-2", "point": 0}, {"message_id": "sum-1", "point": 3},
                    {"message_id": "nope", "point": 0}):
            await ada.send({"type": "summary.flag", **bad})
        # Flagging the same point again (a double click, another tab) is stored once and published once.
        await ada.send({"type": "summary.flag", "message_id": "sum-1", "point": 0, "note": "Again"})
        await errors_in_order(ada, mark, ["unknown_message"] * 3)
        await bo.send({"type": "summary.flag", "message_id": "sum-1", "point": 0})  # each participant flags once
        await bo.send({"type": "ping"})
        await bo.wait_for(lambda m: m.type == "pong", 5)
        flags = server.ctx.storage.summary_flags(room)
        assert [(f["participant_id"], f["note"]) for f in flags] == [(ada.participant_id, "Nobody said parks"),
                                                                     (bo.participant_id, "")]
        assert flags[0] == {"message_id": "sum-1", "point": 0, "participant_id": ada.participant_id,
                            "note": "Nobody said parks", "ts": flags[0]["ts"]}
        assert server.ctx.storage.summary_flags(other) == []
        published = [e for e in _close_and_drain(server, bus) if e.type == "summary.flagged"]
        assert [e.participant_id for e in published if isinstance(e, SummaryFlagged)] == [ada.participant_id,
                                                                                          bo.participant_id]
        assert not [m for m in bo.messages if m.type == "summary.flagged"], "flags go to moderators, not the room"
    finally:
        asyncio.run_coroutine_threadsafe(bus.close(), server.app.state.loop).result(5)
        await ada.close()
        await bo.close()
