"""Session tokens: JWTs (PyJWT, HS256) naming a user, their role and a session, with an expiry. The signature makes
them unforgeable; the session they name makes them revocable (``service.AccountService.verify`` checks it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
ISSUER = "moot"
AUDIENCE = "moot-staff"
CLOCK_SKEW_S = 60.0  # between the nodes of a deployment


class InvalidToken(Exception):
    """Not a valid, unexpired token of this deployment."""


@dataclass(frozen=True)
class Claims:
    user_id: str
    session_id: str
    role: str
    expires_at: float


class TokenSigner:
    def __init__(self, key: str, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def derive(self, purpose: str) -> str:
        """A value only this deployment can compute for ``purpose`` (HMAC-SHA256 with the key, base64url)."""
        digest = hmac.new(self._key.encode(), purpose.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, claims: Claims) -> str:
        now = self._clock()
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": claims.user_id, "sid": claims.session_id,
                   "role": claims.role, "iat": int(now), "exp": int(claims.expires_at)}
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def read(self, token: str) -> Claims:
        try:
            payload = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                 options={"require": ["exp", "iat", "sub", "sid", "role"], "verify_exp": False,
                                          "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        # Times are checked against this clock, not PyJWT's, so tests can move time.
        now = self._clock()
        expires_at = float(payload["exp"])
        if expires_at <= now:
            raise InvalidToken("the token has expired")
        if float(payload["iat"]) > now + CLOCK_SKEW_S:
            raise InvalidToken("the token was issued in the future")
        return Claims(str(payload["sub"]), str(payload["sid"]), str(payload["role"]), expires_at)
