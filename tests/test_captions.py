"""The caption service end to end on real speech audio, with a scripted fake recogniser for the segmentation, timing
and commit logic (real faster-whisper: tests/test_captions_whisper.py).

Audio is pushed as fast as the event loop allows (stream timestamps stay those of real time); tests synchronise only
on bus events, read with timeouts.
"""

from __future__ import annotations

import asyncio
import threading
import time
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from server.asr.backends import ScriptedBackend, Transcription
from server.asr.service import SpeakerStream, WhisperCaptionService
from server.core.bus import InProcessBus, Subscription
from server.core.events import BusEvent, CaptionFinal, CaptionPartial, VoiceActivity
from server.core.settings import Settings
from tests.caption_checks import check_committed_words_never_change

DATA = Path(__file__).parent / "data"
RATE = 16_000
CHUNK = 320  # 20 ms, as the media layer delivers it
T0 = 1_700_000_000.0
ROOM = "room1"
SENTENCE = "Hello everyone. I think we should build more homes near the station."
# Word times in hello16.wav (seconds from its first sample), as Whisper aligns them.
SCRIPT = [("Hello", 0.10, 0.42), ("everyone.", 0.42, 0.90), ("I", 1.45, 1.62), ("think", 1.62, 1.92),
          ("we", 1.92, 2.24), ("should", 2.24, 2.42), ("build", 2.42, 2.78), ("more", 2.78, 3.08),
          ("homes", 3.08, 3.44), ("near", 3.44, 3.72), ("the", 3.72, 3.92), ("station.", 3.92, 4.34)]


def speech() -> npt.NDArray[np.float32]:
    with wave.open(str(DATA / "hello16.wav"), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0


SPEECH_S = speech().size / RATE


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(int(seconds * RATE), np.float32)


def script_at(offset: float) -> list[tuple[str, float, float]]:
    return [(text, start + offset, end + offset) for text, start, end in SCRIPT]


class LocatingBackend(ScriptedBackend):
    """``ScriptedBackend`` for streams of several utterances or speakers: before each decode it finds, by content,
    which pushed track the buffer comes from and where it lies in it, and sets ``script`` and ``offset`` to match, so
    scripted word times can be given in seconds from the start of each track."""

    def __init__(self, tracks: Sequence[tuple[npt.NDArray[np.float32], Sequence[tuple[str, float, float]]]],
                 garble_last: bool = False) -> None:
        super().__init__(garble_last=garble_last)
        self.tracks = list(tracks)
        self.offsets: list[float] = []
        self._lock = threading.Lock()

    def locate(self, buffer: npt.NDArray[np.float32]) -> tuple[int, float]:
        j = int(np.flatnonzero(buffer)[0])
        probe = buffer[j : j + 64]
        for n, (audio, _) in enumerate(self.tracks):
            for c in np.flatnonzero(audio == buffer[j]):
                start = int(c) - j
                if start >= 0 and np.array_equal(audio[c : c + probe.size], probe) \
                        and np.array_equal(audio[start : start + buffer.size], buffer):
                    return n, start / RATE
        raise AssertionError("the service decoded audio that was never pushed")

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        with self._lock:
            if np.any(audio):
                track, self.offset = self.locate(audio)
                self.script = list(self.tracks[track][1])
                self.offsets.append(self.offset)
            return super().transcribe(audio, language, prompt)


class Recorder:
    """Reads a subscription, keeping every event."""

    def __init__(self, bus: InProcessBus, sub: Subscription) -> None:
        self.bus, self.sub = bus, sub
        self.events: list[BusEvent] = []

    async def until(self, predicate: Callable[[BusEvent], bool], timeout: float = 10.0) -> BusEvent:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.sub.get(timeout=max(0.01, deadline - time.monotonic()))
            self.events.append(event)
            if predicate(event):
                return event

    async def drain(self) -> list[BusEvent]:
        """Everything published so far: publish a marker and read up to it (the in-process bus keeps order)."""
        await self.bus.publish(VoiceActivity(room_id="zz-marker", participant_id="marker", speaking=False, t=0.0))
        await self.until(lambda e: getattr(e, "participant_id", None) == "marker", timeout=5.0)
        self.events.pop()
        return self.events


@pytest.fixture
async def recorder(bus: InProcessBus) -> Recorder:
    return Recorder(bus, await bus.subscribe("room:*"))


async def push(stream: SpeakerStream, audio: npt.NDArray[np.float32], t0: float = T0, offset: int = 0,
               yield_each: bool = True) -> None:
    """Push ``audio`` in 20 ms chunks stamped ``t0 + i / 16000`` (``i`` counted from ``offset``), as fast as
    possible; with ``yield_each`` the event loop runs between chunks, as it would between packets."""
    for i in range(0, audio.size, CHUNK):
        stream.push(audio[i : i + CHUNK], t0 + (offset + i) / RATE)
        if yield_each:
            await asyncio.sleep(0)  # a bare yield to the loop: no wall-clock pacing


def check_captions(events: list[BusEvent], participant_id: str = "p1", speaker_name: str = "Ada",
                   t0: float = T0) -> list[CaptionFinal]:
    """The invariants of one speaker's caption events; returns their finals in order."""
    mine = [e for e in events if getattr(e, "participant_id", None) == participant_id]
    assert all(e.room_id == ROOM for e in mine)
    finals = [e for e in mine if isinstance(e, CaptionFinal)]
    activity = [e for e in mine if isinstance(e, VoiceActivity)]
    # voice.activity alternates True/False, one pair per utterance
    assert [e.speaking for e in activity] == [True, False] * len(finals)
    assert len({f.utterance_id for f in finals}) == len(finals), "one caption.final per utterance"
    partial_ids = {e.utterance_id for e in mine if isinstance(e, CaptionPartial)}
    assert partial_ids <= {f.utterance_id for f in finals}, "a partial without a final"
    position = {id(e): i for i, e in enumerate(mine)}
    for n, final in enumerate(finals):
        on, off = activity[2 * n], activity[2 * n + 1]
        assert position[id(on)] < position[id(off)] < position[id(final)]
        assert final.participant_id == participant_id and final.speaker_name == speaker_name
        assert t0 <= on.t <= final.start < final.end
        assert off.t == pytest.approx(final.end)
        assert final.text and final.words
        for word in final.words:
            assert final.start - 0.5 <= word.start <= word.end <= final.end + 0.5, word
        partials = [e for e in mine if isinstance(e, CaptionPartial) and e.utterance_id == final.utterance_id]
        for partial in partials:
            assert position[id(on)] < position[id(partial)] < position[id(off)], "partials belong in the utterance"
            assert partial.speaker_name == speaker_name and partial.start == pytest.approx(final.start, abs=0.5)
            assert partial.committed or partial.tentative
        check_committed_words_never_change([p.committed for p in partials], final.text)
    return finals


def check_word_times(final: CaptionFinal, script: Sequence[tuple[str, float, float]], t0: float = T0) -> None:
    """With the scripted recogniser, each word's wall-clock time is exactly the stream time it was scripted at."""
    assert [w.word for w in final.words] == [text for text, _, _ in script]
    for word, (_, start, end) in zip(final.words, script, strict=True):
        assert word.start == pytest.approx(t0 + start, abs=1e-3)
        assert word.end == pytest.approx(t0 + end, abs=1e-3)


def fake_settings(tmp_path: Path, **kwargs: object) -> Settings:
    return Settings(data_dir=tmp_path, asr_backend="fake", **kwargs)  # type: ignore[arg-type]


# Scripted recogniser -------------------------------------------------------------------------------------------------


async def test_live_utterance_partials_grow_and_final_is_complete(bus: InProcessBus, recorder: Recorder,
                                                                   tmp_path: Path) -> None:
    audio = np.concatenate([speech(), silence(1.5)])
    backend = LocatingBackend([(audio, SCRIPT)])
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=backend)
    await service.start()
    stream = service.open_speaker(ROOM, "p1", "Ada")

    cut1, cut2 = int(2.5 * RATE), int(3.7 * RATE)
    await push(stream, audio[:cut1])
    on = await recorder.until(lambda e: isinstance(e, VoiceActivity))
    assert isinstance(on, VoiceActivity) and on.speaking and on.participant_id == "p1"
    await recorder.until(lambda e: isinstance(e, CaptionPartial))  # a partial decode was due at about 1 s
    await push(stream, audio[cut1:cut2], offset=cut1)
    # By 3.7 s a second partial decode has run, agreeing with the first on "Hello everyone."
    await recorder.until(lambda e: isinstance(e, CaptionPartial) and bool(e.committed))
    await push(stream, audio[cut2:], offset=cut2)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))  # 1.5 s of silence ends the utterance
    await stream.aclose()
    events = await recorder.drain()
    await service.close()

    finals = check_captions(events)
    assert len(finals) == 1
    final = finals[0]
    assert final.text == SENTENCE
    check_word_times(final, SCRIPT)
    assert final.language == "en"
    assert T0 <= final.start <= T0 + 0.15 and final.end == pytest.approx(T0 + 4.45, abs=0.15)
    partials = [e for e in events if isinstance(e, CaptionPartial)]
    assert len(partials) >= 2 and partials[-1].committed.startswith("Hello everyone.")
    assert all(p.utterance_id == final.utterance_id for p in partials)
    assert stream.dropped_samples == 0
    assert service.finals == 1
    assert all(offset == 0.0 for offset in backend.offsets), "every decode starts at the utterance start"


async def test_burst_of_audio_then_close(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """All audio pushed before the stream's task runs at all, then closed: one utterance, one final."""
    audio = np.concatenate([speech(), silence(1.5)])
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=LocatingBackend([(audio, SCRIPT)]))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio, yield_each=False)
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert [f.text for f in finals] == [SENTENCE]
    check_word_times(finals[0], SCRIPT)


async def test_garbled_partials_keep_committed_text_stable(bus: InProcessBus, recorder: Recorder,
                                                            tmp_path: Path) -> None:
    """The recogniser garbles the last word of every hypothesis (consistently, so two decodes that end on the same
    word agree on its garbled form): committed text still only grows, and no word is lost or repeated."""
    audio = np.concatenate([speech(), silence(1.5)])
    settings = fake_settings(tmp_path, asr_partial_interval_s=0.3)
    service = WhisperCaptionService(settings, bus, backend=LocatingBackend([(audio, SCRIPT)], garble_last=True))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert len(finals) == 1
    words = [w.word for w in finals[0].words]
    assert len(words) == len(SCRIPT)
    for word, (text, _, _) in zip(words, SCRIPT, strict=True):
        assert word in (text, text + "s")
    assert words[-1] == "station.s", "the final hypothesis's last word is garbled too"
    assert sum(isinstance(e, CaptionPartial) for e in events) >= 2


async def test_two_utterances_separated_by_a_pause(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    gap = 1.2
    audio = np.concatenate([speech(), silence(gap), speech(), silence(1.5)])
    second = SPEECH_S + gap
    script = SCRIPT + script_at(second)
    backend = LocatingBackend([(audio, script)])
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=backend)
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()

    finals = check_captions(events)
    assert [f.text for f in finals] == [SENTENCE, SENTENCE]
    check_word_times(finals[0], SCRIPT)
    check_word_times(finals[1], script_at(second))
    assert finals[0].end < finals[1].start
    assert finals[1].start == pytest.approx(T0 + second, abs=0.2)
    assert max(backend.offsets) == pytest.approx(second - 0.2, abs=0.1)  # decodes start at the padded start


async def test_two_speakers_at_once(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """Two participants talking over each other get their own utterances, captions and times."""
    lag = 0.7
    ada = np.concatenate([speech(), silence(lag + 1.5)])
    bob = np.concatenate([silence(lag), speech(), silence(1.5)])
    service = WhisperCaptionService(fake_settings(tmp_path), bus,
                                    backend=LocatingBackend([(ada, SCRIPT), (bob, script_at(lag))]))
    a = service.open_speaker(ROOM, "p1", "Ada")
    b = service.open_speaker(ROOM, "p2", "Bob")
    for i in range(0, bob.size, CHUNK):
        a.push(ada[i : i + CHUNK], T0 + i / RATE)
        b.push(bob[i : i + CHUNK], T0 + 100 + i / RATE)
        await asyncio.sleep(0)
    for _ in range(2):
        await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await a.aclose()
    await b.aclose()
    events = await recorder.drain()
    await service.close()

    ada_finals = check_captions(events, "p1", "Ada", T0)
    bob_finals = check_captions(events, "p2", "Bob", T0 + 100)
    assert [f.text for f in ada_finals] == [f.text for f in bob_finals] == [SENTENCE]
    check_word_times(ada_finals[0], SCRIPT, T0)
    check_word_times(bob_finals[0], script_at(lag), T0 + 100)


async def test_close_mid_utterance_finishes_it(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """A speaker who leaves while talking still gets the final caption of what they said."""
    audio = speech()[: int(3.5 * RATE)]
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=LocatingBackend([(audio, SCRIPT)]))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio)
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert [f.text for f in finals] == ["Hello everyone. I think we should build more homes"]
    assert finals[0].end == pytest.approx(T0 + 3.5, abs=0.05)
    stream.push(speech(), T0 + 10)  # pushing after close is ignored
    assert stream.dropped_samples == 0


async def test_silence_only_produces_nothing(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    backend = LocatingBackend([(silence(3.0), SCRIPT)])
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=backend)
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, silence(3.0))
    await stream.aclose()
    assert await recorder.drain() == []
    await service.close()
    assert backend.calls == []


# Bounded input -------------------------------------------------------------------------------------------------------


async def test_bounded_input_drops_the_oldest_audio(bus: InProcessBus, tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, audio_queue_seconds=1.0)
    service = WhisperCaptionService(settings, bus, backend=ScriptedBackend())
    stream = service.open_speaker(ROOM, "p1", "Ada")
    chunk = np.full(CHUNK, 0.001, np.float32)
    pushed = 0
    for i in range(5000):  # 100 s of audio before the stream's task gets to run
        stream.push(chunk, T0 + i * 0.02)
        pushed += CHUNK
        assert pushed - stream.dropped_samples <= RATE, "buffered audio exceeds audio_queue_seconds"
    assert stream.dropped_samples == pushed - RATE  # 1 s (50 whole chunks) kept
    await stream.aclose()
    await service.close()


async def test_dropped_audio_keeps_wall_clock_times(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """When the oldest audio is dropped, what is kept is still placed at its own timestamps."""
    lead = 10.0
    audio = np.concatenate([silence(lead), speech(), silence(1.5)])
    settings = fake_settings(tmp_path, audio_queue_seconds=8.0)
    service = WhisperCaptionService(settings, bus, backend=LocatingBackend([(audio, script_at(lead))]))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio, yield_each=False)
    assert audio.size - 8 * RATE <= stream.dropped_samples < audio.size - 8 * RATE + CHUNK  # whole chunks dropped
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert [f.text for f in finals] == [SENTENCE]
    check_word_times(finals[0], script_at(lead))


async def test_timestamp_jump_in_silence_moves_later_captions(bus: InProcessBus, recorder: Recorder,
                                                              tmp_path: Path) -> None:
    """Audio resumes after a gap in time (a muted microphone sends nothing): captions after it use the new times."""
    first = np.concatenate([speech(), silence(1.5)])
    second = np.concatenate([silence(1.0), speech(), silence(1.5)])
    audio = np.concatenate([first, second])
    service = WhisperCaptionService(fake_settings(tmp_path), bus,
                                    backend=LocatingBackend([(audio, SCRIPT + script_at(first.size / RATE + 1.0))]))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, first, T0)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await push(stream, second, T0 + 60)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert [f.text for f in finals] == [SENTENCE, SENTENCE]
    check_word_times(finals[0], SCRIPT, T0)
    check_word_times(finals[1], script_at(1.0), T0 + 60)


async def test_speaking_right_after_a_timestamp_jump(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """Unmute and speak at once: the speech starts within the 200 ms padding after the jump."""
    part = np.concatenate([speech(), silence(1.5)])
    audio = np.concatenate([part, part])
    service = WhisperCaptionService(fake_settings(tmp_path), bus,
                                    backend=LocatingBackend([(audio, SCRIPT + script_at(part.size / RATE))]))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, part, T0)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await push(stream, part, T0 + 60)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert [f.text for f in finals] == [SENTENCE, SENTENCE]
    check_word_times(finals[1], SCRIPT, T0 + 60)
    assert finals[1].start == pytest.approx(T0 + 60.1, abs=0.15)


async def test_audio_lost_mid_utterance_shifts_later_words(bus: InProcessBus, recorder: Recorder,
                                                           tmp_path: Path) -> None:
    """0.5 s of audio lost in transit mid-sentence: the words after the gap are 0.5 s later in wall-clock time."""
    audio = np.concatenate([speech(), silence(1.5)])
    cut = int(2.42 * RATE) // CHUNK * CHUNK  # between "should" and "build"
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=LocatingBackend([(audio, SCRIPT)]))
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio[:cut], T0)
    await push(stream, audio[cut:], T0 + 0.5, offset=cut)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    finals = check_captions(events)
    assert [f.text for f in finals] == [SENTENCE]
    shifted = [(text, start + 0.5 * (start >= 2.42), end + 0.5 * (start >= 2.42)) for text, start, end in SCRIPT]
    check_word_times(finals[0], shifted)
    assert finals[0].words[-1].end <= finals[0].end


def test_committed_words_check_is_word_level() -> None:
    """The check used above fails on a committed word that changes even where the text stays a string prefix."""
    check_committed_words_never_change(["", "Hello", "hello everyone,"], "Hello everyone. I think")
    with pytest.raises(AssertionError, match="partial 0 to partial 1"):
        check_committed_words_never_change(["Hello every", "Hello everyone."], "Hello everyone. I think")
    with pytest.raises(AssertionError, match="to the final caption"):
        check_committed_words_never_change(["Hello everyone"], "Hello, every one")
