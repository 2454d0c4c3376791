"""A deliberation from the participants' side, in real browsers: four people open one link, read the question and
the notice, answer a sign-up question, consent and wait; the organiser starts a round; each page goes by itself to
its room of two, where each person sees and hears their room-mate and nobody from the other room. A reload keeps
one's place (the credential is kept), and a room page without a credential refuses politely."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page

from server.lobby.store import LobbyStore
from tests.browser.conftest import tile_names, wait_devices_checked, wait_video_playing
from tests.servers import RunningServer

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
SPEC = {"title": "Library hours", "question": "Should the town library open on Sundays?",
        "background": "It opens Monday to Saturday today.\n\nA Sunday would cost 40,000 a year.",
        "template": "quick-20", "group_min": 2, "group_max": 2,
        "signup_questions": [{"id": "region", "text": "Where do you live?", "choices": ["North", "South"]}],
        "mix_question": "region"}


def organiser_token(server: RunningServer, base_url: str) -> dict[str, str]:
    accounts = server.ctx.accounts
    if accounts.store.user_by_email("organiser@example.org") is None:
        accounts.add_user("organiser@example.org", "organiser", PASSWORD)
    answer = httpx.post(f"{base_url}/api/auth/token", data={"username": "organiser@example.org",
                                                             "password": PASSWORD}, timeout=10)
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def arrive(page: Page, base_url: str, deliberation: str, name: str, region: str) -> None:
    page.goto(f"{base_url}/d/{deliberation}")
    page.wait_for_selector("#arrive-form:not([hidden])", timeout=20_000)
    assert page.inner_text("#question") == SPEC["question"]
    assert "A Sunday would cost" in page.inner_text("#background")
    assert "transcribed automatically" in page.inner_text("#notice")
    page.wait_for_function("!document.getElementById('device-status').textContent.startsWith('Checking')",
                           timeout=20_000)
    page.fill("#display-name", name)
    assert page.is_disabled("#arrive-button")
    page.check(f"input[name=q-region][value={region}]")
    page.check("#consent")
    page.click("#arrive-button")
    page.wait_for_selector("#waiting:not([hidden])", timeout=20_000)
    assert name in page.inner_text("#waiting-name")


def test_four_people_one_link_two_rooms(server: RunningServer, base_url: str, quiet_browser: Browser,
                                        new_page: Callable[..., Page]) -> None:
    headers = organiser_token(server, base_url)
    made = httpx.post(f"{base_url}/api/deliberations", json=SPEC, headers=headers, timeout=10)
    assert made.status_code == 201, made.text
    deliberation = made.json()["id"]
    assert httpx.post(f"{base_url}/api/deliberations/{deliberation}/open", headers=headers,
                      timeout=10).status_code == 200

    people = {"Ada": "North", "Bo": "North", "Cy": "South", "Dee": "South"}
    pages = {name: new_page(quiet_browser) for name in people}
    for name, region in people.items():
        arrive(pages[name], base_url, deliberation, name, region)
    pages["Dee"].reload()  # a reload keeps the place in the lobby
    pages["Dee"].wait_for_selector("#waiting:not([hidden])", timeout=20_000)
    lobby = httpx.get(f"{base_url}/api/deliberations/{deliberation}/lobby", headers=headers, timeout=10).json()
    assert lobby["waiting"] == 4

    started = httpx.post(f"{base_url}/api/deliberations/{deliberation}/rounds", headers=headers, timeout=10)
    assert started.status_code == 201, started.text
    rooms = started.json()["rooms"]
    assert sorted(len(m) for m in rooms.values()) == [2, 2]
    entries = LobbyStore(server.ctx.storage.sessions)
    room_of: dict[str, str] = {}
    for room_id, members in rooms.items():
        names = {entries.entry(m).name for m in members}  # type: ignore[union-attr]
        assert {people[n] for n in names} == {"North", "South"}, "each room mixes the regions"
        room_of.update({n: room_id for n in names})

    for name, page in pages.items():  # each page went to its room by itself
        page.wait_for_url(f"**/r/{room_of[name]}", timeout=20_000)
        wait_devices_checked(page)
        assert page.is_hidden("#name-row") and page.is_hidden("#consent-block")
        assert f"You join as {name}." in page.inner_text("#joining-as")
        page.click("#join-button")
        page.wait_for_selector("#room-view:not([hidden])", timeout=20_000)
    for name, page in pages.items():
        mate = next(n for n, r in room_of.items() if r == room_of[name] and n != name)
        wait_video_playing(page, mate)
        page.wait_for_function("document.querySelectorAll('.tile').length === 2", timeout=20_000)
        assert sorted(tile_names(page)) == sorted([f"{name} (you)", mate]), (name, tile_names(page))

    stranger = new_page(quiet_browser)
    stranger.goto(f"{base_url}/r/{room_of['Ada']}")
    stranger.wait_for_selector("#room-error:not([hidden])", timeout=20_000)
    assert "deliberation's link" in stranger.inner_text("#room-error")
