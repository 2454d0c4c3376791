"""Rooms and transcripts: create a room, look it up, read and export its transcript."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.api.deps import Context, Room
from server.exports import caption_dict, room_dict, to_json, to_webvtt
from server.storage import RoomRecord

router = APIRouter(prefix="/api")


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)

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


def _room_out(request: Request, ctx: Context, room: RoomRecord) -> RoomOut:
    base = (ctx.settings.public_url or str(request.base_url)).rstrip("/")
    return RoomOut(**room_dict(room), url=f"{base}/r/{room.id}")


@router.post("/rooms", status_code=201)
async def create_room(body: RoomCreate, request: Request, ctx: Context) -> RoomOut:
    room = await asyncio.to_thread(ctx.storage.create_room, body.title, ctx.settings.max_participants)
    return _room_out(request, ctx, room)


@router.get("/rooms/{room_id}")
async def read_room(room: Room, request: Request, ctx: Context) -> RoomOut:
    return _room_out(request, ctx, room)


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
    """What the browser needs before joining: ICE servers (STUN/TURN) and whether this is a test deployment."""
    return {
        "ice_servers": [s.model_dump(exclude_none=True) for s in ctx.settings.ice_servers],
        "test_mode": ctx.settings.rtc_loopback_candidates,
        "max_participants": ctx.settings.max_participants,
    }
