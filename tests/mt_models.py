"""Tiny random Marian (OPUS-MT architecture) translation models for tests, built from nothing
(``models/synthetic_translation.py``) and converted with CTranslate2's converter through ``moot models import``'s
own code: they prove that loading, tokenising and routing work, not translation quality."""

from __future__ import annotations

from pathlib import Path

from models.synthetic_translation import build_random_marian


def build_tiny_marian(directory: Path) -> Path:
    """A Hugging Face Marian model directory (random weights, a 60-piece SentencePiece vocabulary)."""
    return build_random_marian(directory, "tiny")


def tiny_registry(root: Path, pairs: tuple[tuple[str, str], ...] = (("en", "fr"),)) -> Path:
    """A model registry (``mt_models_dir``) with one tiny model per language pair, imported by Moot's own code."""
    from models.translation import import_model

    registry = root / "registry"
    for source, target in pairs:
        hf = build_random_marian(root / f"hf-{source}-{target}", "tiny", source, target)
        import_model(hf, registry, name=f"tiny-{source}-{target}", sources=[source], targets=[target])
    return registry
