"""Choosing the facilitator's language model from settings: ``create_llm`` builds the configured backend.

Kept apart from ``facilitator.llm`` (the interface, the OpenAI-compatible client and the scripted fake) so that the
local model's module, which builds on that interface, is imported only when it is asked for.
"""

from __future__ import annotations

from pathlib import Path

from facilitator.llm import LLMBackend, LLMError, OpenAICompatibleLLM


def create_llm(backend: str, url: str | None, model: str, api_key: str | None, timeout_s: float,
               model_path: str | Path | None = None, device: str = "cpu") -> LLMBackend | None:
    """The backend named in settings (``none``: the facilitator works from rules alone)."""
    if backend == "none":
        return None
    if backend == "openai":
        if not url:
            raise LLMError("llm_backend=openai needs MOOT_LLM_URL, e.g. http://localhost:11434/v1")
        return OpenAICompatibleLLM(url, model, api_key=api_key, timeout_s=timeout_s)
    if backend == "local":
        from facilitator.local_llm import TransformersLLM

        return TransformersLLM(model_path, device=device)
    raise LLMError(f"unknown LLM backend {backend!r}: use 'local', 'openai' or 'none'")
