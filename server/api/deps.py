"""FastAPI dependencies: the process context, room lookup and the moderator check."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from server.auth import moderator_token_path, token_matches
from server.context import ServerContext
from server.storage import RoomRecord

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


def require_moderator(request: Request, ctx: Context) -> None:
    """Moderator and organiser routes need ``Authorization: Bearer <moderator token>``."""
    if not ctx.moderator_token or not token_matches(ctx.moderator_token, request.headers.get("authorization")):
        where = "MOOT_MODERATOR_TOKEN" if ctx.settings.moderator_token else str(moderator_token_path(ctx.settings))
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                            detail=f"moderators only: send Authorization: Bearer <token> (the token is in {where})")


Moderator = Depends(require_moderator)
