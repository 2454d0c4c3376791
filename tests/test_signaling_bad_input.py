"""Bad input on the signaling WebSocket: every case gets a clear error to that client only, the server keeps
serving, and participants already in the room are undisturbed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from server.core.events import Error, ParticipantJoined, ParticipantLeft, VoiceActivity
from server.core.settings import Settings
from server.rtc.testmedia import MovingPatternVideoTrack, WavAudioTrack
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="none", rtc_loopback_candidates=True,
                        negotiation_timeout_s=3, signaling_max_message_bytes=16_384)
    with running_server(settings) as running:
        yield running


def new_room(server: RunningServer) -> str:
    return str(server.ctx.storage.create_room("Bad input", 8).id)


async def recv_json(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def expect_error(ws: Any, code: str, timeout: float = 10) -> dict[str, Any]:
    """Read messages until an error arrives; it must carry ``code`` and a human-readable message."""
    while True:
        message = await recv_json(ws, timeout)
        if message["type"] == "error":
            assert message["code"] == code, message
            assert len(message["message"]) > 5
            return message


@pytest.fixture
async def bystander(server: RunningServer) -> Any:
    """A participant already in a room, publishing media, who must not notice any of the bad input."""
    room = new_room(server)
    peer = TestPeer(server.ws(room), "Bystander", audio=WavAudioTrack(tone_hz=300), video=MovingPatternVideoTrack())
    watcher = TestPeer(server.ws(room), "Watcher")
    await peer.join()
    await watcher.join()
    await watcher.wait_media(peer.participant_id or "", "video", frames=5, timeout=20)
    yield room, peer, watcher
    # Still receiving media after everything the test did: nobody was disturbed.
    stream = watcher.streams_from(peer.participant_id or "", "video")[0]
    await watcher.wait_media(peer.participant_id or "", "video", frames=stream.frames + 10, timeout=20)
    for client in (peer, watcher):  # every error the server sent them before their pong has arrived: none
        await client.sync()
    errors = [m for m in [*peer.messages, *watcher.messages] if isinstance(m, Error)]
    assert errors == []
    await peer.close()
    await watcher.close()


@pytest.mark.parametrize(
    "raw, code",
    [
        ("this is not json", "bad_message"),
        ('{"type": "launch_missiles"}', "bad_message"),
        ('{"no_type": 1}', "bad_message"),
        ('{"type": "join", "name": 42, "consent": true}', "bad_message"),
        ('{"type": "answer", "sdp": "v=0"}', "not_joined"),
        ('{"type": "media", "audio": true, "video": false}', "not_joined"),
        ("x" * 20_000, "too_large"),
    ],
)
async def test_malformed_messages_get_errors(server: RunningServer, bystander: Any, raw: str, code: str) -> None:
    room, _, _ = bystander
    async with websockets.connect(server.ws(room)) as ws:
        await ws.send(raw)
        await expect_error(ws, code)
        await ws.send('{"type": "ping"}')  # the connection is still usable
        assert (await recv_json(ws))["type"] == "pong"


async def test_binary_frames_are_rejected(server: RunningServer, bystander: Any) -> None:
    room, _, _ = bystander
    async with websockets.connect(server.ws(room)) as ws:
        await ws.send(b"\x00\x01binary")
        await expect_error(ws, "bad_message")


async def test_invalid_sdp_answer(server: RunningServer, bystander: Any) -> None:
    room, _, watcher = bystander
    async with websockets.connect(server.ws(room)) as ws:
        await ws.send(json.dumps({"type": "join", "name": "Mallory", "consent": True}))
        while (await recv_json(ws))["type"] != "offer":
            pass
        await ws.send(json.dumps({"type": "answer", "sdp": "v=0\r\nthis is not sdp\r\n"}))
        error = await expect_error(ws, "bad_sdp")
        assert "SDP" in error["message"]
        # No valid answer follows: the server gives up after the negotiation timeout and says so.
        final = await expect_error(ws, "negotiation_timeout", timeout=15)
        assert final["fatal"] is True
    left = await watcher.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.name == "Mallory", 15)
    assert isinstance(left, ParticipantLeft) and left.reason == "negotiation_timeout"


async def test_unknown_rooms(server: RunningServer) -> None:
    for room in ("doesnotexist", "../../etc/passwd", "UPPERCASE", "x" * 40):
        try:
            async with websockets.connect(server.ws(room)) as ws:
                with contextlib.suppress(websockets.ConnectionClosed):  # malformed ids are refused at once
                    await ws.send(json.dumps({"type": "join", "name": "Ada", "consent": True}))
                error = await expect_error(ws, "unknown_room")
                assert error["fatal"] is True
        except websockets.InvalidStatus as exc:  # paths the router itself refuses
            assert exc.response.status_code in (403, 404)


async def test_duplicate_name_and_missing_consent(server: RunningServer, bystander: Any) -> None:
    room, _, _ = bystander
    async with websockets.connect(server.ws(room)) as ws:
        await ws.send(json.dumps({"type": "join", "name": "Mallory", "consent": False}))
        await expect_error(ws, "consent_required")
        await ws.send(json.dumps({"type": "join", "name": "  bystander ", "consent": True}))
        error = await expect_error(ws, "name_taken")
        assert "already called" in error["message"]
        await ws.send(json.dumps({"type": "join", "name": "Mallory", "consent": True}))
        assert (await recv_json(ws))["type"] == "welcome"
        await ws.send(json.dumps({"type": "join", "name": "Mallory2", "consent": True}))
        await expect_error(ws, "already_joined")


async def test_client_vanishing_mid_negotiation(server: RunningServer, bystander: Any) -> None:
    room, _, watcher = bystander
    ws = await websockets.connect(server.ws(room))
    await ws.send(json.dumps({"type": "join", "name": "Ghost", "consent": True}))
    while (await recv_json(ws))["type"] != "offer":
        pass
    await ws.close()  # gone before answering
    await watcher.wait_for(lambda m: isinstance(m, ParticipantJoined) and m.participant.name == "Ghost", 10)
    await watcher.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.name == "Ghost", 10)
    assert server.ctx.rooms.room(room) is not None
    assert [p.name for p in server.ctx.rooms.room(room).participants.values()] == ["Bystander", "Watcher"]


async def test_events_do_not_leak_between_rooms(server: RunningServer, bystander: Any) -> None:
    room, _, watcher = bystander
    other = new_room(server)
    async with TestPeer(server.ws(other), "Elsewhere") as elsewhere:
        await elsewhere.wait_for(lambda m: isinstance(m, ParticipantJoined), 5)
        # Room events reach a client through its bus subscription, in order: a marker published in the watcher's
        # room after Elsewhere's join was announced arrives after that announcement, had it leaked.
        server.publish(VoiceActivity(room_id=room, participant_id="marker", speaking=False, t=0.0))
        await watcher.wait_for(lambda m: isinstance(m, VoiceActivity) and m.participant_id == "marker", 10)
    names = {m.participant.name for m in watcher.messages if isinstance(m, ParticipantJoined)}
    assert "Elsewhere" not in names
