"""The moderators' live dashboard over its WebSocket, on a real server: who may open it (signed in, allowed to view
the deliberation, from this site), the snapshot of every room, changes pushed as they happen (a participant joining
through a real peer connection and their connection health from the node's ``room.status``, a call for a moderator,
a caption), nothing from rooms of other deliberations, and bad client input ignored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from server.core.events import CaptionFinal, HelpRequested, StageChanged
from server.core.settings import Settings
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server
from tests.staff import PASSWORD, server_token
from tests.test_credential_join import credential, deliberation_with_rooms


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("dashboard"), asr_backend="none",
                        rtc_loopback_candidates=True, facilitator_enabled=False, room_status_interval_s=0.5)
    with running_server(settings) as running:
        yield running


def organiser_of(server: RunningServer, deliberation: str) -> str:
    """The email of the deliberation's organiser (``deliberation_with_rooms`` made the account without a password)."""
    from server.accounts.store import AccountStore
    from server.deliberations.store import DeliberationStore

    record = DeliberationStore(server.ctx.storage.sessions).get(deliberation)
    assert record is not None and record.organiser_id is not None
    accounts = AccountStore(server.ctx.storage.sessions)
    user = accounts.user(record.organiser_id)
    assert user is not None
    server.ctx.accounts.set_password(user.id, PASSWORD)
    return str(user.email)


class Dashboard:
    """A dashboard client: every message it received, and waiting for one that satisfies a predicate."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.cards: dict[str, dict[str, Any]] = {}

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.messages.append(message)
        for card in message.get("rooms", []):
            self.cards[card["room_id"]] = card
        return message

    async def until(self, check: Callable[[dict[str, dict[str, Any]]], bool], timeout: float = 15) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check(self.cards):
            await self.next(max(0.01, deadline - loop.time()))


async def open_dashboard(server: RunningServer, deliberation: str, token: str | None,
                         origin: str | None = "same") -> ClientConnection:
    headers = {}
    if token is not None:
        headers["Cookie"] = f"moot_session={token}"
    url = f"ws://127.0.0.1:{server.port}/ws/deliberations/{deliberation}/dashboard"
    return await websockets.connect(url, additional_headers=headers,
                                    origin=server.http if origin == "same" else origin)  # type: ignore[arg-type]


async def refusal(server: RunningServer, deliberation: str, token: str | None,
                  origin: str | None = "same") -> tuple[str, int | None]:
    ws = await open_dashboard(server, deliberation, token, origin)
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    return message["code"], ws.close_code


async def test_only_its_staff_from_this_site_may_open_it(server: RunningServer) -> None:
    deliberation, _people = deliberation_with_rooms(server, ["Ada", "Bo"])
    token = server_token(server, organiser_of(server, deliberation))
    stranger = server_token(server, "other-organiser@example.org")
    assert await refusal(server, deliberation, None) == ("sign_in", 4401)
    assert await refusal(server, deliberation, "not.a.token") == ("sign_in", 4401)
    assert await refusal(server, deliberation, stranger) == ("not_found", 4404)
    assert await refusal(server, "nosuchdeliberation", token) == ("not_found", 4404)
    assert await refusal(server, deliberation, token, origin="http://evil.example") == ("bad_origin", 4403)
    admin = server_token(server, "admin@example.org", "admin")
    ws = await open_dashboard(server, deliberation, admin)
    snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert snapshot["type"] == "snapshot" and snapshot["deliberation"]["id"] == deliberation
    await ws.close()


async def test_every_room_live_and_nothing_from_elsewhere(server: RunningServer) -> None:
    deliberation, people = deliberation_with_rooms(server, ["Ada", "Bo", "Cy", "Dee"])
    other_deliberation, others = deliberation_with_rooms(server, ["Eve", "Fay"])
    token = server_token(server, organiser_of(server, deliberation))
    rooms = sorted({e.room_id for e in people.values() if e.room_id})
    elsewhere = next(e.room_id for e in others.values() if e.room_id)
    assert len(rooms) == 2 and elsewhere is not None
    ada = people["Ada"]
    assert ada.room_id is not None
    ada_room: str = ada.room_id
    other_room = next(r for r in rooms if r != ada_room)

    dashboard = Dashboard(await open_dashboard(server, deliberation, token))
    peers: list[TestPeer] = []
    try:
        snapshot = await dashboard.next()
        assert snapshot["type"] == "snapshot"
        assert sorted(card["room_id"] for card in snapshot["rooms"]) == rooms
        assert all(card["participants"] == [] for card in snapshot["rooms"])

        peer = TestPeer(server.ws(ada.room_id), "Ada")
        peers.append(peer)
        await peer.join(credential=credential(server, ada))
        await dashboard.until(lambda cards: [p["name"] for p in cards[ada_room]["participants"]] == ["Ada"])
        # The node's room.status reports the peer connection as the server sees it.
        await dashboard.until(lambda cards: cards[ada_room]["status_at"] is not None and
                              cards[ada_room]["participants"][0]["connection"] == "connected", timeout=30)

        server.publish(HelpRequested(room_id=other_room, request_id="h1", participant_id="px",
                                     participant_name="Bo", note="Someone is shouting"))
        server.publish(CaptionFinal(room_id=other_room, utterance_id="u1", participant_id="px", speaker_name="Bo",
                                    text="We should open on Sundays", start=1.0, end=2.0))
        # Another deliberation's room: it must never show up here.
        server.publish(HelpRequested(room_id=elsewhere, request_id="h2", participant_id="py",
                                     participant_name="Eve", note="not yours"))
        server.publish(CaptionFinal(room_id=elsewhere, utterance_id="u9", participant_id="py", speaker_name="Eve",
                                    text="secret", start=1.0, end=2.0))
        marker = StageChanged(room_id=other_room, template_id="t", stage_id="s", index=2, title="Marker stage",
                              kind="discuss", started_at=0.0, ends_at=99.0)
        server.publish(marker)
        await dashboard.until(lambda cards: (cards[other_room].get("stage") or {}).get("title") == "Marker stage")
        card = dashboard.cards[other_room]
        assert [(h["participant_name"], h["note"]) for h in card["help"]] == [("Bo", "Someone is shouting")]
        assert [c["text"] for c in card["captions"]] == ["We should open on Sundays"]
        assert card["alerts"] >= 1
        seen = json.dumps(dashboard.messages)
        assert elsewhere not in seen and "not yours" not in seen and "secret" not in seen
        assert other_deliberation not in seen

        # Bad input from the client is ignored; a ping is answered.
        await dashboard.ws.send("not json")
        await dashboard.ws.send(json.dumps({"type": "ping", "pad": "x" * 5000}))  # oversized: ignored
        await dashboard.ws.send(json.dumps({"type": "ping"}))
        while (await dashboard.next())["type"] != "pong":
            pass

        await peer.close()
        await dashboard.until(lambda cards: cards[ada_room]["participants"] == [])
    finally:
        for peer in peers:
            await peer.close()
        await dashboard.ws.close()


async def test_a_dashboard_opened_later_sees_who_is_there_and_open_calls(server: RunningServer) -> None:
    deliberation, people = deliberation_with_rooms(server, ["Ada", "Bo"])
    token = server_token(server, organiser_of(server, deliberation))
    ada = people["Ada"]
    assert ada.room_id is not None
    peer = TestPeer(server.ws(ada.room_id), "Ada")
    try:
        await peer.join(credential=credential(server, ada))
        await peer.send({"type": "help.request", "note": "my sound is broken"})
        http = httpx.AsyncClient(base_url=server.http, timeout=10, headers={"Authorization": f"Bearer {token}"})
        for _ in range(100):
            calls = (await http.get(f"/api/rooms/{ada.room_id}/help-requests")).json()
            if calls:
                break
            await peer.sync(10)  # (the call is stored when the server handled the message)
        await http.aclose()
        dashboard = Dashboard(await open_dashboard(server, deliberation, token))
        snapshot = await dashboard.next()
        card = next(c for c in snapshot["rooms"] if c["room_id"] == ada.room_id)
        assert [p["name"] for p in card["participants"]] == ["Ada"]
        assert [h["note"] for h in card["help"]] == ["my sound is broken"]
        await dashboard.ws.close()
    finally:
        await peer.close()
