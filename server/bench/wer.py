"""Word error rate as speech-recognition benchmarks report it: both texts go through Whisper's English text normaliser
first, so that spelling conventions are not counted as errors ("Mr." = "mister", "ill-disposed" = "ill disposed",
"colour" = "color", "twenty-five" = "25", "it's" = "it is"; punctuation, case and fillers such as "um" ignored).

The normaliser is the one OpenAI published with Whisper, as transformers (already a dependency) ships it:
``transformers.models.whisper.english_normalizer.EnglishTextNormalizer``. The British-to-American spelling table it
needs is ``data/whisper_english_spelling.json``, an unmodified copy of ``whisper/normalizers/english.json`` from the
openai-whisper 20250625 source distribution (MIT licence, see ``data/README.md``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

SPELLING = Path(__file__).with_name("data") / "whisper_english_spelling.json"


@functools.cache
def _normaliser() -> Callable[[str], str]:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(SPELLING.read_text(encoding="utf-8")))


def normalise_text(text: str) -> list[str]:
    """The words of ``text`` after Whisper's English normalisation."""
    return _normaliser()(text).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, over normalised words."""
    ref, hyp = normalise_text(reference), normalise_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)
