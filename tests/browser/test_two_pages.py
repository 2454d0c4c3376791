"""Two real Chromium pages in one room: each sees the other's video playing and receives the other's sound, and what
Ada's microphone says reaches Bo's page as live captions (whose committed words never change) and transcript lines
attributed to Ada (real server: WebRTC forwarding, faster-whisper).

The tests share one call (module fixture) and run in file order; each waits for what it checks, so none depends on
another having run first, except that the last one ends the call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from facilitator.template import builtin_templates
from server.core.events import BusEvent, CaptionPartial, VoiceActivity
from tests.browser.conftest import (
    create_room,
    join,
    staff_headers,
    tile_names,
    wait_devices_checked,
    wait_video_playing,
)
from tests.caption_checks import check_committed_words_never_change
from tests.servers import RunningServer

pytestmark = pytest.mark.slow

# Words of conftest.SPEECH that Whisper must get right (the first words can be lost while the call connects).
EXPECTED = ("library", "open", "families")

# Record what the captions pane shows over time: did a provisional line ever show committed and tentative words?
WATCH_CAPTIONS = """
new MutationObserver(() => {
    for (const line of document.querySelectorAll('#live-captions .caption.provisional')) {
        const committed = line.querySelector('.committed').textContent;
        const tentative = line.querySelector('.tentative').textContent;
        if (committed || tentative) (window.__partials ||= []).push({committed, tentative});
    }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

# Keep what the page's signaling connection receives (offers with their track owners, welcome, captions) and its peer
# connection (for getStats), by wrapping the page's WebSocket and RTCPeerConnection before the page's scripts run.
RECORD_SIGNALING = """
const KEPT = new Set(['welcome', 'offer', 'participant.joined', 'caption.partial', 'caption.final']);
window.__signaling = [];
window.__peerConnections = [];
window.WebSocket = class extends window.WebSocket {
    constructor(...args) {
        super(...args);
        this.addEventListener('message', (event) => {
            const message = JSON.parse(event.data);
            if (KEPT.has(message.type)) window.__signaling.push(message);
        });
    }
};
window.RTCPeerConnection = class extends window.RTCPeerConnection {
    constructor(...args) {
        super(...args);
        window.__peerConnections.push(this);
    }
};
"""

# Samples the inbound-rtp statistics of the audio m-line `mid` until its bytes have grown (and, with `energy`, until
# some sound has been decoded), or `timeoutMs` passes; returns the first and the last sample.
INBOUND_AUDIO = """async ({mid, energy, timeoutMs}) => {
    const pc = window.__peerConnections.filter(p => p.connectionState !== 'closed').at(-1);
    const receiver = pc && pc.getTransceivers().find(t => t.mid === mid)?.receiver;
    if (!receiver) return {error: `no receiver for m-line ${mid}`};
    const sample = async () => {
        for (const s of (await receiver.getStats()).values()) {
            if (s.type === 'inbound-rtp' && s.kind === 'audio') {
                return {bytes: s.bytesReceived, packets: s.packetsReceived, energy: s.totalAudioEnergy ?? 0};
            }
        }
        return {bytes: 0, packets: 0, energy: 0};
    };
    const first = await sample();
    const deadline = performance.now() + timeoutMs;
    let last = first;
    while (performance.now() < deadline) {
        await new Promise(resolve => setTimeout(resolve, 250));
        last = await sample();
        if (first.bytes > 0 && last.bytes > first.bytes && (!energy || last.energy > 0)) break;
    }
    return {first, last};
}"""


def signaling(page: Page) -> list[dict[str, Any]]:
    return list(page.evaluate("window.__signaling"))


def audio_mid(page: Page, name: str) -> str:
    """The m-line on which the server's latest offer to ``page`` carries ``name``'s audio."""
    messages = signaling(page)
    (welcome,) = [m for m in messages if m["type"] == "welcome"]
    people = [*welcome["participants"], *(m["participant"] for m in messages if m["type"] == "participant.joined")]
    (participant_id,) = {p["participant_id"] for p in people if p["name"] == name}
    offer = [m for m in messages if m["type"] == "offer"][-1]
    (mid,) = [mid for mid, track in offer["tracks"].items()
              if track["participant_id"] == participant_id and track["kind"] == "audio"]
    return str(mid)


@dataclass
class Call:
    room: str
    ada: Page
    bo: Page


def publish(server: RunningServer, event: BusEvent) -> None:
    """Publish ``event`` on the server's bus, as its caption service or facilitator would."""
    server.publish(event)


def participant_id(server: RunningServer, room: str, name: str) -> str:
    async def find() -> str:
        (found,) = [p.id for p in server.ctx.rooms.room(room).participants.values() if p.name == name]
        return found

    return asyncio.run_coroutine_threadsafe(find(), server.app.state.loop).result(timeout=10)


@pytest.fixture(scope="module")
def call(base_url: str, speaking_browser: Browser, quiet_browser: Browser) -> Iterator[Call]:
    """Ada (her microphone speaks) and Bo (silent) in a room with the AI facilitator's 20-minute consultation."""
    room = create_room(base_url, "Library hours", template="quick-20", question="When should the library open?")
    contexts: list[BrowserContext] = []
    pages = []
    for browser in (speaking_browser, quiet_browser):
        context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        context.add_init_script(WATCH_CAPTIONS)
        context.add_init_script(RECORD_SIGNALING)
        contexts.append(context)
        pages.append(context.new_page())
    ada, bo = pages
    join(ada, base_url, room, "Ada")
    join(bo, base_url, room, "Bo")
    yield Call(room, ada, bo)
    for context in contexts:
        context.close()


def test_each_sees_the_others_video_playing(call: Call) -> None:
    wait_video_playing(call.bo, "Ada")
    wait_video_playing(call.ada, "Bo")
    for page, me, other in ((call.ada, "Ada", "Bo"), (call.bo, "Bo", "Ada")):
        assert tile_names(page) == [f"{me} (you)", other]
        own = page.locator(".tile >> nth=0")
        assert own.evaluate("t => t.querySelector('video').muted"), "own tile never plays our microphone back"
        assert "mirror" in (own.locator("video").get_attribute("class") or "")
        # The other's sound plays from its own <audio> element, carrying a live remote track.
        audio = page.locator(".tile >> nth=1").locator("audio")
        assert audio.evaluate("a => a.srcObject.getAudioTracks()[0].readyState") == "live"
    call.bo.wait_for_function("document.getElementById('connection-status').textContent === 'Connected'",
                              timeout=20_000)


def test_each_receives_the_others_audio(call: Call) -> None:
    """The other's audio m-line (as the server's offer names it) receives RTP that keeps coming; Bo's also carries
    Ada's speech (decoded sound energy), not silence."""
    wait_video_playing(call.bo, "Ada")
    wait_video_playing(call.ada, "Bo")
    for page, other, speaks in ((call.bo, "Ada", True), (call.ada, "Bo", False)):
        mid = audio_mid(page, other)
        stats = page.evaluate(INBOUND_AUDIO, {"mid": mid, "energy": speaks, "timeoutMs": 20_000})
        assert "error" not in stats, stats
        first, last = stats["first"], stats["last"]
        assert first["bytes"] > 0 and last["bytes"] > first["bytes"], f"{other}'s audio is not arriving: {stats}"
        assert last["packets"] > first["packets"]
        if speaks:
            assert last["energy"] > 0, f"{other}'s audio arrives but is silent: {stats}"


def test_speech_becomes_captions_attributed_to_the_speaker(call: Call, server: RunningServer) -> None:
    bo = call.bo
    bo.wait_for_function(
        """(words) => [...document.querySelectorAll('#transcript li')].some(li =>
            li.querySelector('.speaker').textContent === 'Ada' &&
            words.every(w => li.querySelector('.text').textContent.toLowerCase().includes(w)))""",
        arg=list(EXPECTED), timeout=60_000)
    line = bo.locator("#transcript li", has_text="families").first
    assert line.locator(".speaker").inner_text() == "Ada"
    assert line.locator("time").get_attribute("datetime")
    # The final also shows in the live pane (with the name) and goes to screen readers once, politely.
    final = bo.locator("#live-captions .caption.final", has_text="families").first
    assert final.locator(".speaker").inner_text().startswith("Ada")
    assert bo.get_attribute("#captions-announcer", "aria-live") == "polite"
    assert bo.inner_text("#captions-announcer").startswith("Ada: ")
    assert bo.get_attribute("#live-captions", "aria-live") is None, "partial captions are not announced"
    # Before its final, a line is provisional: committed and tentative words, styled differently. Whether the real
    # model's partials come before the final depends on it decoding faster than Ada speaks (a busy machine drops them
    # as stale), so a partial is published on the server's bus as the caption service would; the caption service's
    # partials from real speech are checked in tests/test_captions_whisper.py.
    ada_id = participant_id(server, call.room, "Ada")
    publish(server, CaptionPartial(room_id=call.room, utterance_id=f"{call.room}-provisional", participant_id=ada_id,
                                   speaker_name="Ada", committed="Sunday opening", tentative="costs money",
                                   start=time.time(), language="en"))
    bo.wait_for_function("(window.__partials || []).some(p => p.committed === 'Sunday opening' && "
                         "p.tentative.trim() === 'costs money')", timeout=30_000)
    style = bo.evaluate("""() => {
        const line = document.createElement('p');
        line.className = 'caption provisional';
        line.innerHTML = '<span class="committed">a</span><span class="tentative">b</span>';
        document.getElementById('live-captions').append(line);
        const c = getComputedStyle(line.querySelector('.committed'));
        const t = getComputedStyle(line.querySelector('.tentative'));
        const result = {committed: [c.fontStyle, c.color], tentative: [t.fontStyle, t.color]};
        line.remove();
        return result;
    }""")
    assert style["tentative"][0] == "italic" and style["committed"][0] == "normal"
    assert style["tentative"][1] != style["committed"][1]
    # Ada's own page shows her words too.
    call.ada.wait_for_selector("#transcript li:has-text('families')", timeout=30_000)


def test_active_speaker_is_highlighted(call: Call, server: RunningServer) -> None:
    """The server's voice-activity events highlight the speaker's tile on every page. They are published here for Bo
    (whose microphone is silent, so nothing else moves his highlight): Ada's real ones come and go with her sentences,
    and on a busy machine her start and end of speech can arrive together."""
    script = "(name) => [...document.querySelectorAll('.tile.speaking .name')].some(n => n.textContent === name)"
    bo_id = participant_id(server, call.room, "Bo")
    publish(server, VoiceActivity(room_id=call.room, participant_id=bo_id, speaking=True, t=time.time()))
    call.ada.wait_for_function(script, arg="Bo", timeout=30_000)
    call.bo.wait_for_function(script, arg="Bo (you)", timeout=30_000)
    publish(server, VoiceActivity(room_id=call.room, participant_id=bo_id, speaking=False, t=time.time()))
    call.ada.wait_for_function(f"!({script})('Bo')", timeout=30_000)


def test_facilitator_and_statements(call: Call) -> None:
    ada, bo = call.ada, call.bo
    # The AI facilitator: current stage with time left, messages labelled as AI, speaking-time balance.
    bo.wait_for_selector("#facilitator:not([hidden]) #ai-messages li", timeout=30_000)
    # The stage the room is in by now (its welcome lasts two minutes; a slow machine may get here later).
    assert bo.inner_text("#stage-name") in {stage.title for stage in builtin_templates()["quick-20"].stages}
    assert bo.inner_text("#stage-time").endswith("left")
    assert "AI assistant" in bo.inner_text("#ai-messages li >> nth=0")
    badges = bo.eval_on_selector_all("#ai-messages li",
                                     "items => items.map(i => i.querySelector('.ai-badge')?.textContent)")
    assert badges and set(badges) == {"AI"}, "every AI message is labelled"
    bo.wait_for_function("document.getElementById('balance').textContent.includes('Ada')", timeout=30_000)
    assert "Bo" in bo.inner_text("#balance")

    # Statements: Bo proposes one and edits it before anyone votes; Ada sees the new text and agrees with it (her vote
    # names the revision she read, so the server takes it); both see the tally.
    bo.fill("#statement-text", "The council should open the library on Sundays")
    bo.press("#statement-text", "Enter")
    agree = "#statements li button[data-choice=agree]"
    ada.wait_for_selector(agree, timeout=30_000)
    revised = "The council should open the library on Sundays and evenings"
    bo.once("dialog", lambda dialog: dialog.accept(revised))
    bo.click("#statements li .edit-statement")
    ada.wait_for_function("(text) => document.querySelector('#statements li .statement-text')?.textContent === text",
                          arg=revised, timeout=30_000)
    ada.click(agree)
    assert ada.get_attribute(agree, "aria-pressed") == "true"
    bo.wait_for_function("document.querySelector('#statements li .tally')?.textContent.startsWith('1 agree')",
                         timeout=30_000)
    assert "Proposed by Bo" in bo.inner_text("#statements li")
    # Once voted on, it can no longer be edited: "Propose a revised version" copies its text into the form instead.
    bo.wait_for_selector("#statements li .revise-statement", state="visible", timeout=10_000)
    assert not bo.is_visible("#statements li .edit-statement")
    bo.click("#statements li .revise-statement")
    assert bo.input_value("#statement-text") == revised


def test_moderator_pauses_and_resumes_the_facilitator(call: Call, server: RunningServer) -> None:
    ada = call.ada
    ada.wait_for_selector("#facilitator:not([hidden])", timeout=30_000)
    headers = staff_headers(server, "admin@example.org", "admin")  # the room is anyone's: an administrator moderates
    url = f"{server.http}/api/rooms/{call.room}/facilitator"
    httpx.post(f"{url}/pause", headers=headers, timeout=10).raise_for_status()
    ada.wait_for_function("document.getElementById('stage-time').textContent === 'paused'", timeout=10_000)
    assert "A moderator has paused the AI facilitator" in ada.inner_text("#ai-messages li.control >> nth=-1")
    httpx.post(f"{url}/resume", headers=headers, timeout=10).raise_for_status()
    ada.wait_for_function("document.getElementById('stage-time').textContent.endsWith('left')", timeout=10_000)
    assert "resumed" in ada.inner_text("#ai-messages li.control >> nth=-1")
    # A moderator's message: shown with the moderator badge, never as the AI's.
    sent = httpx.post(f"{server.http}/api/rooms/{call.room}/messages", json={"text": "Please keep to the topic."},
                      headers=headers, timeout=10)
    sent.raise_for_status()
    item = ada.wait_for_selector("#ai-messages li.moderator-message", timeout=10_000)
    assert item is not None and "Please keep to the topic." in item.inner_text()
    assert item.query_selector(".moderator-badge") is not None and item.query_selector(".ai-badge") is None


def test_keyboard_mute_is_announced_to_others(call: Call) -> None:
    bo, ada = call.bo, call.ada
    bo.focus("#toggle-mic")
    bo.keyboard.press("Space")
    assert bo.get_attribute("#toggle-mic", "aria-pressed") == "false"
    assert bo.inner_text("#toggle-mic") == "Microphone off"
    badge = ("[...document.querySelectorAll('.tile')].some(t => t.textContent.includes('Bo') && "
             "t.textContent.includes('microphone off'))")
    ada.wait_for_function(badge, timeout=20_000)
    bo.keyboard.press("Enter")
    assert bo.get_attribute("#toggle-mic", "aria-pressed") == "true"
    ada.wait_for_function(f"!({badge})", timeout=20_000)

    # The camera the same way: Ada's page shows Bo's initials instead of a black picture.
    bo.focus("#toggle-cam")
    bo.keyboard.press("Enter")
    assert bo.get_attribute("#toggle-cam", "aria-pressed") == "false"
    ada.wait_for_selector(".tile.no-video:has-text('Bo')", timeout=20_000)
    bo.keyboard.press("Enter")
    ada.wait_for_selector(".tile:not(.no-video):has-text('Bo')", timeout=20_000)


# True once Bo's page has the final of an utterance that it also got provisional captions of (with committed words
# if `committed`).
PARTIALS_AND_FINAL = """(committed) => {
    const got = window.__signaling;
    const finals = new Set(got.filter(m => m.type === 'caption.final').map(m => m.utterance_id));
    return got.some(m => m.type === 'caption.partial' && finals.has(m.utterance_id)
                         && (!committed || m.committed.trim()));
}"""


def test_committed_caption_words_never_change(call: Call) -> None:
    """For every utterance that Bo's page got the final of, the committed words of each provisional caption (in
    arrival order) begin those of the next one and the final's words, word by word. (It runs after the facilitator's
    tests: its waits must not delay them past the first stage.)

    Committed words need two partial decodes of one utterance that agree; where decoding is too slow for that (a busy
    2-core machine: each decode of the base model takes seconds while the browsers encode video) partials carry only
    tentative words, and the check covers the utterances that have partials and a final."""
    bo = call.bo
    try:
        bo.wait_for_function(PARTIALS_AND_FINAL, arg=True, timeout=60_000)
    except PlaywrightTimeoutError:
        try:
            bo.wait_for_function(PARTIALS_AND_FINAL, arg=False, timeout=60_000)
        except PlaywrightTimeoutError:
            # Too slow a machine for any partial decode to finish within an utterance: nothing arrived to check here.
            # The property itself is asserted without depending on speed in tests/test_captions.py (scripted
            # recogniser) and with real Whisper in tests/test_captions_whisper.py.
            got = Counter(m["type"] for m in signaling(bo))
            pytest.skip(f"no utterance had provisional captions and a final on this machine; Bo's page got {got}")
    messages = signaling(bo)
    finals = {m["utterance_id"]: m for m in messages if m["type"] == "caption.final"}
    checked = 0
    for utterance_id, final in finals.items():
        partials = [m for m in messages if m["type"] == "caption.partial" and m["utterance_id"] == utterance_id]
        assert all(p["participant_id"] == final["participant_id"] for p in partials)
        check_committed_words_never_change([p["committed"] for p in partials], final["text"])
        checked += bool(partials)
    assert checked >= 1


def test_room_view_screenshot(call: Call, tmp_path: Path) -> None:
    """A picture of the room view for people to look at (MOOT_SCREENSHOT_DIR keeps it)."""
    call.bo.wait_for_selector("#transcript li", timeout=60_000)
    directory = Path(os.environ.get("MOOT_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    for name, page in (("room-bo.png", call.bo), ("room-ada.png", call.ada)):
        page.screenshot(path=str(directory / name))
        assert (directory / name).stat().st_size > 10_000
    # A phone-sized window: one column, nothing wider than the screen.
    call.bo.set_viewport_size({"width": 390, "height": 844})
    try:
        call.bo.screenshot(path=str(directory / "room-narrow.png"), full_page=True)
        assert call.bo.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
    finally:
        call.bo.set_viewport_size({"width": 1280, "height": 800})
    join_page = call.bo.context.new_page()
    join_page.set_viewport_size({"width": 390, "height": 844})
    join_page.goto(call.bo.url)
    wait_devices_checked(join_page)
    join_page.screenshot(path=str(directory / "join-narrow.png"), full_page=True)
    assert join_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    join_page.close()


def test_late_joiner_gets_the_history_and_leaving_renegotiates(call: Call, base_url: str, quiet_browser: Browser,
                                                               new_page: Callable[..., Page]) -> None:
    ada, bo = call.ada, call.bo
    ada.wait_for_selector("#transcript li:has-text('families')", timeout=60_000)
    cy = new_page(quiet_browser)
    join(cy, base_url, call.room, "Cy")
    # Captions spoken before Cy came are loaded from the API on joining.
    cy.wait_for_selector("#transcript li:has-text('families')", timeout=10_000)
    wait_video_playing(cy, "Ada")
    wait_video_playing(cy, "Bo")
    wait_video_playing(ada, "Cy")

    cy.click("#leave")
    cy.wait_for_selector("#left-panel:not([hidden])", timeout=10_000)
    assert cy.get_attribute("#left-vtt", "href") == f"/api/rooms/{call.room}/transcript.vtt"
    ada.wait_for_function("![...document.querySelectorAll('.tile .name')].some(n => n.textContent === 'Cy')",
                          timeout=20_000)
    # After the renegotiation that removed Cy, Ada and Bo still see each other.
    wait_video_playing(ada, "Bo")
    wait_video_playing(bo, "Ada")
    assert tile_names(ada) == ["Ada (you)", "Bo"]
    # The transcript downloads: the page fetches them with the participant's credential (speakers by alias); the
    # same address without it is refused.
    for fmt in ("vtt", "json"):
        with bo.expect_download(timeout=10_000) as download:
            bo.click(f"#download-{fmt}")
        content = Path(download.value.path()).read_text()
        assert "families" in content and "Participant 1" in content
        assert download.value.suggested_filename == f"moot-{call.room}-transcript.{fmt}"
        assert bo.request.get(f"{base_url}/api/rooms/{call.room}/transcript.{fmt}").status == 401
