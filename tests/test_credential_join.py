"""A deliberation's rooms admit only the participants its lobby gave them, through the real server: the credential
fixes who they are and the name the room shows; another room's credential, none, a forged one, or a closed
deliberation are refused with their own codes; the same participant joining from a second window replaces the first.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.core.events import Error, ParticipantJoined, ParticipantLeft, Welcome
from server.core.settings import Settings
from server.deliberations.store import DeliberationStore
from server.lobby.credentials import ParticipantClaims
from server.lobby.store import LobbyEntry
from server.rtc.testpeer import TestPeer
from tests.seating import seated_in_store
from tests.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="none", rtc_loopback_candidates=True,
                        negotiation_timeout_s=5, facilitator_enabled=False)
    with running_server(settings) as running:
        yield running


def deliberation_with_rooms(server: RunningServer, names: list[str]) -> tuple[str, dict[str, LobbyEntry]]:
    """An open deliberation whose round put ``names`` in rooms of two (arrivals are dealt to the rooms in turn)."""
    return seated_in_store(server.ctx.storage.sessions, names)


def credential(server: RunningServer, entry: LobbyEntry) -> str:
    return server.ctx.participant_signer().sign(ParticipantClaims(entry.id, entry.deliberation_id))


async def refusal(peer: TestPeer, **join: object) -> Error:
    await peer.connect()
    await peer.send({"type": "join", "name": peer.name, "consent": True, **join})
    reply = await peer.wait_for(lambda m: isinstance(m, Welcome | Error), 10)
    assert isinstance(reply, Error), "admitted"
    return reply


async def test_only_the_lobby_s_participants_enter_their_own_room(server: RunningServer) -> None:
    deliberation, people = deliberation_with_rooms(server, ["Ada", "Bo", "Cy", "Dee"])
    ada = people["Ada"]
    room = ada.room_id
    assert room is not None
    bo = next(e for e in people.values() if e.room_id == room and e.id != ada.id)  # Ada's room-mate
    cy = next(e for e in people.values() if e.room_id != room)  # someone in the other room
    dee = next(e for e in people.values() if e.room_id != room and e.id != cy.id)
    peers: list[TestPeer] = []

    def peer(name: str) -> TestPeer:
        made = TestPeer(server.ws(room), name)
        peers.append(made)
        return made

    try:
        first = peer("typed name is ignored")
        welcome = await first.join(credential=credential(server, ada))
        assert welcome.participant_id == ada.id
        assert [p.name for p in welcome.participants] == ["Ada"]  # the lobby's name, not the typed one
        second = peer(bo.name)
        assert (await second.join(credential=credential(server, bo))).participant_id == bo.id

        for attempt, code in (({}, "credential_required"), ({"credential": "forged.token.here"},
                                                               "credential_required"),
                              ({"credential": credential(server, cy)}, "not_your_room")):
            refused = await refusal(peer("Mallory"), **attempt)
            assert refused.code == code and refused.fatal, (attempt, refused)
        other_deliberation, others = deliberation_with_rooms(server, ["Eve", "Fay"])
        assert other_deliberation != deliberation
        refused = await refusal(peer("Eve"), credential=credential(server, others["Eve"]))
        assert refused.code == "not_your_room"

        # Ada again, from another window: the first window is told and leaves; the room has Ada once.
        again = peer("Ada")
        rejoined = await again.join(credential=credential(server, ada))
        assert rejoined.participant_id == ada.id
        told = await first.wait_for(lambda m: isinstance(m, Error) and m.code == "joined_elsewhere", 10)
        assert isinstance(told, Error) and told.fatal
        await second.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.participant_id == ada.id
                              and m.reason == "joined_elsewhere", 10)
        left = next(m for m in second.messages if isinstance(m, ParticipantLeft) and m.participant_id == ada.id)
        await second.wait_for(lambda m: isinstance(m, ParticipantJoined) and m.participant.participant_id == ada.id
                              and m.seq > left.seq, 10)
        hosted = server.ctx.rooms.room(room)
        assert hosted is not None and sorted(hosted.participants) == sorted([ada.id, bo.id])

        DeliberationStore(server.ctx.storage.sessions).transition(deliberation, "close", 20.0)
        refused = await refusal(peer("Dee"), credential=credential(server, dee))
        assert refused.code == "not_your_room"  # (another room's credential, whatever the deliberation's state)
        closed = await refusal(peer("Bo"), credential=credential(server, bo))
        assert closed.code == "deliberation_closed"
    finally:
        for made in peers:
            await made.close()


async def test_a_rooms_history_is_for_its_participants(server: RunningServer) -> None:
    """A stand-alone room's participant reads its history with the credential from ``welcome``; a deliberation's
    participant with the lobby's; neither reads another room's, and nobody reads without one."""
    import httpx

    storage = server.ctx.storage
    first, second = storage.create_room("First", 8), storage.create_room("Second", 8)
    deliberation, people = deliberation_with_rooms(server, ["Gus", "Hal"])
    gus = people["Gus"]
    peer = TestPeer(server.ws(first.id), "Ida")
    try:
        welcome = await peer.join()
        assert welcome.credential
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            async def get(room: str, credential: str | None) -> int:
                headers = {"X-Moot-Participant": credential} if credential else {}
                return (await http.get(f"/api/rooms/{room}/transcript", headers=headers)).status_code

            assert await get(first.id, welcome.credential) == 200
            assert await get(second.id, welcome.credential) == 404
            assert await get(first.id, None) == 401
            assert gus.room_id is not None
            assert await get(gus.room_id, credential(server, gus)) == 200
            assert await get(first.id, credential(server, gus)) == 404
            assert await get(gus.room_id, welcome.credential) == 404
            assert deliberation
    finally:
        await peer.close()


async def test_a_participant_reads_one_of_the_deliberation_s_languages(server: RunningServer) -> None:
    """The room offers the deliberation's languages (the room API says which); another is refused at joining and
    when changing, with a clear error, and the participant stays in the room."""
    _, people = seated_in_store(server.ctx.storage.sessions, ["Gus", "Hal"], languages=["en", "nl"])
    gus = people["Gus"]
    assert gus.room_id is not None
    async with httpx.AsyncClient(timeout=10) as client:
        room = await client.get(f"{server.http}/api/rooms/{gus.room_id}",
                                headers={"X-Moot-Participant": credential(server, gus)})
    assert room.status_code == 200 and room.json()["languages"] == ["en", "nl"]
    first = TestPeer(server.ws(gus.room_id), "Gus")
    peer = TestPeer(server.ws(gus.room_id), "Gus")
    try:
        refused = await refusal(first, credential=credential(server, gus), language="fr")
        assert refused.code == "unsupported_language" and "en, nl" in refused.message
        welcome = await peer.join(credential=credential(server, gus), language="nl")
        assert [p.language for p in welcome.participants] == ["nl"]
        await peer.send({"type": "language", "language": "de"})
        error = await peer.wait_for(lambda m: isinstance(m, Error), 10)
        assert isinstance(error, Error) and error.code == "unsupported_language" and not error.fatal
        await peer.send({"type": "language", "language": "en"})
        changed = await peer.wait_for(lambda m: getattr(m, "type", "") == "participant.language", 10)
        assert getattr(changed, "language", None) == "en"
    finally:
        await first.close()
        await peer.close()
