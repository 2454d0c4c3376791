"""The transcript recorder stores final captions published on the bus, and only those."""

from __future__ import annotations

from pathlib import Path

from server.bus import InProcessBus
from server.events import AIMessage, CaptionFinal, CaptionPartial
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


async def test_recorder_keeps_ai_messages_for_late_joiners_and_review(tmp_path: Path) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'm.db'}")
    storage.create_schema()
    room = storage.create_room("R", 8)
    other = storage.create_room("Other", 8)
    bus = InProcessBus()
    recorder = TranscriptRecorder(bus, storage)
    await recorder.start()
    first = AIMessage(room_id=room.id, ts=10.0, message_id="m1", kind="stage_intro", text="Welcome")
    await bus.publish(first)
    await bus.publish(first)
    await bus.publish(AIMessage(room_id=other.id, ts=11.0, message_id="m2", kind="question", text="Elsewhere"))
    await bus.publish(CaptionFinal(room_id=room.id, utterance_id="u", participant_id="p", speaker_name="Bo",
                                   text="hi", start=12.0, end=13.0))
    await recorder.wait_stored(1, timeout=5)
    await recorder.close()
    assert storage.ai_messages(room.id) == [first]
    assert [m.text for m in storage.ai_messages(other.id)] == ["Elsewhere"]
    storage.close()
