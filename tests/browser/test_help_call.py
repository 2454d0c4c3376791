""""Call a moderator" end to end in real browsers: a participant calls with a note; the room's moderator page shows
the call; the moderator takes it; the participant's page says a moderator is on the way; the call leaves the list."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import create_room, join, sign_in_page, staff_headers
from tests.servers import RunningServer

pytestmark = pytest.mark.slow


def test_a_call_for_a_moderator_is_seen_and_taken(server: RunningServer, base_url: str, quiet_browser: Browser,
                                                  new_page: Callable[..., Page]) -> None:
    headers = staff_headers(server, "helper@example.org", "organiser")
    room = create_room(base_url, "Help wanted", headers=headers)
    participant = new_page(quiet_browser, permissions=["camera", "microphone"])
    join(participant, base_url, room, "Ada")
    participant.click("#call-moderator")
    assert participant.get_attribute("#call-moderator", "aria-expanded") == "true"
    participant.fill("#help-note", "Someone keeps interrupting")
    participant.click("#help-form button[type=submit]")
    participant.wait_for_selector("#help-status:has-text('A moderator has been called')", timeout=10_000)

    moderator = new_page(quiet_browser, enforce_csp=True)
    moderator.goto(f"{base_url}/moderate/{room}")
    sign_in_page(moderator, "helper@example.org")
    call = moderator.wait_for_selector("#help-requests li", timeout=15_000)
    assert call is not None and "Ada: “Someone keeps interrupting”" in call.inner_text()
    assert moderator.inner_text("#help-count") == "(1)"
    moderator.click("#help-requests li button")
    participant.wait_for_selector("#help-status:has-text('A moderator is on the way.')", timeout=10_000)
    moderator.wait_for_selector("#help-requests li", state="detached", timeout=10_000)
    moderator.wait_for_selector("#help-empty:not([hidden])", timeout=10_000)
    assert moderator.inner_text("#help-count") == ""
