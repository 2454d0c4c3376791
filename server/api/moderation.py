"""Moderator and organiser routes (``Authorization: Bearer <moderator token>``): the audit log of language-model
calls, flags raised by participants and by safety screening, AI messages waiting for approval, and pausing or
resuming the AI facilitator in a room.

Actions go through the bus (``facilitator.control``, ``ai.message``), so they reach the facilitator and the room
whichever node or worker process serves them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import Context, Moderator, Room
from server.events import MAX_AI_MESSAGE_CHARS, AIMessage, FacilitatorControl, StatementAdded

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/rooms/{room_id}", dependencies=[Moderator])


@router.get("/llm-calls")
async def read_llm_calls(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """Every language-model call made for the room: purpose, model, prompt, output, latency and outcome."""
    return await asyncio.to_thread(ctx.storage.llm_calls, room.id)


@router.get("/summary-flags")
async def read_summary_flags(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """Summary points participants marked "that's not what we said"."""
    return await asyncio.to_thread(ctx.storage.summary_flags, room.id)


@router.get("/safety-flags")
async def read_safety_flags(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """Utterances flagged as abusive or far off-topic, with who said them, why, and what flagged them."""
    return await asyncio.to_thread(ctx.storage.safety_flags, room.id)


@router.get("/ai-messages/pending")
async def read_pending_ai_messages(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """AI messages waiting for a moderator (rooms whose deliberation has ``ai_messages: approve``), oldest first,
    each with the AI-proposed statements it announces (they are posted with it, or dropped with it)."""
    pending = await asyncio.to_thread(ctx.storage.pending_ai_messages, room.id)
    return [{**m.model_dump(mode="json"), "statements": [st.model_dump(mode="json") for st in statements]}
            for m, statements in pending]


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, min_length=1, max_length=MAX_AI_MESSAGE_CHARS,
                             description="Replacement text (approve only); omitted: post the AI's text as it is.")


async def _pending(ctx: Context, room_id: str, message_id: str) -> tuple[AIMessage, list[StatementAdded]]:
    found = await asyncio.to_thread(ctx.storage.ai_message_status, message_id)
    if found is None or found[0].room_id != room_id:
        raise HTTPException(status_code=404, detail="unknown AI message in this room")
    message, status, statements = found
    if status != "pending":
        raise HTTPException(status_code=409, detail=f"this AI message is already {status}")
    return message, statements


@router.post("/ai-messages/{message_id}/approve")
async def approve_ai_message(room: Room, message_id: str, ctx: Context, body: Review | None = None) -> dict[str, Any]:
    """Post a pending AI message to the room, edited if ``text`` is given (then labelled as edited by a moderator),
    after the AI-proposed statements it announces."""
    message, statements = await _pending(ctx, room.id, message_id)
    text = " ".join(body.text.split()) if body is not None and body.text else None
    edited = text is not None and text != message.text
    posted = message.model_copy(update={"text": text if edited else message.text, "ts": time.time(),
                                        "review": "edited" if edited else "approved",
                                        "points": [] if edited else message.points})
    if not await asyncio.to_thread(ctx.storage.add_ai_message, posted):
        raise HTTPException(status_code=409, detail="this AI message was reviewed meanwhile")
    for statement in statements:
        await ctx.bus.publish(statement.model_copy(update={"ts": posted.ts}))
    await ctx.bus.publish(posted)
    logger.info("AI message %s in room %s %s by a moderator", message_id, room.id, posted.review)
    return posted.model_dump(mode="json")


@router.post("/ai-messages/{message_id}/reject")
async def reject_ai_message(room: Room, message_id: str, ctx: Context) -> dict[str, str]:
    """Discard a pending AI message: the room never sees it; it stays in the record as rejected."""
    await _pending(ctx, room.id, message_id)
    if not await asyncio.to_thread(ctx.storage.reject_ai_message, message_id):
        raise HTTPException(status_code=409, detail="this AI message was reviewed meanwhile")
    logger.info("AI message %s in room %s rejected by a moderator", message_id, room.id)
    return {"message_id": message_id, "status": "rejected"}


@router.post("/facilitator/{action}")
async def control_facilitator(room: Room, action: Literal["pause", "resume"], ctx: Context) -> dict[str, str]:
    """Pause the AI facilitator in a room (it stays silent and the stage clock stops) or resume it."""
    if await asyncio.to_thread(ctx.storage.deliberation, room.id) is None:
        raise HTTPException(status_code=409, detail="this room has no AI facilitator")
    await ctx.bus.publish(FacilitatorControl(room_id=room.id, action=action))
    logger.info("facilitator %s in room %s by a moderator", action, room.id)
    return {"room_id": room.id, "facilitator": "paused" if action == "pause" else "running"}
