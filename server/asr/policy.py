"""LocalAgreement commit policy for streaming captions (pure logic, no I/O).

While an utterance is being spoken, its audio is re-transcribed every so often; each hypothesis is a word list with
times from the start of the utterance. A word is *committed* once two consecutive hypotheses agree on it (and on every
word before it); committed words are never changed or removed. The uncommitted rest of the latest hypothesis is
*tentative*. The final caption is the committed words followed by the final hypothesis's words after them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.asr.backends import Word

_PUNCT = re.compile(r"[^\w']+", re.UNICODE)
TIME_TOLERANCE_S = 0.25


def normalise(text: str) -> str:
    """Compare words case-, accent-spacing- and punctuation-insensitively."""
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text).casefold())


def _common_prefix(a: Sequence[Word], b: Sequence[Word]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if normalise(x.text) != normalise(y.text) or not normalise(x.text):
            break
        n += 1
    return n


@dataclass
class LocalAgreement:
    """Commit the prefix on which the last two hypotheses agree."""

    committed: list[Word] = field(default_factory=list)
    tentative: list[Word] = field(default_factory=list)
    _previous_tail: list[Word] = field(default_factory=list)

    @property
    def committed_end(self) -> float:
        return self.committed[-1].end if self.committed else 0.0

    def _tail(self, hypothesis: Sequence[Word]) -> list[Word]:
        """The part of a hypothesis after what is already committed: by time, then dropping a repeat of the last
        committed words (Whisper may re-emit a boundary word with shifted times)."""
        end = self.committed_end
        tail = [w for w in hypothesis if w.end > end + 0.01 and w.start >= end - TIME_TOLERANCE_S] if self.committed \
            else list(hypothesis)
        if self.committed and tail:
            for n in range(min(5, len(self.committed), len(tail)), 0, -1):
                last = [normalise(w.text) for w in self.committed[-n:]]
                head = [normalise(w.text) for w in tail[:n]]
                if last == head:
                    tail = tail[n:]
                    break
        return tail

    def update(self, hypothesis: Sequence[Word]) -> list[Word]:
        """Feed the next hypothesis; returns the words it newly commits."""
        tail = self._tail(hypothesis)
        agreed = _common_prefix(self._previous_tail, tail)
        newly = tail[:agreed]
        self.committed.extend(newly)
        self.tentative = tail[agreed:]
        self._previous_tail = self.tentative
        return newly

    def finish(self, final_hypothesis: Sequence[Word]) -> list[Word]:
        """The utterance's final words: every committed word, then the final hypothesis's words after them."""
        return [*self.committed, *self._tail(final_hypothesis)]


def join_words(words: Sequence[Word]) -> str:
    return "".join(w.text for w in words).strip()
