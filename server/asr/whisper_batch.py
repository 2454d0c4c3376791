"""Several buffers through faster-whisper at once: one CTranslate2 encode, language detection and generate call for
the whole batch (and one alignment call for its word timestamps), instead of one of each per buffer.

On a GPU a batch of decodes costs little more than one (the encoder and decoder run as matrix products over the
batch), so one worker keeps up with many more speakers. The result for each buffer follows what
``WhisperModel.transcribe`` does for it with the settings ``WhisperBackend`` uses (greedy or beam search at
temperature 0, word timestamps, no voice-activity filter, no conditioning on previous windows, the same prompt):
the same features padded to Whisper's 30 s window, the same prompt, generation options and no-speech skip, the same
split into segments at timestamp tokens, and faster-whisper's own word-timing code on the batch's alignments. A buffer
whose decode stops before its end (no closing timestamp) goes on from its last word in a further round, with the
other buffers that need one, as the single decode would. Results match single decodes closely, not bit for bit:
batched matrix products may round differently.

Prompts: CTranslate2 generates a batch only if the start-of-transcript token sits at the same position in every
prompt, so prompts of different token lengths are generated in separate calls (one per length, sharing the batch's
encoder output). To keep those few, a prompt of 8 tokens or more is cut (from the start: the most recent text stays)
to a power of two (8, 16, 32, 64, 128) or to faster-whisper's own cap of 223 tokens.

This leans on faster-whisper internals (``get_prompt``, ``_split_segments_by_timestamps``, ``add_word_timestamps``,
the CTranslate2 model): the version is pinned in pyproject.toml, and tests compare batches with single decodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

WINDOW_FRAMES = 3000  # Whisper's 30 s input window, in feature frames
MARGIN_FRAMES = 100  # silence after the content in a shortened window
MAX_PROMPT_TOKENS = 223  # faster-whisper keeps the last max_length // 2 - 1 tokens of a prompt


@dataclass(eq=False)
class _Item:
    """One buffer's decode in progress."""

    features: npt.NDArray[np.float32]
    content_frames: int
    prompt_tokens: list[int]  # the prompt's text tokens (empty: no prompt), cut to a common length
    language: str | None
    min_window: int = WINDOW_FRAMES  # the shortest input window it may be decoded in (frames)
    language_probability: float = 1.0
    seek: int = 0  # feature frame where the next window starts
    last_speech: float = 0.0  # faster-whisper's ``last_speech_timestamp`` for its word-timing heuristics
    segments: list[dict[str, Any]] = field(default_factory=list)


@dataclass(eq=False)
class _Output:
    """One buffer's generated window, split into segments at timestamp tokens."""

    tokenizer: Any
    segments: list[dict[str, Any]]
    size: int  # the window's frames of content
    next_seek: int
    single_timestamp_ending: bool
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    skipped: bool  # Whisper's own no-speech rule skips the window


_DEFAULTS: dict[str, Any] = {}


def option(name: str) -> Any:
    """``WhisperModel.transcribe``'s default for an option (the single decode uses these defaults too)."""
    if not _DEFAULTS:
        from faster_whisper import WhisperModel

        _DEFAULTS.update((n, p.default) for n, p in inspect.signature(WhisperModel.transcribe).parameters.items())
    return _DEFAULTS[name]


def window_frames(content: int, min_window: int) -> int:
    """The padded input window for a round whose longest remaining content is ``content`` frames: Whisper's 30 s, or
    with ``min_window`` below that, the content plus a second of padding rounded up to whole seconds, at least
    ``min_window`` (CTranslate2 accepts windows shorter than 30 s; the encoder's cost grows with the window)."""
    if min_window >= WINDOW_FRAMES:
        return WINDOW_FRAMES
    fitted = -(-(content + MARGIN_FRAMES) // 100) * 100
    return max(min_window, min(WINDOW_FRAMES, fitted))


def decode_batch(model: Any, audios: Sequence[npt.NDArray[np.float32]], languages: Sequence[str | None],
                 prompts: Sequence[str | None], beam_size: int,
                 min_window: int | Sequence[int] = WINDOW_FRAMES,
                 ) -> list[tuple[list[dict[str, Any]], str | None, float]]:
    """Decode each buffer with ``model`` (a ``faster_whisper.WhisperModel``), batched; ``min_window``: the shortest
    input window in feature frames, for all buffers or per buffer (``window_frames``; default Whisper's 30 s). A
    batch's windows all have the length the most demanding of its buffers needs.

    Returns, per buffer: its segments (dicts with ``text``, ``start``, ``end``, ``words`` (dicts with ``word``,
    ``start``, ``end``, ``probability``) and the window's ``no_speech_prob``, ``avg_logprob`` and
    ``compression_ratio``), its language and the language's probability.
    """
    from faster_whisper.tokenizer import Tokenizer

    multilingual = model.model.is_multilingual
    tokenizers: dict[str, Any] = {}

    def tokenizer_for(language: str) -> Any:
        if language not in tokenizers:
            tokenizers[language] = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
        return tokenizers[language]

    minimums = [min_window] * len(audios) if isinstance(min_window, int) else list(min_window)
    items = []
    for audio, language, prompt, minimum in zip(audios, languages, prompts, minimums, strict=True):
        features = model.feature_extractor(np.asarray(audio, dtype=np.float32))
        # (text tokens do not depend on the language)
        tokens = tokenizer_for("en").encode(" " + prompt.strip()) if prompt is not None else []
        item = _Item(features, features.shape[-1] - 1, tokens[-prompt_length(len(tokens)):] if tokens else [],
                     language if multilingual else "en", minimum)
        if item.language is None and item.content_frames <= 0:
            item.language_probability = 0.0
        items.append(item)

    first_round = True
    active = [item for item in items if item.seek < item.content_frames]
    while active:
        windows = []
        padded = max(window_frames(min(WINDOW_FRAMES, i.content_frames - i.seek), i.min_window) for i in active)
        for item in active:
            window = item.features[:, item.seek : min(item.seek + WINDOW_FRAMES, item.content_frames)]
            windows.append(np.pad(window, [(0, 0), (0, padded - window.shape[-1])]))
        batch = np.stack(windows)
        # Several generate calls (prompts of different lengths) each take part of the encoder output: keep it on the
        # CPU where it can be sliced.
        several = first_round and len({len(item.prompt_tokens) for item in active}) > 1
        several_gpus = model.model.device == "cuda" and len(model.model.device_index) > 1  # as faster-whisper does
        encoder_output = model.model.encode(_storage(batch), to_cpu=several or several_gpus)
        if first_round and any(item.language is None for item in active):
            for item, ranked in zip(active, model.model.detect_language(encoder_output), strict=True):
                if item.language is None:
                    token, probability = ranked[0]
                    item.language, item.language_probability = token[2:-2], float(probability)
        outputs = _generate(model, batch, encoder_output, active, tokenizer_for, beam_size, first_round)
        _add_word_timestamps(model, batch, encoder_output, active, outputs)
        for item, output in zip(active, outputs, strict=True):
            _advance(model, item, output)
        active = [item for item in active if item.seek < item.content_frames]
        first_round = False
    return [(item.segments, item.language, item.language_probability) for item in items]


def prompt_length(tokens: int) -> int:
    """How many of a prompt's last tokens the batch keeps: short prompts whole, longer ones cut to a power of two,
    at most ``MAX_PROMPT_TOKENS``."""
    if tokens >= MAX_PROMPT_TOKENS:
        return MAX_PROMPT_TOKENS
    if tokens < 8:
        return tokens
    return 1 << (tokens.bit_length() - 1)


def _storage(array: npt.NDArray[Any]) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _subset(model: Any, batch: npt.NDArray[np.float32], encoder_output: Any, indices: list[int]) -> Any:
    """The encoder output of some of the batch's windows: sliced where it is on the CPU, else encoded again."""
    if len(indices) == len(batch):
        return encoder_output
    if encoder_output.device == "cpu":
        return _storage(np.asarray(encoder_output)[indices])
    return model.model.encode(_storage(batch[indices]))


def _generate(model: Any, batch: npt.NDArray[np.float32], encoder_output: Any, active: list[_Item],
              tokenizer_for: Callable[[str], Any], beam_size: int, first_round: bool) -> list[_Output]:
    """Generate every window's tokens, each with its own prompt (language, previous text): one call per prompt
    length (one call when no buffer has a prompt, or all have prompts of the same length)."""
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    prompts: list[list[int]] = []
    for item in active:
        previous = item.prompt_tokens if first_round else []  # later windows are not conditioned on anything
        prompts.append(model.get_prompt(tokenizer_for(item.language or "en"), previous, without_timestamps=False))
    suppress = option("suppress_tokens")
    if suppress:  # the suppressed tokens do not depend on the language
        suppress = get_suppressed_tokens(tokenizer_for(active[0].language or "en"), list(suppress))
    length_penalty = option("length_penalty")
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(len(prompt), []).append(i)
    results: list[Any] = [None] * len(active)
    for indices in groups.values():
        generated = model.model.generate(
            _subset(model, batch, encoder_output, indices),
            [prompts[i] for i in indices],
            beam_size=beam_size,
            patience=option("patience"),
            length_penalty=length_penalty,
            repetition_penalty=option("repetition_penalty"),
            no_repeat_ngram_size=option("no_repeat_ngram_size"),
            max_length=model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=option("suppress_blank"),
            suppress_tokens=suppress,
            max_initial_timestamp_index=round(option("max_initial_timestamp") / model.time_precision),
        )
        for i, result in zip(indices, generated, strict=True):
            results[i] = result
    outputs = []
    no_speech_threshold, logprob_threshold = option("no_speech_threshold"), option("log_prob_threshold")
    frame_s = model.feature_extractor.time_per_frame
    for item, result in zip(active, results, strict=True):
        tokenizer = tokenizer_for(item.language or "en")
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) ** length_penalty / (len(tokens) + 1)
        compression_ratio = get_compression_ratio(tokenizer.decode(tokens).strip())
        skipped = result.no_speech_prob > no_speech_threshold and not avg_logprob > logprob_threshold
        size = min(WINDOW_FRAMES, item.content_frames - item.seek)
        segments, next_seek, single_ending = model._split_segments_by_timestamps(
            tokenizer=tokenizer, tokens=tokens, time_offset=item.seek * frame_s, segment_size=size,
            segment_duration=size * frame_s, seek=item.seek)
        outputs.append(_Output(tokenizer, [] if skipped else segments, size, next_seek, single_ending,
                               result.no_speech_prob, avg_logprob, compression_ratio, skipped))
    return outputs


def _add_word_timestamps(model: Any, batch: npt.NDArray[np.float32], encoder_output: Any, active: list[_Item],
                         outputs: list[_Output]) -> None:
    """Word timings for every segment: one alignment call per language in the batch (the alignment's start sequence
    names the language), then
    faster-whisper's own timing heuristics per buffer."""
    wanted = [i for i, output in enumerate(outputs) if _text_tokens(output)]
    by_language: dict[int, list[int]] = {}
    for i in wanted:
        by_language.setdefault(outputs[i].tokenizer.language, []).append(i)
    alignments: dict[int, list[dict[str, Any]]] = {}
    for indices in by_language.values():
        tokenizer = outputs[indices[0]].tokenizer
        output = _subset(model, batch, encoder_output, indices)
        found = model.find_alignment(tokenizer, [_text_tokens(outputs[i]) for i in indices], output,
                                     [outputs[i].size for i in indices])
        alignments.update(zip(indices, found, strict=True))
    prepend, append = option("prepend_punctuations"), option("append_punctuations")
    for i, (item, output) in enumerate(zip(active, outputs, strict=True)):
        if not output.segments:
            continue
        # faster-whisper's timing heuristics for one window, fed the alignment computed above for the batch
        type(model).add_word_timestamps(_Aligned(model, alignments.get(i, [])), [output.segments], output.tokenizer,
                                        None, output.size, prepend, append, item.last_speech)


class _Aligned:
    """Stands in for the model in ``WhisperModel.add_word_timestamps`` (which reads only these two attributes): the
    alignment of one window, already computed with the rest of the batch."""

    def __init__(self, model: Any, alignment: list[dict[str, Any]]) -> None:
        self.frames_per_second = model.frames_per_second
        self._alignment = alignment

    def find_alignment(self, *_args: Any, **_kwargs: Any) -> list[list[dict[str, Any]]]:
        return [self._alignment]


def _text_tokens(output: _Output) -> list[int]:
    eot = output.tokenizer.eot
    return [token for segment in output.segments for token in segment["tokens"] if token < eot]


def _advance(model: Any, item: _Item, output: _Output) -> None:
    """Keep the window's segments and move to where the next window starts, as the single decode does."""
    from faster_whisper.utils import get_end

    before = item.seek
    if output.skipped:
        item.seek += output.size
        return
    item.seek = output.next_seek
    last_word_end = get_end(output.segments)
    if not output.single_timestamp_ending and last_word_end is not None \
            and last_word_end > before * model.feature_extractor.time_per_frame:
        item.seek = round(last_word_end * model.frames_per_second)
    if last_word_end is not None:
        item.last_speech = last_word_end
    if item.seek <= before:  # never decode the same window twice
        item.seek = before + output.size
    for segment in output.segments:
        text = output.tokenizer.decode(segment["tokens"])
        if segment["start"] == segment["end"] or not text.strip():
            continue
        item.segments.append(dict(segment, text=text, no_speech_prob=output.no_speech_prob,
                                  avg_logprob=output.avg_logprob, compression_ratio=output.compression_ratio))
