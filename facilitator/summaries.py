"""Summaries of what was said, written by an LLM and traceable to the transcript lines they draw on.

The transcript goes to the model as numbered lines (``[3] Ada: ...``, written by ``facilitator.prompt.number_lines``,
so nothing said can add a line or close the fence) inside the data block; the model answers with points that cite
line numbers, which are mapped back to utterance ids and checked: a point citing no real line is dropped. The result
is posted as an ``ai.message`` of kind ``summary`` with ``sources`` and ``generated_by``, within the event model's
length limits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from facilitator.llm import LLMBackend, LLMCallRecord, generate_structured
from facilitator.messages import say
from facilitator.prompt import number_lines, shorten
from server.core.events import MAX_AI_MESSAGE_CHARS, MAX_AI_POINT_CHARS, AIMessage, AIMessagePoint, CaptionFinal

logger = logging.getLogger(__name__)

MAX_LINES = 60
LABELS = {"point": "label.point", "agreement": "label.agreement", "disagreement": "label.disagreement",
          "question": "label.question"}  # message keys (facilitator/messages.py)

INSTRUCTIONS = (
    "You help a small group deliberate. Summarise the discussion in the data: its key points, where people agree, "
    "where they disagree, and open questions. Use at most 6 points, each one short sentence in plain language, "
    "faithful to what was said (no new facts, no opinions of your own). Every point must cite the numbers of the "
    "lines it draws on."
)


class SummaryPoint(BaseModel):
    kind: Literal["point", "agreement", "disagreement", "question"]
    text: str = Field(min_length=3, max_length=300)
    lines: list[int] = Field(min_length=1, max_length=10)


class Summary(BaseModel):
    points: list[SummaryPoint] = Field(max_length=8)


async def write_summary(
    llm: LLMBackend,
    room_id: str,
    stage_id: str | None,
    captions: Sequence[CaptionFinal],
    now: float,
    message_id: str,
    record: Callable[[LLMCallRecord], None] | None = None,
    language: str = "en",
) -> AIMessage | None:
    """A summary message in ``language`` (the room's), or None when there is nothing to summarise or the model gave
    nothing usable."""
    if not captions:
        return None
    data, index = number_lines(list(captions)[-MAX_LINES:])
    instructions = f"{INSTRUCTIONS} {say(language, 'llm.language')}"
    summary, call = await generate_structured(llm, purpose="summary", instructions=instructions, data=data,
                                              schema=Summary, fallback=Summary(points=[]), record=record)
    kept: list[tuple[SummaryPoint, list[str]]] = []
    for point in summary.points:
        sources = [index[n] for n in dict.fromkeys(point.lines) if n in index]
        if sources:
            kept.append((point, sources))
    if not kept:
        logger.info("summary for room %s had no usable points (%s)", room_id, call.outcome)
        return None
    text = say(language, "summary.heading") + "\n" + "\n".join(
        f"- {say(language, LABELS[p.kind])}: {p.text}" for p, _ in kept)
    sources = list(dict.fromkeys(s for _, srcs in kept for s in srcs))
    points = [AIMessagePoint(label=say(language, LABELS[p.kind])[:40], text=shorten(p.text, MAX_AI_POINT_CHARS),
                             sources=srcs)
              for p, srcs in kept]
    return AIMessage(room_id=room_id, ts=now, message_id=message_id, kind="summary",
                     text=shorten(text, MAX_AI_MESSAGE_CHARS), stage_id=stage_id,
                     sources=sources, points=points, generated_by=f"llm:{call.model}", language=language)
