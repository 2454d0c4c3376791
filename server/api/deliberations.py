"""Deliberations for organisers, moderators and administrators (``server/deliberations/access.py`` says who may do
what; an unknown id and one you may not see are the same 404).

- ``POST /api/deliberations``: create (organiser, admin); ``GET /api/deliberations``: those you may see;
- ``GET|PUT|DELETE /api/deliberations/{id}``: read, change the settings, delete with everything in it;
- ``POST /api/deliberations/{id}/open|pause|close``;
- ``GET /api/deliberations/{id}/moderators``, ``DELETE .../moderators/{user_id}``;
- ``POST /api/deliberations/{id}/invites``: a single-use moderator invite link;
- ``POST /api/deliberations/{id}/facilitator/pause|resume``: the AI facilitator in all its rooms (organiser,
  moderators);
- ``POST /api/deliberations/{id}/broadcast``: a moderator's message to all its rooms (organiser, moderators);
- ``GET /api/deliberations/{id}/search?q=``: full-text search of what was said in its rooms (organiser, moderators);
- ``GET /api/deliberations/{id}/polis/{file}``: statements and votes as Polis exports them (organiser, moderators);
- ``POST /api/deliberations/{id}/report``: build the cross-room report in the background; ``GET`` the same path: its
  progress, then the report (organiser, moderators);
- ``GET /api/invites/{token}``: what an invite is for; ``POST /api/invites/{token}/accept``: signed in, or with an
  email and password that create a moderator account.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from facilitator.template import builtin_templates
from server.accounts.emails import InvalidEmail
from server.accounts.passwords import WeakPassword
from server.accounts.service import AccountService, Principal
from server.accounts.store import AccountExists
from server.api.deps import Context, MaybePrincipal, Staff
from server.api.moderation import MessageIn, message_text
from server.context import ServerContext
from server.deliberations import access
from server.deliberations import polis_export as polis
from server.deliberations.erasure import Erasure
from server.deliberations.spec import DeliberationSpec
from server.deliberations.store import DeliberationRecord, DeliberationStore, InvalidTransition, InviteUnusable

router = APIRouter(prefix="/api", tags=["deliberations"])

NOT_FOUND = "unknown deliberation"


class DeliberationOut(DeliberationSpec):
    model_config = ConfigDict(extra="forbid")
    id: str
    status: Literal["draft", "open", "paused", "closed"]
    created_at: float
    updated_at: float
    participant_url: str = Field(description="The one link participants use to join (the lobby).")
    can_manage: bool = Field(description="Whether the asker may change it (organiser or admin), or only view it.")


class ModeratorOut(BaseModel):
    user_id: str
    email: str
    added_at: float


class InviteOut(BaseModel):
    url: str
    expires_at: float


class InviteInfo(BaseModel):
    deliberation_id: str
    title: str


class InviteAcceptance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


def _store(ctx: ServerContext) -> DeliberationStore:
    return DeliberationStore(ctx.storage.sessions)


def _accounts(ctx: ServerContext) -> AccountService:
    if ctx.accounts is None:  # pragma: no cover - every app has one
        raise HTTPException(status_code=503, detail="accounts are not available")
    return ctx.accounts


def _base(request: Request, ctx: ServerContext) -> str:
    return (ctx.settings.public_url or str(request.base_url)).rstrip("/")


def _out(request: Request, ctx: ServerContext, record: DeliberationRecord, principal: Principal) -> DeliberationOut:
    return DeliberationOut(**record.spec.model_dump(), id=record.id, status=record.status,  # type: ignore[arg-type]
                           created_at=record.created_at, updated_at=record.updated_at,
                           participant_url=f"{_base(request, ctx)}/d/{record.id}",
                           can_manage=access.can_manage(principal, record))


def _check_template(spec: DeliberationSpec) -> None:
    if spec.template not in builtin_templates():
        raise HTTPException(status_code=422, detail=f"template: unknown template {spec.template!r} "
                            f"(known: {', '.join(sorted(builtin_templates()))})")


async def visible(deliberation_id: str, ctx: Context, principal: Staff) -> DeliberationRecord:
    record = await asyncio.to_thread(access.viewable, _store(ctx), principal, deliberation_id)
    if record is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return record


Visible = Annotated[DeliberationRecord, Depends(visible)]


async def managed(record: Visible, principal: Staff) -> DeliberationRecord:
    if not access.can_manage(principal, record):
        raise HTTPException(status_code=403, detail="only its organiser (or an administrator) may do that")
    return record


Managed = Annotated[DeliberationRecord, Depends(managed)]


@router.post("/deliberations", status_code=201)
async def create_deliberation(request: Request, ctx: Context, principal: Staff,
                              spec: DeliberationSpec) -> DeliberationOut:
    if not access.can_create(principal):
        raise HTTPException(status_code=403, detail="only organisers and administrators create deliberations")
    _check_template(spec)
    record = await asyncio.to_thread(_store(ctx).create, principal.user_id, spec, ctx.clock())
    return _out(request, ctx, record, principal)


@router.get("/deliberations")
async def list_deliberations(request: Request, ctx: Context, principal: Staff) -> list[DeliberationOut]:
    store = _store(ctx)
    if principal.role == "admin":
        records = await asyncio.to_thread(store.all)
    else:
        own = await asyncio.to_thread(store.of_organiser, principal.user_id) \
            if principal.role == "organiser" else []
        moderated = await asyncio.to_thread(store.moderated_by, principal.user_id)
        seen = {r.id for r in own}
        records = own + [r for r in moderated if r.id not in seen]
    return [_out(request, ctx, r, principal) for r in records]


@router.get("/deliberations/{deliberation_id}")
async def read_deliberation(request: Request, ctx: Context, principal: Staff, record: Visible) -> DeliberationOut:
    return _out(request, ctx, record, principal)


@router.put("/deliberations/{deliberation_id}")
async def update_deliberation(request: Request, ctx: Context, principal: Staff, record: Managed,
                              spec: DeliberationSpec) -> DeliberationOut:
    _check_template(spec)
    try:
        updated = await asyncio.to_thread(_store(ctx).update, record.id, spec, ctx.clock())
    except InvalidTransition as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return _out(request, ctx, updated, principal)


@router.delete("/deliberations/{deliberation_id}", status_code=204)
async def delete_deliberation(ctx: Context, record: Managed) -> None:
    """Deletes it with its rooms and everything said and decided in them (rows are gone, not flagged)."""
    await asyncio.to_thread(_store(ctx).delete, record.id)


@router.get("/deliberations/{deliberation_id}/moderators")
async def list_moderators(ctx: Context, record: Managed) -> list[ModeratorOut]:
    moderators = await asyncio.to_thread(_store(ctx).moderators, record.id)
    return [ModeratorOut(user_id=m.user_id, email=m.email, added_at=m.added_at) for m in moderators]


@router.delete("/deliberations/{deliberation_id}/moderators/{user_id}", status_code=204)
async def remove_moderator(ctx: Context, record: Managed, user_id: str) -> None:
    if not await asyncio.to_thread(_store(ctx).remove_moderator, record.id, user_id):
        raise HTTPException(status_code=404, detail="not a moderator of this deliberation")


@router.delete("/deliberations/{deliberation_id}/participants/{participant_id}", status_code=204)
async def delete_participant(ctx: Context, record: Managed, participant_id: str) -> None:
    """Deletes one participant's data for real: captions, the statements they wrote (with their votes), their
    votes, flags, join records and their consent."""
    erased = await asyncio.to_thread(Erasure(ctx.storage.sessions).delete_participant, record.id, participant_id)
    if not erased:
        raise HTTPException(status_code=404, detail="no such participant in this deliberation")


@router.post("/deliberations/{deliberation_id}/invites", status_code=201)
async def create_invite(request: Request, ctx: Context, principal: Staff, record: Managed) -> InviteOut:
    now = ctx.clock()
    ttl = ctx.settings.invite_ttl_s
    token = await asyncio.to_thread(_store(ctx).create_invite, record.id, principal.user_id, now, ttl)
    return InviteOut(url=f"{_base(request, ctx)}/invite/{token}", expires_at=now + ttl)


def _token_shape(token: str) -> None:
    if not 20 <= len(token) <= 100:
        raise HTTPException(status_code=404, detail="this invite is unknown, used or expired")


@router.get("/invites/{token}")
async def read_invite(ctx: Context, token: str) -> InviteInfo:
    _token_shape(token)
    store = _store(ctx)
    deliberation_id = await asyncio.to_thread(store.invite_deliberation, token, ctx.clock())
    record = await asyncio.to_thread(store.get, deliberation_id) if deliberation_id else None
    if record is None:
        raise HTTPException(status_code=404, detail="this invite is unknown, used or expired")
    return InviteInfo(deliberation_id=record.id, title=record.spec.title)


@router.post("/invites/{token}/accept")
async def accept_invite(request: Request, ctx: Context, principal: MaybePrincipal, token: str,
                        body: InviteAcceptance | None = None) -> DeliberationOut:
    """Signed in: the invite makes you a moderator of its deliberation. Not signed in: give an email and a password
    for a new moderator account (an existing account signs in first)."""
    _token_shape(token)
    store = _store(ctx)
    accounts = _accounts(ctx)
    if principal is None:
        if body is None:
            raise HTTPException(status_code=401, detail="sign in, or give an email and a password for a new account")
        if await asyncio.to_thread(store.invite_deliberation, token, ctx.clock()) is None:
            raise HTTPException(status_code=404, detail="this invite is unknown, used or expired")
        try:
            await asyncio.to_thread(accounts.add_user, body.email, "moderator", body.password)
        except (InvalidEmail, WeakPassword) as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except AccountExists:
            raise HTTPException(status_code=409, detail="an account with this email exists: sign in first, then "
                                "open the invite again") from None
        signed = await asyncio.to_thread(accounts.sign_in, body.email, body.password)
        principal = signed.principal
    try:
        deliberation_id = await asyncio.to_thread(store.accept_invite, token, principal.user_id, ctx.clock())
    except InviteUnusable:
        raise HTTPException(status_code=404, detail="this invite is unknown, used or expired") from None
    record = await asyncio.to_thread(store.get, deliberation_id)
    assert record is not None
    return _out(request, ctx, record, principal)


async def _rooms(ctx: ServerContext, record: DeliberationRecord) -> dict[str, str]:
    """The deliberation's rooms: id -> title, oldest first."""
    from server.lobby.store import LobbyStore

    status = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).status, record.id)
    return {r.room_id: r.title for r in status.rooms}


class BroadcastOut(BaseModel):
    rooms: list[str] = Field(description="The rooms the message went to.")
    text: str


@router.post("/deliberations/{deliberation_id}/broadcast")
async def broadcast(ctx: Context, principal: Staff, record: Visible, body: MessageIn) -> BroadcastOut:
    """A moderator's message to every room of the deliberation (shown with the moderator badge); logged per room."""
    from server.core.events import ModeratorMessage
    from server.core.ids import new_id

    if record.status == "closed":
        raise HTTPException(status_code=409, detail="the deliberation is closed: its rooms have ended")
    text = message_text(body)
    rooms = list(await _rooms(ctx, record))
    message_id = new_id(16)
    for room_id in rooms:
        await ctx.bus.publish(ModeratorMessage(room_id=room_id, message_id=message_id, text=text, broadcast=True))
        await asyncio.to_thread(ctx.storage.audit, principal.user_id, "moderator.broadcast", room_id, text)
    return BroadcastOut(rooms=rooms, text=text)


class FacilitatorOut(BaseModel):
    rooms: list[str] = Field(description="The rooms whose AI facilitator was paused or resumed.")
    facilitator: Literal["paused", "running"]


@router.post("/deliberations/{deliberation_id}/facilitator/{action}")
async def control_all_facilitators(ctx: Context, principal: Staff, record: Visible,
                                   action: Literal["pause", "resume"]) -> FacilitatorOut:
    """Pause (or resume) the AI facilitator in every room of the deliberation that has one; logged per room."""
    from server.core.events import FacilitatorControl

    rooms = await _rooms(ctx, record)
    facilitated = [room for room in rooms if await asyncio.to_thread(ctx.storage.room_plan, room) is not None]
    for room_id in facilitated:
        await ctx.bus.publish(FacilitatorControl(room_id=room_id, action=action))
        await asyncio.to_thread(ctx.storage.audit, principal.user_id, f"facilitator.{action}", room_id, "all rooms")
    return FacilitatorOut(rooms=facilitated, facilitator="paused" if action == "pause" else "running")


class SearchHit(BaseModel):
    room_id: str
    room_title: str
    utterance_id: str = Field(description="The line in its room's transcript (/api/rooms/{room_id}/transcript).")
    start: float
    end: float
    speaker: str = Field(description="The speaker's alias in this deliberation (\"Participant N\").")
    text: str
    language: str | None


@router.get("/deliberations/{deliberation_id}/search")
async def search(ctx: Context, record: Visible,
                 q: Annotated[str, Query(min_length=1, max_length=200, description="Words to find (all of them).")],
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[SearchHit]:
    """What was said in any room of the deliberation, with the database's full-text index: lines containing every
    word of ``q``, in time order; speakers by alias (organiser and moderators)."""
    from server.exports import aliases
    from server.lobby.store import LobbyStore

    rooms = await _rooms(ctx, record)
    hits = await asyncio.to_thread(ctx.storage.search_captions, list(rooms), q, limit)
    names = aliases(await asyncio.to_thread(LobbyStore(ctx.storage.sessions).arrival_order, record.id), hits)
    return [SearchHit(room_id=h.room_id, room_title=rooms[h.room_id], utterance_id=h.utterance_id, start=h.start,
                      end=h.end, speaker=names[h.participant_id], text=h.text, language=h.language) for h in hits]


@router.get("/deliberations/{deliberation_id}/polis/{name}")
async def polis_export(request: Request, ctx: Context, record: Visible, name: str) -> Response:
    """The deliberation's statements and votes in the layout of Polis' export (``comments.csv``, ``votes.csv``,
    ``participants-votes.csv``, ``summary.csv``; see ``server/deliberations/polis_export.py``): participants as
    numbers, never names."""
    if name not in polis.FILES:
        raise HTTPException(status_code=404, detail=f"no such file (there are: {', '.join(polis.FILES)})")
    from server.lobby.store import LobbyStore

    order = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).arrival_order, record.id)
    conversation = await asyncio.to_thread(polis.gather, ctx.storage.sessions, record.id, record.spec.title,
                                           record.spec.question, f"{_base(request, ctx)}/d/{record.id}", order)
    return Response(polis.render(conversation)[name], media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _transition(request: Request, ctx: ServerContext, principal: Principal, record: DeliberationRecord,
                      action: str) -> DeliberationOut:
    try:
        updated = await asyncio.to_thread(_store(ctx).transition, record.id, action, ctx.clock())
    except InvalidTransition as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return _out(request, ctx, updated, principal)


@router.post("/deliberations/{deliberation_id}/open")
async def open_deliberation(request: Request, ctx: Context, principal: Staff, record: Managed) -> DeliberationOut:
    """People may arrive in the lobby; rounds may start."""
    return await _transition(request, ctx, principal, record, "open")


@router.post("/deliberations/{deliberation_id}/pause")
async def pause_deliberation(request: Request, ctx: Context, principal: Staff, record: Managed) -> DeliberationOut:
    """No new arrivals or rounds for now."""
    return await _transition(request, ctx, principal, record, "pause")


@router.post("/deliberations/{deliberation_id}/close")
async def close_deliberation(request: Request, ctx: Context, principal: Staff, record: Managed) -> DeliberationOut:
    """For good: its rooms end (everyone in them is told and leaves), and it can no longer change."""
    from server.api.moderation import end_room

    closed = await _transition(request, ctx, principal, record, "close")
    for room_id in await _rooms(ctx, record):
        await end_room(ctx, room_id, principal.user_id, "with the deliberation")
    return closed


class ReportStatus(BaseModel):
    status: Literal["none", "running", "done", "failed"]
    step: int = Field(description="The step it is on (from 0), while running.")
    step_name: str
    steps: int
    started_at: float | None
    finished_at: float | None
    error: str | None
    report: dict[str, Any] | None = Field(description="The last report built (server/report/build.py), if any.")


async def _report_status(ctx: ServerContext, deliberation_id: str) -> ReportStatus:
    if ctx.reports is None:
        raise HTTPException(status_code=503, detail="reports are not available on this server")
    state = await asyncio.to_thread(ctx.reports.store.state, deliberation_id)
    return ReportStatus(status=state.status, step=state.step, step_name=state.step_name,  # type: ignore[arg-type]
                        steps=state.steps, started_at=state.started_at, finished_at=state.finished_at,
                        error=state.error, report=state.result)


@router.post("/deliberations/{deliberation_id}/report", status_code=202)
async def start_report(ctx: Context, principal: Staff, record: Visible) -> ReportStatus:
    """Build the cross-room report in the background (opinion groups, consensus and divisive statements, themes,
    participation); follow it with GET. 409 while one is being built."""
    if ctx.reports is None:
        raise HTTPException(status_code=503, detail="reports are not available on this server")
    if not await ctx.reports.begin(record.id):
        raise HTTPException(status_code=409, detail="the report is being built already")
    return await _report_status(ctx, record.id)


@router.get("/deliberations/{deliberation_id}/report")
async def read_report(ctx: Context, principal: Staff, record: Visible) -> ReportStatus:
    """The report job's progress, and the last report built."""
    return await _report_status(ctx, record.id)
