"""Signing in and knowing who is asking: accounts, Argon2 passwords, signed and revocable session tokens.

``sign_in`` checks an email and password (the same work and the same answer whether or not the account exists, so
neither timing nor the message reveals which emails have accounts), opens a session row and returns a signed token
naming it. ``verify`` accepts a token only if its signature holds, it has not expired, its session is not revoked
and its account is enabled; the role comes from the account, so a changed role applies at once. Blocking methods:
async callers use ``asyncio.to_thread`` (Argon2 is slow on purpose).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.accounts.emails import normalise_email
from server.accounts.passwords import dummy_verify, generate_password, hash_password, verify_password
from server.accounts.secret import resolve_secret_key
from server.accounts.store import AccountStore, UserRecord
from server.accounts.tokens import Claims, InvalidToken, TokenSigner
from server.core.settings import Settings
from server.storage import Storage

ROLES = ("organiser", "moderator", "admin")


class BadCredentials(Exception):
    """The email or the password is wrong (deliberately not saying which)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a signed-in user, in one session."""

    user_id: str
    email: str
    role: str
    session_id: str
    expires_at: float


@dataclass(frozen=True)
class SignedIn:
    token: str
    principal: Principal


class AccountService:
    def __init__(self, store: AccountStore, signer: TokenSigner, session_ttl_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.session_ttl_s = session_ttl_s
        self._signer = signer
        self._ttl_s = session_ttl_s
        self._clock = clock

    def add_user(self, email: str, role: str, password: str | None = None) -> tuple[UserRecord, str | None]:
        """Create an account; returns it and the generated password when none was given (shown once)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        generated = None
        if password is None:
            password = generated = generate_password()
        user = self.store.add_user(normalise_email(email), hash_password(password), role, self._clock())
        return user, generated

    def sign_in(self, email: str, password: str) -> SignedIn:
        try:
            address = normalise_email(email)
        except ValueError:
            address = None
        user = self.store.user_by_email(address) if address else None
        if user is None:
            dummy_verify(password)
            raise BadCredentials
        ok, new_hash = verify_password(user.password_hash, password)
        if not ok or user.disabled:
            raise BadCredentials
        if new_hash is not None:
            self.store.set_password_hash(user.id, new_hash)
        now = self._clock()
        expires_at = now + self._ttl_s
        session_id = self.store.add_session(user.id, now, expires_at)
        principal = Principal(user.id, user.email, user.role, session_id, expires_at)
        return SignedIn(self._signer.sign(Claims(user.id, session_id, user.role, expires_at)), principal)

    def verify(self, token: str) -> Principal:
        claims = self._signer.read(token)
        user = self.store.active_session_user(claims.session_id, claims.user_id, self._clock())
        if user is None:
            raise InvalidToken("the session has ended")
        return Principal(user.id, user.email, user.role, claims.session_id, claims.expires_at)

    def csrf_token(self, principal: Principal) -> str:
        """The session's CSRF token: browsers signed in by cookie send it back in ``X-CSRF-Token`` on every request
        that changes something; derived from the session, so another site can neither read nor forge it."""
        return self._signer.derive(f"csrf:{principal.session_id}")

    def csrf_matches(self, principal: Principal, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf_token(principal).encode(), (given or "").encode())

    def sign_out(self, principal: Principal) -> None:
        self.store.revoke_session(principal.session_id, self._clock())

    def set_password(self, user_id: str, password: str) -> None:
        """A new password ends every session of the account."""
        self.store.set_password_hash(user_id, hash_password(password))
        self.store.revoke_sessions_of(user_id, self._clock())

    def disable(self, user_id: str) -> None:
        self.store.set_disabled(user_id, self._clock())
        self.store.revoke_sessions_of(user_id, self._clock())


def open_account_service(settings: Settings, storage: Storage, clock: Callable[[], float] = time.time
                         ) -> AccountService:
    """The deployment's account service on ``storage`` (blocking: may create the signing key file)."""
    signer = TokenSigner(resolve_secret_key(settings), clock)
    return AccountService(AccountStore(storage.sessions), signer, settings.session_ttl_s, clock)
