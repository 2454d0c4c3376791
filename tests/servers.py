"""Run the real server (uvicorn, real sockets) in a background thread for integration tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from server.app import create_app
from server.settings import Settings


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

    def publish(self, event: Any) -> None:
        """Publish a bus event on the server's own loop (e.g. a marker that clients then wait for)."""
        asyncio.run_coroutine_threadsafe(self.ctx.bus.publish(event), self.app.state.loop).result(timeout=10)


@contextmanager
def running_server(settings: Settings, **app_kwargs: Any) -> Iterator[RunningServer]:
    with serve_app(create_app(settings, **app_kwargs)) as running:
        yield running


@contextmanager
def serve_app(app: Any) -> Iterator[RunningServer]:
    """Serve any ASGI app on a free localhost port from a background thread."""
    port = free_port()
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
