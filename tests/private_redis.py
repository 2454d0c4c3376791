"""A private redis-server for tests that stop and start Redis (never the shared one on 6379): its own free port and
data directory, with an append-only file that is on disk before Redis replies (``appendfsync always``), so a restart
keeps everything Redis acknowledged."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import redis.exceptions

from tests.servers import free_port


class RedisProcess:
    """``start()`` (waits until it answers, its data loaded), ``stop()`` (SIGTERM, waits for the exit), ``start()``
    again on the same port and directory: a Redis restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:  # ready once it answers (after loading its append-only file)
                if self.proc.poll() is not None:
                    pytest.fail(f"redis-server exited ({self.proc.returncode}):\n{self.log()}")
                try:
                    if client.ping():
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    pass  # not listening yet, or still loading (BusyLoadingError is a ConnectionError)
                assert time.monotonic() < deadline, f"redis-server not ready within {timeout_s} s:\n{self.log()}"
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: Redis closes its clients, flushes the append-only file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=timeout_s) == 0, self.log()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def started_redis(tmp_path: Path) -> RedisProcess:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisProcess(directory)
    server.start()
    return server
