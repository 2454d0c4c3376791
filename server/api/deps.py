"""FastAPI dependencies: the process context, room lookup, who is asking (a signed-in account, or a participant's
credential) and what they may read or moderate."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from server.accounts.service import Principal
from server.accounts.tokens import InvalidToken
from server.context import ServerContext
from server.storage import RoomRecord

SESSION_COOKIE = "moot_session"
CSRF_COOKIE = "moot_csrf"
CSRF_HEADER = "x-csrf-token"
PARTICIPANT_HEADER = "x-moot-participant"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ROOM_ID_PATTERN = r"^[a-z0-9]{4,32}$"


def get_context(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


Context = Annotated[ServerContext, Depends(get_context)]


async def get_room(ctx: Context, room_id: str) -> RoomRecord:
    if not re.match(ROOM_ID_PATTERN, room_id):
        raise HTTPException(status_code=404, detail="unknown room")
    room = await asyncio.to_thread(ctx.storage.get_room, room_id)
    if room is None:
        raise HTTPException(status_code=404, detail="unknown room")
    return room


Room = Annotated[RoomRecord, Depends(get_room)]




def _bearer(request: Request) -> str | None:
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def get_principal(request: Request, ctx: Context) -> Principal | None:
    """The signed-in account making the request, or None. A bearer token (API clients) or the session cookie
    (browsers); with the cookie, a request that changes something must also carry the session's CSRF token in
    ``X-CSRF-Token`` (403 without it). A token that does not verify is 401 (it may have expired or been revoked)."""
    accounts = ctx.accounts
    if accounts is None:
        return None
    bearer = _bearer(request)
    by_cookie = bearer is None
    token = bearer if bearer is not None else request.cookies.get(SESSION_COOKIE)
    if not token or (bearer is not None and bearer.count(".") != 2):  # (not a JWT: e.g. the moderator token)
        return None
    try:
        principal = await asyncio.to_thread(accounts.verify, token)
    except InvalidToken:
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                            detail="your session has ended: sign in again") from None
    if by_cookie and request.method not in SAFE_METHODS \
            and not accounts.csrf_matches(principal, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status_code=403, detail="missing or wrong X-CSRF-Token")
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(get_principal)]


def require_staff(principal: MaybePrincipal) -> Principal:
    """Any signed-in organiser, moderator or administrator (what each may see is checked per route)."""
    if principal is None:
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"}, detail="sign in first")
    return principal


Staff = Annotated[Principal, Depends(require_staff)]


async def _staff_may_view(ctx: ServerContext, principal: Principal, room: RoomRecord) -> bool:
    from server.deliberations import access
    from server.deliberations.store import DeliberationStore

    store = DeliberationStore(ctx.storage.sessions)
    return await asyncio.to_thread(access.may_view_room, store, principal, room.created_by, room.deliberation_id)


async def _participant_may_read(ctx: ServerContext, credential: str, room: RoomRecord) -> bool:
    """A participant credential for this room: a stand-alone room's (it names the room), or a deliberation's whose
    lobby gave its holder this room, while that deliberation runs."""
    from server.deliberations.store import DeliberationStore
    from server.lobby.credentials import InvalidCredential
    from server.lobby.store import LobbyStore

    try:
        claims = (await asyncio.to_thread(ctx.participant_signer)).read(credential)
    except InvalidCredential:
        return False
    if claims.room_id is not None:
        return claims.room_id == room.id and room.deliberation_id is None
    if claims.deliberation_id is None or claims.deliberation_id != room.deliberation_id:
        return False
    entry = await asyncio.to_thread(LobbyStore(ctx.storage.sessions).entry, claims.participant_id)
    if entry is None or entry.room_id != room.id or entry.status != "assigned":
        return False
    # Only while the deliberation runs: once it closes (or is deleted), its participants reach nothing.
    record = await asyncio.to_thread(DeliberationStore(ctx.storage.sessions).get, room.deliberation_id)
    return record is not None and record.running


async def require_room_staff(ctx: Context, room: Room, principal: MaybePrincipal) -> Principal:
    """Moderating and reviewing a room: staff who may view it (others: 401 signed out, 404 signed in)."""
    if principal is None:
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                            detail="moderators only: sign in")
    if not await _staff_may_view(ctx, principal, room):
        raise HTTPException(status_code=404, detail="unknown room")
    return principal


RoomStaff = Annotated[Principal, Depends(require_room_staff)]


async def require_room_reader(request: Request, ctx: Context, room: Room, principal: MaybePrincipal) -> None:
    """Reading a room's history and transcript: its participants (their credential in ``X-Moot-Participant``) and
    staff who may view it. Anyone else: 401 without credentials, 404 with credentials for elsewhere."""
    if principal is not None and await _staff_may_view(ctx, principal, room):
        return
    credential = request.headers.get(PARTICIPANT_HEADER)
    if credential and await _participant_may_read(ctx, credential, room):
        return
    if principal is None and not credential:
        raise HTTPException(status_code=401, detail="join the room (or sign in) to read it")
    raise HTTPException(status_code=404, detail="unknown room")


RoomReader = Depends(require_room_reader)
