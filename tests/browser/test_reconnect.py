"""A page whose signaling connection drops rejoins the room by itself: it says "Reconnecting…", comes back as a new
participant without a reload, keeps its transcript, and gets the final caption published while it was away (the
server replays the room events after the last seq the page saw) exactly once, although the reloaded history has it
too. The connection is lost the way a network failure loses it: the page goes offline (Chromium's network emulation,
through the DevTools protocol), so its rejoin attempts fail until it is back online, and the server cuts the TCP
connection of its WebSocket without a closing handshake (offline emulation leaves an open WebSocket alone)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page

from server.core.events import CaptionFinal
from tests.browser.conftest import create_room, join, staff_headers
from tests.servers import RunningServer

pytestmark = pytest.mark.slow

# Before the page's scripts run: keep the welcomes and final captions the page's WebSockets receive, count the
# sockets that closed, and keep the utterances of each transcript history load once the page has applied it (the list
# grows in a task after the page's own code has used the response).
RECORD = """
window.__welcomes = [];
window.__finals = [];
window.__socketsClosed = 0;
window.__historyLoads = [];
window.WebSocket = class extends window.WebSocket {
    constructor(...args) {
        super(...args);
        this.addEventListener('close', () => window.__socketsClosed++);
        this.addEventListener('message', (event) => {
            const message = JSON.parse(event.data);
            if (message.type === 'welcome') window.__welcomes.push(message.participant_id);
            if (message.type === 'caption.final') window.__finals.push(message.utterance_id);
        });
    }
};
const pageFetch = window.fetch;
window.fetch = async (...args) => {
    const response = await pageFetch(...args);
    if (String(args[0]).endsWith('/transcript')) {
        const json = response.json.bind(response);
        response.json = async () => {
            const body = await json();
            setTimeout(() => window.__historyLoads.push(body.captions.map((c) => c.utterance_id)), 0);
            return body;
        };
    }
    return response;
};
"""

NETWORK = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
STATUS = "document.getElementById('connection-status').textContent"


def caption(room: str, utterance: str, text: str) -> CaptionFinal:
    start = time.time()
    return CaptionFinal(room_id=room, utterance_id=utterance, participant_id="someone", speaker_name="Bo", text=text,
                        start=start, end=start + 1)


def participant_ids(server: RunningServer, room: str) -> set[str]:
    """Who the server has in the room now (read on the server's own loop)."""

    async def read() -> set[str]:
        found = server.ctx.rooms.room(room)
        return set(found.participants) if found is not None else set()

    return asyncio.run_coroutine_threadsafe(read(), server.app.state.loop).result(timeout=10)


def wait_stored(server: RunningServer, room: str, utterance: str, timeout_s: float = 15) -> None:
    """Until the room's stored transcript (what the page's history load gets) has the utterance."""
    deadline = time.monotonic() + timeout_s
    headers = staff_headers(server, "admin@example.org", "admin")  # (the room is anyone's: an admin reads it)
    while utterance not in {c["utterance_id"] for c in
                            httpx.get(f"{server.http}/api/rooms/{room}/transcript", headers=headers,
                                      timeout=10).json()["captions"]}:
        if time.monotonic() > deadline:
            raise AssertionError(f"{utterance} was not stored within {timeout_s} s")
        time.sleep(0.05)


def transcript_lines(page: Page, utterance: str) -> int:
    return int(page.evaluate("(u) => document.querySelectorAll(`#transcript li[data-utterance='${u}']`).length",
                             utterance))


def test_page_rejoins_by_itself_and_gets_the_caption_it_missed(server: RunningServer, quiet_browser: Browser,
                                                                new_page: Callable[..., Page]) -> None:
    room = create_room(server.http, "Dropped connection")
    page = new_page(quiet_browser)
    page.add_init_script(RECORD)
    join(page, server.http, room, "Ada")
    page.wait_for_function("window.__welcomes.length === 1 && window.__historyLoads.length === 1", timeout=20_000)
    first_id = page.evaluate("window.__welcomes[0]")
    assert participant_ids(server, room) == {first_id}
    server.publish(caption(room, f"{room}-before", "Before the connection dropped."))
    page.wait_for_selector(f"#transcript li[data-utterance='{room}-before']", timeout=15_000)
    page.evaluate("window.__samePage = true")  # gone if the page reloads

    # Offline emulation makes new connections fail but leaves an open WebSocket alone: cut that one on the server.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {**NETWORK, "offline": True})
    assert server.drop_websockets(room) == 1
    page.wait_for_function(f"{STATUS} === 'Reconnecting…'", timeout=15_000)
    status = page.locator("#connection-status")
    assert status.is_visible()
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert page.is_visible("#room-view") and page.is_hidden("#left-panel")

    server.publish(caption(room, f"{room}-gap", "Said while Ada was offline."))
    wait_stored(server, room, f"{room}-gap")  # so the history the page loads after rejoining has it too
    page.wait_for_function("window.__socketsClosed >= 2", timeout=15_000)  # a rejoin attempt failed while offline
    assert page.evaluate("window.__welcomes.length") == 1, "no rejoin can succeed while the page is offline"
    assert page.evaluate(STATUS) == "Reconnecting…"

    cdp.send("Network.emulateNetworkConditions", {**NETWORK, "offline": False})
    page.wait_for_function("window.__welcomes.length === 2", timeout=30_000)
    second_id = page.evaluate("window.__welcomes[1]")
    assert second_id != first_id
    assert participant_ids(server, room) == {second_id}  # the server sends the welcome after the join
    page.wait_for_function(f"{STATUS} === 'Connected'", timeout=30_000)  # media re-negotiated on the new connection

    # The missed caption came twice, by the replay on the new connection and in the reloaded history; it shows once.
    page.wait_for_selector(f"#transcript li[data-utterance='{room}-gap']", timeout=15_000)
    assert page.evaluate("window.__finals") == [f"{room}-before", f"{room}-gap"]
    page.wait_for_function("window.__historyLoads.length === 2", timeout=15_000)
    assert f"{room}-gap" in page.evaluate("window.__historyLoads[1]")
    assert transcript_lines(page, f"{room}-gap") == 1
    assert transcript_lines(page, f"{room}-before") == 1, "the transcript was kept, not rebuilt"
    assert page.evaluate("window.__samePage") is True
    assert page.is_hidden("#left-panel")
    # The rejoined page is a full participant again: a later caption arrives live.
    server.publish(caption(room, f"{room}-after", "After the rejoin."))
    page.wait_for_selector(f"#transcript li[data-utterance='{room}-after']", timeout=15_000)
    assert page.evaluate("[...document.querySelectorAll('#transcript li')].map(li => li.dataset.utterance)") == [
        f"{room}-before", f"{room}-gap", f"{room}-after"]
