"""RoomRegistry without a network: admission rules, the join that races the last leave, and clean shutdown."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.context import ServerContext
from server.core.bus import InProcessBus, room_channel
from server.core.events import Offer, ParticipantJoined, ParticipantLeft, ServerMessage, VoiceActivity
from server.core.settings import Settings
from server.rooms import JoinRefused, RoomRegistry
from server.storage import Storage
from tests.fakes import RecordingCaptionService


class GatedStorage:
    """Storage whose ``add_participant`` for one name waits until ``mark_left`` has been called (from any thread)."""

    def __init__(self, storage: Storage, gated_name: str) -> None:
        self._storage = storage
        self._gated_name = gated_name
        self.left = threading.Event()

    def add_participant(self, room_id: str, name: str, consented_at: float, participant_id: str | None = None) -> Any:
        if name == self._gated_name:
            assert self.left.wait(10)
        return self._storage.add_participant(room_id, name, consented_at, participant_id)

    def mark_left(self, participant_id: str) -> None:
        self._storage.mark_left(participant_id)
        self.left.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ServerContext]:
    storage = Storage(f"sqlite:///{tmp_path / 'moot.db'}")
    storage.create_schema()
    bus = InProcessBus()
    await bus.start()
    context = ServerContext(settings=Settings(data_dir=tmp_path, asr_backend="none", max_participants=2), bus=bus,
                            storage=storage, captions=RecordingCaptionService())
    yield context
    await bus.close()
    storage.close()


class Outbox(list[ServerMessage]):
    """What the registry sends one client; ``offered`` is set at the first offer."""

    def __init__(self) -> None:
        super().__init__()
        self.offered = asyncio.Event()

    def send(self, message: ServerMessage) -> None:
        self.append(message)
        if isinstance(message, Offer):
            self.offered.set()


async def test_admission_rules_and_cleanup(ctx: ServerContext) -> None:
    registry = RoomRegistry(ctx)
    room_id = ctx.storage.create_room("Rules", 2).id
    events = await ctx.bus.subscribe(room_channel(room_id))
    outbox = Outbox()
    baseline = {t for t in asyncio.all_tasks()}
    with pytest.raises(JoinRefused) as refused:
        await registry.join("nosuchroom", "Ada", True, True, outbox.send)
    assert refused.value.code == "unknown_room"
    ada = await registry.join(room_id, "Ada", True, True, outbox.send)
    with pytest.raises(JoinRefused) as refused:
        await registry.join(room_id, " ADA ", True, True, outbox.send)
    assert refused.value.code == "name_taken"
    await registry.join(room_id, "Bo", True, True, outbox.send)
    with pytest.raises(JoinRefused) as refused:
        await registry.join(room_id, "Cy", True, True, outbox.send)
    assert refused.value.code == "room_full"
    joined = [await events.get(5), await events.get(5)]
    assert [e.participant.name for e in joined if isinstance(e, ParticipantJoined)] == ["Ada", "Bo"]
    # Everyone gets a server offer; the stored participant id is the one used everywhere.
    assert ada.id in {p.id for p in ctx.storage.list_participants(room_id)}

    await asyncio.wait_for(outbox.offered.wait(), 10)
    assert any(isinstance(m, Offer) for m in outbox)
    await registry.close()
    assert all(p.left_at is not None for p in ctx.storage.list_participants(room_id))
    left = [await events.get(5), await events.get(5)]
    assert {e.reason for e in left if isinstance(e, ParticipantLeft)} == {"server_shutdown"}
    # Nothing else was published (nothing for the refused joins, one departure each): a marker comes next.
    await ctx.bus.publish(VoiceActivity(room_id=room_id, participant_id="marker", speaking=False, t=0.0))
    marker = await events.get(5)
    assert isinstance(marker, VoiceActivity) and marker.participant_id == "marker", marker
    assert registry.room(room_id) is None
    captions = ctx.captions
    assert isinstance(captions, RecordingCaptionService)
    assert all(sink.closed for sink in captions.sinks.values()), "each speaker's last utterance is finalised"
    await events.close()
    for _ in range(50):  # aiortc finishes its own tasks a few loop turns after close
        leaked = [t for t in asyncio.all_tasks() if t not in baseline and t is not asyncio.current_task()]
        if not leaked:
            break
        await asyncio.sleep(0.02)
    assert not leaked, leaked


async def test_a_join_racing_the_last_leave_lands_in_the_live_room(ctx: ServerContext) -> None:
    gated = GatedStorage(ctx.storage, gated_name="Bo")
    ctx.storage = gated  # type: ignore[assignment]
    registry = RoomRegistry(ctx)
    room_id = gated.create_room("Race", 2).id
    ada = await registry.join(room_id, "Ada", True, True, lambda m: None)
    # Bo's join is admitted while Ada (the last one present) is leaving.
    bo_join = asyncio.create_task(registry.join(room_id, "Bo", True, True, lambda m: None))
    await registry.leave(ada)
    bo = await asyncio.wait_for(bo_join, 10)
    room = registry.room(room_id)
    assert room is not None and room is bo.room, "Bo is in the room the registry knows, not an orphaned one"
    assert list(room.participants) == [bo.id]
    cy = await registry.join(room_id, "Cy", True, True, lambda m: None)
    assert cy.room is room and len(room.participants) == 2
    await registry.close()
