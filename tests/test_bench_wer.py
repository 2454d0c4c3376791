"""The benchmarks' word error rate: Whisper's English normaliser on both texts, then word-level edit distance; and
the real-speech fixture script's assembly of clips (the download itself needs the package registry: not run here)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import wave
from pathlib import Path
from types import ModuleType

import pytest

from server.bench.asr import word_error_rate as bench_wer
from server.bench.wer import normalise_text, word_error_rate

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def test_spelling_conventions_are_not_errors() -> None:
    assert word_error_rate("And Mr. John Dashwood", "and mister john dashwood") == 0.0
    assert word_error_rate("He was not an ill-disposed young man,", "He was not an ill disposed young man.") == 0.0
    assert word_error_rate("It's twenty-five past, I'm sure; the colour!", "it is 25 past i am sure the color") == 0.0
    assert word_error_rate("Let us write that down.", "Um, let us write that down.") == 0.0  # fillers
    assert normalise_text("Mr. Smith, [inaudible] (laughs) colour") == ["mister", "smith", "color"]


def test_real_errors_count() -> None:
    reference = "he was not an ill disposed young man"  # 8 words
    assert word_error_rate(reference, "he was not an old supposed young man") == pytest.approx(2 / 8)
    assert word_error_rate(reference, "he was not an ill disposed man") == pytest.approx(1 / 8)  # deletion
    assert word_error_rate(reference, "so he was not an ill disposed young man") == pytest.approx(1 / 8)  # insertion
    assert word_error_rate(reference, "") == 1.0
    assert word_error_rate("", "") == 0.0 and word_error_rate("", "words") == 1.0
    assert bench_wer is word_error_rate, "moot bench asr scores with it"


def _fixture_script() -> ModuleType:
    path = REPO / "scripts" / "make_real_speech_fixture"
    loader = importlib.machinery.SourceFileLoader("make_real_speech_fixture", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def test_fixture_script_joins_clips_with_pauses(tmp_path: Path) -> None:
    script = _fixture_script()
    clips = [((DATA / name).read_bytes(), text) for name, text in
             [("arctic_a0007.wav", "And you always want to see it in the superlative degree."), ("hello16.wav", "Hi.")]]
    pcm = [script.read_pcm(data) for data, _ in clips]
    joined, text = script.assemble([(p, t) for p, (_, t) in zip(pcm, clips, strict=True)], pauses_s=(0.5, 1.0))
    assert text == "And you always want to see it in the superlative degree.\nHi.\n"
    assert len(joined) == len(pcm[0]) + 2 * 8000 + len(pcm[1]) + 2 * 16000
    assert joined[len(pcm[0]) : len(pcm[0]) + 2 * 8000] == bytes(2 * 8000), "silence between clips"
    assert joined[: len(pcm[0])] == pcm[0]
    seconds = script.write(tmp_path, "out", joined, text)
    with wave.open(str(tmp_path / "out.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        assert w.getnframes() / 16_000 == pytest.approx(seconds)
    assert (tmp_path / "out.txt").read_text() == text


def test_fixture_script_refuses_audio_it_would_have_to_resample(tmp_path: Path) -> None:
    script = _fixture_script()
    path = tmp_path / "8k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(1600))
    with pytest.raises(SystemExit):
        script.read_pcm(path.read_bytes())
