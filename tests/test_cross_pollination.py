"""Cross-pollination through the real server: when a room of a deliberation enters its voting stage it also gets
statements written in the other rooms (as many as the deliberation says, once), shown to its participants without
who wrote them; they vote on them like on their own (the statement's tally counts every room's votes) and cannot edit
them; a stand-alone room, or a deliberation set to 0, gets none."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from server.core.events import Error, StageChanged, StatementAdded, VoteTally
from server.core.settings import Settings
from server.lobby.store import LobbyEntry
from server.rtc.testpeer import TestPeer
from tests.seating import seated_in_store
from tests.servers import RunningServer, running_server
from tests.test_credential_join import credential
from tests.test_room_integration import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("crosspoll"), asr_backend="none",
                        rtc_loopback_candidates=True, facilitator_enabled=False)
    with running_server(settings) as running:
        yield running


def three_rooms(server: RunningServer, cross: int) -> tuple[str, dict[str, list[LobbyEntry]]]:
    deliberation, people = seated_in_store(server.ctx.storage.sessions, [f"P{n}" for n in range(6)], title="Parks",
                                           question="More trees?", cross_pollination=cross)
    rooms: dict[str, list[LobbyEntry]] = {}
    for entry in people.values():
        assert entry.room_id is not None
        rooms.setdefault(entry.room_id, []).append(entry)
    return deliberation, rooms


def write(server: RunningServer, room: str, author: LobbyEntry, n: int) -> str:
    statement_id = f"st-{room}-{n}"
    server.ctx.storage.add_statement(StatementAdded(room_id=room, statement_id=statement_id, ts=100.0 + n,
                                                    text=f"Statement {n} of {room}", author_id=author.id,
                                                    author_name=author.name))
    return statement_id


def voting(room: str) -> StageChanged:
    return StageChanged(room_id=room, template_id="quick-20", stage_id="vote", index=3, title="Vote", kind="voting",
                        started_at=0.0, ends_at=100.0)


async def test_a_room_in_its_vote_gets_other_rooms_statements_and_votes_on_them(server: RunningServer) -> None:
    _, rooms = three_rooms(server, cross=2)
    (room_a, people_a), (room_b, people_b), (room_c, people_c) = sorted(rooms.items())
    own = write(server, room_a, people_a[0], 0)
    others = [write(server, room_b, people_b[0], n) for n in range(2)] + [write(server, room_c, people_c[0], 5)]
    ada = TestPeer(server.ws(room_a), "x")
    try:
        await ada.join(credential=credential(server, people_a[0]))
        server.publish(voting(room_a))
        shared: list[StatementAdded] = []
        while len(shared) < 2:
            message = await ada.wait_for(lambda m: isinstance(m, StatementAdded) and m.shared
                                         and m.statement_id not in {s.statement_id for s in shared}, 15)
            assert isinstance(message, StatementAdded)
            shared.append(message)
        assert {s.statement_id for s in shared} <= set(others) and own not in {s.statement_id for s in shared}
        assert {s.statement_id for s in shared} & {others[2]}, "one from each other room first"
        for statement in shared:
            assert statement.author_id is None and statement.author_name == "Another room" and statement.sources == []
            assert statement.room_id == room_a
        listed = server.ctx.storage.statements(room_a)
        assert [s.statement_id for s in listed if s.shared] == [s.statement_id for s in
                                                                sorted(shared, key=lambda s: s.ts)]

        # Announced again (a newcomer): nothing more is shared. Room B's vote, announced after it, is the marker:
        # once B has its shares, A's second announcement was handled (one consumer, in order).
        server.publish(voting(room_a))
        server.publish(voting(room_b))
        await wait_until(lambda: any(s.shared for s in server.ctx.storage.statements(room_b)), 10)
        assert len(server.ctx.storage.statements(room_a)) == 3
        from_b = [s for s in server.ctx.storage.statements(room_b) if s.shared]
        assert len(from_b) == 2 and all(s.statement_id in {own, others[2]} for s in from_b)
        target = shared[0].statement_id
        await ada.send({"type": "vote", "statement_id": target, "choice": "agree", "revision": 0})
        tally = await ada.wait_for(lambda m: isinstance(m, VoteTally) and m.statement_id == target, 10)
        assert isinstance(tally, VoteTally) and tally.agree == 1
        await ada.send({"type": "statement.edit", "statement_id": target, "text": "Changed", "revision": 0})
        refused = await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "unknown_statement", 10)
        assert isinstance(refused, Error)
        # A statement of another room that was not shared here cannot be voted on.
        unshared = next(s for s in others if s not in {x.statement_id for x in shared})
        await ada.send({"type": "vote", "statement_id": unshared, "choice": "agree", "revision": 0})
        await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "unknown_statement"
                           and m is not refused, 10)
    finally:
        await ada.close()


async def test_no_sharing_when_the_deliberation_says_zero(server: RunningServer) -> None:
    _, rooms = three_rooms(server, cross=0)
    (room_a, _), (room_b, people_b), _ = sorted(rooms.items())
    write(server, room_b, people_b[0], 0)
    crosspoll = next(c for name, c in server.app.state.runtime.components if name == "crosspoll")
    shared = asyncio.run_coroutine_threadsafe(crosspoll.share_into(room_a), server.app.state.loop)  # its own loop
    assert shared.result(timeout=10) == 0
    assert server.ctx.storage.statements(room_a) == []


def test_two_workers_sharing_into_one_room_at_once_share_once(server: RunningServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    deliberation, rooms = three_rooms(server, cross=2)
    (room_a, _), (room_b, people_b), (room_c, people_c) = sorted(rooms.items())
    for n in range(3):
        write(server, room_b, people_b[0], 10 + n)
        write(server, room_c, people_c[0], 20 + n)
    storage = server.ctx.storage

    def pick(statements: list[tuple[StatementAdded, set[str]]]) -> list[str]:
        return [st.statement_id for st, _ in statements if st.room_id != room_a][:2]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: storage.share_once(room_a, deliberation, pick, 1.0), range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 2], "one of them shared, the others found it done"
    assert len([s for s in storage.statements(room_a) if s.shared]) == 2
