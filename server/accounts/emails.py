"""Email addresses as account names: one normal form, so "Ada@Example.org " and "ada@example.org" are one account."""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 254
_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class InvalidEmail(ValueError):
    """Not an email address; the message says why."""


def normalise_email(raw: str) -> str:
    """NFKC, trimmed, case-folded; refuses what cannot be an address (no control characters or spaces, one @, a
    dot in the domain, at most 254 characters)."""
    email = unicodedata.normalize("NFKC", raw).strip().casefold()
    if not email or len(email) > MAX_LENGTH:
        raise InvalidEmail(f"an email address has 1 to {MAX_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in email) or not _SHAPE.match(email):
        raise InvalidEmail("not an email address (name@example.org)")
    return email
