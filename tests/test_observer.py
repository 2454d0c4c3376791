"""A moderator observes a room: signed in (the session cookie, from this site), they receive every participant's
picture and sound (each sender's own) and the room's events, take no seat, send nothing, and are in nobody's
participant list; the participants are told a moderator is observing, and when they stop. Anyone else asking to
observe is refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.core.events import Error, ObserversChanged, ParticipantJoined, Welcome
from server.core.settings import Settings
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server
from tests.staff import server_token
from tests.test_room_integration import check_receives, sender


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("observe"), asr_backend="none", rtc_loopback_candidates=True,
                        facilitator_enabled=False, max_participants=2)
    with running_server(settings) as running:
        yield running


def own_room(server: RunningServer, session: str, title: str) -> str:
    """A stand-alone room created by the signed-in account (its moderator)."""
    answer = httpx.post(f"{server.http}/api/rooms", json={"title": title}, timeout=10,
                        headers={"Authorization": f"Bearer {session}"})
    answer.raise_for_status()
    return str(answer.json()["id"])


def observer(server: RunningServer, room: str, session: str | None, origin: str | None = None) -> TestPeer:
    headers = {"Origin": origin or server.http}
    if session is not None:
        headers["Cookie"] = f"moot_session={session}"
    return TestPeer(server.ws(room), "Observer", headers=headers)


async def observe(peer: TestPeer) -> Welcome:
    return await peer.join(observe=True)


async def test_an_observer_sees_and_hears_everyone_and_is_not_a_participant(server: RunningServer) -> None:
    session = server_token(server, "observer@example.org")
    room = own_room(server, session, "Watched")
    ada, bo = sender(server, room, "Ada"), sender(server, room, "Bo")  # the room holds two: it is full
    watcher = observer(server, room, session)
    peers = [ada, bo, watcher]
    try:
        await ada.join()
        await bo.join()
        welcome = await observe(watcher)
        assert welcome.observing and welcome.observers == 1
        assert sorted(p.name for p in welcome.participants) == ["Ada", "Bo"]  # a full room still admits observers
        for person in (ada, bo):
            told = await person.wait_for(lambda m: isinstance(m, ObserversChanged), 10)
            assert isinstance(told, ObserversChanged) and told.count == 1
        await check_receives(watcher, ada)
        await check_receives(watcher, bo)

        # Nobody sees the observer as a participant or receives media from them; they can take no part.
        for person in (ada, bo):
            await person.sync(10)
            assert not [m for m in person.messages if isinstance(m, ParticipantJoined)
                        and m.participant.participant_id == watcher.participant_id]
            assert watcher.participant_id not in {s.participant_id for s in person.streams.values()}
        await watcher.send({"type": "statement.add", "text": "I am only watching"})
        refused = await watcher.wait_for(lambda m: isinstance(m, Error), 10)
        assert isinstance(refused, Error) and refused.code == "not_allowed" and not refused.fatal
        room_state = server.ctx.rooms.room(room)
        assert room_state is not None and len(room_state.participants) == 2

        await watcher.close()
        gone = await ada.wait_for(lambda m: isinstance(m, ObserversChanged) and m.count == 0, 10)
        assert isinstance(gone, ObserversChanged)
    finally:
        for peer in peers:
            await peer.close()


async def test_only_the_room_s_moderators_may_observe(server: RunningServer) -> None:
    owner = server_token(server, "owner@example.org")
    stranger = server_token(server, "stranger@example.org")
    room = own_room(server, owner, "Private")
    for session, origin in ((None, None), (stranger, None), ("not.a.token", None), (owner, "http://evil.example")):
        peer = observer(server, room, session, origin)
        try:
            await peer.connect()
            await peer.send({"type": "join", "name": "x", "consent": True, "observe": True})
            refused = await peer.wait_for(lambda m: isinstance(m, Error | Welcome), 10)
            assert isinstance(refused, Error) and refused.code == "not_allowed" and refused.fatal, (session, origin)
        finally:
            await peer.close()
