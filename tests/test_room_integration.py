"""Real aiortc peers join a room through the real server over loopback: forwarded media, renegotiation, capacity,
and each speaker's audio decoded once for captions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from server.core.events import CaptionFinal, Error, ParticipantLeft
from server.core.settings import Settings
from server.rtc.testmedia import MovingPatternVideoTrack, WavAudioTrack, dominant_frequency
from server.rtc.testpeer import TestPeer
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


# Every sender's media is its own: a mark drawn into each video frame and a tone under (or instead of) its speech, so
# a receiver can check that the track announced as X's carries X's media (misrouted media would otherwise pass).
MARKS = {"Ada": 1, "Bo": 2, "Cy": 3, "Dee": 4}
TONES = {"Ada": 1000.0, "Bo": 440.0, "Cy": 660.0, "Dee": 520.0}


def sender(server: RunningServer, room: str, name: str, speech: Path | None = None,
           size: tuple[int, int] = (320, 240)) -> TestPeer:
    return TestPeer(server.ws(room), name, audio=WavAudioTrack(speech, tone_hz=TONES[name]),
                    video=MovingPatternVideoTrack(*size, mark=MARKS[name]))


async def check_receives(receiver: TestPeer, source: TestPeer, previous: str | None = None) -> None:
    """``receiver`` gets, on the tracks the server announced as ``source``'s, ``source``'s picture and sound (decoded:
    the forwarded streams are valid) and nobody else's.

    An m-line that carried ``previous``'s video before may first show ``previous``'s picture: aiortc's decoder keeps
    the last picture it decoded there and, when the first packets of the new sender's keyframe are lost, decodes the
    new sender's next frames onto it (without an error) until a keyframe comes. Once ``source``'s picture has
    appeared, nothing else may."""
    mark, tone = MARKS[source.name], TONES[source.name]
    video = await receiver.wait_media(source.participant_id or "", "video", frames=20, timeout=30)
    # Until the new sender's keyframe gets through (later on a loaded machine), the stale picture may go on: wait
    # for ten frames after its picture first appears (at most 150 frames, 5 s of video, in all).
    while mark not in video.marks[:140] and video.frames < 150:
        video = await receiver.wait_media(source.participant_id or "", "video", frames=video.frames + 1,
                                          timeout=30)
    if mark in video.marks:
        video = await receiver.wait_media(source.participant_id or "", "video",
                                          frames=video.marks.index(mark) + 10, timeout=30)
    marks = list(video.marks)
    assert marks[-10:] == [mark] * 10, f"{receiver.name} got {marks[-10:]} as {source.name}'s video (mark {mark})"
    first = marks.index(mark)
    stale = {MARKS[previous], None} if previous else set()
    assert set(marks[:first]) <= stale and set(marks[first:]) == {mark}, \
        f"{receiver.name} got frames marked {marks} as {source.name}'s video (mark {mark})"
    audio = await receiver.wait_media(source.participant_id or "", "audio", frames=60, timeout=30)
    assert audio.dominant_frequency() == pytest.approx(tone, abs=5), \
        f"{receiver.name} got another sender's sound as {source.name}'s"


def without_tone(audio: np.ndarray, tone: float, rate: int = 16_000) -> np.ndarray:
    """``audio`` with the band around ``tone`` removed: what the speaker's tone leaves of it."""
    spectrum = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(audio.size, 1 / rate)
    spectrum[np.abs(freqs - tone) < 30] = 0
    return np.fft.irfft(spectrum, audio.size)


async def test_three_peers_forward_media_and_renegotiate(server: RunningServer,
                                                         captions: RecordingCaptionService) -> None:
    room = new_room(server)
    baseline_tasks = server.task_names()
    ada = sender(server, room, "Ada", speech=DATA / "hello16.wav")
    bo = sender(server, room, "Bo")
    cy = sender(server, room, "Cy")
    peers = [ada, bo, cy]
    try:
        for peer in peers:
            await peer.join()
        ids = {p.name: p.participant_id or "" for p in peers}
        # Everyone receives everyone else's video and audio, each on the tracks announced as that sender's.
        for receiver in peers:
            for source in peers:
                if source is not receiver:
                    await check_receives(receiver, source)
                    assert receiver.streams_from(ids[source.name], "video")[0].frame_sizes[0] == (320, 240)

        # Each speaker's audio reached the caption service decoded at 16 kHz, in that speaker's sink; Ada's speech
        # is there under her tone.
        speakers = ("Ada", "Bo", "Cy")
        await wait_until(lambda: all(captions.sinks[ids[n]].seconds >= 3.0 for n in speakers), timeout=20)
        for name in speakers:
            sink = captions.sinks[ids[name]]
            assert sink.name == name and sink.room_id == room
            assert dominant_frequency(sink.audio(), 16_000) == pytest.approx(TONES[name], abs=5), f"{name}'s sink"
            times = [t for t, _ in sink.chunks]
            assert times == sorted(times)
        speech = without_tone(captions.sinks[ids["Ada"]].audio(), TONES["Ada"])
        assert float(np.sqrt(np.mean(speech**2))) > 0.01

        # Cy leaves: the others get participant.left, renegotiate, and keep receiving each other.
        offers_before = ada.offers
        await cy.close()
        await ada.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.participant_id == ids["Cy"], 15)
        stream = ada.streams_from(ids["Bo"], "video")[0]
        frames_before = stream.frames
        await ada.wait_media(ids["Bo"], "video", frames=frames_before + 30, timeout=20)
        assert ada.offers > offers_before
        await check_receives(ada, bo)
        await check_receives(bo, ada)
        assert captions.sinks[ids["Cy"]].closed

        # A newcomer takes Cy's place: Ada receives Dee on the m-lines that carried Cy (aiortc cannot remove m-lines,
        # so the server reuses them), and both directions work after renegotiation.
        m_lines = len(ada.pc.getTransceivers())
        dee = sender(server, room, "Dee", size=(160, 120))
        peers.append(dee)
        await dee.join()
        for receiver, source in ((dee, ada), (dee, bo), (ada, dee), (bo, dee)):
            await check_receives(receiver, source, previous="Cy" if source is dee else None)
        from_dee = ada.streams_from(dee.participant_id or "", "video")[0]
        first = from_dee.marks.index(MARKS["Dee"])
        assert set(from_dee.frame_sizes[first:]) == {(160, 120)}, "Dee's frames arrive there at Dee's size"
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
            def finals() -> list[CaptionFinal]:
                return [m for m in bo.messages if isinstance(m, CaptionFinal) and m.text]

            # The sentence may come as one final or, when a pause splits it, several: look across Ada's finals.
            await bo.wait_for(lambda m: "station" in " ".join(f.text.lower() for f in finals()), timeout=90)
            assert {(f.speaker_name, f.participant_id) for f in finals()} == {("Ada", ada.participant_id)}
            text = " ".join(f.text.lower() for f in finals())
            assert "everyone" in text and "station" in text
            received = [(f.utterance_id, f.text) for f in finals()]
            await wait_until(lambda: len(server.ctx.storage.transcript(room)) >= len(received), timeout=10)
            stored = [(c.utterance_id, c.text) for c in server.ctx.storage.transcript(room)]
            assert stored[:len(received)] == received, "what Bo read is what was stored"
        finally:
            await ada.close()
            await bo.close()
