"""Moderator and organiser routes (signed-in staff who may view the room: its deliberation's organiser and
moderators, a stand-alone room's creator, administrators; others get 401 or 404): the audit log of language-model
calls, flags raised by participants and by safety screening, AI messages waiting for approval, pausing or
resuming the AI facilitator in a room, and the log of these actions (who, what, when: ``/moderator-actions``).

Actions go through the bus (``facilitator.control``, ``ai.message``), so they reach the facilitator and the room
whichever node or worker process serves them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import Context, Room, RoomStaff, require_room_staff
from server.core.events import (
    MAX_AI_MESSAGE_CHARS,
    MAX_MODERATOR_MESSAGE_CHARS,
    AIMessage,
    AIMessageRejected,
    FacilitatorControl,
    HelpTaken,
    ModeratorMessage,
    StatementAdded,
)
from server.core.ids import new_id
from server.core.plaintext import normalise, visible_length

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/rooms/{room_id}", dependencies=[Depends(require_room_staff)])


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


class ModeratorAction(BaseModel):
    at: float
    who: str | None = Field(description="The account's email (None: the account was deleted).")
    action: str = Field(description="ai_message.approved, ai_message.edited, ai_message.rejected, facilitator.pause, "
                        "facilitator.resume, moderator.message, moderator.broadcast, help.taken, export_real_names")
    detail: str | None = Field(description="What it acted on (an AI message's or a call's id, a message's text, "
                               "\"all rooms\"), or null.")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_MODERATOR_MESSAGE_CHARS)


def message_text(body: MessageIn) -> str:
    text = normalise(body.text)
    if visible_length(text) < 1:
        raise HTTPException(status_code=422, detail="text: write something")
    return text


@router.post("/messages", status_code=201)
async def message_room(room: Room, ctx: Context, staff: RoomStaff, body: MessageIn) -> dict[str, Any]:
    """Send the room a message from a moderator (shown with the moderator badge, never as the AI's); logged."""
    message = ModeratorMessage(room_id=room.id, message_id=new_id(16), text=message_text(body))
    await ctx.bus.publish(message)
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, "moderator.message", room.id, message.text)
    return message.model_dump(mode="json")


@router.get("/help-requests")
async def read_help_requests(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """Participants' calls for a moderator that nobody has taken yet, oldest first."""
    pending = await asyncio.to_thread(ctx.storage.pending_help_requests, room.id)
    return [p.model_dump(mode="json") for p in pending]


@router.post("/help-requests/{request_id}/take")
async def take_help_request(room: Room, request_id: str, ctx: Context, staff: RoomStaff) -> dict[str, Any]:
    """Take a call for a moderator: it leaves the list, and the participant who called is told a moderator is on the
    way; logged."""
    taken = await asyncio.to_thread(ctx.storage.take_help_request, room.id, request_id[:32], staff.user_id)
    if taken is None:
        raise HTTPException(status_code=404, detail="no call for a moderator waits with this id in this room")
    await ctx.bus.publish(HelpTaken(room_id=room.id, request_id=taken.request_id,
                                    participant_id=taken.participant_id))
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, "help.taken", room.id, taken.request_id)
    return {"request_id": taken.request_id, "status": "taken"}


@router.get("/review")
async def read_review(room: Room, ctx: Context) -> dict[str, Any]:
    """Everything recorded about the room, for review, every participant by alias (``server/review.py``): the
    transcript, AI messages (posted and rejected), statements with their votes, flags, language-model calls and the
    moderator actions."""
    from server.lobby.store import LobbyStore
    from server.review import room_review

    order: list[str] = []
    if room.deliberation_id is not None:
        order = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).arrival_order, room.deliberation_id)
    return await asyncio.to_thread(room_review, ctx.storage, room, order)


@router.get("/moderator-actions")
async def read_moderator_actions(room: Room, ctx: Context) -> list[ModeratorAction]:
    """Every moderator and organiser action in the room, oldest first: who, what, when."""
    entries = await asyncio.to_thread(ctx.storage.audit_entries, room.id)
    return [ModeratorAction(at=e.at, who=e.who, action=e.action, detail=e.detail) for e in entries]


@router.post("/ai-messages/{message_id}/approve")
async def approve_ai_message(room: Room, message_id: str, ctx: Context, staff: RoomStaff,
                             body: Review | None = None) -> dict[str, Any]:
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
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, f"ai_message.{posted.review}", room.id, message_id)
    logger.info("AI message %s in room %s %s by a moderator", message_id, room.id, posted.review)
    return posted.model_dump(mode="json")


@router.post("/ai-messages/{message_id}/reject")
async def reject_ai_message(room: Room, message_id: str, ctx: Context, staff: RoomStaff) -> dict[str, str]:
    """Discard a pending AI message: the room never sees it; it stays in the record as rejected."""
    await _pending(ctx, room.id, message_id)
    if not await asyncio.to_thread(ctx.storage.reject_ai_message, message_id):
        raise HTTPException(status_code=409, detail="this AI message was reviewed meanwhile")
    await ctx.bus.publish(AIMessageRejected(room_id=room.id, message_id=message_id))
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, "ai_message.rejected", room.id, message_id)
    logger.info("AI message %s in room %s rejected by a moderator", message_id, room.id)
    return {"message_id": message_id, "status": "rejected"}


@router.post("/facilitator/{action}")
async def control_facilitator(room: Room, action: Literal["pause", "resume"], ctx: Context,
                              staff: RoomStaff) -> dict[str, str]:
    """Pause the AI facilitator in a room (it stays silent and the stage clock stops) or resume it."""
    if await asyncio.to_thread(ctx.storage.room_plan, room.id) is None:
        raise HTTPException(status_code=409, detail="this room has no AI facilitator")
    await ctx.bus.publish(FacilitatorControl(room_id=room.id, action=action))
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, f"facilitator.{action}", room.id)
    logger.info("facilitator %s in room %s by a moderator", action, room.id)
    return {"room_id": room.id, "facilitator": "paused" if action == "pause" else "running"}
