"""A moderator acts on people in a live room, through the real server and real peer connections: mute (everyone sees
the microphone turned off by a moderator), remove (the person is told, leaves, and their link no longer admits them),
move to another room of the deliberation (their client is told where; the same link admits them there; a full room
or another deliberation's room is refused), end a room (everyone is told; nobody joins again), and closing the
deliberation ends its rooms. Each action is logged; only the room's staff may act."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.core.events import Error, ParticipantLeft, ParticipantMediaState
from server.core.settings import Settings
from server.lobby.store import LobbyEntry
from server.rtc.testpeer import TestPeer
from tests.seating import seated_in_store
from tests.servers import RunningServer, running_server
from tests.staff import ensure_account, server_headers
from tests.test_credential_join import credential


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("actions"), asr_backend="none", rtc_loopback_candidates=True,
                        facilitator_enabled=False)
    with running_server(settings) as running:
        yield running


def deliberation(server: RunningServer, email: str, names: list[str]) -> tuple[str, dict[str, LobbyEntry]]:
    """An open deliberation (rooms of 2 or 3) whose round seated ``names`` two by two; organised by ``email``."""
    ensure_account(server.ctx.accounts, email, "organiser")
    organiser = server.ctx.accounts.store.user_by_email(email)
    assert organiser is not None
    return seated_in_store(server.ctx.storage.sessions, names, organiser.id, title="Parks",
                           question="More trees in the park?", group_max=3)


async def joined(server: RunningServer, entry: LobbyEntry, room: str | None = None) -> TestPeer:
    peer = TestPeer(server.ws(room or entry.room_id or ""), entry.name)
    await peer.join(credential=credential(server, entry))
    return peer


async def test_mute_remove_and_move(server: RunningServer) -> None:
    email = "actions@example.org"
    _, people = deliberation(server, email, ["Ada", "Bo", "Cy", "Dee"])
    headers = server_headers(server, email)
    ada = people["Ada"]
    room_a = ada.room_id
    assert room_a is not None
    mate = next(e for e in people.values() if e.room_id == room_a and e.id != ada.id)
    room_b = next(e.room_id for e in people.values() if e.room_id != room_a)
    assert room_b is not None
    http = httpx.AsyncClient(base_url=server.http, timeout=10, headers=headers)
    peers: list[TestPeer] = []
    try:
        peers += [await joined(server, ada), await joined(server, mate)]
        first, second = peers

        # Mute: everyone in the room sees it was a moderator.
        answer = await http.post(f"/api/rooms/{room_a}/participants/{ada.id}/mute")
        assert answer.status_code == 200, answer.text
        for peer in (first, second):
            muted = await peer.wait_for(lambda m: isinstance(m, ParticipantMediaState)
                                        and m.participant_id == ada.id, 10)
            assert isinstance(muted, ParticipantMediaState) and not muted.audio and muted.by == "moderator"

        # Move Ada to the other room: told where, and her link admits her there.
        answer = await http.post(f"/api/rooms/{room_a}/participants/{ada.id}/move", json={"to_room": room_b})
        assert answer.status_code == 200, answer.text
        moved = await first.wait_for(lambda m: isinstance(m, Error) and m.code == "moved", 10)
        assert isinstance(moved, Error) and moved.fatal and moved.location == room_b
        await second.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.participant_id == ada.id, 10)
        again = await joined(server, people["Ada"], room=room_b)
        peers.append(again)
        # Room B now holds three seats (its two and Ada): full for anyone else.
        answer = await http.post(f"/api/rooms/{room_a}/participants/{mate.id}/move", json={"to_room": room_b})
        assert answer.status_code == 409 and "full" in answer.json()["detail"]

        # Remove: told, leaves, and the same link no longer admits.
        answer = await http.post(f"/api/rooms/{room_a}/participants/{mate.id}/remove")
        assert answer.status_code == 200, answer.text
        removed = await second.wait_for(lambda m: isinstance(m, Error) and m.code == "removed", 10)
        assert isinstance(removed, Error) and removed.fatal
        comeback = TestPeer(server.ws(room_a), mate.name)
        peers.append(comeback)
        with pytest.raises(RuntimeError, match="not_your_room"):
            await comeback.join(credential=credential(server, mate))

        actions = (await http.get(f"/api/rooms/{room_a}/moderator-actions")).json()
        assert [(a["action"], a["who"]) for a in actions] == [
            ("participant.muted", email), ("participant.moved", email), ("participant.removed", email)]
        assert actions[1]["detail"].startswith("Ada to ")
    finally:
        for peer in peers:
            await peer.close()
        await http.aclose()


async def test_who_may_act_and_on_whom(server: RunningServer) -> None:
    email = "guard@example.org"
    _, people = deliberation(server, email, ["Ada", "Bo"])
    _, others = deliberation(server, "guard-other@example.org", ["Eve", "Fay"])
    headers = server_headers(server, email)
    stranger = server_headers(server, "guard-other@example.org")
    ada = people["Ada"]
    room = ada.room_id
    elsewhere = others["Eve"].room_id
    http = httpx.AsyncClient(base_url=server.http, timeout=10)
    peer = await joined(server, ada)
    try:
        url = f"/api/rooms/{room}/participants/{ada.id}"
        assert (await http.post(f"{url}/mute")).status_code == 401
        assert (await http.post(f"{url}/mute", headers=stranger)).status_code == 404
        assert (await http.post(f"/api/rooms/{room}/participants/nobody/remove", headers=headers)).status_code == 404
        bo = people["Bo"]  # seated, never joined: not in the room now
        assert (await http.post(f"/api/rooms/{room}/participants/{bo.id}/mute", headers=headers)).status_code == 404
        wrong = await http.post(f"{url}/move", json={"to_room": elsewhere}, headers=headers)
        assert wrong.status_code == 404  # another deliberation's room
        bad = await http.post(f"{url}/move", json={"to_room": "../x"}, headers=headers)
        assert bad.status_code == 422
        standalone = (await http.post("/api/rooms", json={"title": "Solo"}, headers=headers)).json()["id"]
        solo = TestPeer(server.ws(standalone), "Gus")
        await solo.join()
        moved = await http.post(f"/api/rooms/{standalone}/participants/{solo.participant_id}/move",
                                json={"to_room": room}, headers=headers)
        assert moved.status_code == 409
        await solo.close()
        await peer.sync(10)
        assert not [m for m in peer.messages if isinstance(m, Error | ParticipantMediaState)], "nothing happened"
    finally:
        await peer.close()
        await http.aclose()


async def test_ending_a_room_and_closing_the_deliberation(server: RunningServer) -> None:
    email = "ender@example.org"
    deliberation_id, people = deliberation(server, email, ["Ada", "Bo", "Cy", "Dee"])
    headers = server_headers(server, email)
    http = httpx.AsyncClient(base_url=server.http, timeout=10, headers=headers)
    ada = people["Ada"]
    other = next(e for e in people.values() if e.room_id != ada.room_id)
    peers = [await joined(server, ada), await joined(server, other)]
    try:
        answer = await http.post(f"/api/rooms/{ada.room_id}/end")
        assert answer.status_code == 200, answer.text
        ended = await peers[0].wait_for(lambda m: isinstance(m, Error) and m.code == "room_ended", 10)
        assert isinstance(ended, Error) and ended.fatal
        assert (await http.post(f"/api/rooms/{ada.room_id}/end")).status_code == 409
        late = TestPeer(server.ws(ada.room_id or ""), "Ada")
        peers.append(late)
        with pytest.raises(RuntimeError, match="room_ended"):
            await late.join(credential=credential(server, ada))

        answer = await http.post(f"/api/deliberations/{deliberation_id}/close")
        assert answer.status_code == 200, answer.text
        closed = await peers[1].wait_for(lambda m: isinstance(m, Error) and m.code == "room_ended", 10)
        assert isinstance(closed, Error) and closed.fatal
    finally:
        for peer in peers:
            await peer.close()
        await http.aclose()
