""""Call a moderator": a participant's call reaches the room's moderators (never the other participants), waits
until a moderator takes it (one pending per participant, calls are rate-limited, a long note is refused), and the
participant who called is told when a moderator takes it; taking is logged."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.core.events import Error, HelpRequested, HelpTaken
from server.core.settings import Settings
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server
from tests.staff import server_headers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("help"), asr_backend="none", rtc_loopback_candidates=True,
                        llm_backend="none")
    with running_server(settings) as running:
        yield running


async def test_a_call_waits_for_a_moderator_who_takes_it(server: RunningServer) -> None:
    headers = server_headers(server, "mod@example.org", "organiser")
    http = httpx.AsyncClient(base_url=server.http, timeout=10)
    room = (await http.post("/api/rooms", json={"title": "Help"}, headers=headers)).json()["id"]
    ada, bo = TestPeer(server.ws(room), "Ada"), TestPeer(server.ws(room), "Bo")
    moderators = await server.ctx.bus.subscribe(f"room:{room}")
    try:
        await ada.join()
        await bo.join()
        await ada.send({"type": "help.request", "note": "  Someone   is shouting "})
        called = await moderators.get(timeout=10)
        while not isinstance(called, HelpRequested):
            called = await moderators.get(timeout=10)
        assert (called.participant_id, called.participant_name, called.note) == (ada.participant_id, "Ada",
                                                                                   "Someone is shouting")
        await ada.send({"type": "help.request"})  # pressed again: still one call
        await ada.send({"type": "help.request", "note": "x" * 301})
        await ada.wait_for(lambda m: isinstance(m, Error) and m.code == "bad_message", 10)
        await ada.sync(10)
        await bo.sync(10)
        assert not [m for m in bo.messages if isinstance(m, HelpRequested)], "other participants never see it"

        url = f"/api/rooms/{room}/help-requests"
        pending = (await http.get(url, headers=headers)).json()
        assert [(p["participant_name"], p["note"]) for p in pending] == [("Ada", "Someone is shouting")]
        assert (await http.get(url)).status_code == 401
        taken = (await http.post(f"{url}/{called.request_id}/take", headers=headers))
        assert taken.status_code == 200
        await ada.wait_for(lambda m: isinstance(m, HelpTaken) and m.participant_id == ada.participant_id, 10)
        assert (await http.get(url, headers=headers)).json() == []
        assert (await http.post(f"{url}/{called.request_id}/take", headers=headers)).status_code == 404
        assert (await http.post(f"{url}/nope/take", headers=headers)).status_code == 404
        log = server.ctx.storage.audit_entries(room)
        assert [(e.who, e.action, e.detail) for e in log] == [("mod@example.org", "help.taken", called.request_id)]

        for _ in range(4):  # three calls at once, then one a minute
            await bo.send({"type": "help.request"})
        await bo.wait_for(lambda m: isinstance(m, Error) and m.code == "rate_limited", 10)
    finally:
        await http.aclose()
        await moderators.close()
        await ada.close()
        await bo.close()
