"""Short texts people type (statements): one normal form, and how much of it can actually be seen.

``normalise`` collapses every run of whitespace to one space, trims the ends, and drops control and format characters
(zero-width spaces, byte-order marks, word joiners, soft hyphens, bidirectional overrides), keeping only the two
joiners that shape emoji sequences (ZWJ) and Persian, Arabic or Indic words (ZWNJ). ``visible_length`` counts what is
left that shows on screen, so a text of spaces, invisible characters or blank-looking letters counts as empty.
"""

from __future__ import annotations

import unicodedata

# Invisible, but part of how emoji sequences and some scripts' words are written: kept, yet not counted as visible.
_JOINERS = frozenset("\u200c\u200d")
# Letters and symbols that draw nothing although they are not in a format category (Hangul fillers, braille blank).
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Categories with nothing to see on their own: controls, format characters, separators, combining marks.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})


def normalise(text: str) -> str:
    """``text`` with whitespace collapsed and trimmed, control and format characters (but the joiners) dropped."""
    kept = "".join(ch for ch in text
                   if ch.isspace() or ch in _JOINERS or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(kept.split())


def visible_length(text: str) -> int:
    """How many characters of ``text`` show on screen (spaces, invisible and blank-looking characters do not)."""
    return sum(1 for ch in text if not ch.isspace() and ch not in _JOINERS and ch not in _BLANK_GLYPHS
               and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES)
