"""The join page: consent gates joining, refused devices are explained and people still join with what they have,
and the server's refusals (full room, unknown room) are shown in plain words."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import create_room, join, tile_names, wait_devices_checked, wait_video_playing
from tests.servers import RunningServer

pytestmark = pytest.mark.slow


def test_consent_is_required_to_join(base_url: str, quiet_browser: Browser, new_page: Callable[..., Page]) -> None:
    room = create_room(base_url, "Consent first")
    page = new_page(quiet_browser)
    page.goto(f"{base_url}/r/{room}")
    wait_devices_checked(page)
    assert "Your microphone and camera are ready." in page.inner_text("#device-status")
    notice = page.inner_text("#consent-notice")
    assert "transcribed automatically" in notice and "stored" in notice and "AI assistant" in notice
    assert page.locator("label:has(#consent)").is_visible()
    assert page.get_attribute("#display-name", "id") == page.get_attribute("label[for=display-name]", "for")

    assert page.is_disabled("#join-button")
    page.fill("#display-name", "Dee")
    assert page.is_disabled("#join-button"), "a name alone is not enough"
    assert "Tick the box" in page.inner_text("#join-hint")
    page.check("#consent")
    assert page.is_enabled("#join-button")
    assert page.is_hidden("#join-hint")
    page.uncheck("#consent")
    assert page.is_disabled("#join-button")
    page.check("#consent")
    page.click("#join-button")
    page.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    assert tile_names(page) == ["Dee (you)"]
    # The first control gets focus, and the focus ring is visible.
    assert page.evaluate("document.activeElement.id") == "toggle-mic"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "toggle-cam"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_camera_refused_join_with_microphone_only(base_url: str, quiet_browser: Browser, asking_browser: Browser,
                                                  new_page: Callable[..., Page]) -> None:
    room = create_room(base_url, "Microphone only")
    ada = new_page(quiet_browser)
    join(ada, base_url, room, "Ada")

    cy = new_page(asking_browser, permissions=["microphone"])  # the camera prompt is refused
    cy.goto(f"{base_url}/r/{room}")
    wait_devices_checked(cy)
    status = cy.inner_text("#device-status")
    assert "Your microphone is ready." in status
    assert "Your camera is blocked" in status
    assert "You can still join with your microphone only" in status
    assert cy.is_visible("#retry-devices")
    assert cy.is_hidden("label:has(#start-cam)") and cy.is_visible("label:has(#start-mic)")
    cy.fill("#display-name", "Cy")
    cy.check("#consent")
    cy.click("#join-button")
    cy.wait_for_selector("#room-view:not([hidden])", timeout=20_000)

    assert cy.inner_text("#toggle-mic") == "Microphone on"
    assert cy.get_attribute("#toggle-mic", "aria-pressed") == "true"
    assert cy.inner_text("#toggle-cam") == "No camera" and cy.is_disabled("#toggle-cam")
    assert "no-video" in (cy.get_attribute(".tile[data-participant] >> nth=0", "class") or "")
    wait_video_playing(cy, "Ada")
    # Ada's page knows Cy sends no video: an initials avatar instead of a black picture.
    ada.wait_for_function(
        "[...document.querySelectorAll('.tile')].some(t => t.textContent.includes('Cy') && "
        "t.classList.contains('no-video') && t.querySelector('.avatar').textContent === 'C')", timeout=20_000)


def test_no_devices_receive_only(base_url: str, quiet_browser: Browser, asking_browser: Browser,
                                 new_page: Callable[..., Page]) -> None:
    room = create_room(base_url, "Watching only")
    ada = new_page(quiet_browser)
    join(ada, base_url, room, "Ada")

    eve = new_page(asking_browser)  # camera and microphone both refused
    eve.goto(f"{base_url}/r/{room}")
    wait_devices_checked(eve)
    status = eve.inner_text("#device-status")
    assert "Your microphone is blocked" in status and "Your camera is blocked" in status
    assert "You can still join without them" in status
    assert eve.is_hidden("#start-with")
    eve.fill("#display-name", "Eve")
    eve.check("#consent")
    eve.click("#join-button")
    eve.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    assert eve.inner_text("#toggle-mic") == "No microphone" and eve.is_disabled("#toggle-mic")
    wait_video_playing(eve, "Ada")
    eve.wait_for_function("document.getElementById('connection-status').textContent === 'Connected'",
                          timeout=20_000)


def test_full_room_is_explained(server: RunningServer, quiet_browser: Browser,
                                new_page: Callable[..., Page]) -> None:
    room = server.ctx.storage.create_room("Just one", 1)
    first = new_page(quiet_browser)
    join(first, server.http, room.id, "Ann")
    second = new_page(quiet_browser)
    second.goto(f"{server.http}/r/{room.id}")
    wait_devices_checked(second)
    second.fill("#display-name", "Bea")
    second.check("#consent")
    second.click("#join-button")
    second.wait_for_selector("#join-error:not([hidden])", timeout=20_000)
    assert second.inner_text("#join-error").startswith("This room is full (1 person).")
    assert second.is_visible("#join-panel") and second.is_hidden("#room-view")
    assert second.is_enabled("#join-button"), "they can try again later"


def test_name_taken_is_explained(base_url: str, quiet_browser: Browser, new_page: Callable[..., Page]) -> None:
    room = create_room(base_url, "Same names")
    join(new_page(quiet_browser), base_url, room, "Sam")
    other = new_page(quiet_browser)
    other.goto(f"{base_url}/r/{room}")
    wait_devices_checked(other)
    other.fill("#display-name", "sam")
    other.check("#consent")
    other.click("#join-button")
    other.wait_for_selector("#join-error:not([hidden])", timeout=20_000)
    assert "already called" in other.inner_text("#join-error")
    assert other.evaluate("document.activeElement.id") == "display-name"
    other.fill("#display-name", "Moderator Sam")  # reads as a moderator: refused, and the name field is focused again
    other.click("#join-button")
    other.wait_for_function("document.getElementById('join-error').textContent.includes('own name')", timeout=20_000)
    assert other.evaluate("document.activeElement.id") == "display-name"
    other.fill("#display-name", "Sam B")  # a second attempt on a fresh connection works
    other.click("#join-button")
    other.wait_for_selector("#room-view:not([hidden])", timeout=20_000)


def test_unknown_room(base_url: str, quiet_browser: Browser, new_page: Callable[..., Page]) -> None:
    page = new_page(quiet_browser)
    page.goto(f"{base_url}/r/nosuchroom1")
    page.wait_for_selector("#room-error:not([hidden])", timeout=10_000)
    assert "does not exist" in page.inner_text("#room-error")
    assert page.is_hidden("#join-form")
