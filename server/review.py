"""One room's record for review by its organiser and moderators, pseudonymised: the transcript, the AI messages the
room saw (and those moderators rejected), the statements with their votes, the flags, the language-model calls and
the moderator actions, with every participant shown by alias ("Participant N", numbered as in the exports).

Display names that appear inside text the system wrote (a language-model prompt quotes the transcript with names) are
replaced by the alias too, whole words, longest names first. What people said aloud is kept as said (a name spoken in
a caption stays), as in the exports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from server.exports import AI_AUTHOR, aliases, caption_dict, pseudonymised
from server.storage import RoomRecord, Storage


def _rename_text(text: str, names: Mapping[str, str]) -> str:
    """Each display name in ``names`` (real name -> alias) replaced, as a whole word, by its alias."""
    for name in sorted(names, key=len, reverse=True):
        if name.strip():
            text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", names[name], text)
    return text


def _renamed(value: Any, names: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _rename_text(value, names)
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _renamed(v, names) for k, v in value.items()}
    return value


def room_review(storage: Storage, room: RoomRecord, arrival_order: Iterable[str]) -> dict[str, Any]:
    """The room's record (blocking: call off the event loop)."""
    captions = storage.transcript(room.id)
    statements = storage.statements_with_tallies(room.id)
    safety = storage.safety_flags(room.id)
    summary_flags = storage.summary_flags(room.id)
    people = [*arrival_order, *(c.participant_id for c in captions),
              *(s.author_id for s, _ in statements if s.author_id is not None),
              *(str(f["participant_id"]) for f in safety), *(str(f["participant_id"]) for f in summary_flags)]
    alias = aliases(people, [])
    real_names: dict[str, str] = {}
    for c in captions:
        real_names.setdefault(c.speaker_name, alias[c.participant_id])
    for s, _ in statements:
        if s.author_id is not None:
            real_names.setdefault(s.author_name, alias[s.author_id])
    for f in safety:
        real_names.setdefault(str(f["speaker_name"]), alias[str(f["participant_id"])])

    def flag(f: dict[str, Any]) -> dict[str, Any]:
        named = {**f, "participant_id": alias[str(f["participant_id"])]}
        if "speaker_name" in named:
            named["speaker_name"] = alias[str(f["participant_id"])]
        return named

    messages = [m.model_dump(mode="json") for m in storage.ai_messages(room.id)]
    rejected = [m.model_dump(mode="json") for m in storage.ai_messages(room.id, status="rejected")]
    return {
        "room": {"id": room.id, "title": room.title, "created_at": room.created_at},
        "transcript": [caption_dict(c) for c in pseudonymised(captions, alias)],
        "ai_messages": _renamed(messages, real_names),
        "rejected_ai_messages": _renamed(rejected, real_names),
        "statements": [{"statement_id": s.statement_id, "text": s.text, "ai_generated": s.author_id is None,
                        "author": AI_AUTHOR if s.author_id is None else alias[s.author_id], "sources": s.sources,
                        "tally": tally} for s, tally in statements],
        "safety_flags": [flag(f) for f in safety],
        "summary_flags": [flag(f) for f in summary_flags],
        "llm_calls": _renamed(storage.llm_calls(room.id), real_names),
        "moderator_actions": [{"at": e.at, "who": e.who, "action": e.action, "detail": e.detail}
                              for e in storage.audit_entries(room.id)],
    }
