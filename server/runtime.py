"""One runtime for every Moot process: it opens the shared resources a role needs (database, bus, leases), starts the
role's components in order, answers health checks, and on SIGTERM (or Ctrl+C) closes everything in reverse order.

Roles are assembled from the same components: ``moot serve`` runs them all in one process and ``moot server`` the
web, signaling and media node (both through the web app's lifespan, ``server/app.py``, which assembles the node on a
``Runtime`` with the workers' own ``assemble`` functions for the recorder and the facilitator), and ``moot worker
facilitator|recorder|speech`` one worker each. Any number of processes of each role may run against one Redis bus
and one database.

A component is anything with ``async start()`` and ``async close()``; ``health()`` (optional) returns a dict that
must contain ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.core.bus import Bus, create_bus
from server.core.directory import RoomDirectory
from server.core.ids import process_name
from server.core.leases import Leases, create_leases
from server.core.settings import Settings
from server.storage import Storage

logger = logging.getLogger(__name__)


class Component(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Resources:
    """What a process's components share, opened on first use and closed by the runtime."""

    settings: Settings
    role: str
    name: str = ""
    _storage: Storage | None = None
    _bus: Bus | None = None
    _leases: Leases | None = None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name or process_name(self.role)

    async def storage(self) -> Storage:
        if self._storage is None:
            storage = Storage(self.settings.resolved_database_url())
            await asyncio.to_thread(storage.create_schema)
            self._storage = storage
            self._closers.append(lambda: asyncio.to_thread(storage.close))
        return self._storage

    async def bus(self) -> Bus:
        if self._bus is None:
            bus = create_bus(self.settings.bus, self.settings.redis_address(), source=self.name,
                             prefix=self.settings.redis_prefix)
            await bus.start()
            self._bus = bus
            self._closers.append(bus.close)
        return self._bus

    def use_leases(self, leases: Leases) -> None:
        """Share a lease store the caller owns (started and closed by the caller), instead of opening one."""
        self._leases = leases

    async def leases(self) -> Leases:
        if self._leases is None:
            leases = create_leases(self.settings.bus, self.settings.redis_address(), self.settings.redis_prefix)
            await leases.start()
            self._leases = leases
            self._closers.append(leases.close)
        return self._leases

    async def directory(self, ttl_s: float) -> RoomDirectory:
        return RoomDirectory(await self.leases(), self.name, ttl_s=ttl_s)

    async def close(self) -> None:
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:
                logger.exception("closing a shared resource failed")
        self._closers.clear()


class Runtime:
    """Runs one process's components until stopped."""

    def __init__(self, settings: Settings, role: str, name: str = "") -> None:
        self.settings = settings
        self.role = role
        self.resources = Resources(settings, role, name)
        self.components: list[tuple[str, Any]] = []
        self.stop = asyncio.Event()
        self._health_server: asyncio.Server | None = None
        self.health_port: int | None = None  # the port health checks are answered on, once running

    def add(self, name: str, component: Any) -> Any:
        """Register a started component (closed in reverse order of registration)."""
        self.components.append((name, component))
        return component

    def health(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for name, component in self.components:
            check = getattr(component, "health", None)
            parts[name] = check() if callable(check) else {"ok": True}
        return {"ok": all(part.get("ok", False) for part in parts.values()), "role": self.role,
                "name": self.resources.name, "components": parts}

    async def serve_health(self, port: int, host: str = "0.0.0.0") -> int:
        """Answer ``GET /metrics`` with the Prometheus text format and anything else (``GET /health``) with the
        health JSON: 200 when every component is ok, else 503. Returns the port (0 picks a free one)."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                request = b""
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError,
                                         asyncio.LimitOverrunError):
                    request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
                if request.startswith(b"GET /metrics"):
                    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                    body, status, kind = generate_latest(), "200 OK", CONTENT_TYPE_LATEST
                else:
                    report = self.health()
                    body = json.dumps(report).encode()
                    status = "200 OK" if report["ok"] else "503 Service Unavailable"
                    kind = "application/json"
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}"
                             f"\r\nConnection: close\r\n\r\n".encode() + body)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            finally:
                writer.close()

        self._health_server = await asyncio.start_server(answer, host, port)
        return int(self._health_server.sockets[0].getsockname()[1])

    async def run(self, assemble: Callable[[Runtime], Awaitable[None]],
                  ready: Callable[[Runtime], None] | None = None, handle_signals: bool = True) -> None:
        """Assemble the components (``assemble`` starts and ``add``s them), report ready, wait for SIGTERM/SIGINT
        (or ``stop``), then close components and resources in reverse order."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop.set)
        try:
            await assemble(self)
            if self.settings.health_port is not None:
                self.health_port = await self.serve_health(self.settings.health_port)
                logger.info("health checks on port %d", self.health_port)
            if ready is not None:
                ready(self)
            await self.stop.wait()
            logger.info("%s stopping", self.role)
        finally:
            await self.close()
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    async def close(self) -> None:
        """Close the components in reverse order of registration, then the shared resources (also what a web app's
        lifespan calls when the server stops: there, the web server handles the signals)."""
        if self._health_server is not None:
            self._health_server.close()
            self._health_server = None
        components, self.components = self.components, []
        for name, component in reversed(components):
            try:
                await component.close()
            except Exception:
                logger.exception("closing %s failed", name)
        await self.resources.close()
