"""Run the real server (uvicorn, real sockets) in a background thread for integration tests."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from server.app import create_app
from server.core.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningServer:
    def __init__(self, server: uvicorn.Server, port: int, app: Any) -> None:
        self.server, self.port, self.app = server, port, app

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/rooms/{room_id}"

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx

    def task_names(self) -> list[str]:
        """Names of the tasks alive on the server's event loop (to catch leaked tasks)."""
        loop = self.app.state.loop

        async def names() -> list[str]:
            return sorted(t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task())

        return asyncio.run_coroutine_threadsafe(names(), loop).result(timeout=10)

    def task_stacks(self) -> list[str]:
        """Each task on the server's loop with where it waits (to say what a leaked task is doing)."""
        loop = self.app.state.loop

        async def stacks() -> list[str]:
            out = []
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    frames = task.get_stack(limit=1)
                    where = f"{frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else "?"
                    out.append(f"{task.get_name()} {task.get_coro()!r:.80} at {where}")
            return sorted(out)

        return asyncio.run_coroutine_threadsafe(stacks(), loop).result(timeout=10)

    def drop_websockets(self, room_id: str) -> int:
        """Cut the TCP connections of the room's signaling WebSockets without a closing handshake, as a lost network
        does (both ends see the connection end); returns how many were cut."""
        path = f"/ws/rooms/{room_id}"

        async def drop() -> int:
            dropped = 0
            for connection in list(self.server.server_state.connections):  # uvicorn's open connections (protocols)
                scope = getattr(connection, "scope", None) or {}
                if scope.get("type") == "websocket" and scope.get("path") == path:
                    connection.transport.abort()
                    dropped += 1
            return dropped

        return asyncio.run_coroutine_threadsafe(drop(), self.app.state.loop).result(timeout=10)

    def publish(self, event: Any) -> None:
        """Publish a bus event on the server's own loop (e.g. a marker that clients then wait for)."""
        asyncio.run_coroutine_threadsafe(self.ctx.bus.publish(event), self.app.state.loop).result(timeout=10)


@contextmanager
def running_server(settings: Settings, port: int | None = None, **app_kwargs: Any) -> Iterator[RunningServer]:
    with serve_app(create_app(settings, **app_kwargs), port) as running:
        yield running


@contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[RunningServer]:
    """Serve any ASGI app on a localhost port (default: a free one) from a background thread."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=2**20)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:  # uvicorn exposes no startup event across threads
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield RunningServer(server, port, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def drain(proc: subprocess.Popen[str]) -> list[str]:
    """Keep reading a child process's output in the background (a full pipe would block it); returns the list the
    lines are collected in."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, name=f"drain-{proc.pid}", daemon=True).start()
    return lines
