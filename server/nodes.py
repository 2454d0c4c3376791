"""``moot server --processes N``: one server node process per core on one machine.

Python forwards media on one core per process (one event loop, one GIL), so a machine hosts as many rooms as it runs
node processes. Each child is a complete ``moot server --processes 1``: its own port (the given port, then the next
ones), its own node id and its own URL in the room directory, all sharing one Redis room directory (so a room lives on
one process at a time, and a process that gets a join for a room leased to another answers with that process's URL,
exactly as separate machines do). The router in front (deploy/router.nginx.conf) lists every port.

The supervisor itself only starts, restarts and stops the children: a child that exits is started again after
``RESTART_DELAY_S`` (its rooms' leases expire meanwhile and the browsers rejoin, as after a node crash); SIGTERM or
SIGINT stops them all (SIGTERM each, SIGKILL after ``STOP_TIMEOUT_S``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from server.core.settings import Settings

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 20.0


class ProcessesMisconfigured(ValueError):
    """Settings that cannot work for several node processes on one machine; the message says which and why."""


def default_processes() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class NodeProcess:
    """What one child is told (as ``MOOT_*`` environment variables) beyond the shared settings."""

    index: int  # from 1
    port: int
    node_id: str | None  # None: the child's default (role:host:pid, unique anyway)
    node_url: str | None  # None: the child's default (http://host:port)

    def environment(self) -> dict[str, str]:
        env = {"MOOT_PORT": str(self.port)}
        if self.node_id is not None:
            env["MOOT_NODE_ID"] = self.node_id
        if self.node_url is not None:
            env["MOOT_NODE_URL"] = self.node_url
        return env


def plan(settings: Settings, processes: int) -> list[NodeProcess]:
    """The children for ``processes`` node processes. ``MOOT_NODE_ID`` (if set) becomes ``<id>-1``, ``<id>-2``...;
    ``MOOT_NODE_URL`` must then name each child, with ``{node_id}``, ``{index}`` or ``{port}`` (e.g.
    ``https://meet.example.org/n/{node_id}``, which the router maps to that child's port)."""
    if processes < 1:
        raise ProcessesMisconfigured("--processes must be at least 1")
    if processes == 1:
        return [NodeProcess(1, settings.port, settings.node_id, settings.node_url)]
    if settings.bus != "redis":
        raise ProcessesMisconfigured("several node processes share their rooms through Redis: set MOOT_BUS=redis "
                                     "(and MOOT_REDIS_URL), or run --processes 1")
    template = settings.node_url
    placeholders = ("{node_id}", "{index}", "{port}")
    if template is not None and not any(p in template for p in placeholders):
        raise ProcessesMisconfigured("MOOT_NODE_URL must tell the node processes apart: include {node_id}, {index} or "
                                     "{port} (e.g. https://meet.example.org/n/{node_id})")
    if template is None and settings.public_url:
        raise ProcessesMisconfigured("with MOOT_PUBLIC_URL every node process would give browsers the same address: "
                                     "set MOOT_NODE_URL with {node_id}, {index} or {port}")
    if settings.port + processes - 1 > 65535:
        raise ProcessesMisconfigured(f"ports {settings.port}..{settings.port + processes - 1} do not exist")
    children = []
    for index in range(1, processes + 1):
        port = settings.port + index - 1
        node_id = f"{settings.node_id}-{index}" if settings.node_id else None
        url = None
        if template is not None:
            url = template.format(node_id=node_id or f"{index}", index=index, port=port)
        children.append(NodeProcess(index, port, node_id, url))
    return children


class Supervisor:
    """Runs the children of ``plan()`` until asked to stop."""

    def __init__(self, children: list[NodeProcess], command: list[str], env: dict[str, str]) -> None:
        self._children = children
        self._command = command  # the child's command line (``moot server --processes 1`` and the shared options)
        self._env = env
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()

    def _start(self, child: NodeProcess) -> None:
        proc = subprocess.Popen(self._command, env={**self._env, **child.environment()})
        self._procs[child.index] = proc
        print(f"node process {child.index}: pid {proc.pid}, port {child.port}"
              + (f", {child.node_url}" if child.node_url else ""), flush=True)

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def run(self) -> int:
        """Start every child; restart those that exit; stop them all on SIGTERM/SIGINT. Returns an exit status."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.request_stop)
        for child in self._children:
            self._start(child)
        restart_at: dict[int, float] = {}
        try:
            while not self._stop.wait(0.2):  # a supervisor's poll: child exits and signals both end the wait soon
                now = time.monotonic()
                for child in self._children:
                    proc = self._procs[child.index]
                    if proc.poll() is None:
                        continue
                    due = restart_at.get(child.index)
                    if due is None:
                        logger.warning("node process %d (pid %d) exited with status %s; restarting it in %.0f s",
                                       child.index, proc.pid, proc.returncode, RESTART_DELAY_S)
                        restart_at[child.index] = now + RESTART_DELAY_S
                    elif now >= due:
                        del restart_at[child.index]
                        self._start(child)
        finally:
            self._stop_all()
        return 0

    def _stop_all(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def child_command(argv: list[str]) -> list[str]:
    """The child's command line: this ``moot server`` invocation with ``--processes 1`` and without ``--port`` (each
    child gets its own through ``MOOT_PORT``)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--port"):
            skip = True
            continue
        if arg.startswith(("--processes=", "--port=")):
            continue
        out.append(arg)
    return [sys.executable, "-m", "server", *out, "--processes", "1"]
