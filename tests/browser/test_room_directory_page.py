"""The room page with two server nodes: a page served by one node joins a room another node hosts (the first node
answers ``room_elsewhere`` with the other's URL, and the page opens its signaling there, keeping its own page and
API), and when the hosting node loses the room (``room_moved``) the page shows "Reconnecting…" and rejoins by
itself, starting again at its own node, which now takes the room.

The two nodes are two apps in this process sharing one in-memory lease store (as real nodes share Redis, which the
browser tests' network namespace cannot reach) and one database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from server.core.directory import ROOM_NODE, RoomDirectory
from server.core.leases import InMemoryLeases, Lease
from server.core.settings import Settings
from tests.browser.conftest import create_room, join
from tests.servers import RunningServer, free_port, running_server

pytestmark = pytest.mark.slow

# Before the page's scripts run: keep the URL of every WebSocket the page opens and the welcomes it receives, and
# every text the connection status line shows (a transient "Reconnecting…" would be missed by polling).
RECORD = """
window.__sockets = [];
window.__welcomes = [];
window.__statuses = [];
window.WebSocket = class extends window.WebSocket {
    constructor(url, ...rest) {
        super(url, ...rest);
        window.__sockets.push(String(url));
        this.addEventListener('message', (event) => {
            const message = JSON.parse(event.data);
            if (message.type === 'welcome') window.__welcomes.push(String(url));
        });
    }
};
document.addEventListener('DOMContentLoaded', () => {
    const status = document.getElementById('connection-status');
    new MutationObserver(() => window.__statuses.push(status.textContent))
        .observe(status, { childList: true, characterData: true, subtree: true });
});
"""

STATUS = "document.getElementById('connection-status').textContent"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RunningServer, InMemoryLeases]]:
    data = tmp_path_factory.mktemp("data")  # one database for both nodes
    leases = InMemoryLeases()
    ports = free_port(), free_port()
    settings = [Settings(data_dir=data, asr_backend="none", rtc_loopback_candidates=True, facilitator_enabled=False,
                         port=port, node_id=f"node-{name}", lease_ttl_s=1.0)
                for name, port in zip("ab", ports, strict=True)]
    with running_server(settings[0], port=ports[0], leases=leases) as node_a, \
            running_server(settings[1], port=ports[1], leases=leases) as node_b:
        yield node_a, node_b, leases


def on_loop(server: RunningServer, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, server.app.state.loop).result(timeout=10)


def participants(server: RunningServer, room: str) -> set[str]:
    async def read() -> set[str]:
        found = server.ctx.rooms.room(room)
        return set(found.participants) if found is not None else set()

    return set(on_loop(server, read()))


def test_page_follows_the_room_to_its_node_and_back_when_it_moves(
        nodes: tuple[RunningServer, RunningServer, InMemoryLeases], quiet_browser: Browser,
        new_page: Callable[..., Page]) -> None:
    node_a, node_b, leases = nodes
    room = create_room(node_b.http, "Two nodes")
    # Node A hosts the room (as if someone had joined there first); its own join renews this and keeps it.
    host_a = RoomDirectory(leases, node_a.ctx.directory.holder, 60, node_a.ctx.directory.url)
    assert isinstance(on_loop(node_a, host_a.claim(ROOM_NODE, room)), Lease)

    page = new_page(quiet_browser)
    page.add_init_script(RECORD)
    join(page, node_b.http, room, "Ada")  # the page comes from node B
    page.wait_for_function("window.__welcomes.length === 1", timeout=20_000)
    ws_a, ws_b = f"ws://127.0.0.1:{node_a.port}/ws/rooms/{room}", f"ws://127.0.0.1:{node_b.port}/ws/rooms/{room}"
    assert page.evaluate("window.__sockets") == [ws_b, ws_a], "asked its own node, then went where the room is"
    assert page.evaluate("window.__welcomes") == [ws_a]
    assert len(participants(node_a, room)) == 1 and participants(node_b, room) == set()
    page.wait_for_function(f"{STATUS} === 'Connected'", timeout=30_000)  # media flows with node A
    page.evaluate("window.__samePage = true")  # gone if the page reloads

    # Node A loses the room (say it was paused past the ttl): it moves its participants out with room_moved.
    lease = on_loop(node_a, leases.get(ROOM_NODE, room))
    assert isinstance(lease, Lease) and lease.holder == "node-a"
    on_loop(node_a, leases.release(lease))
    page.wait_for_function("window.__welcomes.length === 2", timeout=30_000)
    assert "Reconnecting…" in page.evaluate("window.__statuses")
    # The rejoin started at the page's own node, which found the room free and took it.
    assert page.evaluate("window.__sockets") == [ws_b, ws_a, ws_b]
    assert page.evaluate("window.__welcomes") == [ws_a, ws_b]
    assert len(participants(node_b, room)) == 1 and participants(node_a, room) == set()
    now = on_loop(node_b, leases.get(ROOM_NODE, room))
    assert isinstance(now, Lease) and now.holder == "node-b"
    page.wait_for_function(f"{STATUS} === 'Connected'", timeout=30_000)  # media renegotiated with node B
    assert page.evaluate("window.__samePage") is True
    assert page.is_visible("#room-view") and page.is_hidden("#left-panel")
