"""Candidate statements for the drafting stage, proposed by an LLM and grounded in the transcript.

The model sees numbered transcript lines (``facilitator.prompt.number_lines``) and must cite the lines each statement
draws on; statements citing nothing real are dropped. Proposals are published as ``statement.added`` events marked as
AI-generated, which anyone in the room may edit, and which the group votes on like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from facilitator.llm import LLMBackend, LLMCallRecord, generate_structured
from facilitator.messages import say
from facilitator.prompt import number_lines
from facilitator.summaries import MAX_LINES
from server.core.events import CaptionFinal, StatementAdded
from server.core.ids import new_id

INSTRUCTIONS = (
    "You help a small group deliberate. From the discussion in the data, propose 3 to 5 short statements the group "
    "could vote on, each of the form '(who) should (do what) so that (why)'. Reflect the different views that were "
    "expressed, including minority ones; do not invent positions nobody took. Every statement must cite the numbers "
    "of the lines it draws on."
)


class Proposal(BaseModel):
    text: str = Field(min_length=10, max_length=300)
    lines: list[int] = Field(min_length=1, max_length=10)


class Proposals(BaseModel):
    statements: list[Proposal] = Field(max_length=5)


async def propose_statements(
    llm: LLMBackend,
    room_id: str,
    captions: Sequence[CaptionFinal],
    now: float,
    record: Callable[[LLMCallRecord], None] | None = None,
    language: str = "en",
) -> list[StatementAdded]:
    """Candidate statements in ``language`` (the room's), each citing the lines it draws on."""
    if not captions:
        return []
    data, index = number_lines(list(captions)[-MAX_LINES:])
    instructions = f"{INSTRUCTIONS} {say(language, 'llm.language')}"
    proposals, _ = await generate_structured(llm, purpose="statements", instructions=instructions, data=data,
                                                schema=Proposals, fallback=Proposals(statements=[]), record=record)
    out = []
    for proposal in proposals.statements:
        sources = [index[n] for n in dict.fromkeys(proposal.lines) if n in index]
        if not sources:
            continue
        out.append(StatementAdded(room_id=room_id, ts=now, statement_id=f"s-ai-{new_id(10)}",
                                  text=" ".join(proposal.text.split()), author_id=None,
                                  author_name="AI facilitator", ai_generated=True, sources=sources))
    return out
