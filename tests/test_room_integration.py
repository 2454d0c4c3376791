"""Real aiortc peers join a room through the real server over loopback: forwarded media, renegotiation, capacity,
and each speaker's audio decoded once for captions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from server.events import CaptionFinal, CaptionPartial, Error, ParticipantLeft
from server.rtc.testmedia import MovingPatternVideoTrack, WavAudioTrack
from server.rtc.testpeer import TestPeer
from server.settings import Settings
from tests.fakes import RecordingCaptionService
from tests.servers import RunningServer, running_server

DATA = Path(__file__).parent / "data"


@pytest.fixture
def captions() -> RecordingCaptionService:
    return RecordingCaptionService()


@pytest.fixture
def server(tmp_path: Path, captions: RecordingCaptionService) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path, asr_backend="none", rtc_loopback_candidates=True, max_participants=3,
                        negotiation_timeout_s=10)
    with running_server(settings, caption_service=lambda bus: captions) as running:
        yield running


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    """Poll a condition fed by another thread (the server's loop) under a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


def new_room(server: RunningServer) -> str:
    return server.ctx.storage.create_room("Integration", server.ctx.settings.max_participants).id


async def test_three_peers_forward_media_and_renegotiate(server: RunningServer,
                                                         captions: RecordingCaptionService) -> None:
    room = new_room(server)
    baseline_tasks = server.task_names()
    ada = TestPeer(server.ws(room), "Ada", audio=WavAudioTrack(DATA / "hello16.wav"), video=MovingPatternVideoTrack())
    bo = TestPeer(server.ws(room), "Bo", audio=WavAudioTrack(tone_hz=440), video=MovingPatternVideoTrack())
    cy = TestPeer(server.ws(room), "Cy", audio=WavAudioTrack(tone_hz=660), video=MovingPatternVideoTrack())
    peers = [ada, bo, cy]
    try:
        for peer in peers:
            await peer.join()
        ids = {p.name: p.participant_id for p in peers}
        # Everyone receives everyone else's video (decoded at the receiver: the forwarded VP8 is valid) and audio.
        for receiver in peers:
            for sender in peers:
                if sender is receiver:
                    continue
                video = await receiver.wait_media(ids[sender.name], "video", frames=15, timeout=30)
                assert video.frame_sizes[0] == (320, 240)
                await receiver.wait_media(ids[sender.name], "audio", frames=20, timeout=30)

        # Ada's speech reached the caption service decoded at 16 kHz, with speech-like energy.
        sink = captions.sinks[ids["Ada"]]
        assert sink.name == "Ada" and sink.room_id == room
        await wait_until(lambda: sink.seconds >= 3.0, timeout=20)
        audio = sink.audio()
        assert float(np.sqrt(np.mean(audio**2))) > 0.01
        times = [t for t, _ in sink.chunks]
        assert times == sorted(times)

        # Cy leaves: the others get participant.left, renegotiate, and keep receiving each other.
        offers_before = ada.offers
        await cy.close()
        await ada.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.participant_id == ids["Cy"], 15)
        stream = ada.streams_from(ids["Bo"], "video")[0]
        frames_before = stream.frames
        await ada.wait_media(ids["Bo"], "video", frames=frames_before + 30, timeout=20)
        assert ada.offers > offers_before
        assert captions.sinks[ids["Cy"]].closed

        # A newcomer takes Cy's place: Ada receives Dee on the m-lines that carried Cy (aiortc cannot remove m-lines,
        # so the server reuses them), and both directions work after renegotiation.
        m_lines = len(ada.pc.getTransceivers())
        dee = TestPeer(server.ws(room), "Dee", video=MovingPatternVideoTrack(160, 120),
                       audio=WavAudioTrack(tone_hz=500))
        peers.append(dee)
        await dee.join()
        await dee.wait_media(ids["Ada"], "video", frames=10, timeout=30)
        from_dee = await ada.wait_media(dee.participant_id or "", "video", frames=10, timeout=30)
        # Dee's frames (160x120) now arrive there; at most one frame of Cy's was still held by Ada's jitter buffer
        # (aiortc releases a frame when the next one starts).
        assert from_dee.frame_sizes[-1] == (160, 120) and from_dee.frame_sizes.count((320, 240)) <= 1
        await ada.wait_media(dee.participant_id or "", "audio", frames=20, timeout=30)
        assert len(ada.pc.getTransceivers()) == m_lines, "Cy's m-lines were reused for Dee"
    finally:
        for peer in peers:
            await peer.close()
    # Everyone has left: no task (relay, negotiation, signaling, aiortc's own) outlives its participant on the server.
    await wait_until(lambda: server.ctx.rooms.room(room) is None, timeout=10)
    await wait_until(lambda: server.task_names() == baseline_tasks, timeout=10)


async def test_room_full(server: RunningServer) -> None:
    room = new_room(server)
    peers = [TestPeer(server.ws(room), f"P{i}") for i in range(3)]
    late = TestPeer(server.ws(room), "Late")
    try:
        for peer in peers:
            await peer.join()
        with pytest.raises(RuntimeError, match="room_full"):
            await late.join()
        error = await late.wait_for(lambda m: isinstance(m, Error), 5)
        assert isinstance(error, Error) and error.fatal and "full" in error.message
    finally:
        for peer in [*peers, late]:
            await peer.close()


async def test_speech_becomes_captions_for_everyone(tmp_path: Path) -> None:
    """Real faster-whisper behind the real server: Ada speaks, Bo receives her media and her words as captions, and
    the transcript is stored."""
    settings = Settings(data_dir=tmp_path, rtc_loopback_candidates=True, asr_model="tiny.en", asr_language="en")
    with running_server(settings) as server:
        room = new_room(server)
        ada = TestPeer(server.ws(room), "Ada", audio=WavAudioTrack(DATA / "hello16.wav"),
                       video=MovingPatternVideoTrack())
        bo = TestPeer(server.ws(room), "Bo")
        try:
            await ada.join()
            await bo.join()
            await bo.wait_media(ada.participant_id or "", "audio", frames=20, timeout=30)
            final = await bo.wait_for(lambda m: isinstance(m, CaptionFinal), timeout=60)
            assert isinstance(final, CaptionFinal)
            assert final.speaker_name == "Ada" and final.participant_id == ada.participant_id
            text = final.text.lower()
            assert "everyone" in text and "station" in text
            partials = [m for m in bo.messages
                        if isinstance(m, CaptionPartial) and m.utterance_id == final.utterance_id]
            assert partials, "provisional captions arrive while Ada speaks"
            await wait_until(lambda: len(server.ctx.storage.transcript(room)) >= 1, timeout=10)
            stored = server.ctx.storage.transcript(room)[0]
            assert stored.utterance_id == final.utterance_id and stored.text == final.text
        finally:
            await ada.close()
            await bo.close()
