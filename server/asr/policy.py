"""LocalAgreement-2 commit policy for streaming captions (pure logic, no I/O).

While an utterance is being spoken, its audio (always from the utterance start) is re-transcribed every so often; each
hypothesis is a word list with times from the start of the utterance. A word is *committed* once two consecutive
hypotheses agree on it (and on every word before it, after what is already committed); committed words are never
changed or removed. The uncommitted rest of the latest hypothesis is *tentative*. The final caption is the committed
words followed by the final hypothesis's words after them.

"After what is already committed" is found by aligning the committed words with the start of each new hypothesis
(a word-level edit distance; among equally good alignments, the one whose last word ends closest to the end of the
committed words). Aligning by words rather than by time alone keeps a word that is genuinely said twice ("that that")
while not repeating a committed word that Whisper re-emits with shifted times, and tolerates a hypothesis that drops,
inserts or re-spells words inside the committed part.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.asr.backends import Word

_PUNCT = re.compile(r"[^\w']+", re.UNICODE)
# A hypothesis word that ends this close to (or before) the end of the committed words cannot follow them.
MIN_ADVANCE_S = 0.01


def normalise(text: str) -> str:
    """Compare words case-, spacing- and punctuation-insensitively (``"Everyone."`` equals ``" everyone,"``)."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text).casefold())


def join_words(words: Sequence[Word]) -> str:
    """Whisper's words carry their own leading spaces ("it", "'s"): join them as they are."""
    return "".join(w.text for w in words).strip()


def _common_prefix(a: Sequence[Word], b: Sequence[Word]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        key = normalise(x.text)
        if not key or key != normalise(y.text):
            break
        n += 1
    return n


def align_end(committed: Sequence[Word], hypothesis: Sequence[Word]) -> int:
    """How many words at the start of ``hypothesis`` correspond to ``committed``.

    Semi-global alignment: all of ``committed`` against a prefix ``hypothesis[:k]``, minimising substitutions,
    insertions and deletions; ties go to the ``k`` whose last word ends nearest the last committed word's end.
    """
    if not committed or not hypothesis:
        return 0
    c = [normalise(w.text) for w in committed]
    h = [normalise(w.text) for w in hypothesis]
    # row[j]: edits to align committed[:i] with hypothesis[:j]
    row = list(range(len(h) + 1))
    for i, word in enumerate(c, 1):
        previous, row = row, [i] + [0] * len(h)
        for j, other in enumerate(h, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (word != other or not word))
    end = committed[-1].end

    def key(k: int) -> tuple[int, float]:
        return row[k], abs((hypothesis[k - 1].end if k else 0.0) - end)

    return min(range(len(h) + 1), key=key)


@dataclass
class LocalAgreement:
    """Commit the prefix on which the last two hypotheses agree (after the committed words)."""

    committed: list[Word] = field(default_factory=list)
    tentative: list[Word] = field(default_factory=list)

    @property
    def committed_end(self) -> float:
        return self.committed[-1].end if self.committed else 0.0

    def tail(self, hypothesis: Sequence[Word]) -> list[Word]:
        """The part of a hypothesis after what is already committed, in time order after the committed words."""
        if not self.committed:
            return list(hypothesis)
        rest = hypothesis[align_end(self.committed, hypothesis) :]
        out: list[Word] = []
        last = self.committed_end
        for word in rest:
            if word.end > last + MIN_ADVANCE_S:  # never go back in time (a stray re-emitted word)
                out.append(word)
                last = word.end
        return out

    def update(self, hypothesis: Sequence[Word]) -> list[Word]:
        """Feed the next hypothesis; returns the words it newly commits."""
        tail = self.tail(hypothesis)
        agreed = _common_prefix(self.tentative, tail)
        newly = tail[:agreed]
        self.committed.extend(newly)
        self.tentative = tail[agreed:]
        return newly

    def finish(self, final_hypothesis: Sequence[Word]) -> list[Word]:
        """The utterance's final words: every committed word, then the final hypothesis's words after them. Does not
        change the policy."""
        return [*self.committed, *self.tail(final_hypothesis)]
