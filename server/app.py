"""The FastAPI application: ``create_app(settings)`` wires storage, bus, caption service, rooms and the client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from server import __version__
from server.api.moderation import router as moderation_router
from server.api.rooms import router as rooms_router
from server.asr.base import CaptionService
from server.auth import resolve_moderator_token
from server.bus import Bus, create_bus
from server.context import ServerContext
from server.settings import Settings
from server.storage import Storage
from server.transcripts import TranscriptRecorder

logger = logging.getLogger(__name__)


def build_caption_service(settings: Settings, bus: Bus) -> CaptionService | None:
    """The caption service named by ``settings.asr_backend`` (``none`` disables captions)."""
    if settings.asr_backend == "none":
        return None
    from server.asr.service import create_caption_service

    return create_caption_service(settings, bus)


def create_app(
    settings: Settings, *, caption_service: Callable[[Bus], CaptionService | None] | None = None
) -> FastAPI:
    """The application. ``caption_service`` replaces the settings-chosen caption service (tests pass fakes)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from server.rtc.rooms import RoomRegistry

        storage = Storage(settings.resolved_database_url())
        await asyncio.to_thread(storage.create_schema)
        bus = create_bus(settings.bus, settings.redis_url)
        await bus.start()
        ctx = ServerContext(settings=settings, bus=bus, storage=storage)
        ctx.moderator_token = await asyncio.to_thread(resolve_moderator_token, settings)
        recorder = TranscriptRecorder(bus, storage)
        await recorder.start()
        make_captions = caption_service or (lambda b: build_caption_service(settings, b))
        ctx.captions = make_captions(bus)
        if ctx.captions is not None:
            await ctx.captions.start()
        ctx.rooms = RoomRegistry(ctx)
        facilitator = None
        if settings.facilitator_enabled:
            from facilitator.worker import start_facilitator

            facilitator = await start_facilitator(settings, bus, storage)
        app.state.facilitator = facilitator.service if facilitator is not None else None
        app.state.ctx = ctx
        app.state.loop = asyncio.get_running_loop()
        app.state.ready = True
        logger.info("moot %s ready (bus=%s, asr=%s)", __version__, settings.bus, settings.asr_backend)
        try:
            yield
        finally:
            app.state.ready = False
            if facilitator is not None:
                await facilitator.close()
            await ctx.rooms.close()
            if ctx.captions is not None:
                await ctx.captions.close()
            await recorder.close()
            await bus.close()
            await asyncio.to_thread(storage.close)

    app = FastAPI(title="Moot", version=__version__, lifespan=lifespan)
    app.state.ready = False
    app.state.settings = settings
    app.include_router(rooms_router)
    app.include_router(moderation_router)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"detail": f"{where + ': ' if where else ''}{first['msg']}"}, status_code=422)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        ready = bool(app.state.ready)
        return JSONResponse({"status": "ok" if ready else "starting", "version": __version__},
                            status_code=200 if ready else 503)

    @app.websocket("/ws/rooms/{room_id}")
    async def signaling(websocket: WebSocket, room_id: str) -> None:
        from server.signaling import handle_signaling

        await handle_signaling(websocket, room_id, websocket.app.state.ctx)

    client_dir = Path(settings.client_dir)

    @app.get("/", include_in_schema=False)
    async def landing() -> FileResponse:
        return FileResponse(client_dir / "index.html")

    @app.get("/r/{room_id}", include_in_schema=False)
    async def room_page(room_id: str) -> FileResponse:
        # The page itself reports unknown rooms (it asks the API), so any id gets the page.
        return FileResponse(client_dir / "room.html")

    @app.get("/moderate/{room_id}", include_in_schema=False)
    async def moderate_page(room_id: str) -> FileResponse:
        # The page asks for the moderator token itself; every action goes through the moderator API.
        return FileResponse(client_dir / "moderate.html")

    if client_dir.is_dir():
        app.mount("/static", StaticFiles(directory=client_dir), name="static")
    else:
        logger.warning("client directory %s not found: the browser client is not served", client_dir)
    return app
