"""The FastAPI application: ``create_app(settings)`` wires storage, bus, caption service, rooms and the client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from server import __version__
from server.accounts.service import open_account_service
from server.api.auth import router as auth_router
from server.api.deliberations import router as deliberations_router
from server.api.lobby import router as lobby_router
from server.api.moderation import router as moderation_router
from server.api.rooms import router as rooms_router
from server.context import ServerContext
from server.core.bus import Bus
from server.core.directory import RoomDirectory
from server.core.leases import Leases
from server.core.settings import Settings
from server.core.speech import CaptionService
from server.runtime import Runtime
from server.security_headers import SecurityHeaders

logger = logging.getLogger(__name__)


def build_caption_service(settings: Settings, bus: Bus) -> CaptionService | None:
    """The caption service named by ``settings.asr_backend`` (``none`` disables captions)."""
    if settings.asr_backend == "none":
        return None
    from server.asr.service import create_caption_service

    return create_caption_service(settings, bus)


async def assemble_node(runtime: Runtime,
                        caption_service: Callable[[Bus], CaptionService | None] | None = None) -> ServerContext:
    """A server node on ``runtime``: storage, bus and leases from its resources; then, each registered so that the
    runtime closes them in reverse order, the recorder and deliberation scheduler (``recorder_enabled``: the same
    assembly as ``moot worker recorder``), the caption service (in process, or a client of the speech workers),
    the rooms, and the facilitator (``facilitator_enabled``: the same assembly as ``moot worker facilitator``)."""
    from server.room_control import RoomControlListener
    from server.room_status import RoomStatusReporter
    from server.rooms import RoomRegistry
    from server.workers import facilitator as facilitator_worker
    from server.workers import recorder as recorder_worker

    settings = runtime.settings
    resources = runtime.resources
    storage = await resources.storage()
    bus = await resources.bus()
    lease_store = await resources.leases()
    directory = RoomDirectory(lease_store, resources.name, settings.lease_ttl_s, settings.resolved_node_url())
    ctx = ServerContext(settings=settings, bus=bus, storage=storage, leases=lease_store, directory=directory)
    ctx.accounts = await asyncio.to_thread(open_account_service, settings, storage)
    if settings.recorder_enabled:
        await recorder_worker.assemble(runtime)
    if caption_service is None and settings.speech_placement == "remote" and settings.asr_backend != "none":
        # Speakers' audio goes to speech workers (moot worker speech) over the bus.
        from server.asr.remote import RemoteCaptionService, open_speech_audio_bus

        audio_bus = open_speech_audio_bus(settings, resources.name)
        await audio_bus.start()
        runtime.add("audio-bus", audio_bus)
        ctx.captions = RemoteCaptionService(settings, bus, audio_bus, lease_store, directory.holder)
    else:
        make_captions = caption_service or (lambda b: build_caption_service(settings, b))
        ctx.captions = make_captions(bus)
    if ctx.captions is not None:
        await ctx.captions.start()
        runtime.add("captions", ctx.captions)
    ctx.rooms = RoomRegistry(ctx)
    runtime.add("rooms", ctx.rooms)
    from server.core.embeddings import default_embedder
    from server.report.jobs import ReportJobs

    namer = None
    if settings.llm_backend == "openai":  # a capable model names the report's themes (the small local one is not asked)
        from facilitator.backends import create_llm

        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        namer = create_llm("openai", settings.llm_url, settings.llm_model, api_key, settings.llm_timeout_s)
    ctx.reports = ReportJobs(storage, default_embedder() if settings.embeddings_backend == "minilm" else None, namer)
    runtime.add("reports", ctx.reports)
    control = RoomControlListener(ctx.rooms, bus)
    await control.start()
    runtime.add("room-control", control)
    reporter = RoomStatusReporter(ctx.rooms, bus, settings.room_status_interval_s, directory.holder)
    await reporter.start()
    runtime.add("room-status", reporter)
    if settings.translation_enabled:
        from server.workers import translation as translation_worker

        await translation_worker.assemble(runtime, required=False)
    if settings.facilitator_enabled:
        # Rooms are facilitated under the same leases as in a worker: several nodes running a facilitator, or
        # workers beside them, never facilitate one room twice.
        await facilitator_worker.assemble(runtime)
    return ctx


def create_app(
    settings: Settings, *, caption_service: Callable[[Bus], CaptionService | None] | None = None,
    leases: Leases | None = None,
) -> FastAPI:
    """The application. ``caption_service`` replaces the settings-chosen caption service (tests pass fakes);
    ``leases`` replaces the settings-chosen lease store (tests share one between apps, as nodes share Redis; the
    caller starts and closes it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, "server", name=settings.resolved_node_id())
        if leases is not None:
            runtime.resources.use_leases(leases)
        app.state.runtime = runtime
        try:
            ctx = await assemble_node(runtime, caption_service)
            app.state.facilitator = next((c.service for n, c in runtime.components if n == "facilitator"), None)
            app.state.ctx = ctx
            app.state.loop = asyncio.get_running_loop()
            app.state.ready = True
            remote = any(name == "audio-bus" for name, _ in runtime.components)
            logger.info("moot %s ready (bus=%s, asr=%s%s, node %s at %s)", __version__, settings.bus,
                        settings.asr_backend, " in speech workers" if remote else "", runtime.resources.name,
                        settings.resolved_node_url())
            yield
        finally:
            app.state.ready = False
            await runtime.close()

    app = FastAPI(title="Moot", version=__version__, lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    app.state.ready = False
    app.state.settings = settings
    app.include_router(auth_router)
    app.include_router(deliberations_router)
    app.include_router(lobby_router)
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

    @app.get("/metrics")
    async def metrics() -> Response:
        """Operators' metrics in the Prometheus text format (speech queue and latency, process); no room data."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/ws/deliberations/{deliberation_id}/dashboard")
    async def dashboard_feed(websocket: WebSocket, deliberation_id: str) -> None:
        from server.dashboard.live import serve_dashboard

        await serve_dashboard(websocket, deliberation_id, websocket.app.state.ctx)

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

    @app.get("/d/{deliberation_id}", include_in_schema=False)
    async def lobby_page(deliberation_id: str) -> FileResponse:
        # The page asks the lobby API itself (a deliberation that is not open shows as such there).
        return FileResponse(client_dir / "lobby.html")

    @app.get("/organise", include_in_schema=False)
    @app.get("/organise/{path:path}", include_in_schema=False)
    async def organise_page(path: str = "") -> FileResponse:
        # Organisers' and moderators' pages; the page signs in and asks the deliberations API (which decides).
        return FileResponse(client_dir / "organise.html")

    @app.get("/review/{deliberation_id}", include_in_schema=False)
    async def review_page(deliberation_id: str) -> FileResponse:
        # Organisers and moderators review a deliberation here; the page signs in and asks the API (which decides).
        return FileResponse(client_dir / "review.html")

    @app.get("/invite/{token}", include_in_schema=False)
    async def invite_page(token: str) -> FileResponse:
        # The page asks the invite API whether the token is usable.
        return FileResponse(client_dir / "invite.html")

    @app.get("/dashboard/{deliberation_id}", include_in_schema=False)
    async def dashboard_page(deliberation_id: str) -> FileResponse:
        # The moderators' live view of every room; the page signs in and the WebSocket decides who may see it.
        return FileResponse(client_dir / "dashboard.html")

    @app.get("/moderate/{room_id}", include_in_schema=False)
    async def moderate_page(room_id: str) -> FileResponse:
        # The page asks for the moderator token itself; every action goes through the moderator API.
        return FileResponse(client_dir / "moderate.html")

    if client_dir.is_dir():
        app.mount("/static", StaticFiles(directory=client_dir), name="static")
    else:
        logger.warning("client directory %s not found: the browser client is not served", client_dir)
    return app
