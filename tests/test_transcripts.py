"""The transcript recorder stores final captions published on the bus, and only those."""

from __future__ import annotations

from pathlib import Path

from server.bus import InProcessBus
from server.events import CaptionFinal, CaptionPartial
from server.storage import Storage
from server.transcripts import TranscriptRecorder


async def test_recorder_stores_finals_once(tmp_path: Path) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'm.db'}")
    storage.create_schema()
    room = storage.create_room("R", 8)
    bus = InProcessBus()
    recorder = TranscriptRecorder(bus, storage)
    await recorder.start()
    final = CaptionFinal(room_id=room.id, utterance_id="u1", participant_id="p", speaker_name="Bo", text="from the bus",
                         start=5.0, end=6.0)
    await bus.publish(CaptionPartial(room_id=room.id, utterance_id="u1", participant_id="p", speaker_name="Bo",
                                     committed="from", tentative="the", start=5.0))
    await bus.publish(final)
    await bus.publish(final)  # delivered twice (e.g. two nodes): stored once
    second = final.model_copy(update={"utterance_id": "u2", "text": "again", "start": 7.0, "end": 8.0})
    await bus.publish(second)
    await recorder.wait_stored(2, timeout=5)
    await recorder.close()
    assert [c.text for c in storage.transcript(room.id)] == ["from the bus", "again"]
    storage.close()
