"""Exact negative checks on a bus: publish a marker and read up to it, so "nothing else arrived" is not a guess made
at one instant or after an arbitrary wait."""

from __future__ import annotations

import uuid

from server.core.bus import Bus, Subscription
from server.core.events import BusEvent, ParticipantMediaState


async def collect(bus: Bus, sub: Subscription, room_id: str | None = None, timeout: float = 10.0) -> list[BusEvent]:
    """Every event ``sub`` receives before a marker published now (in ``room_id``, or in a room of its own for a
    ``room:*`` subscription). Events published before this call are delivered before the marker."""
    marker_id = f"marker-{uuid.uuid4().hex}"
    await bus.publish(ParticipantMediaState(room_id=room_id or marker_id, participant_id=marker_id, audio=False,
                                            video=False))
    events: list[BusEvent] = []
    while True:
        event = await sub.get(timeout=timeout)
        if isinstance(event, ParticipantMediaState) and event.participant_id == marker_id:
            return events
        events.append(event)
