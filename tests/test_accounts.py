"""Accounts: normalised emails, Argon2 passwords, signed and revocable session tokens, and ``moot users`` (on SQLite
and a real PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher

from server.accounts import passwords
from server.accounts.emails import InvalidEmail, normalise_email
from server.accounts.service import AccountService, BadCredentials, open_account_service
from server.accounts.store import AccountExists
from server.accounts.tokens import InvalidToken
from server.core.settings import Settings
from server.storage import Storage

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[AccountService]:
    storage = Storage(database_url)
    storage.create_schema()
    yield open_account_service(Settings(data_dir=tmp_path, session_ttl_s=3600), storage, clock)
    storage.close()


@pytest.mark.parametrize(("raw", "normal"), [("Ada@Example.org", "ada@example.org"),
                                             ("  ada@example.org\n", "ada@example.org"),
                                             ("\uff21\uff24\uff21@example.org", "ada@example.org")])
def test_emails_have_one_normal_form(raw: str, normal: str) -> None:
    assert normalise_email(raw) == normal


@pytest.mark.parametrize("raw", ["", "ada", "ada@", "@example.org", "a b@example.org", "ada@example",
                                 "ada@@example.org", "ada\u200b@example.org", "a" * 250 + "@example.org"])
def test_what_is_not_an_email_is_refused(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        normalise_email(raw)


def test_passwords_are_hashed_with_argon2id_and_weak_ones_refused() -> None:
    encoded = passwords.hash_password(PASSWORD)
    assert encoded.startswith("$argon2id$") and PASSWORD not in encoded
    assert passwords.verify_password(encoded, PASSWORD) == (True, None)
    assert passwords.verify_password(encoded, PASSWORD + "!") == (False, None)
    assert passwords.verify_password("not a hash", PASSWORD) == (False, None)
    for weak in ("short", "aaaaaaaaaaaaaaaa", "x" * 2000):
        with pytest.raises(passwords.WeakPassword):
            passwords.hash_password(weak)


def test_a_hash_with_outdated_parameters_is_replaced_on_sign_in() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    ok, new = passwords.verify_password(old, PASSWORD)
    assert ok and new is not None and passwords.verify_password(new, PASSWORD) == (True, None)


def test_sign_in_verify_and_sign_out(accounts: AccountService) -> None:
    user, generated = accounts.add_user("Ada@Example.org", "organiser", PASSWORD)
    assert generated is None and user.email == "ada@example.org"
    signed = accounts.sign_in(" ADA@example.org", PASSWORD)
    principal = accounts.verify(signed.token)
    assert (principal.user_id, principal.role, principal.email) == (user.id, "organiser", "ada@example.org")
    accounts.sign_out(principal)
    with pytest.raises(InvalidToken):
        accounts.verify(signed.token)  # revoked before it expires


def test_wrong_password_and_unknown_email_get_the_same_answer(accounts: AccountService) -> None:
    accounts.add_user("ada@example.org", "organiser", PASSWORD)
    for email, password in (("ada@example.org", "wrong password here"), ("nobody@example.org", PASSWORD),
                            ("not an email", PASSWORD)):
        with pytest.raises(BadCredentials) as refused:
            accounts.sign_in(email, password)
        assert str(refused.value) == ""


def test_duplicate_accounts_and_unknown_roles_are_refused(accounts: AccountService) -> None:
    accounts.add_user("ada@example.org", "organiser", PASSWORD)
    with pytest.raises(AccountExists):
        accounts.add_user("ADA@example.org", "moderator", PASSWORD)
    with pytest.raises(ValueError):
        accounts.add_user("bo@example.org", "superuser", PASSWORD)


def test_tokens_expire(accounts: AccountService, clock: Clock) -> None:
    accounts.add_user("ada@example.org", "moderator", PASSWORD)
    token = accounts.sign_in("ada@example.org", PASSWORD).token
    clock.now += 3599
    accounts.verify(token)
    clock.now += 2
    with pytest.raises(InvalidToken):
        accounts.verify(token)


def test_forged_and_tampered_tokens_are_refused(accounts: AccountService, tmp_path: Path) -> None:
    ada, _ = accounts.add_user("ada@example.org", "moderator", PASSWORD)
    bo, _ = accounts.add_user("bo@example.org", "admin", PASSWORD)
    signed = accounts.sign_in("ada@example.org", PASSWORD)
    claims = jwt.decode(signed.token, options={"verify_signature": False})
    forged = [
        jwt.encode({**claims, "role": "admin"}, "another deployment's key that is long enough", algorithm="HS256"),
        jwt.encode({**claims, "sub": bo.id}, "x" * 40, algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        signed.token[:-2] + ("AA" if not signed.token.endswith("AA") else "BB"),
        "not.a.token",
        "",
    ]
    for token in forged:
        with pytest.raises(InvalidToken):
            accounts.verify(token)
    # A validly signed token naming another user's session (a key leak would allow it): refused by the session check.
    key = (tmp_path / "secret-key").read_text().strip()
    other_user = jwt.encode({**claims, "sub": bo.id}, key, algorithm="HS256")
    with pytest.raises(InvalidToken):
        accounts.verify(other_user)
    assert accounts.verify(signed.token).user_id == ada.id


def test_disabling_or_a_new_password_ends_sessions_and_roles_come_from_the_account(accounts: AccountService) -> None:
    user, _ = accounts.add_user("ada@example.org", "moderator", PASSWORD)
    first = accounts.sign_in("ada@example.org", PASSWORD).token
    accounts.set_password(user.id, "a different long password")
    with pytest.raises(InvalidToken):
        accounts.verify(first)
    with pytest.raises(BadCredentials):
        accounts.sign_in("ada@example.org", PASSWORD)
    second = accounts.sign_in("ada@example.org", "a different long password").token
    accounts.disable(user.id)
    with pytest.raises(InvalidToken):
        accounts.verify(second)
    with pytest.raises(BadCredentials):
        accounts.sign_in("ada@example.org", "a different long password")


def moot(*args: str, stdin: str = "", data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "users", "--data-dir", str(data_dir), *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_moot_users_add_list_set_password_disable(tmp_path: Path) -> None:
    created = moot("add", "Ada@Example.org", "--role", "organiser", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    generated = created.stdout.split("password (shown once, change it after signing in): ")[1].strip()
    assert len(generated) >= 20
    typed = moot("add", "bo@example.org", "--role", "moderator", "--password-stdin", stdin=PASSWORD + "\n",
                 data_dir=tmp_path)
    assert typed.returncode == 0 and "password" not in typed.stdout.split("\n", 1)[1]
    again = moot("add", "ADA@example.org", "--role", "admin", data_dir=tmp_path)
    assert again.returncode == 1 and "exists already" in again.stderr
    weak = moot("add", "cy@example.org", "--role", "admin", "--password-stdin", stdin="short\n", data_dir=tmp_path)
    assert weak.returncode == 1 and "at least" in weak.stderr
    listed = moot("list", data_dir=tmp_path)
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [["ada@example.org", "organiser"],
                                                                             ["bo@example.org", "moderator"]]
    assert moot("disable", "bo@example.org", data_dir=tmp_path).returncode == 0
    assert "disabled" in moot("list", data_dir=tmp_path).stdout.splitlines()[1]
    assert moot("disable", "nobody@example.org", data_dir=tmp_path).returncode == 1

    storage = Storage(f"sqlite:///{tmp_path / 'moot.db'}")
    service = open_account_service(Settings(data_dir=tmp_path), storage)
    assert service.verify(service.sign_in("ada@example.org", generated).token).role == "organiser"
    with pytest.raises(BadCredentials):
        service.sign_in("bo@example.org", PASSWORD)  # disabled
    storage.close()
