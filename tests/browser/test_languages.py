"""Two real Chromium pages in two languages: Ada's page (English interface) speaks English; Bea's browser prefers
French, so her interface is French, she reads French, and Ada's words reach her page as a machine translation,
labelled so in French, marked ``lang="fr"``, with the English original one click away; the facilitator, alone
with Bea at first, speaks French. The translator is the
scripted one (``MOOT_MT_BACKEND=fake``: ``[fr] <words>``), so the page's text shows which caption was translated;
the real CTranslate2 path is tested in tests/test_translation*.py. Real server, WebRTC and faster-whisper.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from server.core.events import CaptionFinal, CaptionPartial, CaptionTranslated
from server.core.settings import Settings
from tests.browser.conftest import _check_isolated, create_room, join, tile_names
from tests.servers import RunningServer, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def translating_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    _check_isolated()
    models = Path(tempfile.gettempdir()) / "moot-test-models"
    settings = Settings(data_dir=tmp_path_factory.mktemp("languages"), model_cache_dir=models,
                        rtc_loopback_candidates=True, asr_language="en", mt_backend="fake", llm_backend="none")
    with running_server(settings) as running:
        yield running


@pytest.fixture
def french_page(quiet_browser: Browser, new_page: Callable[..., Page]) -> Page:
    return new_page(quiet_browser, locale="fr-FR")


def test_a_french_reader_reads_an_english_speaker_in_french(translating_server: RunningServer, french_page: Page,
                                                           speaking_browser: Browser,
                                                           new_page: Callable[..., Page]) -> None:
    base = translating_server.http
    room = create_room(base, "Langues", template="quick-20")
    bea = french_page
    bea.goto(f"{base}/r/{room}")
    # The interface follows the browser's language: French, and French is preselected as the reading language.
    bea.wait_for_function("document.documentElement.lang === 'fr'", timeout=10_000)
    assert bea.text_content("#join-form h2") == "Rejoindre la conversation"
    assert bea.input_value("#language") == "fr"
    assert bea.text_content("#notice-heading, #consent-notice h3") == "Avant de rejoindre"
    bea.wait_for_function("!document.getElementById('device-status').textContent.startsWith('Vérification')",
                          timeout=20_000)
    assert "Votre micro et votre caméra sont prêts." in bea.inner_text("#device-status")
    # A refused name is explained in French too (the server sends the reason and its particulars, the page words it).
    bea.fill("#display-name", "Moderator")
    bea.check("#consent")
    bea.click("#join-button")
    bea.wait_for_selector("#join-error:not([hidden])", timeout=20_000)
    assert bea.inner_text("#join-error").startswith("«\u00a0Moderator\u00a0» ressemble au nom du facilitateur IA")
    bea.fill("#display-name", "Bea")
    bea.click("#join-button")
    bea.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    assert bea.text_content("#captions-heading") == "Sous-titres en direct"
    # The words the scripts write are French too: the controls, her own tile, the AI badge.
    assert bea.inner_text("#toggle-mic") == "Micro activé"
    assert tile_names(bea) == ["Bea (vous)"]
    # Bea is the room's only reader: the facilitator speaks French (its rule messages, in its own words).
    intro = "#ai-messages li[data-kind='stage_intro']"
    bea.wait_for_selector(f"{intro} .ai-text[lang='fr']", timeout=20_000)
    assert bea.text_content(f"{intro} .ai-badge") == "IA"
    # ...and the template's words in French: the stage's title and intro from its French translation.
    assert bea.text_content("#stage-name") == "Bienvenue"
    assert "Je suis l\u2019assistant IA" in (bea.text_content(f"{intro} .ai-text") or "")

    ada = new_page(speaking_browser, locale="en-GB")
    join(ada, base, room, "Ada")
    assert ada.evaluate("document.documentElement.lang") == "en"
    assert ada.input_value("#language") == "en"
    # Bea's transcript: Ada's line, translated into French, labelled as machine translation, lang="fr".
    line = "#transcript li .text[lang='fr']"
    bea.wait_for_selector(line, timeout=120_000)
    text = bea.text_content(line) or ""
    assert text.startswith("[fr] ")
    utterance = bea.eval_on_selector(line, "el => el.closest('li').dataset.utterance")
    item = bea.locator(f"#transcript li[data-utterance='{utterance}']")
    assert item.locator(".mt-label").text_content() == "traduction automatique"
    # One click shows the original (in English, marked so), another the translation again.
    item.locator(".mt-toggle").click()
    original = item.locator(".text")
    assert original.get_attribute("lang") == "en" and original.text_content() == text.removeprefix("[fr] ")
    assert item.locator(".mt-toggle").text_content() == "Voir la traduction"
    item.locator(".mt-toggle").click()
    assert item.locator(".text").text_content() == text
    # Ada reads English: her own words as spoken, no translation label; the stage's title in English.
    ada.wait_for_selector("#transcript li .text[lang='en']", timeout=30_000)
    assert ada.locator("#transcript .mt-label:not([hidden])").count() == 0
    assert ada.text_content("#stage-name") == "Welcome"
    # The interface switch: Bea's page in German at once.
    bea.select_option("#locale-switch", "de")
    bea.wait_for_function("document.documentElement.lang === 'de'", timeout=10_000)
    assert bea.text_content("#captions-heading") == "Live-Untertitel"
    # What the scripts wrote is rewritten in German too.
    assert bea.inner_text("#toggle-mic") == "Mikrofon an"
    assert bea.text_content(f"{intro} .ai-badge") == "KI"
    assert (bea.text_content("#stage-time") or "").startswith("noch ")
    # The choice is kept for the other pages: the landing page comes up in German.
    bea.goto(f"{base}/")
    bea.wait_for_function("document.documentElement.lang === 'de'", timeout=10_000)
    assert (bea.text_content("p.lead") or "").startswith("Gespräche in kleinen Gruppen")


def test_a_provisional_caption_shows_in_the_reader_s_language_until_the_final_s_translation(
        tmp_path: Path, french_page: Page) -> None:
    """Where partials are translated (MOOT_MT_PARTIALS): the live line shows the latest provisional translation while
    someone speaks, keeps it (rather than flick back to the original) until the final's translation comes, and
    ignores a provisional translation that arrives after the final. The caption events are published on the bus of a
    server that runs no translation worker, so what the page does with each is checked in order."""
    settings = Settings(data_dir=tmp_path, asr_backend="none", llm_backend="none", translation_enabled=False,
                        rtc_loopback_candidates=True)
    with running_server(settings) as server:
        room = create_room(server.http, "Provisoire")
        bea = french_page
        join(bea, server.http, room, "Bea")
        _check_provisional_translations(server, bea, room)


def _check_provisional_translations(server: RunningServer, bea: Page, room: str) -> None:
    line = "#live-captions p[data-utterance='x1'] .committed"

    def publish_partial(words: str) -> None:
        server.publish(CaptionPartial(room_id=room, utterance_id="x1", participant_id="someone", speaker_name="Ada",
                                      committed=words, tentative="", start=1.0, language="en"))

    def publish_translation(text: str, partial: bool) -> None:
        server.publish(CaptionTranslated(room_id=room, utterance_id="x1", participant_id="someone",
                                         source_language="en", language="fr", text=text, partial=partial,
                                         backend="fake"))

    def shows(text: str, lang: str) -> None:
        bea.wait_for_function("([s, text, lang]) => { const e = document.querySelector(s); "
                              "return e && e.textContent === text && e.lang === lang; }", arg=[line, text, lang],
                              timeout=10_000)

    publish_partial("we should")
    shows("we should", "en")
    publish_translation("il faudrait", partial=True)
    shows("il faudrait", "fr")
    publish_partial("we should plant")  # a newer original: the translation stays until the next one
    publish_translation("il faudrait planter", partial=True)
    shows("il faudrait planter", "fr")
    server.publish(CaptionFinal(room_id=room, utterance_id="x1", participant_id="someone", speaker_name="Ada",
                                text="We should plant trees.", start=1.0, end=2.0, language="en"))
    transcript = "#transcript li[data-utterance='x1'] .text"
    bea.wait_for_function("s => document.querySelector(s)?.textContent === 'We should plant trees.'", arg=transcript,
                          timeout=10_000)
    assert bea.text_content(line) == "il faudrait planter"  # not back to English while the final's is on its way
    publish_translation("il faudrait planter encore", partial=True)  # late: after the final, ignored
    publish_translation("Nous devrions planter des arbres.", partial=False)
    shows("Nous devrions planter des arbres.", "fr")
    bea.wait_for_function("s => document.querySelector(s)?.textContent === 'Nous devrions planter des arbres.'",
                          arg=transcript, timeout=10_000)
    assert "encore" not in (bea.text_content("#live-captions") or "")
