"""The pages work under the server's Content-Security-Policy (no bypass here): landing, joining a room with camera
and microphone over the WebSocket, the lobby and the moderator page load and run without a single policy violation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from tests.browser.conftest import create_room

pytestmark = pytest.mark.slow


def watch(page: Page) -> list[str]:
    problems: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_pages_run_under_the_policy(base_url: str, quiet_browser: Browser, new_page: Callable[..., Page]) -> None:
    room = create_room(base_url, "Under the policy")
    page = new_page(quiet_browser, enforce_csp=True)
    problems = watch(page)
    page.goto(base_url)
    page.wait_for_selector("form", timeout=20_000)

    page.goto(f"{base_url}/r/{room}")
    page.wait_for_selector("#device-status:not(:text-matches('^Checking'))", timeout=20_000)
    page.fill("#display-name", "Ada")
    page.check("#consent")
    page.click("#join-button")
    page.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    page.wait_for_selector(".tile video", timeout=20_000)
    page.click("#toggle-mic")  # the controls work (event handlers from modules, not inline)

    page.goto(f"{base_url}/d/notopenyet12345")  # the lobby page, for a deliberation that is not open
    page.wait_for_selector("#lobby-error:not([hidden])", timeout=20_000)

    page.goto(f"{base_url}/moderate/{room}")
    page.wait_for_load_state("networkidle")
    assert problems == []
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
