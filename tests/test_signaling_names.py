"""Display names at the signaling join, through the real server: look-alike, reserved and malformed names are refused
with their own error codes, the name others see and storage keeps is the normalised one, and participants already in
the room notice nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.core.events import Error, ParticipantJoined, Welcome
from server.core.settings import Settings
from server.rtc.testmedia import MovingPatternVideoTrack, WavAudioTrack
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="none", rtc_loopback_candidates=True,
                        negotiation_timeout_s=5)
    with running_server(settings) as running:
        yield running


async def refused(peer: TestPeer, name: str, timeout: float = 10) -> Error:
    """Send a join as ``name`` and return the error it gets (a new one, not an earlier refusal's)."""
    earlier = {id(m) for m in peer.messages if isinstance(m, Error)}
    await peer.send({"type": "join", "name": name, "consent": True})
    reply = await peer.wait_for(lambda m: isinstance(m, Welcome) or (isinstance(m, Error) and id(m) not in earlier),
                                timeout)
    assert isinstance(reply, Error), f"{name!r} was admitted"
    assert not reply.fatal
    return reply


async def test_names_at_the_join(server: RunningServer) -> None:
    room = str(server.ctx.storage.create_room("Names", 8).id)
    ada = TestPeer(server.ws(room), "Ada", audio=WavAudioTrack(tone_hz=300), video=MovingPatternVideoTrack())
    watcher = TestPeer(server.ws(room), "Watcher")
    newcomer = TestPeer(server.ws(room), "unused")
    try:
        await ada.join()
        await watcher.join()
        assert ada.participant_id is not None
        await watcher.wait_media(ada.participant_id, "video", frames=5, timeout=20)
        await newcomer.connect()

        taken = await refused(newcomer, "\u0410da")  # Cyrillic capital A
        assert taken.code == "name_taken"
        assert "already called “Ada”" in taken.message and "looks the same" in taken.message
        assert (taken.reason, taken.params) == ("looks_alike", {"taken": "Ada", "name": "\u0410da"})
        assert (await refused(newcomer, "  Ada\u200b ")).code == "name_taken"  # the invisible space is removed
        assert (await refused(newcomer, "\uff21\uff24\uff21")).code == "name_taken"  # fullwidth ADA
        for name in ("Moderator", "AI facilitator", "\uff21\uff29", "m0derat0r", "Facilitator\N{ROBOT FACE}"):
            reserved = await refused(newcomer, name)
            assert reserved.code == "name_reserved", (name, reserved)
            assert "own name" in reserved.message and reserved.reason in ("reserved", "reserved_word")
        override = await refused(newcomer, "Eve\u202eevE")
        assert override.code == "bad_name"
        assert "U+202E RIGHT-TO-LEFT OVERRIDE" in override.message
        assert (override.reason, override.params) == ("direction_control", {"char": "U+202E RIGHT-TO-LEFT OVERRIDE"})
        invisible = await refused(newcomer, "\u200b\u2060")
        assert (invisible.code, invisible.reason) == ("bad_name", "invisible")
        long = await refused(newcomer, "x" * 41)
        assert (long.code, long.reason, long.params) == ("bad_name", "too_long", {"max": 40, "length": 41})

        # The same connection may still join, under the name as normalised; that is what others and storage see.
        await newcomer.send({"type": "join", "name": " \uff22\uff4f\u200b  Smith ", "consent": True})
        welcome = await newcomer.wait_for(lambda m: isinstance(m, Welcome), 20)
        assert isinstance(welcome, Welcome)
        assert [p.name for p in welcome.participants if p.participant_id == welcome.participant_id] == ["Bo Smith"]
        joined = await watcher.wait_for(
            lambda m: isinstance(m, ParticipantJoined) and m.participant.participant_id == welcome.participant_id, 10)
        assert isinstance(joined, ParticipantJoined) and joined.participant.name == "Bo Smith"
        stored = {p.id: p.name for p in server.ctx.storage.list_participants(room)}
        assert stored[welcome.participant_id] == "Bo Smith"

        # Bo's join, sent after every refused one, arrived: no refused name was ever announced to the room.
        announced = [m.participant.name for m in watcher.messages if isinstance(m, ParticipantJoined)]
        assert [n for n in announced if n != "Watcher"] == ["Bo Smith"]
        assert sorted(stored.values()) == ["Ada", "Bo Smith", "Watcher"]
        # The bystanders got no error and Ada's media still reaches the watcher.
        stream = watcher.streams_from(ada.participant_id, "video")[0]
        await watcher.wait_media(ada.participant_id, "video", frames=stream.frames + 10, timeout=20)
        assert [m for m in [*ada.messages, *watcher.messages] if isinstance(m, Error)] == []
    finally:
        await newcomer.close()
        await watcher.close()
        await ada.close()
