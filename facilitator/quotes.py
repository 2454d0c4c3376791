"""Key points without a capable language model: instead of a summary the small bundled model would get wrong (or no
summary at all), the facilitator posts quotes selected from the transcript with the embedding model, labelled as
selected quotes (never as AI-written), each linked to its line.

Selection (``select_quotes``, deterministic, property-tested) covers every speaker who said something substantial,
not just the loudest: first each speaker's most representative line (nearest the centre of the discussion), then, up to
``max_quotes``, the lines that add most that is not already quoted (maximal marginal relevance). Quotes are posted in
the order they were said.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from facilitator.prompt import shorten
from server.core.embeddings import Embedder
from server.core.events import (
    MAX_AI_MESSAGE_CHARS,
    MAX_AI_POINT_CHARS,
    MAX_AI_POINTS,
    AIMessage,
    AIMessagePoint,
    CaptionFinal,
)

MIN_WORDS = 5  # "yes, I agree" is not a key point
MAX_LINES = 120
MAX_QUOTES = 6
DIVERSITY = 0.4  # weight of "unlike what is already quoted" against "representative of the discussion"
INTRO = "Key points so far, in your own words (quotes picked automatically from the transcript, not written by AI):"


def select_quotes(speakers: Sequence[str], vectors: np.ndarray, max_quotes: int = MAX_QUOTES) -> list[int]:
    """Indices of the lines to quote (``speakers[i]`` said line ``i``, ``vectors[i]`` its normalised embedding), in
    line order: one per speaker at least, up to ``max(max_quotes, number of speakers)``."""
    n = len(speakers)
    if n == 0:
        return []
    centre = vectors.mean(axis=0)
    norm = float(np.linalg.norm(centre))
    relevance = vectors @ (centre / norm) if norm > 0 else np.zeros(n)
    chosen: list[int] = []
    for speaker in dict.fromkeys(speakers):  # in the order they first spoke
        theirs = [i for i in range(n) if speakers[i] == speaker]
        chosen.append(max(theirs, key=lambda i: (float(relevance[i]), -i)))
    while len(chosen) < min(max_quotes, n):
        similarity = vectors @ vectors[chosen].T  # n x len(chosen)
        redundancy = similarity.max(axis=1)
        score = (1 - DIVERSITY) * relevance - DIVERSITY * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return sorted(chosen)


async def key_points(embedder: Embedder, room_id: str, stage_id: str | None, captions: Sequence[CaptionFinal],
                     now: float, message_id: str) -> AIMessage | None:
    """The selected quotes as the facilitator's ``summary`` message, or None when nothing substantial was said."""
    lines = [c for c in list(captions)[-MAX_LINES:] if len(c.text.split()) >= MIN_WORDS]
    if not lines:
        return None
    vectors = await asyncio.to_thread(embedder.encode, [c.text for c in lines])  # blocking: off the event loop
    picked = [lines[i] for i in select_quotes([c.participant_id for c in lines], vectors)][:MAX_AI_POINTS]
    points = [AIMessagePoint(label="Quote", text=shorten(f"{c.speaker_name}: “{c.text}”", MAX_AI_POINT_CHARS),
                             sources=[c.utterance_id]) for c in picked]
    text = INTRO + "\n" + "\n".join(f"- {p.text}" for p in points)
    return AIMessage(room_id=room_id, ts=now, message_id=message_id, kind="summary", stage_id=stage_id,
                     text=shorten(text, MAX_AI_MESSAGE_CHARS), sources=[c.utterance_id for c in picked],
                     points=points, generated_by=f"quotes:{embedder.name}")
