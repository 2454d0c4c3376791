"""Statements and votes over the signaling WebSocket: add, edit, vote, tallies, privacy and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.events import AIMessage, AIMessagePoint, Error, StatementAdded, StatementEdited, VoteTally
from server.rtc.testpeer import TestPeer
from server.settings import Settings
from tests.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="none", rtc_loopback_candidates=True)
    with running_server(settings) as running:
        yield running


async def test_statements_and_votes(server: RunningServer, tmp_path: Path) -> None:
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
        sid = added.statement_id

        await bo.send({"type": "statement.edit", "statement_id": sid, "text": "Bo rewrites it"})
        refused = await bo.wait_for(lambda m: isinstance(m, Error), 5)
        assert isinstance(refused, Error) and refused.code == "not_allowed"
        await ada.send({"type": "statement.edit", "statement_id": sid, "text": "Build homes near the station"})
        edited = await bo.wait_for(lambda m: isinstance(m, StatementEdited), 5)
        assert isinstance(edited, StatementEdited) and edited.text == "Build homes near the station"

        await ada.send({"type": "vote", "statement_id": sid, "choice": "agree"})
        await bo.send({"type": "vote", "statement_id": sid, "choice": "disagree"})
        await bo.send({"type": "vote", "statement_id": sid, "choice": "pass"})  # changing one's vote
        final = await ada.wait_for(
            lambda m: isinstance(m, VoteTally) and (m.agree, m.disagree, m.passed) == (1, 0, 1), 5)
        assert isinstance(final, VoteTally)
        assert all("vote.cast" != m.type for m in [*ada.messages, *bo.messages]), "individual votes stay private"
        assert sorted(server.ctx.storage.votes(room)) == sorted([(sid, ada.participant_id, "agree"),
                                                                 (sid, bo.participant_id, "pass")])

        # Another room's participant can neither vote on nor edit this room's statement, nor see it.
        await eve.send({"type": "vote", "statement_id": sid, "choice": "agree"})
        error = await eve.wait_for(lambda m: isinstance(m, Error), 5)
        assert isinstance(error, Error) and error.code == "unknown_statement"
        assert not [m for m in eve.messages if isinstance(m, StatementAdded | VoteTally)]
        for bad in ({"type": "vote", "statement_id": sid, "choice": "maybe"},
                    {"type": "statement.add", "text": "x"},
                    {"type": "statement.add", "text": "y" * 600}):
            await ada.send(json.dumps(bad))
        await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "bad_message", 5)
        assert server.ctx.storage.tally(sid) == {"agree": 1, "disagree": 0, "pass": 1}
    finally:
        for peer in (ada, bo, eve):
            await peer.close()


async def test_flagging_a_summary_point(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Flags", 8).id
    other = server.ctx.storage.create_room("Other", 8).id
    summary = AIMessage(room_id=room, message_id="sum-1", kind="summary", text="Summary",
                        points=[AIMessagePoint(label="Key point", text="Everyone wants parks", sources=["u1"])])
    server.ctx.storage.add_ai_message(summary)
    server.ctx.storage.add_ai_message(summary.model_copy(update={"room_id": other, "message_id": "sum-2"}))
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    try:
        await ada.join()
        await bo.join()
        await ada.send({"type": "summary.flag", "message_id": "sum-1", "point": 0, "note": "  Nobody said parks "})
        for bad in ({"message_id": "sum-2", "point": 0}, {"message_id": "sum-1", "point": 3},
                    {"message_id": "nope", "point": 0}):
            await ada.send({"type": "summary.flag", **bad})
        errors = [await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "unknown_message", 5)]
        assert errors
        await ada.send({"type": "ping"})
        await ada.wait_for(lambda m: m.type == "pong", 5)
        flags = server.ctx.storage.summary_flags(room)
        assert flags == [{"message_id": "sum-1", "point": 0, "participant_id": ada.participant_id,
                          "note": "Nobody said parks", "ts": flags[0]["ts"]}]
        assert server.ctx.storage.summary_flags(other) == []
        assert not [m for m in bo.messages if m.type == "summary.flagged"], "flags go to moderators, not the room"
    finally:
        await ada.close()
        await bo.close()
