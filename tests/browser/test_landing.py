"""The landing page: create a room through the form, get a shareable link, a copy button and a way in."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow


def test_create_room_shows_shareable_link(base_url: str, quiet_browser: Browser,
                                          new_page: Callable[..., Page]) -> None:
    page = new_page(quiet_browser)
    page.goto(base_url + "/")
    # Open rooms (the default): the form shows without signing in, once the page has asked the server.
    page.wait_for_selector("#create-room:not([hidden])", timeout=10_000)
    assert page.locator("label[for=room-title]").is_visible(), "the title field has a visible label"
    assert page.is_visible("#sign-in") and page.is_visible("#sign-in-note")

    # An empty title is refused in the page, with the reason shown next to the form.
    page.click("#create-room button[type=submit]")
    page.wait_for_selector("#create-error:not([hidden])", timeout=5_000)
    assert "topic" in page.inner_text("#create-error")
    assert page.get_attribute("#room-title", "aria-invalid") == "true"

    page.fill("#room-title", "Parks and play areas")
    page.click("#create-room button[type=submit]")
    page.wait_for_selector("#room-created:not([hidden])", timeout=10_000)
    assert page.is_hidden("#create-error")
    link = page.input_value("#room-link")
    match = re.fullmatch(re.escape(base_url) + r"/r/([a-z0-9]+)", link)
    assert match, link
    room_id = match.group(1)
    room = httpx.get(f"{base_url}/api/rooms/{room_id}", timeout=10).json()
    assert room["title"] == "Parks and play areas"
    assert page.inner_text("#room-capacity") == str(room["max_participants"])

    # Copy: either the clipboard took it, or the link is selected with a hint to press Ctrl+C.
    page.click("#copy-link")
    page.wait_for_function("document.getElementById('copy-status').textContent !== ''", timeout=5_000)
    assert re.search(r"Link copied|Ctrl\+C", page.inner_text("#copy-status"))

    # "Join now" leads to the room's join page.
    assert page.get_attribute("#join-link", "href") == f"/r/{room_id}"
    page.click("#join-link")
    page.wait_for_url(f"{base_url}/r/{room_id}", timeout=10_000)
    page.wait_for_function("document.getElementById('room-title').textContent === 'Parks and play areas'",
                           timeout=10_000)


def test_room_with_facilitator_template(base_url: str, quiet_browser: Browser, new_page: Callable[..., Page]) -> None:
    page = new_page(quiet_browser)
    page.goto(base_url + "/")
    page.wait_for_selector("#room-template option[value=quick-20]", state="attached", timeout=10_000)
    page.fill("#room-title", "Housing in our town")
    page.select_option("#room-template", "quick-20")
    page.fill("#room-question", "Should the town build more homes near the station?")
    page.click("#create-room button[type=submit]")
    page.wait_for_selector("#room-created:not([hidden])", timeout=10_000)
    room_id = page.input_value("#room-link").rstrip("/").split("/")[-1]
    room = httpx.get(f"{base_url}/api/rooms/{room_id}", timeout=10).json()
    assert room["template"] == "quick-20"
    assert room["question"] == "Should the town build more homes near the station?"
