"""Checks on streams of caption messages shared by the caption service tests and the browser test."""

from __future__ import annotations

from collections.abc import Sequence

from server.asr.policy import normalise


def words(text: str) -> list[str]:
    """The words of a caption as the commit policy compares them: case, spacing and punctuation aside."""
    return [normalise(word) or word for word in text.split()]


def check_committed_words_never_change(committed: Sequence[str], final_text: str) -> None:
    """Each partial's committed words (in arrival order) begin the next partial's committed words and the final
    caption's words: a committed word is never changed, removed or moved (word by word, not as a string prefix:
    "every" -> "everyone" is a change)."""
    sequence = [*committed, final_text]
    for n in range(len(sequence) - 1):
        before, after = words(sequence[n]), words(sequence[n + 1])
        what = "the final caption" if n + 1 == len(committed) else f"partial {n + 1}"
        assert after[: len(before)] == before, \
            f"committed words changed from partial {n} to {what}: {sequence[n]!r} -> {sequence[n + 1]!r}"
