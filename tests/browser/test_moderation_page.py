"""The moderator's page for a room, end to end with a participant: an organiser signs in on the landing page and
creates a room in approval mode; on the moderator page a wrong password and another organiser are refused and the
room's organiser gets the controls; an AI message edited and approved (the participant sees it labelled as AI and
as edited by a moderator), a rejected one never shown, and pause/resume. And the page in the reader's language: French
for a French browser, German at once when the reader switches, with what was listed still there."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from server.core.events import CaptionFinal
from tests.browser.conftest import create_room, join, locale_words, sign_in_page, staff_headers
from tests.servers import RunningServer

pytestmark = pytest.mark.slow

def test_moderator_approves_edits_and_pauses(server: RunningServer, base_url: str, quiet_browser: Browser,
                                             new_page: Callable[..., Page], tmp_path: Path) -> None:
    staff_headers(server, "organiser@example.org")  # the accounts exist
    staff_headers(server, "other@example.org")
    organiser = new_page(quiet_browser)
    organiser.goto(base_url + "/")
    sign_in_page(organiser)
    organiser.wait_for_selector("#signed-in:not([hidden])", timeout=10_000)
    organiser.wait_for_selector("#room-template option[value=quick-20]", state="attached", timeout=10_000)
    organiser.fill("#room-title", "Library hours")
    organiser.select_option("#room-template", "quick-20")
    organiser.check("#room-approval")
    organiser.click("#create-room button[type=submit]")
    organiser.wait_for_selector("#room-created:not([hidden])", timeout=10_000)
    room = organiser.input_value("#room-link").rstrip("/").split("/")[-1]
    assert httpx.get(f"{base_url}/api/rooms/{room}", timeout=10).json()["ai_messages"] == "approve"
    moderate_url = organiser.get_attribute("#moderate-link", "href")
    assert moderate_url == f"/moderate/{room}"

    ada = new_page(quiet_browser)
    join(ada, base_url, room, "Ada")

    stranger = new_page(quiet_browser)  # another organiser: the room is not theirs
    stranger.goto(base_url + moderate_url)
    sign_in_page(stranger, "other@example.org")
    stranger.wait_for_selector("#mod-error:not([hidden])", timeout=10_000)
    assert "may not moderate this room" in stranger.inner_text("#mod-error")
    assert stranger.is_hidden("#controls")

    moderator = new_page(quiet_browser)
    moderator.goto(base_url + moderate_url)
    moderator.wait_for_selector("#sign-in:not([hidden])", timeout=10_000)
    moderator.fill("#sign-in-email", "organiser@example.org")
    moderator.fill("#sign-in-password", "not the password")
    moderator.click("#sign-in button[type=submit]")
    moderator.wait_for_selector("#sign-in-error:not([hidden])", timeout=10_000)
    assert "Wrong email or password" in moderator.inner_text("#sign-in-error")
    sign_in_page(moderator)
    moderator.wait_for_selector("#controls:not([hidden])", timeout=10_000)
    assert "Library hours" in moderator.inner_text("#room-title")

    # The stage introduction waits for the moderator; the participant sees no AI message meanwhile.
    first = "#pending li >> nth=0"
    moderator.wait_for_selector(first, timeout=30_000)
    assert "AI assistant" in moderator.input_value(f"{first} >> textarea")
    assert ada.locator("#ai-messages li:not(.control)").count() == 0
    moderator.fill(f"{first} >> textarea", "Welcome, Ada! I am the AI assistant; a moderator checks what I say.")
    moderator.click(f"{first} >> button[data-action=approve]")
    ada.wait_for_selector("#ai-messages li .ai-review", timeout=15_000)
    shown = ada.inner_text("#ai-messages li >> nth=0")
    assert "Welcome, Ada! I am the AI assistant; a moderator checks what I say." in shown
    assert "edited by a moderator" in shown
    assert ada.inner_text("#ai-messages li >> nth=0 >> .ai-badge") == "AI"

    # A calm reply to an abusive remark also waits; rejected, it never reaches the room. The flag is listed. (The
    # caption is published on the server's bus as its caption service would; the participant's audio is silence.)
    caption = CaptionFinal(room_id=room, utterance_id=f"{room}-abuse", participant_id="someone", speaker_name="Ada",
                           text="Shut up, you idiot.", start=1.0, end=2.0)
    asyncio.run_coroutine_threadsafe(server.ctx.bus.publish(caption), server.app.state.loop).result(timeout=10)
    moderator.wait_for_function("document.getElementById('safety-flags').textContent.includes('abuse')",
                                timeout=15_000)
    moderator.wait_for_selector("#pending li >> nth=0", timeout=15_000)
    assert "respectful" in moderator.input_value("#pending li >> nth=0 >> textarea")
    directory = Path(os.environ.get("MOOT_SCREENSHOT_DIR") or tmp_path)  # MOOT_SCREENSHOT_DIR keeps a picture
    directory.mkdir(parents=True, exist_ok=True)
    moderator.screenshot(path=str(directory / "moderate.png"), full_page=True)
    moderator.click("#pending li >> nth=0 >> button[data-action=reject]")
    moderator.wait_for_function("document.querySelectorAll('#pending li').length === 0", timeout=15_000)
    assert "respectful" not in ada.inner_text("#ai-messages")

    # The model-call log (recorded by the facilitator for every call; here one is stored as it would be).
    server.ctx.storage.add_llm_call(room, 5.0, "summary", "local:SmolLM2", [{"role": "system", "content": "Sum up"}],
                                    "not json", 12.5, "invalid", "invalid output: no JSON object in the reply")
    moderator.wait_for_selector("#llm-calls details summary", timeout=10_000)
    assert "summary · local:SmolLM2 · 12.5 s · invalid: fallback used" in moderator.inner_text("#llm-calls summary")
    moderator.click("#llm-calls summary")
    assert "Sum up" in moderator.inner_text("#llm-calls details")

    moderator.click("#pause")
    ada.wait_for_function("document.getElementById('stage-time').textContent === 'paused'", timeout=10_000)
    assert "Paused" in moderator.inner_text("#facilitator-state")
    moderator.click("#resume")
    ada.wait_for_function("document.getElementById('stage-time').textContent.endsWith('left')", timeout=10_000)


def test_moderator_page_in_french_then_german(server: RunningServer, base_url: str, quiet_browser: Browser,
                                              new_page: Callable[..., Page]) -> None:
    french, german = locale_words("fr"), locale_words("de")
    organiser = "francophone@example.org"  # (the other test's sign-ins spent the first account's allowance)
    headers = staff_headers(server, organiser)
    room = create_room(base_url, "Horaires de la bibliothèque", headers, template="quick-20", ai_messages="approve")
    server.ctx.storage.add_llm_call(room, 5.0, "summary", "local:SmolLM2", [{"role": "system", "content": "Résume"}],
                                    "not json", 12.5, "invalid", "invalid output: no JSON object in the reply")
    page = new_page(quiet_browser, locale="fr-FR")
    page.goto(f"{base_url}/moderate/{room}")
    page.wait_for_function("document.documentElement.lang === 'fr'", timeout=10_000)
    sign_in_page(page, organiser)  # (it waits for the form, in French)
    page.wait_for_selector("#controls:not([hidden])", timeout=10_000)
    assert page.text_content("#sign-in h2") == french["moderate.sign_in_heading"]
    assert page.text_content("#help-heading [data-i18n]") == french["moderate.help_heading"]
    assert page.inner_text("#room-title") == "Modérer : Horaires de la bibliothèque"
    page.wait_for_selector("#llm-calls details summary", timeout=10_000)
    assert "invalid : solution de repli utilisée" in page.inner_text("#llm-calls summary")
    assert page.inner_text("#safety-flags") == french["moderate.none"]
    page.click("#llm-calls summary")  # an open call stays open through the switch

    page.evaluate("window.__notReloaded = true")
    page.select_option("#locale-switch", "de")
    page.wait_for_function("document.documentElement.lang === 'de'", timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True
    assert page.text_content("#help-heading [data-i18n]") == german["moderate.help_heading"]
    assert page.inner_text("#room-title") == "Moderieren: Horaires de la bibliothèque"
    assert page.locator("#llm-calls details").count() == 1
    assert "invalid: Ersatzlösung verwendet" in page.inner_text("#llm-calls summary")
    assert page.get_attribute("#llm-calls details", "open") is not None
    assert "Résume" in page.inner_text("#llm-calls details")
    assert page.inner_text("#safety-flags") == german["moderate.none"]
    assert page.text_content("#pause") == german["moderate.pause"]
