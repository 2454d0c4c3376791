"""Rooms and transcripts: create a room, look it up, read and export its transcript."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from facilitator.template import builtin_templates
from server.accounts.service import Principal
from server.api.deps import Context, MaybePrincipal, Room, RoomReader
from server.context import ServerContext
from server.core.directory import ROOM_NODE
from server.core.events import StatementAdded
from server.deliberations import access
from server.deliberations.store import DeliberationStore
from server.exports import (
    AI_AUTHOR,
    aliases,
    caption_dict,
    pseudonymised,
    room_dict,
    to_csv,
    to_json,
    to_markdown,
    to_srt,
    to_webvtt,
)
from server.lobby.store import LobbyStore
from server.storage import RoomRecord
from server.turn import browser_ice_servers

logger = logging.getLogger(__name__)

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


# What a stand-alone room offers to choose from (the languages the interface is translated into).
OPEN_ROOM_LANGUAGES = ("en", "fr", "de", "es", "nl")


class RoomOut(BaseModel):
    id: str
    title: str
    created_at: float
    max_participants: int
    url: str
    template: str | None = None
    question: str | None = None
    ai_messages: str | None = None
    node_url: str = Field(description="Base URL of the server node hosting the room now (this node's when none does): "
                          "its signaling WebSocket is {node_url}/ws/rooms/{id}.")
    deliberation_id: str | None = Field(default=None, description="The deliberation whose lobby formed the room: "
                                        "its participants join with their participant credential.")
    languages: list[str] = Field(default_factory=lambda: list(OPEN_ROOM_LANGUAGES), description="The languages "
                                 "participants may choose to speak and read (a deliberation's: those it offers).")


async def hosting_node_url(request: Request, ctx: ServerContext, room_id: str) -> str:
    """The base URL of the node that hosts the room now, or this node's (as configured, else as this client reached
    it) when none does."""
    own = (ctx.settings.node_url or ctx.settings.public_url or str(request.base_url)).rstrip("/")
    if ctx.directory is None:
        return own
    lease = await ctx.directory.where(ROOM_NODE, room_id)
    if lease is None or lease.holder == ctx.directory.holder or not lease.info.get("url"):
        return own
    return lease.info["url"].rstrip("/")


async def _room_out(request: Request, ctx: Context, room: RoomRecord) -> RoomOut:
    base = (ctx.settings.public_url or str(request.base_url)).rstrip("/")
    plan = await asyncio.to_thread(ctx.storage.room_plan, room.id)
    template = question = ai_messages = None
    if plan is not None:
        template, ai_messages = plan.template_id, plan.ai_messages
        known = builtin_templates().get(template)
        question = plan.question or (known.question if known else None)
    languages = list(OPEN_ROOM_LANGUAGES)
    if room.deliberation_id is not None:
        record = await asyncio.to_thread(DeliberationStore(ctx.storage.sessions).get, room.deliberation_id)
        if record is not None:
            languages = list(record.spec.languages)
    return RoomOut(**room_dict(room), url=f"{base}/r/{room.id}", template=template, question=question,
                   ai_messages=ai_messages, node_url=await hosting_node_url(request, ctx, room.id),
                   deliberation_id=room.deliberation_id, languages=languages)


@router.post("/rooms", status_code=201)
async def create_room(body: RoomCreate, request: Request, ctx: Context, principal: MaybePrincipal) -> RoomOut:
    """A stand-alone room: an organiser's (or administrator's), who moderates and reviews it; or, with
    ``MOOT_OPEN_ROOMS`` (the embedded default), anyone's, with no creator (its participants and administrators
    read its history)."""
    if principal is not None and not access.can_create(principal):
        raise HTTPException(status_code=403, detail="only organisers and administrators create rooms")
    if principal is None and not ctx.settings.open_rooms:
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                            detail="sign in as an organiser to create a room")
    if body.template is not None and body.template not in builtin_templates():
        known = ", ".join(sorted(builtin_templates()))
        raise HTTPException(status_code=422, detail=f"template: unknown template {body.template!r} (known: {known})")
    room = await asyncio.to_thread(ctx.storage.create_room, body.title, ctx.settings.max_participants,
                                   principal.user_id if principal is not None else None)
    if body.template is not None:
        question = " ".join(body.question.split()) if body.question and body.question.strip() else None
        ai_messages = body.ai_messages or builtin_templates()[body.template].ai_messages
        await asyncio.to_thread(ctx.storage.set_room_plan, room.id, body.template, question, ai_messages)
    return await _room_out(request, ctx, room)


@router.get("/rooms/{room_id}")
async def read_room(room: Room, request: Request, ctx: Context) -> RoomOut:
    return await _room_out(request, ctx, room)


@router.get("/rooms/{room_id}/ai-messages", dependencies=[RoomReader])
async def read_ai_messages(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """Everything the AI facilitator has posted in the room, oldest first."""
    messages = await asyncio.to_thread(ctx.storage.ai_messages, room.id)
    return [m.model_dump(mode="json") for m in messages]


@router.get("/rooms/{room_id}/statements", dependencies=[RoomReader])
async def read_statements(room: Room, ctx: Context) -> list[dict[str, Any]]:
    """The room's statements (current text and revision) with their vote tallies (individual votes are not
    exposed)."""

    listed = await asyncio.to_thread(ctx.storage.statements_with_tallies, room.id)
    return [{**statement.model_dump(mode="json"), "tally": tally} for statement, tally in listed]


@router.get("/templates")
async def list_templates(
    lang: Annotated[str | None, Query(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                                      description="Words in this language where the template has them.")] = None,
) -> list[dict[str, Any]]:
    """The deliberation templates a room can run, and the languages each has its words in."""
    listed = []
    for template in builtin_templates().values():
        t = template.localised(lang)
        listed.append({"id": t.id, "title": t.title, "minutes": t.total_minutes, "question": t.question,
                       "language": t.language, "languages": template.languages,
                       "stages": [{"id": s.id, "title": s.title, "kind": s.kind.value, "minutes": s.minutes}
                                  for s in t.stages]})
    return listed


@router.get("/rooms/{room_id}/transcript", dependencies=[RoomReader])
async def read_transcript(room: Room, ctx: Context) -> dict[str, Any]:
    captions = await asyncio.to_thread(ctx.storage.transcript, room.id)
    return {"room": room_dict(room), "captions": [caption_dict(c) for c in captions]}


def _download_name(room: RoomRecord, ext: str) -> str:
    return f'attachment; filename="moot-{room.id}-transcript.{ext}"'


Names = Literal["aliases", "real"]


async def _exported(room: RoomRecord, ctx: ServerContext, names: str, principal: Principal | None) -> list[Any]:
    """The room's captions for an export: speakers by alias, or (``names=real``) by their real names for the
    organiser only (the deliberation's, or who created the stand-alone room) or an administrator, and the request is
    written to the audit log."""
    captions, _ = await _export_parts(room, ctx, names, principal)
    return captions


async def _export_parts(room: RoomRecord, ctx: ServerContext, names: str,
                        principal: Principal | None) -> tuple[list[Any], dict[str, str] | None]:
    """``_exported``'s captions, and the alias of each participant id (None: real names were asked for)."""
    captions = await asyncio.to_thread(ctx.storage.transcript, room.id)
    if names == "real":
        if principal is None:
            raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                                detail="real names: only for the deliberation's organiser, signed in")
        store = DeliberationStore(ctx.storage.sessions)
        if not await asyncio.to_thread(access.may_manage_room, store, principal, room.created_by,
                                       room.deliberation_id):
            raise HTTPException(status_code=403, detail="real names: only for the deliberation's organiser")
        await asyncio.to_thread(ctx.storage.audit, principal.user_id, "export_real_names", room.id)
        logger.info("user %s exported room %s with real names", principal.user_id, room.id)
        return captions, None
    order: list[str] = []
    if room.deliberation_id is not None:
        order = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).arrival_order, room.deliberation_id)
    mapping = aliases(order, captions)
    return pseudonymised(captions, mapping), mapping


@router.get("/rooms/{room_id}/transcript.vtt", dependencies=[RoomReader])
async def export_vtt(room: Room, ctx: Context, principal: MaybePrincipal, names: Names = "aliases") -> Response:
    """The transcript as WebVTT; speakers by alias unless ``names=real`` (the organiser; logged)."""
    captions = await _exported(room, ctx, names, principal)
    return Response(
        to_webvtt(room, captions),
        media_type="text/vtt; charset=utf-8",
        headers={"Content-Disposition": _download_name(room, "vtt")},
    )


@router.get("/rooms/{room_id}/transcript.json", dependencies=[RoomReader])
async def export_json(room: Room, ctx: Context, principal: MaybePrincipal, names: Names = "aliases") -> Response:
    """The transcript as JSON; speakers by alias unless ``names=real`` (the organiser; logged)."""
    import json

    captions = await _exported(room, ctx, names, principal)
    return Response(
        json.dumps(to_json(room, captions), ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": _download_name(room, "json")},
    )


@router.get("/rooms/{room_id}/transcript.srt", dependencies=[RoomReader])
async def export_srt(room: Room, ctx: Context, principal: MaybePrincipal, names: Names = "aliases") -> Response:
    """The transcript as SubRip subtitles; speakers by alias unless ``names=real`` (the organiser; logged)."""
    captions = await _exported(room, ctx, names, principal)
    return Response(to_srt(room, captions), media_type="application/x-subrip; charset=utf-8",
                    headers={"Content-Disposition": _download_name(room, "srt")})


@router.get("/rooms/{room_id}/transcript.csv", dependencies=[RoomReader])
async def export_csv(room: Room, ctx: Context, principal: MaybePrincipal, names: Names = "aliases") -> Response:
    """The transcript as CSV (a line per caption); speakers by alias unless ``names=real`` (the organiser; logged)."""
    captions = await _exported(room, ctx, names, principal)
    return Response(to_csv(room, captions), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": _download_name(room, "csv")})


@router.get("/rooms/{room_id}/report.md", dependencies=[RoomReader])
async def export_markdown(room: Room, ctx: Context, principal: MaybePrincipal, names: Names = "aliases") -> Response:
    """A Markdown report of the room: speaking time, statements with their votes, the transcript; people by alias
    unless ``names=real`` (the organiser; logged)."""
    captions, mapping = await _export_parts(room, ctx, names, principal)
    listed = await asyncio.to_thread(ctx.storage.statements_with_tallies, room.id)
    if mapping is not None:  # authors who never spoke are numbered after those who did
        mapping = aliases([*mapping, *(s.author_id for s, _ in listed if s.author_id is not None)], [])

    def author(statement: StatementAdded) -> str:
        if statement.author_id is None:
            return AI_AUTHOR
        return statement.author_name if mapping is None else mapping[statement.author_id]

    statements = [(s.text, author(s), tally) for s, tally in listed]
    return Response(to_markdown(room, captions, statements), media_type="text/markdown; charset=utf-8",
                    headers={"Content-Disposition": _download_name(room, "md")})


@router.get("/config")
async def client_config(ctx: Context) -> dict[str, Any]:
    """What the browser needs before joining: STUN servers and whether this is a test deployment. TURN credentials
    are handed only to participants, in ``welcome``: an open endpoint must not be a standing source of relay access."""
    return {
        "ice_servers": browser_ice_servers(ctx.settings, with_turn=False),
        "test_mode": ctx.settings.rtc_loopback_candidates,
        "max_participants": ctx.settings.max_participants,
        "open_rooms": ctx.settings.open_rooms,
    }
