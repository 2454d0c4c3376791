"""Transcript exports: WebVTT (captions with speaker voice tags), SRT, CSV, JSON and a Markdown report (statements
with their votes, speaking time, the transcript), pseudonymised by default.

An export names speakers by alias ("Participant 3"), numbered in the order people arrived in the deliberation's lobby
(stable across all its rooms and exports), or, in a stand-alone room, in the order they first spoke; participant ids
are replaced by the same alias. What people said is exported as said: a name spoken aloud stays in the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from server.storage import CaptionRecord, RoomRecord

AI_AUTHOR = "AI facilitator"  # how exports and reviews name the author of what the AI facilitator proposed


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


def _srt_time(seconds: float) -> str:
    return _vtt_time(seconds).replace(".", ",")


def to_srt(room: RoomRecord, captions: list[CaptionRecord]) -> str:
    """SubRip: numbered cues, times from the first caption, "Speaker: text" (no markup)."""
    origin = transcript_origin(room, captions)
    blocks = []
    for index, c in enumerate(captions, start=1):
        start = c.start - origin
        end = max(c.end - origin, start + 0.001)
        speaker = c.speaker_name.replace("\n", " ")
        blocks.append(f"{index}\n{_srt_time(start)} --> {_srt_time(end)}\n{speaker}: {c.text.replace(chr(10), ' ')}\n")
    return "\n".join(blocks)


CSV_COLUMNS = ("start_s", "end_s", "speaker", "language", "text", "utterance_id")


def to_csv(room: RoomRecord, captions: list[CaptionRecord]) -> str:
    """One line per caption: seconds from the first caption, speaker, language, text, utterance id. Cells that a
    spreadsheet would read as a formula are prefixed with a quote."""
    import csv
    import io

    origin = transcript_origin(room, captions)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in captions:
        writer.writerow([f"{c.start - origin:.3f}", f"{c.end - origin:.3f}", _cell(c.speaker_name), c.language or "",
                         _cell(c.text), c.utterance_id])
    return out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _md(text: str) -> str:
    """Text as literal Markdown (no emphasis, links, headings or HTML from what people said)."""
    import re

    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~])", r"\\\1", text.replace("\n", " "))


def to_markdown(room: RoomRecord, captions: list[CaptionRecord],
                statements: list[tuple[str, str, dict[str, int]]]) -> str:
    """A report of the room: speaking time per speaker, the statements with their votes (text, author, tally), and
    the transcript."""
    from datetime import UTC, datetime

    origin = transcript_origin(room, captions)
    lines = [f"# {_md(room.title)}", "",
             f"Room {room.id}, created {datetime.fromtimestamp(room.created_at, tz=UTC):%Y-%m-%d %H:%M} UTC.", ""]
    spoken: dict[str, float] = {}
    for c in captions:
        spoken[c.speaker_name] = spoken.get(c.speaker_name, 0.0) + max(0.0, c.end - c.start)
    lines += ["## Speaking time", ""]
    total = sum(spoken.values()) or 1.0
    lines += [f"- {_md(name)}: {seconds:.0f} s ({100 * seconds / total:.0f}%)"
              for name, seconds in sorted(spoken.items(), key=lambda item: -item[1])] or ["Nobody spoke."]
    lines += ["", "## Statements", ""]
    lines += [f"- {_md(text)} ({_md(author)}): {tally.get('agree', 0)} agree, {tally.get('disagree', 0)} disagree, "
              f"{tally.get('pass', 0)} pass" for text, author, tally in statements] or ["No statements."]
    lines += ["", "## Transcript", ""]
    for c in captions:
        offset = c.start - origin
        lines.append(f"- [{int(offset // 60):02d}:{offset % 60:04.1f}] **{_md(c.speaker_name)}**: {_md(c.text)}")
    return "\n".join(lines) + "\n"


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
        "translations": dict(c.translations),  # language -> machine translation
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


def aliases(order: Iterable[str], captions: Iterable[CaptionRecord]) -> dict[str, str]:
    """Participant id -> "Participant N": first those in ``order`` (a deliberation's arrival order), then anyone
    else in the order they first spoke."""
    numbered: dict[str, str] = {}
    for participant_id in [*order, *(c.participant_id for c in captions)]:
        if participant_id not in numbered:
            numbered[participant_id] = f"Participant {len(numbered) + 1}"
    return numbered


def pseudonymised(captions: list[CaptionRecord], names: Mapping[str, str]) -> list[CaptionRecord]:
    """The captions with every speaker's name and id replaced by their alias."""
    return [replace(c, speaker_name=names[c.participant_id], participant_id=names[c.participant_id])
            for c in captions]
