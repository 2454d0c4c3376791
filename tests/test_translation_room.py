"""A caption through the whole path in a real server: Ada speaks (real audio over WebRTC, recognised by the
placeholder recogniser), a tiny random Marian model converted by CTranslate2 translates her captions once into
French, the French readers see them, and the recorder stores each translation beside the original. Also: choosing
and changing one's language, and refusing a language the deliberation does not offer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.core.events import (
    CaptionFinal,
    CaptionTranslated,
    Error,
    ParticipantLanguage,
    RoomLanguages,
    ServerMessage,
)
from server.core.settings import Settings
from server.rtc.testmedia import WavAudioTrack
from server.rtc.testpeer import TestPeer
from tests.mt_models import tiny_registry
from tests.servers import RunningServer, running_server
from tests.test_room_integration import wait_until

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    registry = tiny_registry(tmp_path_factory.mktemp("mt"), (("en", "fr"),))
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), asr_backend="fake", rtc_loopback_candidates=True,
                        llm_backend="none", mt_backend="ctranslate2", mt_models_dir=registry)
    with running_server(settings) as running:
        yield running


def translated(peer: TestPeer, language: str) -> list[CaptionTranslated]:
    return [m for m in peer.messages if isinstance(m, CaptionTranslated) and m.language == language]


def is_languages(languages: list[str]) -> object:
    return lambda m: isinstance(m, RoomLanguages) and m.languages == languages


async def test_a_french_reader_sees_an_english_speaker_in_french(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Languages", 8).id
    ada = TestPeer(server.ws(room), "Ada", audio=WavAudioTrack(DATA / "hello16.wav"))
    bea = TestPeer(server.ws(room), "Bea")
    cy = TestPeer(server.ws(room), "Cy")
    try:
        await bea.join(language="fr")
        await cy.join(language="fr")
        await ada.join(language="en")
        await bea.wait_for(is_languages(["en", "fr"]), timeout=10)  # type: ignore[arg-type]
        first = await bea.wait_for(lambda m: isinstance(m, CaptionTranslated), timeout=90)
        assert isinstance(first, CaptionTranslated)
        assert first.language == "fr" and first.source_language == "en" and first.text.strip()
        assert first.participant_id == ada.participant_id and first.backend == "ctranslate2:tiny-en-fr"
        finals = {m.utterance_id: m for m in bea.messages if isinstance(m, CaptionFinal)}
        assert first.utterance_id in finals and finals[first.utterance_id].language == "en"
        await cy.wait_for(lambda m: isinstance(m, CaptionTranslated) and m.utterance_id == first.utterance_id, 10)

        # Stored: the original, its detected language, and the translation beside it.
        def stored() -> bool:
            return any(c.translations.get("fr") for c in server.ctx.storage.transcript(room))
        await wait_until(stored, timeout=10)
        line = next(c for c in server.ctx.storage.transcript(room) if c.utterance_id == first.utterance_id)
        assert line.text == finals[first.utterance_id].text and line.language == "en"
        assert line.translations == {"fr": first.text}

        # Bea switches to Dutch: the room now reads en and nl (Cy still fr), and everyone is told.
        await bea.send({"type": "language", "language": "nl"})
        change = await ada.wait_for(lambda m: isinstance(m, ParticipantLanguage), timeout=10)
        assert isinstance(change, ParticipantLanguage) and change.participant_id == bea.participant_id
        await ada.wait_for(is_languages(["en", "fr", "nl"]), timeout=10)  # type: ignore[arg-type]
        # Each utterance went into French once, however many French readers there were.
        utterances = [t.utterance_id for t in translated(cy, "fr")]
        assert len(utterances) == len(set(utterances))
    finally:
        for peer in (ada, bea, cy):
            await peer.close()


async def test_bad_language_codes_are_refused(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Bad codes", 8).id
    refused = TestPeer(server.ws(room), "Dee")
    peer = TestPeer(server.ws(room), "Dee")
    try:
        with pytest.raises(RuntimeError, match="bad_message"):
            await refused.join(language="<script>")
        await peer.join(language="de")
        await peer.send({"type": "language", "language": "x" * 40})
        error = await peer.wait_for(lambda m: isinstance(m, Error), timeout=10)
        assert isinstance(error, Error) and error.code == "bad_message" and not error.fatal

        def joined_events(m: ServerMessage) -> bool:
            return isinstance(m, RoomLanguages) and m.languages == ["de"]
        await peer.wait_for(joined_events, timeout=10)
    finally:
        await refused.close()
        await peer.close()


async def test_the_chosen_language_guides_recognition(server: RunningServer) -> None:
    """The recogniser is asked for the speaker's chosen language (the placeholder recogniser labels its captions
    with the language it was asked for; Whisper decodes in it)."""
    room = server.ctx.storage.create_room("Recognition", 8).id
    dee = TestPeer(server.ws(room), "Dee", audio=WavAudioTrack(DATA / "hello16.wav"))
    eli = TestPeer(server.ws(room), "Eli")
    try:
        await eli.join(language="en")
        await dee.join(language="nl-BE")
        caption = await eli.wait_for(lambda m: isinstance(m, CaptionFinal) and bool(m.text), timeout=90)
        assert isinstance(caption, CaptionFinal) and caption.language == "nl"
    finally:
        await dee.close()
        await eli.close()
