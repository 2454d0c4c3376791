"""The facilitator service on the bus with a manual clock, and through the real server to a participant."""

from __future__ import annotations

from pathlib import Path

from facilitator.service import FacilitatorService, ManualClock
from facilitator.template import Template, builtin_templates
from server.bus import InProcessBus
from server.events import AIMessage, BusEvent, ParticipantInfo, ParticipantJoined, StageChanged
from server.rtc.testpeer import TestPeer
from server.settings import Settings
from tests.servers import running_server


async def test_service_runs_rooms_with_templates_on_the_bus() -> None:
    bus = InProcessBus()
    clock = ManualClock()
    template = builtin_templates()["quick-20"]

    async def lookup(room_id: str) -> Template | None:
        return template if room_id == "with" else None

    service = FacilitatorService(bus, lookup, clock)
    await service.start()
    seen = await bus.subscribe("room:*")
    for room in ("with", "without"):
        await bus.publish(ParticipantJoined(room_id=room, participant=ParticipantInfo(participant_id="p", name="Ada")))

    async def drain() -> list[BusEvent]:
        events = []
        while True:
            try:
                events.append(await seen.get(timeout=0.2))
            except TimeoutError:
                return events

    first = await drain()
    stages = [e for e in first if isinstance(e, StageChanged)]
    assert [(s.room_id, s.stage_id) for s in stages] == [("with", "welcome")]
    assert not [e for e in first if isinstance(e, AIMessage) and e.room_id == "without"]

    await clock.advance(125, step=5)  # past the 2-minute welcome
    later = await drain()
    assert ("with", "discussion") in [(e.room_id, e.stage_id) for e in later if isinstance(e, StageChanged)]
    assert service.engine("with") is not None and service.engine("without") is None

    assert await service.pause("with")
    await clock.advance(600, step=60)
    assert not [e for e in await drain() if isinstance(e, StageChanged)], "paused: the stage does not end"
    assert await service.resume("with")
    await service.close()
    await bus.close()


async def test_participant_sees_the_facilitator_and_api_validates_templates(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, asr_backend="none", rtc_loopback_candidates=True)
    with running_server(settings) as server:
        import httpx

        async with httpx.AsyncClient(base_url=server.http) as http:
            bad = await http.post("/api/rooms", json={"title": "T", "template": "nope"})
            assert bad.status_code == 422 and "unknown template" in bad.json()["detail"]
            created = await http.post("/api/rooms", json={"title": "T", "template": "quick-20",
                                                          "question": "Should the park get a café?"})
            room = created.json()
            assert room["template"] == "quick-20" and room["question"] == "Should the park get a café?"
            templates = (await http.get("/api/templates")).json()
            assert {"policy-40", "quick-20"} <= {t["id"] for t in templates}
        peer = TestPeer(server.ws(room["id"]), "Ada")
        try:
            await peer.join()
            intro = await peer.wait_for(lambda m: isinstance(m, AIMessage) and m.kind == "stage_intro", 10)
            assert isinstance(intro, AIMessage) and intro.ai_generated and "AI assistant" in intro.text
            stage = await peer.wait_for(lambda m: isinstance(m, StageChanged), 5)
            assert isinstance(stage, StageChanged) and stage.template_id == "quick-20"
        finally:
            await peer.close()
