"""Rooms and transcripts: create a room, look it up, read and export its transcript."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from facilitator.template import builtin_templates
from server.api.deps import Context, Room
from server.exports import caption_dict, room_dict, to_json, to_webvtt
from server.storage import RoomRecord
from server.turn import browser_ice_servers

router = APIRouter(prefix="/api")


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    template: str | None = Field(default=None, description="Deliberation template id; none: no AI facilitator.")
    question: str | None = Field(default=None, max_length=1000, description="Replaces the template's question.")
    ai_messages: Literal["direct", "approve"] | None = Field(
        default=None, description="'approve': AI messages wait for a moderator; default: the template's setting.")

    @field_validator("title")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("title must not be blank")
        return value


class RoomOut(BaseModel):
    id: str
    title: str
    created_at: float
    max_participants: int
    url: str
    template: str | None = None
    question: str | None = None
    ai_messages: str | None = None


async def _room_out(request: Request, ctx: Context, room: RoomRecord) -> RoomOut:
    base = (ctx.settings.public_url or str(request.base_url)).rstrip("/")
    deliberation = await asyncio.to_thread(ctx.storage.deliberation, room.id)
    template = question = ai_messages = None
    if deliberation is not None:
        template, ai_messages = deliberation.template_id, deliberation.ai_messages
        known = builtin_templates().get(template)
        question = deliberation.question or (known.question if known else None)
    return RoomOut(**room_dict(room), url=f"{base}/r/{room.id}", template=template, question=question,
                   ai_messages=ai_messages)


@router.post("/rooms", status_code=201)
async def create_room(body: RoomCreate, request: Request, ctx: Context) -> RoomOut:
    if body.template is not None and body.template not in builtin_templates():
        known = ", ".join(sorted(builtin_templates()))
        raise HTTPException(status_code=422, detail=f"template: unknown template {body.template!r} (known: {known})")
    room = await asyncio.to_thread(ctx.storage.create_room, body.title, ctx.settings.max_participants)
    if body.template is not None:
        question = " ".join(body.question.split()) if body.question and body.question.strip() else None
        ai_messages = body.ai_messages or builtin_templates()[body.template].ai_messages
        await asyncio.to_thread(ctx.storage.set_deliberation, room.id, body.template, question, ai_messages)
    return await _room_out(request, ctx, room)


@router.get("/rooms/{room_id}")
async def read_room(room: Room, request: Request, ctx: Context) -> RoomOut:
    return await _room_out(request, ctx, room)


@router.get("/rooms/{room_id}/ai-messages")
async def read_ai_messages(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """Everything the AI facilitator has posted in the room, oldest first."""
    messages = await asyncio.to_thread(ctx.storage.ai_messages, room.id)
    return [m.model_dump(mode="json") for m in messages]


@router.get("/rooms/{room_id}/statements")
async def read_statements(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """The room's statements (current text and revision) with their vote tallies (individual votes are not
    exposed)."""

    listed = await asyncio.to_thread(ctx.storage.statements_with_tallies, room.id)
    return [{**statement.model_dump(mode="json"), "tally": tally} for statement, tally in listed]


@router.get("/templates")
async def list_templates() -> list[dict[str, Any]]:
    """The deliberation templates a room can run."""
    return [{"id": t.id, "title": t.title, "minutes": t.total_minutes, "question": t.question,
             "stages": [{"id": s.id, "title": s.title, "kind": s.kind.value, "minutes": s.minutes} for s in t.stages]}
            for t in builtin_templates().values()]


@router.get("/rooms/{room_id}/transcript")
async def read_transcript(room: Room, ctx: Context) -> dict[str, Any]:
    captions = await asyncio.to_thread(ctx.storage.transcript, room.id)
    return {"room": room_dict(room), "captions": [caption_dict(c) for c in captions]}


def _download_name(room: RoomRecord, ext: str) -> str:
    return f'attachment; filename="moot-{room.id}-transcript.{ext}"'


@router.get("/rooms/{room_id}/transcript.vtt")
async def export_vtt(room: Room, ctx: Context) -> Response:
    captions = await asyncio.to_thread(ctx.storage.transcript, room.id)
    return Response(
        to_webvtt(room, captions),
        media_type="text/vtt; charset=utf-8",
        headers={"Content-Disposition": _download_name(room, "vtt")},
    )


@router.get("/rooms/{room_id}/transcript.json")
async def export_json(room: Room, ctx: Context) -> Response:
    import json

    captions = await asyncio.to_thread(ctx.storage.transcript, room.id)
    return Response(
        json.dumps(to_json(room, captions), ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": _download_name(room, "json")},
    )


@router.get("/config")
async def client_config(ctx: Context) -> dict[str, Any]:
    """What the browser needs before joining: STUN servers and whether this is a test deployment. TURN credentials
    are handed only to participants, in ``welcome``: an open endpoint must not be a standing source of relay access."""
    return {
        "ice_servers": browser_ice_servers(ctx.settings, with_turn=False),
        "test_mode": ctx.settings.rtc_loopback_candidates,
        "max_participants": ctx.settings.max_participants,
    }
