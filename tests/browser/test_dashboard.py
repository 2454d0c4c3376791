"""The moderators' live dashboard in real browsers (under the CSP): a deliberation's two rooms with one participant
each; the dashboard shows who is in each room as they join, a participant's call for a moderator appears on it and
is taken there (the participant is told), a broadcast from it reaches both rooms, and pausing the AI from it pauses
the facilitator in both rooms with no AI message after the pause. It reconnects by itself after the connection
drops. From it a moderator mutes a participant (their microphone goes off), moves one to the other room (their page
goes there) and ends a room (everyone in it is told)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute

from server.lobby.notice import NOTICE_VERSION
from tests.browser.conftest import (
    STAFF_PASSWORD,
    locale_words,
    staff_headers,
    tile_names,
    wait_devices_checked,
    wait_video_playing,
)
from tests.servers import RunningServer

pytestmark = pytest.mark.slow

SPEC = {"title": "Bus lanes", "question": "Should the high street get a bus lane?", "background": "",
        "template": "quick-20", "group_min": 2, "group_max": 3, "signup_questions": [], "mix_question": None}


def enter_room(page: Page, base_url: str, deliberation: str, arrival: dict[str, str], room: str) -> None:
    """Open the room page as the lobby would have left it (the credential in localStorage) and join."""
    page.goto(f"{base_url}/")
    page.evaluate("([key, credential, name]) => { localStorage.setItem(key, credential); "
                  "localStorage.setItem(key + ':name', name); }",
                  [f"moot:credential:{deliberation}", arrival["credential"], arrival["name"]])
    page.goto(f"{base_url}/r/{room}")
    wait_devices_checked(page)
    page.click("#join-button")
    page.wait_for_selector("#room-view:not([hidden])", timeout=20_000)


def card(room: str) -> str:
    return f"article[data-room='{room}']"


def test_the_dashboard_watches_every_room_and_steps_in(server: RunningServer, base_url: str, quiet_browser: Browser,
                                                       new_page: Callable[..., Page]) -> None:
    headers = staff_headers(server, "dashboard@example.org", "organiser")
    made = httpx.post(f"{base_url}/api/deliberations", json=SPEC, headers=headers, timeout=10)
    assert made.status_code == 201, made.text
    deliberation = made.json()["id"]
    assert httpx.post(f"{base_url}/api/deliberations/{deliberation}/open", headers=headers,
                      timeout=10).status_code == 200
    arrivals = {}
    for name in ("Ada", "Bo", "Cy", "Dee"):
        answer = httpx.post(f"{base_url}/api/lobby/{deliberation}/arrive", timeout=10, json={
            "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {}})
        assert answer.status_code == 201, answer.text
        arrivals[answer.json()["participant_id"]] = answer.json()
    rooms = httpx.post(f"{base_url}/api/deliberations/{deliberation}/rounds", headers=headers,
                       timeout=10).json()["rooms"]
    assert len(rooms) == 2
    # One participant enters each room; the others stay away.
    present = {room: arrivals[members[0]] for room, members in rooms.items()}

    dashboard = new_page(quiet_browser, enforce_csp=True)
    sockets: list[WebSocketRoute] = []  # the page's dashboard connections, passed through to the server

    def pass_through(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    dashboard.route_web_socket(re.compile(r".*/dashboard$"), pass_through)
    dashboard.goto(f"{base_url}/dashboard/{deliberation}")
    dashboard.wait_for_selector("#sign-in", timeout=10_000)
    dashboard.fill("#sign-in-email", "dashboard@example.org")
    dashboard.fill("#sign-in-password", STAFF_PASSWORD)
    dashboard.click("#sign-in button[type=submit]")
    dashboard.wait_for_selector("#live-status:has-text('Live')", timeout=15_000)
    for room in rooms:
        dashboard.wait_for_selector(card(room), timeout=10_000)
        assert "Nobody is in the room." in dashboard.inner_text(card(room))

    pages: dict[str, Page] = {}
    for room, arrival in present.items():
        pages[room] = new_page(quiet_browser, permissions=["camera", "microphone"])
        enter_room(pages[room], base_url, deliberation, arrival, room)
    for room, arrival in present.items():
        dashboard.wait_for_selector(f"{card(room)} .people li:has-text('{arrival['name']}')", timeout=15_000)
    first, second = list(rooms)

    # A call for a moderator appears on the dashboard and is taken there.
    caller = pages[first]
    caller.click("#call-moderator")
    caller.fill("#help-note", "The sound keeps cutting out")
    caller.click("#help-form button[type=submit]")
    call = dashboard.wait_for_selector(f"{card(first)} .help-call", timeout=15_000)
    assert call is not None and "The sound keeps cutting out" in call.inner_text()
    assert present[first]["name"] in call.inner_text()
    assert "1 alert" in dashboard.inner_text(card(first))
    dashboard.click(f"{card(first)} .help-call button")
    caller.wait_for_selector("#help-status:has-text('A moderator is on the way.')", timeout=10_000)
    dashboard.wait_for_selector(f"{card(first)} .help-call", state="detached", timeout=10_000)

    # A broadcast reaches both rooms, shown as from a moderator.
    dashboard.fill("#broadcast-text", "Five minutes left in this round")
    dashboard.click("#broadcast")
    dashboard.wait_for_selector("#step-in-result:has-text('Sent to 2 rooms')", timeout=10_000)
    for page in pages.values():
        page.wait_for_selector("#ai-messages li.moderator-message:has-text('Five minutes left in this round')",
                               timeout=10_000)

    # Pausing the AI everywhere: both rooms say so (on the dashboard and in the room), and no AI message follows.
    dashboard.click("#pause-all")
    for room, page in pages.items():
        dashboard.wait_for_selector(f"{card(room)} .stage-line:has-text('AI paused')", timeout=15_000)
        page.wait_for_selector("#ai-messages li.control:has-text('paused the AI facilitator')", timeout=10_000)
    ai_messages = {room: page.locator("#ai-messages li[data-kind]").count() for room, page in pages.items()}
    dashboard.click(f"{card(second)} button:has-text('Message this room')")
    dashboard.fill(f"#message-{second}", "Marker: a moderator is here")
    dashboard.click(f"{card(second)} form.message-form button[type=submit]")
    pages[second].wait_for_selector("#ai-messages li.moderator-message:has-text('Marker')", timeout=10_000)
    assert "Marker" not in pages[first].inner_text("#ai-messages"), "a room message reaches only its room"
    assert {room: page.locator("#ai-messages li[data-kind]").count() for room, page in pages.items()} == ai_messages

    # The dashboard reconnects by itself when its connection drops, with a fresh snapshot.
    sockets[-1].close(code=1011, reason="dropped by the test")
    dashboard.wait_for_selector("#live-status:has-text('Connection lost')", timeout=30_000)
    dashboard.wait_for_selector("#live-status:has-text('Live')", timeout=30_000)
    assert len(sockets) == 2
    for room, arrival in present.items():
        dashboard.wait_for_selector(f"{card(room)} .people li:has-text('{arrival['name']}')", timeout=15_000)

    # Observe the first room (the dashboard's sign-in holds): the observer sees its participant, who is told a
    # moderator is observing; the observer is no tile of theirs.
    watcher = dashboard.context.new_page()
    watcher.goto(f"{base_url}/r/{first}?observe")
    watcher.click("#join-button")
    watcher.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    caller.wait_for_selector("#observer-notice:has-text('A moderator is observing this room.')", timeout=10_000)
    dashboard.wait_for_selector(f"{card(first)}:has-text('1 moderator observing')", timeout=10_000)
    watcher.wait_for_function("document.querySelectorAll('.tile').length === 1", timeout=20_000)
    assert tile_names(watcher) == [present[first]["name"]]
    wait_video_playing(watcher, present[first]["name"])
    assert tile_names(caller) == [f"{present[first]['name']} (you)"], "the observer is nobody's tile"
    watcher.click("#leave")
    caller.wait_for_selector("#observer-notice", state="hidden", timeout=10_000)

    # Mute: the participant's own microphone goes off, and they are told.
    mover = present[first]
    person = f"{card(first)} .people li:has-text('{mover['name']}')"
    dashboard.click(f"{person} summary")
    dashboard.click(f"{person} button:has-text('Mute')")
    caller.wait_for_selector("#room-alert:has-text('A moderator turned your microphone off')", timeout=10_000)
    assert caller.get_attribute("#toggle-mic", "aria-pressed") == "false"
    dashboard.wait_for_selector(f"{person}:has-text('mic off')", timeout=10_000)

    # Move them to the other room: their page goes there, and they join it.
    dashboard.select_option(f"#move-{mover['participant_id']}", second)
    dashboard.click(f"{person} form button[type=submit]")
    caller.wait_for_url(f"**/r/{second}", timeout=15_000)
    wait_devices_checked(caller)
    caller.click("#join-button")
    caller.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    dashboard.wait_for_selector(f"{card(second)} .people li:has-text('{mover['name']}')", timeout=15_000)
    dashboard.wait_for_selector(f"{card(first)}:has-text('Nobody is in the room.')", timeout=15_000)

    # End the second room: both people in it are told.
    dashboard.click(f"{card(second)} button:has-text('End the room')")
    dashboard.click(f"{card(second)} button:has-text('End ')")
    for page in (caller, pages[second]):
        page.wait_for_selector("#left-panel:not([hidden])", timeout=15_000)
        assert "This room has ended" in page.inner_text("#left-reason")
    dashboard.wait_for_selector(f"{card(second)}:has-text('Nobody is in the room.')", timeout=15_000)


def test_the_dashboard_in_the_readers_language(server: RunningServer, base_url: str, quiet_browser: Browser,
                                               new_page: Callable[..., Page]) -> None:
    """A moderator whose browser prefers French gets the dashboard in French; the header's switch re-renders the same
    page in German at once (no reload: the room cards stay)."""
    words = {code: locale_words(code) for code in ("fr", "de")}
    headers = staff_headers(server, "tableau@example.org", "organiser")
    made = httpx.post(f"{base_url}/api/deliberations", json={**SPEC, "title": "Pistes cyclables"}, headers=headers,
                      timeout=10)
    assert made.status_code == 201, made.text
    deliberation = made.json()["id"]
    assert httpx.post(f"{base_url}/api/deliberations/{deliberation}/open", headers=headers,
                      timeout=10).status_code == 200
    for name in ("Eve", "Flo"):
        assert httpx.post(f"{base_url}/api/lobby/{deliberation}/arrive", timeout=10, json={
            "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {}}).status_code == 201
    rooms = httpx.post(f"{base_url}/api/deliberations/{deliberation}/rounds", headers=headers,
                       timeout=10).json()["rooms"]
    assert rooms

    page = new_page(quiet_browser, locale="fr-FR")
    page.goto(f"{base_url}/dashboard/{deliberation}")
    page.wait_for_selector("#sign-in", timeout=10_000)
    assert page.evaluate("document.documentElement.lang") == "fr"
    page.fill("#sign-in-email", "tableau@example.org")
    page.fill("#sign-in-password", STAFF_PASSWORD)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector(f"#live-status:has-text('{words['fr']['dashboard.live']}')", timeout=15_000)
    for room in rooms:
        page.wait_for_selector(card(room), timeout=10_000)
        assert words["fr"]["dashboard.nobody"] in page.inner_text(card(room))
    assert page.text_content("header .room-title") == words["fr"]["dashboard.title"]
    assert page.title() == words["fr"]["dashboard.page_title"]
    assert page.text_content("#step-in-heading") == words["fr"]["staff.step_in"]

    # The switch: German at once, in the same page (its marker survives), the cards re-rendered in German.
    page.evaluate("window.stillTheSamePage = true")
    page.select_option("#locale-switch", "de")
    page.wait_for_function("document.documentElement.lang === 'de'", timeout=10_000)
    page.wait_for_selector(f"{card(next(iter(rooms)))}:has-text('{words['de']['dashboard.nobody']}')",
                           timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True
    for room in rooms:
        text = page.inner_text(card(room))
        assert words["de"]["dashboard.nobody"] in text and words["de"]["dashboard.message_room"] in text
    assert words["de"]["dashboard.live"] in page.inner_text("#live-status")
    assert page.text_content("header .room-title") == words["de"]["dashboard.title"]
    assert page.title() == words["de"]["dashboard.page_title"]
