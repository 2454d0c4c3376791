"""Who is on a WebSocket: the signed-in account behind the session cookie, accepted only from this site's own pages
(a browser always sends ``Origin`` on a WebSocket, and cookies go with it whichever site opened it, so a socket
another site opens must not act as the moderator). Used by the dashboard feed and by observers joining a room."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from fastapi import WebSocket

from server.accounts.service import Principal
from server.accounts.tokens import InvalidToken
from server.api.deps import SESSION_COOKIE
from server.context import ServerContext


def same_origin(websocket: WebSocket) -> bool:
    """No ``Origin`` (not a browser: an API client holding the cookie) or this site's own (host and port)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == (websocket.headers.get("host") or "").lower()


async def session_principal(websocket: WebSocket, ctx: ServerContext) -> Principal | None:
    """The account signed in with the session cookie, or None (no cookie, an ended session, accounts off)."""
    token = websocket.cookies.get(SESSION_COOKIE)
    if ctx.accounts is None or not token:
        return None
    try:
        return await asyncio.to_thread(ctx.accounts.verify, token)
    except InvalidToken:
        return None


async def may_observe(websocket: WebSocket, ctx: ServerContext, room_id: str) -> bool:
    """A moderator of the room (its deliberation's organiser or moderators, a stand-alone room's creator, an
    administrator), signed in, from this site."""
    from server.deliberations import access
    from server.deliberations.store import DeliberationStore

    if not same_origin(websocket):
        return False
    principal = await session_principal(websocket, ctx)
    if principal is None:
        return False
    room = await asyncio.to_thread(ctx.storage.get_room, room_id)
    if room is None:
        return False
    store = DeliberationStore(ctx.storage.sessions)
    return await asyncio.to_thread(access.may_view_room, store, principal, room.created_by, room.deliberation_id)
