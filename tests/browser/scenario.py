"""A real-browser scenario run inside a private network namespace (see test_browser.py).

Starts the Moot server (real captions with faster-whisper) and headless Chromium instances with fake cameras and
microphones fed from WAV files, drives the pages like people would, and prints one JSON object describing what each
page showed. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from server.settings import Settings
from tests.servers import running_server

CHROMIUM = "/usr/bin/chromium"
BASE_FLAGS = [
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection", "--no-sandbox", "--disable-gpu",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]


def launch(playwright: Any, wav: Path | None, allow_devices: bool = True) -> Browser:
    flags = list(BASE_FLAGS)
    if allow_devices:
        flags.append("--use-fake-ui-for-media-stream")
    if wav is not None:
        flags.append(f"--use-file-for-fake-audio-capture={wav}")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)


def join(page: Page, base: str, room: str, name: str) -> None:
    page.goto(f"{base}/r/{room}")
    page.wait_for_function("document.getElementById('device-status').textContent.includes('ready') || "
                           "document.getElementById('device-status').textContent.includes('join')", timeout=20_000)
    page.fill("#display-name", name)
    page.check("#consent")
    page.click("#join-button")
    page.wait_for_selector("#room-view:not([hidden])", timeout=20_000)


def video_playing(page: Page, name: str) -> bool:
    """The tile labelled ``name`` shows a video whose frames advance."""
    script = """(name) => {
        const tile = [...document.querySelectorAll('.tile')].find(t => t.querySelector('.name').textContent === name);
        if (!tile) return null;
        const v = tile.querySelector('video');
        return {w: v.videoWidth, t: v.currentTime};
    }"""
    first = page.evaluate(script, name)
    if not first or first["w"] == 0:
        return False
    page.wait_for_timeout(500)  # let a few frames play, then compare (a media clock, not synchronisation)
    second = page.evaluate(script, name)
    return bool(second and second["t"] > first["t"])


def wait_video(page: Page, name: str, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if video_playing(page, name):
            return True
    return False


def main(speech_wav: Path, silence_wav: Path, screenshot: Path | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), rtc_loopback_candidates=True, asr_model="tiny.en",
                            asr_language="en")
        with running_server(settings) as server, sync_playwright() as pw:
            base = server.http
            speaker_browser = launch(pw, speech_wav)
            listener_browser = launch(pw, silence_wav)
            blocked_browser = launch(pw, silence_wav, allow_devices=False)
            try:
                # Landing page: create a room and follow its link.
                ada = speaker_browser.new_page()
                ada.goto(base + "/")
                ada.fill("#room-title", "Housing in our town")
                ada.wait_for_selector("#room-template option[value=quick-20]", state="attached", timeout=10_000)
                ada.select_option("#room-template", "quick-20")
                ada.fill("#room-question", "Should the town build more homes near the station?")
                ada.click("#create-room button[type=submit]")
                ada.wait_for_selector("#room-created:not([hidden])", timeout=10_000)
                link = ada.input_value("#room-link")
                room = link.rstrip("/").split("/")[-1]
                result["landing_link"] = link

                join(ada, base, room, "Ada")
                bo = listener_browser.new_page()
                join(bo, base, room, "Bo")
                result["bo_sees_ada_video"] = wait_video(bo, "Ada")
                result["ada_sees_bo_video"] = wait_video(ada, "Bo")

                # Ada's microphone plays speech: Bo's page shows it as captions attributed to Ada.
                bo.wait_for_function(
                    "[...document.querySelectorAll('#transcript li')].some(li => "
                    "li.textContent.includes('Ada') && /station/i.test(li.textContent))",
                    timeout=60_000,
                )
                result["bo_transcript"] = bo.inner_text("#transcript")
                # The AI facilitator: stage and time left, labelled messages, speaking-time balance.
                bo.wait_for_selector("#facilitator:not([hidden]) #ai-messages li", timeout=30_000)
                result["bo_stage"] = bo.inner_text("#stage-name") + " / " + bo.inner_text("#stage-time")
                result["bo_ai_first"] = bo.inner_text("#ai-messages li")
                result["bo_ai_badges"] = bo.eval_on_selector_all("#ai-messages li .ai-badge",
                                                                 "els => els.map(e => e.textContent)")
                bo.wait_for_function("document.getElementById('balance').textContent.includes('Ada')",
                                     timeout=20_000)
                result["bo_balance"] = bo.inner_text("#balance")

                # Statements and votes: Bo proposes, Ada votes agree, both see the tally.
                bo.fill("#statement-text", "The council should build homes near the station")
                bo.press("#statement-text", "Enter")
                ada.wait_for_selector("#statements li button[data-choice=agree]", timeout=30_000)
                ada.click("#statements li button[data-choice=agree]")
                bo.wait_for_function("document.querySelector('#statements li .tally')?.textContent"
                                     ".startsWith('1 agree')", timeout=30_000)
                result["bo_statement"] = bo.inner_text("#statements li")
                result["ada_vote_pressed"] = ada.get_attribute("#statements li button[data-choice=agree]",
                                                               "aria-pressed")
                if screenshot is not None:
                    ada.screenshot(path=str(screenshot.with_name("room-votes.png")), full_page=True)
                result["bo_captions_pane"] = bo.inner_text("#live-captions")
                if screenshot is not None:
                    bo.screenshot(path=str(screenshot), full_page=True)

                # The camera is refused (microphone allowed): a clear message; consent gates the join button; Cy
                # joins with the microphone alone and sees the others.
                cy = blocked_browser.new_context(permissions=["microphone"]).new_page()
                cy.goto(f"{base}/r/{room}")
                cy.wait_for_function("document.getElementById('device-status').textContent.includes('blocked')",
                                     timeout=20_000)
                result["blocked_message"] = cy.inner_text("#device-status")
                cy.fill("#display-name", "Cy")
                result["join_disabled_without_consent"] = cy.is_disabled("#join-button")
                cy.check("#consent")
                result["join_enabled_with_consent"] = cy.is_enabled("#join-button")
                cy.click("#join-button")
                cy.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
                result["cy_sees_ada_video"] = wait_video(cy, "Ada")
                result["cy_status"] = cy.inner_text("#connection-status")
                result["cy_tiles"] = cy.evaluate(
                    "() => [...document.querySelectorAll('.tile')].map(t => [t.querySelector('.name').textContent, "
                    "t.querySelector('video').videoWidth])")
                result["cy_mic_button"] = cy.inner_text("#toggle-mic")
                result["cy_cam_button"] = cy.inner_text("#toggle-cam")

                # Keyboard: Bo mutes the microphone with the keyboard alone.
                bo.focus("#toggle-mic")
                bo.keyboard.press("Enter")
                result["bo_mic_pressed_after_toggle"] = bo.get_attribute("#toggle-mic", "aria-pressed")
                ada.wait_for_function(
                    "[...document.querySelectorAll('.tile')].some(t => t.textContent.includes('Bo') && "
                    "t.textContent.includes('microphone off'))", timeout=20_000)
                result["ada_sees_bo_muted"] = True
            finally:
                for browser in (speaker_browser, listener_browser, blocked_browser):
                    browser.close()
    return result


if __name__ == "__main__":
    shot = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), shot)))
