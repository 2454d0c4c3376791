"""Prior text as decoding context: the ``PriorText`` core, and the live path prompting each decode with the speaker's
own previous finals (scripted recogniser that records its prompts)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from server.asr.backends import Transcription
from server.asr.context import PriorText, tail
from server.asr.service import WhisperCaptionService
from server.core.bus import InProcessBus
from server.core.events import CaptionFinal, VoiceActivity
from tests.test_captions import (
    ROOM,
    SCRIPT,
    SENTENCE,
    SPEECH_S,
    T0,
    LocatingBackend,
    Recorder,
    check_captions,
    fake_settings,
    push,
    silence,
    speech,
)


@pytest.fixture
async def recorder(bus: InProcessBus) -> Recorder:
    return Recorder(bus, await bus.subscribe("room:*"))


class PromptLog(LocatingBackend):
    """Records (where the decoded buffer starts in the stream, its prompt) for every decode of pushed audio."""

    def __init__(self, tracks: Sequence[tuple[npt.NDArray[np.float32], Sequence[tuple[str, float, float]]]],
                 hold_first_final: threading.Event | None = None) -> None:
        super().__init__(tracks)
        self.log: list[tuple[float, str | None]] = []
        self.hold = hold_first_final  # the first decode of the whole first sentence waits for it (in the worker)

    def transcribe(self, audio: npt.NDArray[np.float32], language: str | None = None,
                   prompt: str | None = None) -> Transcription:
        if self.hold is not None and audio.size / 16_000 > SCRIPT[-1][2] + 0.1:
            hold, self.hold = self.hold, None
            assert hold.wait(30), "the test never released the first final"
        result = super().transcribe(audio, language, prompt)
        if np.any(audio):
            self.log.append((self.offset, prompt))
        return result


# The core ------------------------------------------------------------------------------------------------------------


def test_tail_keeps_whole_words_within_the_bound() -> None:
    assert tail("one two  three\nfour", 100) == "one two three four"
    assert tail("one two three four", 10) == "three four"
    assert tail("one two three four", 9) == "four"
    assert tail("supercalifragilistic", 5) == ""
    assert tail("", 10) == ""


def test_prompt_is_the_tail_of_previous_finals() -> None:
    context = PriorText(max_chars=30)
    assert context.prompt() is None
    context.add("Hello everyone.", end=10.0, language="en")
    assert context.prompt(at=11.0, language="en") == "Hello everyone."
    context.add("  I think we should  build more homes. ", end=15.0, language="en")
    assert context.prompt(at=16.0) == "we should build more homes."
    context.add("", end=17.0, language="en")  # an empty final adds nothing
    assert context.prompt(at=18.0) == "we should build more homes."


def test_unknown_language_neither_resets_nor_blocks() -> None:
    context = PriorText()
    context.add("Hello.", end=1.0, language=None)
    assert context.prompt(at=2.0, language="en") == "Hello."
    context.add("Again.", end=3.0, language="en")
    assert context.prompt(at=4.0, language=None) == "Hello. Again."


def test_language_change_resets_the_context() -> None:
    context = PriorText()
    context.add("Hello everyone.", end=1.0, language="en")
    assert context.prompt(at=2.0, language="fr") is None, "an English prompt would pull French speech to English"
    context.add("Bonjour à tous.", end=3.0, language="fr")
    assert context.prompt(at=4.0, language="fr") == "Bonjour à tous."
    assert context.prompt(at=4.0, language="en") is None


def test_a_long_silence_makes_the_context_stale() -> None:
    context = PriorText(reset_after_s=60.0)
    context.add("Hello everyone.", end=100.0, language="en")
    assert context.prompt(at=160.0) == "Hello everyone."
    assert context.prompt(at=160.5) is None
    context.add("Back again.", end=200.0, language="en")  # after the gap: a new context
    assert context.prompt(at=201.0) == "Back again."


def test_zero_chars_disables_the_prompt() -> None:
    context = PriorText(max_chars=0)
    context.add("Hello everyone.", end=1.0, language="en")
    assert context.prompt(at=2.0) is None


def test_clear() -> None:
    context = PriorText()
    context.add("Hello everyone.", end=1.0)
    context.clear()
    assert context.prompt(at=2.0) is None


# The live path -------------------------------------------------------------------------------------------------------


async def _two_utterances(bus: InProcessBus, recorder: Recorder, tmp_path: Path,
                          **settings: object) -> tuple[LocatingBackend, int, list[CaptionFinal]]:
    """One speaker says the sentence twice; the second time is pushed only once the first final is out. Returns the
    backend, the number of its calls before the second utterance, and the finals."""
    gap = 1.2
    first = np.concatenate([speech(), silence(gap)])
    audio = np.concatenate([first, speech(), silence(1.5)])
    script = SCRIPT + [(text, start + first.size / 16_000, end + first.size / 16_000) for text, start, end in SCRIPT]
    backend = LocatingBackend([(audio, script)])
    service = WhisperCaptionService(fake_settings(tmp_path, **settings), bus, backend=backend)
    await service.start()
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, first)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await service.scheduler.idle()
    before = len(backend.calls)
    await push(stream, audio[first.size :], offset=first.size)
    await recorder.until(lambda e: isinstance(e, CaptionFinal))
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    assert SPEECH_S < first.size / 16_000
    return backend, before, check_captions(events)


async def test_live_decodes_are_prompted_with_the_speakers_previous_finals(bus: InProcessBus, recorder: Recorder,
                                                                         tmp_path: Path) -> None:
    backend, before, finals = await _two_utterances(bus, recorder, tmp_path)
    assert [f.text for f in finals] == [SENTENCE, SENTENCE]
    first, second = backend.prompts[:before], backend.prompts[before:]
    assert len(first) >= 3 and len(second) >= 2, "the warm-up, partials and a final; then partials and a final"
    assert set(first) == {None}, "nothing said before: no prompt"
    assert set(second) == {SENTENCE}, "partials and the final of the next utterance hear the first one's text"


async def test_prompt_chars_zero_decodes_cold(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    backend, before, finals = await _two_utterances(bus, recorder, tmp_path, asr_prompt_chars=0)
    assert len(finals) == 2 and len(backend.prompts) > before
    assert set(backend.prompts) == {None}


async def test_context_is_per_speaker(bus: InProcessBus, recorder: Recorder, tmp_path: Path) -> None:
    """Another participant's first utterance is not prompted with what someone else said."""
    audio = np.concatenate([speech(), silence(1.5)])
    backend = LocatingBackend([(audio, SCRIPT)])
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=backend)
    ada = service.open_speaker(ROOM, "p1", "Ada")
    await push(ada, audio)
    await recorder.until(lambda e: isinstance(e, CaptionFinal) and e.participant_id == "p1")
    await service.scheduler.idle()
    before = len(backend.calls)
    bob = service.open_speaker(ROOM, "p2", "Bob")
    await push(bob, audio)
    await recorder.until(lambda e: isinstance(e, CaptionFinal) and e.participant_id == "p2")
    await ada.aclose()
    await bob.aclose()
    await service.close()
    assert ada.context.prompt() == SENTENCE and bob.context.prompt() == SENTENCE
    assert len(backend.prompts) > before and set(backend.prompts[before:]) == {None}


async def test_a_backlog_still_prompts_with_the_previous_final(bus: InProcessBus, recorder: Recorder,
                                                               tmp_path: Path) -> None:
    """The first utterance's final decode is held until the second utterance has ended, so the second one's final
    decode waits in the worker right behind it: it is still prompted with the first final's text (the worker waits
    for the event loop to put that text in the context before reading the prompt)."""
    gap = 1.2
    first = np.concatenate([speech(), silence(gap)])
    audio = np.concatenate([first, speech(), silence(1.5)])
    offset = first.size / 16_000
    script = SCRIPT + [(text, start + offset, end + offset) for text, start, end in SCRIPT]
    gate = threading.Event()
    backend = PromptLog([(audio, script)], hold_first_final=gate)
    service = WhisperCaptionService(fake_settings(tmp_path), bus, backend=backend)
    stream = service.open_speaker(ROOM, "p1", "Ada")
    await push(stream, audio)
    await recorder.until(lambda e: isinstance(e, VoiceActivity) and not e.speaking and e.t > T0 + offset)
    gate.set()
    await stream.aclose()
    events = await recorder.drain()
    await service.close()
    assert [f.text for f in check_captions(events)] == [SENTENCE, SENTENCE]
    first_prompts = [prompt for start, prompt in backend.log if start < offset - 0.5]
    second_prompts = [prompt for start, prompt in backend.log if start >= offset - 0.5]
    assert first_prompts and set(first_prompts) == {None}
    assert second_prompts and set(second_prompts) == {SENTENCE}, backend.log
