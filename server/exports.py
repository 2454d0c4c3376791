"""Transcript exports: WebVTT (captions with speaker voice tags) and JSON."""

from __future__ import annotations

from typing import Any

from server.storage import CaptionRecord, RoomRecord


def _vtt_time(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    # A cue payload may not contain "-->" and must escape markup characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def transcript_origin(room: RoomRecord, captions: list[CaptionRecord]) -> float:
    """Time zero of exported cue times: the first caption's start (or the room's creation when empty)."""
    return min((c.start for c in captions), default=room.created_at)


def to_webvtt(room: RoomRecord, captions: list[CaptionRecord]) -> str:
    origin = transcript_origin(room, captions)
    lines = ["WEBVTT", f"NOTE Moot transcript of room {room.id}: {_vtt_escape(room.title)}", ""]
    for index, c in enumerate(captions, start=1):
        start = c.start - origin
        end = max(c.end - origin, start + 0.001)
        lines.append(str(index))
        lines.append(f"{_vtt_time(start)} --> {_vtt_time(end)}")
        speaker = _vtt_escape(c.speaker_name).replace("\n", " ")
        lines.append(f"<v {speaker}>{_vtt_escape(c.text)}")
        lines.append("")
    return "\n".join(lines)


def caption_dict(c: CaptionRecord) -> dict[str, Any]:
    return {
        "utterance_id": c.utterance_id,
        "participant_id": c.participant_id,
        "speaker_name": c.speaker_name,
        "start": c.start,
        "end": c.end,
        "text": c.text,
        "language": c.language,
        "words": [w.model_dump() for w in c.words],
    }


def room_dict(room: RoomRecord) -> dict[str, Any]:
    return {
        "id": room.id,
        "title": room.title,
        "created_at": room.created_at,
        "max_participants": room.max_participants,
    }


def to_json(room: RoomRecord, captions: list[CaptionRecord]) -> dict[str, Any]:
    return {"room": room_dict(room), "captions": [caption_dict(c) for c in captions]}
