"""Display names: what a participant may be called, and when two names look the same.

Everything a person types on the join form goes through ``display_name`` before anyone else sees it: the name stored,
shown on tiles, captions, statements and in the facilitator's prompts is the normalised one. Refusals raise
``DisplayNameRefused`` with an error code (``bad_name`` or ``name_reserved``) and a sentence the person can act on.

Normalisation (``normalise_display_name``), with Unicode properties from ICU (Unicode 16):

1. NFKC: compatibility forms become plain letters (fullwidth or mathematical bold letters, ligatures such as U+FB01
   -> "fi") and accents are composed ("e" + U+0301 -> "é").
2. Invisible characters. What is removed silently is exactly what has no visible effect in a name, so others see what
   the person saw and nothing hides between the letters; what would change how the name shows is refused and named:
   - refused: text-direction controls (Bidi_Control: U+200E/200F/061C marks, U+202A-202E embeddings and overrides,
     U+2066-2069 isolates), because they reorder the name and the text around it, so removing them would show others a
     different name than the person typed; tag characters (U+E0000-E007F), because they can carry hidden text into the
     facilitator's language-model prompts (this also refuses the flags of England, Scotland and Wales, built from
     them); every other format character (Cf, e.g. the visible Arabic number signs); control, private-use, surrogate
     and unassigned code points; and characters that show as blank but are letters or symbols (Hangul fillers,
     U+2800 BRAILLE PATTERN BLANK), a common way to make a name look empty or like someone else's;
   - removed: zero-width space, word joiner, byte order mark, soft hyphen, invisible maths operators, Mongolian vowel
     separator, combining grapheme joiner, and variation selectors except one VS15/VS16 after an emoji or one
     ideographic variation selector after an ideograph (so "❤️" and Japanese name kanji keep their form but a run of
     selectors, a known way of smuggling hidden bytes, is dropped);
   - zero-width joiner and non-joiner (U+200D, U+200C) are kept only where they shape visible text, by the rules IDNA
     uses (RFC 5892 CONTEXTJ: after a virama, e.g. in Devanagari; ZWNJ between joining letters, e.g. in Persian names
     such as Alireza) and inside emoji sequences (woman + ZWJ + laptop); anywhere else they are invisible and removed
     like a zero-width space.
3. Whitespace of any kind becomes single spaces; the name is trimmed. A name with nothing left is refused, saying
   whether it was empty or only invisible characters.
4. At most ``MAX_STACKED_MARKS`` combining marks in a row ("Zalgo" text spills over the lines around it; real scripts
   stack fewer after NFKC) and no mark at the start.
5. At most ``MAX_NAME_CHARS`` (40) characters after normalisation: long enough for full names ("Maria Guadalupe
   Fernández de la Torre" is 37), short enough to fit a video tile, a caption line and the speaking-time bars, and
   safely inside the 64-character name columns in storage even where NFKC expands a character (U+FDFA becomes 18).
   Characters are code points, so an emoji sequence counts as several.

Sameness (``names_clash``) uses the confusable skeletons of Unicode Technical Standard #39, computed by ICU's
SpoofChecker (the reference implementation and data). Two names clash when their case-folded skeletons are equal
("Ada", "ADA", and "Ada" spelt with a Cyrillic A) or their skeletons are equal as written ("Ian" and "lan", "AI" and
"Al", which read alike in sans-serif fonts but differ once case-folded).

Reserved names (``reserved_word``): nobody may be called anything that reads as the AI facilitator or a moderator.
The name is cut into words (at spaces and punctuation, at camelCase and before trailing digits; runs of single
letters such as "A.I." or "M O D" are joined), and each word is compared by its skeleton, so look-alike letters,
fullwidth forms and digits such as "m0derat0r" match too; capital I, lowercase l and 1 count as the same letter.
A name is refused when a word is a role (facilitator, moderator, mod, admin, organiser, host, system, moot, assistant,
bot, ... see ``ROLE_WORDS``), when it is made only of "AI" and words that go with it ("AI", "A.I.", "Ai", "AI Helper",
"the AI"), or when it contains the robot emoji. Whole words only: "Aiden", "Modesty", "Hostetler", "Admire", "Kai"
pass. "Al" passes (a common given name, though it can look like "AI"), and so does "Ai Tanaka": Ai is a Japanese given
name and next to an ordinary word it does not read as the facilitator. What tells the facilitator and moderators apart
is the badge the client draws from the message's type, which no name can produce; these rules only stop a name from
claiming the role in words.
"""

from __future__ import annotations

from collections.abc import Iterator

import icu  # PyICU (from the pyicu-wheels package, which bundles the ICU library)

from server.core.errors import Refused

MAX_NAME_CHARS = 40
MAX_STACKED_MARKS = 4


ROLE_WORDS = (
    "facilitator", "facilitators", "moderator", "moderators", "mod", "mods", "admin", "admins", "administrator",
    "administrators", "sysadmin", "organiser", "organisers", "organizer", "organizers", "host", "hosts", "cohost",
    "system", "moot", "assistant", "assistants", "bot", "bots", "chatbot", "chatbots", "robot", "robots",
)
# Words that, with "AI" and nothing else, make a name read as the facilitator ("AI Helper", "The AI", "AI model").
AI_WORDS = ("ai", "artificial", "intelligence")
AI_COMPANION_WORDS = (
    "helper", "agent", "guide", "coach", "tutor", "model", "chat", "gpt", "llm", "the", "an", "your", "our", "my",
)
RESERVED_SYMBOLS = ("\N{ROBOT FACE}",)


class DisplayNameRefused(Refused, ValueError):
    """A display name nobody may use (code ``bad_name`` or ``name_reserved``); ``str(exc)`` tells the person what to
    change, ``reason`` and ``params`` say the same for a client that words it in another language."""


# ---------------------------------------------------------------------------------------------------------------------
# Normalisation

_NFKC = icu.Normalizer2.getNFKCInstance()
_SPOOF = icu.SpoofChecker()
_C, _P, _CAT = icu.Char, icu.UProperty, icu.UCharCategory

ZWNJ, ZWJ = "\u200c", "\u200d"
_REMOVED = frozenset("\u00ad\u034f\u180e\u200b\u2060\u2061\u2062\u2063\u2064\ufeff")
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_MARKS = (_CAT.NON_SPACING_MARK, _CAT.ENCLOSING_MARK)
_REFUSED_CATEGORIES = {
    _CAT.CONTROL_CHAR: "control",
    _CAT.PRIVATE_USE_CHAR: "private-use",
    _CAT.SURROGATE: "surrogate",
    _CAT.UNASSIGNED: "unassigned",
}
# ICU's UJoiningType values (PyICU does not export the enum).
_JT_DUAL, _JT_LEFT, _JT_RIGHT, _JT_TRANSPARENT = 2, 3, 4, 5
_VIRAMA = 9


def _described(char: str) -> str:
    name = _C.charName(char)
    return f"U+{ord(char):04X} {name}" if name else f"U+{ord(char):04X}"


def _is_variation_selector(char: str) -> bool:
    return "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef"


def _keeps_variation_selector(chars: str, i: int) -> bool:
    """One VS15/VS16 straight after an emoji, or one ideographic variation selector straight after an ideograph."""
    if i == 0:
        return False
    before = chars[i - 1]
    if chars[i] in "\ufe0e\ufe0f":
        return bool(_C.hasBinaryProperty(before, _P.EMOJI))
    return chars[i] >= "\U000e0100" and bool(_C.hasBinaryProperty(before, _P.IDEOGRAPHIC))


def _joining_type(char: str) -> int:
    return int(_C.getIntPropertyValue(char, _P.JOINING_TYPE))


def _keeps_joiner(chars: str, i: int) -> bool:
    """RFC 5892 CONTEXTJ for ZWJ/ZWNJ, plus ZWJ between two pictographs of an emoji sequence."""
    if i > 0 and _C.getCombiningClass(chars[i - 1]) == _VIRAMA:
        return True
    if chars[i] == ZWNJ:
        before = i - 1
        while before >= 0 and _joining_type(chars[before]) == _JT_TRANSPARENT:
            before -= 1
        after = i + 1
        while after < len(chars) and _joining_type(chars[after]) == _JT_TRANSPARENT:
            after += 1
        return (before >= 0 and after < len(chars) and _joining_type(chars[before]) in (_JT_LEFT, _JT_DUAL)
                and _joining_type(chars[after]) in (_JT_RIGHT, _JT_DUAL))
    before = i - 1
    while before >= 0 and (_is_variation_selector(chars[before])
                           or _C.hasBinaryProperty(chars[before], _P.EMOJI_MODIFIER)):
        before -= 1
    return (before >= 0 and i + 1 < len(chars) and bool(_C.hasBinaryProperty(chars[before], _P.EXTENDED_PICTOGRAPHIC))
            and bool(_C.hasBinaryProperty(chars[i + 1], _P.EXTENDED_PICTOGRAPHIC)))


def _refusal(char: str) -> DisplayNameRefused | None:
    """Why ``char`` may not be in a name (reason ``direction_control``, ``tag_character``, ``blank_character``,
    ``refused_character``, ``format_character``; params: ``char`` described), or None."""
    params: dict[str, str | int] = {"char": _described(char)}
    if _C.hasBinaryProperty(char, _P.BIDI_CONTROL):
        return DisplayNameRefused(
            "bad_name", f"Names cannot contain invisible text-direction controls ({_described(char)}): they change "
                        "how the name and the text around it are shown. Please type your name without them.",
            "direction_control", params)
    if "\U000e0000" <= char <= "\U000e007f":
        return DisplayNameRefused(
            "bad_name", f"Names cannot contain invisible tag characters ({_described(char)}), which can hide text; "
                        "this includes the flags of England, Scotland and Wales. Please type your name without them.",
            "tag_character", params)
    if char in _BLANK or (_C.hasBinaryProperty(char, _P.DEFAULT_IGNORABLE_CODE_POINT) and char not in (ZWJ, ZWNJ)
                          and not _is_variation_selector(char) and char not in _REMOVED):
        return DisplayNameRefused(
            "bad_name", f"Names cannot contain characters that show as blank ({_described(char)}). Please type your "
                        "name.", "blank_character", params)
    category = _C.charType(char)
    if category in _REFUSED_CATEGORIES:
        return DisplayNameRefused(
            "bad_name", f"Names cannot contain {_REFUSED_CATEGORIES[category]} characters ({_described(char)}). "
                        "Please type your name.", "refused_character", params)
    if category == _CAT.FORMAT_CHAR and char not in (ZWJ, ZWNJ) and char not in _REMOVED:
        return DisplayNameRefused(
            "bad_name", f"Names cannot contain formatting characters ({_described(char)}). Please type your name "
                        "without them.", "format_character", params)
    return None


def normalise_display_name(raw: str) -> str:
    """The name as others will see it, or ``DisplayNameRefused`` (code ``bad_name``) saying what to change."""
    chars = str(_NFKC.normalize(raw))
    kept: list[str] = []
    invisible = False
    for i, char in enumerate(chars):
        if char.isspace():
            kept.append(" ")
            continue
        refusal = _refusal(char)
        if refusal is not None:
            raise refusal
        removed = (char in _REMOVED
                   or (char in (ZWJ, ZWNJ) and not _keeps_joiner(chars, i))
                   or (_is_variation_selector(char) and not _keeps_variation_selector(chars, i)))
        invisible = invisible or removed
        if not removed:
            kept.append(char)
    name = " ".join(str(_NFKC.normalize("".join(kept))).split())  # removing may let accents compose
    if not name:
        if invisible:
            raise DisplayNameRefused("bad_name", "This name is only invisible characters. Please type your name.",
                                     "invisible")
        raise DisplayNameRefused("bad_name", "Please enter your name.", "empty")
    if len(name) > MAX_NAME_CHARS:
        raise DisplayNameRefused(
            "bad_name", f"Please shorten your name to at most {MAX_NAME_CHARS} characters (this one has {len(name)}).",
            "too_long", {"max": MAX_NAME_CHARS, "length": len(name)})
    if _C.charType(name[0]) in (*_MARKS, _CAT.COMBINING_SPACING_MARK):
        raise DisplayNameRefused("bad_name", "A name cannot start with an accent or other combining mark.",
                                 "starts_with_mark")
    stacked = 0
    for char in name:
        stacked = stacked + 1 if _C.charType(char) in _MARKS and not _is_variation_selector(char) else 0
        if stacked > MAX_STACKED_MARKS:
            raise DisplayNameRefused(
                "bad_name", f"Too many accents are stacked on one letter (at most {MAX_STACKED_MARKS}). "
                            "Please type your name plainly.", "stacked_marks", {"max": MAX_STACKED_MARKS})
    return name


# ---------------------------------------------------------------------------------------------------------------------
# Confusables


def skeleton(text: str) -> str:
    """UTS #39 skeleton: equal for strings that look alike ("Ada" spelt with Latin or Cyrillic A); case is kept."""
    return str(_SPOOF.getSkeleton(0, text))


def folded_skeleton(text: str) -> str:
    """The skeleton of the case-folded text, folded again until stable (a skeleton can map "0" to "O")."""
    folded = text
    for _ in range(4):
        again = skeleton(folded.casefold()).casefold()
        if again == folded:
            break
        folded = again
    return folded


def names_clash(a: str, b: str) -> bool:
    """Whether two (normalised) names would be mistaken for each other: equal ignoring case and look-alike letters,
    or look-alike as written."""
    return folded_skeleton(a) == folded_skeleton(b) or skeleton(a) == skeleton(b)


# ---------------------------------------------------------------------------------------------------------------------
# Reserved names


def _word_key(word: str) -> frozenset[str]:
    """How a word reads: its folded skeleton, also taken after the as-written skeleton (Cyrillic capitals that look
    like Latin ones fold differently), with I/l/1 made one letter."""
    return frozenset(k.replace("l", "i") for k in (folded_skeleton(word), folded_skeleton(skeleton(word))))


def _keys(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(key for word in words for key in _word_key(word))


_ROLE_KEYS = _keys(ROLE_WORDS)
_AI_KEYS = _keys(AI_WORDS)
_AI_CONTEXT_KEYS = _ROLE_KEYS | _AI_KEYS | _keys(AI_COMPANION_WORDS)


def _is_word_char(char: str) -> bool:
    if _is_variation_selector(char):
        return False
    category = _C.charType(char)
    if category in (_CAT.UPPERCASE_LETTER, _CAT.LOWERCASE_LETTER, _CAT.TITLECASE_LETTER, _CAT.MODIFIER_LETTER,
                    _CAT.OTHER_LETTER, _CAT.NON_SPACING_MARK, _CAT.ENCLOSING_MARK, _CAT.COMBINING_SPACING_MARK,
                    _CAT.DECIMAL_DIGIT_NUMBER, _CAT.LETTER_NUMBER, _CAT.OTHER_NUMBER):
        return True
    return any(c.isalnum() for c in skeleton(char))  # "|" reads as "l"


def _is_upper(char: str) -> bool:
    return bool(char) and _C.charType(char) in (_CAT.UPPERCASE_LETTER, _CAT.TITLECASE_LETTER)


def _is_lower(char: str) -> bool:
    return bool(char) and _C.charType(char) == _CAT.LOWERCASE_LETTER


def _rest_of_run(name: str, start: int) -> str:
    end = start
    while end < len(name) and _is_word_char(name[end]):
        end += 1
    return name[start:end]


def _runs(name: str, camel_case: bool) -> Iterator[str]:
    """Runs of word characters, cut before trailing digits ("Bot2") and, with ``camel_case``, at case changes
    ("ModeratorJane", "AIHelper")."""
    run = ""
    for i, char in enumerate(name):
        if not _is_word_char(char):
            if run:
                yield run
            run = ""
            continue
        if run:
            prev, nxt = run[-1], name[i + 1] if i + 1 < len(name) else ""
            camel = camel_case and _is_upper(char) and (_is_lower(prev) or (_is_upper(prev) and _is_lower(nxt)))
            trailing_digits = char.isdigit() and not prev.isdigit() and _rest_of_run(name, i).isdigit()
            if camel or trailing_digits:
                yield run
                run = ""
        run += char
    if run:
        yield run


def words(name: str, camel_case: bool = True) -> list[str]:
    """The words of a name, with runs of single characters joined ("A.I." -> "AI", "M O D" -> "MOD")."""
    joined: list[str] = []
    single = False
    for run in _runs(name, camel_case):
        if len(run) == 1 and single:
            joined[-1] += run
        else:
            joined.append(run)
        single = len(run) == 1
    return joined


def reserved_word(name: str) -> str | None:
    """The part of ``name`` that makes it read as the AI facilitator or a moderator, or None."""
    for symbol in RESERVED_SYMBOLS:
        if symbol in name:
            return symbol
    for camel_case in (True, False):  # "ModeratorJane" needs the cut, "ADMlN" (lowercase L) must not be cut
        found = words(name, camel_case)
        for word in found:
            if _word_key(word) & _ROLE_KEYS:
                return word
        ai = [w for w in found if _word_key(w) & _AI_KEYS and w.casefold() != "al"]  # "Al" is a name
        if ai and all(_word_key(w) & _AI_CONTEXT_KEYS for w in found):
            return ai[0]
    return None


def display_name(raw: str) -> str:
    """The normalised name, or ``DisplayNameRefused`` (``bad_name``, ``name_reserved``) with what to change."""
    name = normalise_display_name(raw)
    word = reserved_word(name)
    if word is not None:
        said = f"“{name}”" if word == name else f"“{name}” (“{word}”)"
        raise DisplayNameRefused(
            "name_reserved", f"{said} reads like the AI facilitator or a moderator, which would confuse the group. "
                             "Please join under your own name.", "reserved" if word == name else "reserved_word",
            {"name": name, "word": word})
    return name
