"""The client's locale files: every key the pages and scripts use exists in English, every locale has exactly the
English keys, the same plural forms (at least "other") and the same {placeholders}; and no text is empty."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "client"
LOCALES = ("en", "fr", "de", "es", "nl")


def load(code: str) -> dict[str, object]:
    data = json.loads((CLIENT / "locales" / f"{code}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def used_keys() -> set[str]:
    keys: set[str] = set()
    for page in CLIENT.glob("*.html"):
        keys |= set(re.findall(r'data-i18n(?:-label|-placeholder)?="([^"]+)"', page.read_text()))
    for script in (CLIENT / "js").glob("*.js"):
        if script.name != "i18n.js":  # (its comments show the call with a made-up key)
            keys |= set(re.findall(r'\b(?:t|text|this\.text)\("([a-z_.]+)"', script.read_text()))
    return keys


def placeholders(message: object) -> set[str]:
    texts = message.values() if isinstance(message, dict) else [message]
    return {p for text in texts for p in re.findall(r"\{(\w+)\}", str(text))}


def test_every_key_in_use_has_english_words() -> None:
    used = used_keys()
    assert used, "no page marks text for translation"
    missing = used - set(load("en"))
    assert not missing, f"keys used but missing from client/locales/en.json: {sorted(missing)}"
    unused = set(load("en")) - used
    assert not unused, f"keys in en.json that nothing uses: {sorted(unused)}"


@pytest.mark.parametrize("code", LOCALES[1:])
def test_each_locale_has_the_english_keys_forms_and_placeholders(code: str) -> None:
    english, other = load("en"), load(code)
    assert set(other) == set(english), f"{code}: missing {sorted(set(english) - set(other))}, " \
                                       f"extra {sorted(set(other) - set(english))}"
    for key, message in english.items():
        translated = other[key]
        assert isinstance(translated, dict) == isinstance(message, dict), f"{code}:{key}: plural forms differ"
        if isinstance(translated, dict):
            assert "other" in translated and set(translated) <= {"zero", "one", "two", "few", "many", "other"}
        assert placeholders(translated) == placeholders(message), f"{code}:{key}: placeholders differ"
        texts = translated.values() if isinstance(translated, dict) else [translated]
        assert all(str(text).strip() for text in texts), f"{code}:{key} is empty"
