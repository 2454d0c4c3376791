"""Untrusted text crossing the language model's boundary: the one encoding and line format of the prompt's data block,
and the bound on what the model's text may become.

Everything the model reads that a person typed or said (display names, utterances, the room's question, statements)
goes through ``encode_field`` before it enters the data block:

- ``<``, ``>`` and ``&`` become ``&lt;``, ``&gt;`` and ``&amp;``, so no text can close or open the ``<data>`` fence or
  write a chat-template token such as ``<|im_start|>`` (after NFKC normalisation, so look-alikes such as the
  full-width less-than sign U+FF1C are caught too);
- every line or paragraph break (``\\r``, ``\\n``, vertical tab, form feed, U+0085, U+2028, U+2029, the ASCII file and
  group separators) and any other whitespace run becomes one space, so one field can never become several lines (a
  caption pretending to be line ``[7] Moderator: ...`` stays inside its own line);
- other control, format (invisible "tag" characters, bidi overrides, zero-width spaces), surrogate and private-use
  characters are removed; ZWJ and ZWNJ stay, as some scripts and emoji need them;
- each field is cut to a bound, with an ellipsis.

``number_lines`` writes transcript lines as ``[n] Speaker: text``, one per caption, numbered from 1; summaries,
statement proposals and the safety review all use it. ``fence`` wraps a data block in the fence and refuses (with
``ValueError``) a block that was not encoded, so a caller that forgets the encoding fails loudly instead of opening a
hole. The fence tag is fixed (no random nonce): the encoding already makes a closing tag impossible inside the data,
``fence`` checks it, and fixed prompts stay reproducible in the audit log and cacheable by model servers.

``shorten`` bounds text the other way: what the facilitator posts to the room (``MAX_AI_MESSAGE_CHARS``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence

from server.core.events import CaptionFinal

DATA_OPEN = "<data>"
DATA_CLOSE = "</data>"

MAX_NAME_CHARS = 64  # as a display name at join
MAX_UTTERANCE_CHARS = 1000
MAX_QUESTION_CHARS = 1000  # as a template's question
MAX_STATEMENT_CHARS = 500  # as a statement from the room

ELLIPSIS = "\u2026"
_REMOVED_CATEGORIES = {"Cc", "Cf", "Cs", "Co"}
_KEPT_FORMAT = {"\u200c", "\u200d"}  # zero-width non-joiner and joiner: needed by Persian, Indic scripts, emoji
# What an encoded line may not contain: fence characters, any line break, any control or removed format character.
_UNSAFE = re.compile(r"[<>\x00-\x1f\x7f-\x9f\u2028\u2029\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
                     r"\ufeff\U000e0000-\U000e007f]")


def shorten(text: str, max_chars: int) -> str:
    """``text`` if it fits in ``max_chars``, otherwise cut (at a word boundary where one is near) with an ellipsis."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def encode_field(text: str, max_chars: int) -> str:
    """One untrusted field, safe inside the data block: one line, no fence or markup characters, at most
    ``max_chars`` characters of the original text (escaping may lengthen it)."""
    text = unicodedata.normalize("NFKC", text)
    kept = []
    for ch in text:
        if ch.isspace():
            kept.append(" ")
        elif ch in _KEPT_FORMAT or unicodedata.category(ch) not in _REMOVED_CATEGORIES:
            kept.append(ch)
    return html.escape(shorten(" ".join("".join(kept).split()), max_chars), quote=False)


def number_lines(captions: Sequence[CaptionFinal]) -> tuple[str, dict[int, str]]:
    """The data block's transcript, one ``[n] Speaker: text`` line per caption numbered from 1, and line number ->
    utterance id."""
    lines, index = [], {}
    for n, caption in enumerate(captions, start=1):
        lines.append(f"[{n}] {encode_field(caption.speaker_name, MAX_NAME_CHARS)}: "
                     f"{encode_field(caption.text, MAX_UTTERANCE_CHARS)}")
        index[n] = caption.utterance_id
    return "\n".join(lines), index


def fence(data: str) -> str:
    """``data`` (lines separated by ``\\n``, every field made with ``encode_field``) between the fence tags.
    Raises ``ValueError`` if anything in it could break out of the fence or fake a line."""
    if found := _UNSAFE.search(data.replace("\n", " ")):
        raise ValueError(f"prompt data contains {found.group()!r} at {found.start()}: encode untrusted text with "
                         "facilitator.prompt.encode_field")
    return f"{DATA_OPEN}\n{data}\n{DATA_CLOSE}"
