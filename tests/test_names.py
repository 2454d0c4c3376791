"""Display names (server/names.py): normalisation, refusals with reasons, look-alike names and reserved names."""

from __future__ import annotations

import pytest

from server.names import (
    MAX_NAME_CHARS,
    DisplayNameRefused,
    display_name,
    names_clash,
    normalise_display_name,
    words,
)

ALIREZA = "\u0639\u0644\u06cc\u200c\u0631\u0636\u0627"  # Persian "Alireza", with a ZWNJ after its first part


def refusal(raw: str) -> DisplayNameRefused:
    with pytest.raises(DisplayNameRefused) as refused:
        display_name(raw)
    return refused.value


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Ada", "Ada"),
        ("  Ada   Lovelace \n", "Ada Lovelace"),
        ("Ada\tLovelace", "Ada Lovelace"),
        ("Ada\u00a0Lovelace", "Ada Lovelace"),  # no-break space
        ("\uff22\uff4f", "Bo"),  # fullwidth
        ("\U0001d400\U0001d41d\U0001d41a", "Ada"),  # mathematical bold
        ("ﬁona", "fiona"),  # ligature
        ("Ade\u0300le", "Adèle"),  # combining grave accent composed
        ("Nguyễn Thị Minh", "Nguyễn Thị Minh"),
        ("Ma\u0301\u0302x", "Má\u0302x"),  # two stacked marks are fine
        (ALIREZA, ALIREZA),  # Persian: ZWNJ between joining letters shapes the name, kept
        ("क्\u200dष", "क्\u200dष"),  # ZWJ after a virama, kept
        ("Dev 👩\u200d💻", "Dev 👩\u200d💻"),  # emoji ZWJ sequence, kept
        ("Ada ❤\ufe0f", "Ada ❤\ufe0f"),  # one VS16 after an emoji, kept
        # Invisible characters with no visible effect are removed: others see what the person saw.
        ("  Ada\u200b ", "Ada"),
        ("Ad\u200ba", "Ada"),  # zero-width space inside
        ("\ufeffAda\u2060", "Ada"),
        ("Ada\u00adLovelace", "AdaLovelace"),  # soft hyphen
        ("Ada\u200dLovelace", "AdaLovelace"),  # ZWJ between Latin letters joins nothing
        ("Ada\u200cLovelace", "AdaLovelace"),  # ZWNJ outside a joining script
        ("Ada\ufe0f\ufe0f\ufe0f", "Ada"),  # variation selectors after a letter: a way to hide bytes
        ("Ada \u200b Lovelace", "Ada Lovelace"),
        ("e\u200b\u0301mile", "émile"),  # the accent composes once the invisible character is gone
        ("x" * MAX_NAME_CHARS, "x" * MAX_NAME_CHARS),
    ],
)
def test_normalised(raw: str, expected: str) -> None:
    assert normalise_display_name(raw) == expected


@pytest.mark.parametrize(
    "raw, says",
    [
        ("", "enter your name"),
        ("   \n\t ", "enter your name"),
        ("\u200b\u200b", "only invisible"),
        (" \u2060\ufeff \u200b", "only invisible"),
        ("Eve\u202eevE", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u202dAda", "text-direction"),
        ("Ada\u2067", "text-direction"),  # right-to-left isolate
        ("Ada\u200f", "text-direction"),  # right-to-left mark
        ("Ada\U000e0069\U000e0067\U000e006e", "tag characters"),  # hidden "ign..." in tag characters
        ("\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "Scotland"),
        ("Ada\x07", "control characters (U+0007)"),
        ("Ada\x1b[31m", "control characters"),
        ("Ada\ue000", "private-use"),
        ("A\ud800da", "surrogate"),
        ("Ada\U0010fffe", "unassigned"),
        ("\u3164", "blank"),  # Hangul filler
        ("\u2800Ada", "blank"),  # braille blank
        ("Ada\u0600", "formatting characters (U+0600 ARABIC NUMBER SIGN)"),
        ("\u0301Ada", "cannot start with an accent"),
        ("Z" + "\u0301\u0302\u0303\u0304\u0305\u0306", "stacked"),  # "Zalgo"
        ("x" * (MAX_NAME_CHARS + 1), f"at most {MAX_NAME_CHARS} characters (this one has {MAX_NAME_CHARS + 1})"),
        ("\ufdfa" * 3, "at most 40 characters (this one has 54)"),  # NFKC expands each to 18 characters
    ],
)
def test_refused_with_a_reason(raw: str, says: str) -> None:
    refused = refusal(raw)
    assert refused.code == "bad_name"
    assert says in str(refused)


@pytest.mark.parametrize(
    "raw",
    [
        "AI", "ai", "Ai", "A.I.", "A I", "a. i.", "A1", "A|", "AI Helper", "AIHelper", "The AI",
        "\uff21\uff29",  # fullwidth AI
        "\U0001d400\U0001d408",  # mathematical bold AI
        "\u0391\u0399",  # Greek capital alpha, iota
        "\u13aa\ua4f2",  # Cherokee GO, Lisu I
        "AI facilitator", "AI Facilitator", "Facilitator", "facilitator\N{ROBOT FACE}", "\N{ROBOT FACE}",
        "Jane \N{ROBOT FACE}", "Moderator", "moderator", "MODERATOR", "Moderator Jane", "ModeratorJane",
        "Jane (moderator)", "m0derat0r",
        "\u041c\u043ederator",  # Cyrillic capital em, small o
        "\u041c\u041eDERATOR",  # Cyrillic capital em, capital o
        "\u2133oderator",  # script capital M
        "f\u0430cilit\u0430tor",  # Cyrillic small a
        "Mod", "M.O.D.", "mods", "Admin", "ADMIN", "ADMlN", "Admin1", "Administrator", "sysadmin",
        "Organiser", "Organizer", "Host", "co-host", "iHost", "System", "Moot", "Moot Team", "Assistant", "Bot", "Bot2",
        "MacBot", "Chatbot", "Robot", "Artificial Intelligence",
    ],
)
def test_reads_as_the_facilitator_or_a_moderator(raw: str) -> None:
    refused = refusal(raw)
    assert refused.code == "name_reserved", str(refused)
    assert "AI facilitator or a moderator" in str(refused)


@pytest.mark.parametrize(
    "raw",
    [
        "Ada", "Al", "AL", "Al Gore", "Ai Tanaka", "Aiden", "Aiko", "Kai", "Mai", "Thai Nguyen", "Modesty", "Modiano",
        "Hostetler", "Admire", "Systema", "Botha", "Abbott", "Bottomley", "Mooth", "Ian", "McDonald", "DeShawn",
        "J. R. R. Tolkien", "P1", "Jane Facility", "Moderne", "Hosting", "Assis", "Ali", "Lai", "Ai-Ling",
    ],
)
def test_real_names_pass(raw: str) -> None:
    assert display_name(raw) == raw


def test_words_are_cut_at_camel_case_digits_and_joined_single_letters() -> None:
    assert words("ModeratorJane") == ["Moderator", "Jane"]
    assert words("AIHelper") == ["AI", "Helper"]
    assert words("Bot2") == ["Bot", "2"]
    assert words("m0derat0r") == ["m0derat0r"]
    assert words("A. I. Helper") == ["AI", "Helper"]
    assert words("Facilitator🤖") == ["Facilitator"]


@pytest.mark.parametrize(
    "a, b",
    [
        ("Ada", "ADA"),
        ("Ada", "ada"),
        ("Ada", "\u0410da"),  # Cyrillic capital A
        ("Ada", "Ad\u0430"),  # Cyrillic small a
        ("Ada", "\u0391da"),  # Greek capital alpha
        ("Ian", "lan"),  # capital i and lowercase L read alike
        ("Al", "AI"),
        ("Bo0", "BoO"),
        ("Paul", "PauI"),
        ("Ana", "\u0391n\u03b1"),  # Greek capital and small alpha
    ],
)
def test_look_alike_names_clash(a: str, b: str) -> None:
    assert names_clash(normalise_display_name(a), normalise_display_name(b))


@pytest.mark.parametrize("a, b", [("Ada", "Adam"), ("Ian", "Lan"), ("Bo", "Bob"), ("Al", "al i"), ("Ana", "Anna")])
def test_different_names_do_not_clash(a: str, b: str) -> None:
    assert not names_clash(a, b)
