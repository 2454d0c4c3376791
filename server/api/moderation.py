"""Moderator and organiser routes (signed-in staff who may view the room: its deliberation's organiser and
moderators, a stand-alone room's creator, administrators; others get 401 or 404): the audit log of language-model
calls, flags raised by participants and by safety screening, AI messages waiting for approval, pausing or
resuming the AI facilitator in a room, muting, removing or moving a participant, ending the room, and the log of these
actions (who, what, when: ``/moderator-actions``).

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

from server.api.deps import ROOM_ID_PATTERN, Context, Room, RoomStaff, require_room_staff
from server.context import ServerContext
from server.core.events import (
    MAX_AI_MESSAGE_CHARS,
    MAX_MODERATOR_MESSAGE_CHARS,
    AIMessage,
    AIMessageRejected,
    FacilitatorControl,
    HelpTaken,
    ModeratorMessage,
    RoomControl,
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
                        "facilitator.resume, moderator.message, moderator.broadcast, help.taken, participant.muted, "
                        "participant.removed, participant.moved, room.ended, export_real_names")
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
    # An edited rule message is no longer its key's words: readers of other languages get the moderator's text
    # machine translated, not the facilitator's table.
    posted = message.model_copy(update={"text": text if edited else message.text, "ts": time.time(),
                                        "review": "edited" if edited else "approved",
                                        "points": [] if edited else message.points,
                                        "key": None if edited else message.key,
                                        "params": {} if edited else message.params})
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


# Acting on people in the live room ----------------------------------------------------------------------------------

class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_room: str = Field(pattern=ROOM_ID_PATTERN, description="A room of the same deliberation, not ended, not full.")


class ActedOn(BaseModel):
    room_id: str
    participant_id: str
    action: Literal["muted", "removed", "moved"]
    to_room: str | None = None


async def _present(ctx: Context, room_id: str, participant_id: str) -> str:
    """The name of a participant who is in the room now (joined, not left), or 404."""
    people = await asyncio.to_thread(ctx.storage.list_participants, room_id)
    found = next((p for p in people if p.id == participant_id and p.left_at is None), None)
    if found is None:
        raise HTTPException(status_code=404, detail="nobody with this id is in this room now")
    return found.name


async def _control(ctx: ServerContext, control: RoomControl) -> None:
    from server.room_control import send_control

    await send_control(ctx.bus, control)


@router.post("/participants/{participant_id}/mute")
async def mute_participant(room: Room, participant_id: str, ctx: Context, staff: RoomStaff) -> ActedOn:
    """Turn a participant's microphone off (they are told a moderator did, and may turn it on again to speak);
    logged."""
    name = await _present(ctx, room.id, participant_id[:32])
    await _control(ctx, RoomControl(room_id=room.id, action="mute", participant_id=participant_id))
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, "participant.muted", room.id, name)
    return ActedOn(room_id=room.id, participant_id=participant_id, action="muted")


@router.post("/participants/{participant_id}/remove")
async def remove_participant(room: Room, participant_id: str, ctx: Context, staff: RoomStaff) -> ActedOn:
    """Remove a participant from the room; in a deliberation's room their place is withdrawn, so they cannot come
    back with the same link; logged."""
    from server.lobby.store import LobbyStore

    name = await _present(ctx, room.id, participant_id[:32])
    if room.deliberation_id is not None:
        await asyncio.to_thread(LobbyStore(ctx.storage.sessions).remove, participant_id)
    await _control(ctx, RoomControl(room_id=room.id, action="remove", participant_id=participant_id))
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, "participant.removed", room.id, name)
    logger.info("participant %s removed from room %s by a moderator", participant_id, room.id)
    return ActedOn(room_id=room.id, participant_id=participant_id, action="removed")


@router.post("/participants/{participant_id}/move")
async def move_participant(room: Room, participant_id: str, body: MoveIn, ctx: Context,
                           staff: RoomStaff) -> ActedOn:
    """Move a participant of a deliberation's room to another of its rooms: their page goes there by itself;
    logged."""
    from server.lobby.store import LobbyStore

    if room.deliberation_id is None:
        raise HTTPException(status_code=409, detail="only a deliberation's participants can be moved to another room")
    name = await _present(ctx, room.id, participant_id[:32])
    target = await asyncio.to_thread(ctx.storage.get_room, body.to_room)
    if target is None or target.deliberation_id != room.deliberation_id:
        raise HTTPException(status_code=404, detail="unknown room in this deliberation")
    refused = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).move, participant_id, target.id,
                                      target.max_participants, time.time())
    if refused is not None:
        raise HTTPException(status_code=409, detail=refused)
    await _control(ctx, RoomControl(room_id=room.id, action="move", participant_id=participant_id,
                                    to_room=target.id))
    await asyncio.to_thread(ctx.storage.audit, staff.user_id, "participant.moved", room.id,
                            f"{name} to {target.title}")
    return ActedOn(room_id=room.id, participant_id=participant_id, action="moved", to_room=target.id)


async def end_room(ctx: ServerContext, room_id: str, user_id: str, detail: str | None = None) -> bool:
    """End a room: nobody joins it any more, and everyone in it is told and leaves. False if it had ended already."""
    if not await asyncio.to_thread(ctx.storage.end_room, room_id):
        return False
    await _control(ctx, RoomControl(room_id=room_id, action="end"))
    await asyncio.to_thread(ctx.storage.audit, user_id, "room.ended", room_id, detail)
    logger.info("room %s ended by a moderator", room_id)
    return True


@router.post("/end")
async def end_this_room(room: Room, ctx: Context, staff: RoomStaff) -> dict[str, str]:
    """End the room for everyone in it (they are thanked and leave; nobody can join again); logged."""
    if not await end_room(ctx, room.id, staff.user_id):
        raise HTTPException(status_code=409, detail="this room has already ended")
    return {"room_id": room.id, "status": "ended"}
