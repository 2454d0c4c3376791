"""The child process that holds a local language model (``TransformersLLM`` starts it; see ``local_llm.py``).

Loading a model (dequantising a GGUF file is pure Python and numpy work) and generating with it would hold the server
process's GIL for long stretches and delay media forwarding, which runs Python per packet on the event loop. So the
model lives in its own process, at a lower CPU priority, and talks over a pipe:

- parent -> child: ``("generate", call_id, messages, max_tokens, temperature)``, ``("cancel", call_id)``, ``("stop",)``
- child -> parent: ``("loaded", seconds)`` or ``("load_error", message)`` once, then ``("result", call_id, text)`` or
  ``("error", call_id, message)`` per call.

Calls run one at a time on a worker thread; the main thread keeps reading the pipe, so a cancel reaches a running
generation, which stops at the next token.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from multiprocessing.connection import Connection
from typing import Any


def serve(conn: Connection, path: str, device: str, threads: int) -> None:
    """Entry point of the child process."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        os.nice(10)  # captions and media first
    except OSError:
        pass
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    try:
        model = LoadedModel(path, device, threads)
    except Exception as exc:  # report any load failure to the parent, plainly
        send(("load_error", str(exc)))
        return
    send(("loaded", model.load_seconds))
    jobs: queue.Queue[tuple[int, list[dict[str, str]], int, float] | None] = queue.Queue()
    cancelled: set[int] = set()

    def work() -> None:
        while (job := jobs.get()) is not None:
            call_id, messages, max_tokens, temperature = job
            try:
                text = model.generate(messages, max_tokens, temperature, lambda c=call_id: c in cancelled)
                send(("result", call_id, text))
            except Exception as exc:
                send(("error", call_id, str(exc) or type(exc).__name__))
            finally:
                cancelled.discard(call_id)

    worker = threading.Thread(target=work, name="generate", daemon=True)
    worker.start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        if message[0] == "generate":
            jobs.put(message[1:])
        elif message[0] == "cancel":
            cancelled.add(message[1])
        elif message[0] == "stop":
            break
    jobs.put(None)
    worker.join(timeout=5)
    conn.close()


class LoadedModel:
    def __init__(self, path: str, device: str, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        started = time.perf_counter()
        torch.set_num_threads(threads)
        where, extra = (os.path.dirname(path), {"gguf_file": os.path.basename(path)}) if os.path.isfile(path) \
            else (path, {})
        try:
            self.tokenizer: Any = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
            model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch.float32, **extra)
        except Exception as exc:  # transformers raises many kinds; the message is what matters
            raise RuntimeError(f"cannot load the local model {path}: {exc}") from exc
        self.model: Any = model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to oddly
        self.device = device
        self.name = os.path.basename(path.rstrip("/"))
        self.load_seconds = time.perf_counter() - started

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float,
                 cancelled: Any) -> str:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        if cancelled():
            raise RuntimeError("cancelled before it started")
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True).to(self.device)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        generated = 0

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                nonlocal generated
                generated = int(input_ids.shape[1]) - prompt_tokens
                return bool(cancelled())

        limit = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        if limit and prompt_tokens + max_tokens > limit:
            raise RuntimeError(f"prompt too long for {self.name}: {prompt_tokens} tokens + {max_tokens} to generate "
                               f"> {limit}")
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95}
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_tokens, pad_token_id=self.tokenizer.eos_token_id,
                                         stopping_criteria=StoppingCriteriaList([Cancelled()]), **sampling)
        if cancelled():
            raise RuntimeError(f"cancelled after {generated} of {max_tokens} tokens")
        return str(self.tokenizer.decode(output[0, prompt_tokens:], skip_special_tokens=True)).strip()
