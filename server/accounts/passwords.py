"""Password hashing with Argon2id (argon2-cffi, its recommended parameters). Hashing is deliberately slow (tens of
milliseconds and tens of MB): call these from a thread, never on the event loop."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # a longer "password" is a denial-of-service attempt, not a password

_hasher = PasswordHasher()


class WeakPassword(ValueError):
    """The password is refused; the message says why."""


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    if len(set(password)) < 4:
        raise WeakPassword("a password needs more than a few distinct characters")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(encoded: str, password: str) -> tuple[bool, str | None]:
    """Whether ``password`` matches; when it does and the hash's parameters are outdated, also a new hash to store."""
    if len(password) > MAX_LENGTH:
        return False, None
    try:
        _hasher.verify(encoded, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(encoded) else None)


def dummy_verify(password: str) -> None:
    """Spend what a verification costs, for an unknown account (so timing does not reveal which emails exist)."""
    verify_password(_DUMMY_HASH, password)


def generate_password() -> str:
    """A random password for a new account (printed once; the person changes it)."""
    return secrets.token_urlsafe(18)


_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(18))
