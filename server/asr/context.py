"""What a speaker said before, as decoding context for their next utterance (pure logic, no I/O).

Whisper decodes each live utterance on its own audio. Offline transcription of a whole recording hears every sentence
after the ones before it (a 30 s window holds several), and a short utterance decoded cold is misheard more often: on
real recorded speech the live path turned "He was not an ill-disposed young man" into "He was not an old supposed young
man", which offline transcription of the same file got right. ``PriorText`` keeps the tail of a speaker's final
captions and gives it as Whisper's prompt (faster-whisper's ``initial_prompt``: text the decoder treats as what came
just before).

The prompt is short and bounded (``max_chars``, cut at a word boundary; default 100, about the last sentence): a
longer one let one misrecognised word propagate into the next utterances ("ild sposed", then "ld sposed") in
measurements, the classic failure of conditioning on previous text. It is reset when it would mislead: when the
speaker's language changes (a prompt in another language pulls the decoder towards it), and when the speaker has been
silent for ``reset_after_s``. Empty finals add nothing. ``prompt`` may be called from any thread: ``add`` and
``clear`` replace one immutable snapshot, which ``prompt`` reads once.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_CHARS = 100  # characters; measured against 200 and 400 in docs/benchmarks.md
RESET_AFTER_S = 300.0


@dataclass(frozen=True)
class _Snapshot:
    text: str = ""
    language: str | None = None
    end: float | None = None  # stream time at which the last added utterance ended


def tail(text: str, max_chars: int) -> str:
    """The end of ``text`` in at most ``max_chars`` characters, starting at a word boundary (whitespace normalised)."""
    words = text.split()
    out: list[str] = []
    size = 0
    for word in reversed(words):
        size += len(word) + (1 if out else 0)
        if size > max_chars:
            break
        out.append(word)
    return " ".join(reversed(out))


class PriorText:
    """One speaker's recent final text, bounded, as the prompt for decoding their next utterance."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, reset_after_s: float = RESET_AFTER_S) -> None:
        self.max_chars = max_chars
        self.reset_after_s = reset_after_s
        self._snapshot = _Snapshot()

    def add(self, text: str, end: float, language: str | None = None) -> None:
        """A final caption of this speaker (``end``: its stream time). A change of language starts a new context."""
        text = " ".join(text.split())
        if not text or self.max_chars <= 0:
            return
        current = self._snapshot
        keep = current.text
        if (language is not None and current.language is not None and language != current.language) or (
                current.end is not None and end - current.end > self.reset_after_s):
            keep = ""
        joined = f"{keep} {text}" if keep else text
        self._snapshot = _Snapshot(tail(joined, self.max_chars), language or current.language, end)

    def clear(self) -> None:
        self._snapshot = _Snapshot()

    def prompt(self, at: float | None = None, language: str | None = None) -> str | None:
        """The prompt for an utterance starting at stream time ``at`` in ``language`` (either may be unknown), or None
        when there is no (still relevant) prior text."""
        current = self._snapshot
        if not current.text:
            return None
        if at is not None and current.end is not None and at - current.end > self.reset_after_s:
            return None
        if language is not None and current.language is not None and language != current.language:
            return None
        return current.text
