"""Participant credentials: a signed token naming one participant, which the browser keeps (across reloads and
reconnects) and shows to the lobby and to its room.

- A deliberation's participant: the token names the deliberation, not the room; the database says which room the
  participant was given, so a credential cannot be replayed into another room.
- A stand-alone room's participant: the token names the room (given in ``welcome``, for reading the room's history
  and transcript)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
AUDIENCE = "moot-participant"
LIFETIME_S = 30 * 86400


class InvalidCredential(Exception):
    """Not a participant credential of this deployment, or expired."""


@dataclass(frozen=True)
class ParticipantClaims:
    participant_id: str
    deliberation_id: str | None
    room_id: str | None = None  # a stand-alone room's participant


class CredentialSigner:
    def __init__(self, key: str, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def sign(self, claims: ParticipantClaims) -> str:
        now = self._clock()
        payload: dict[str, object] = {"aud": AUDIENCE, "sub": claims.participant_id, "iat": int(now),
                                      "exp": int(now + LIFETIME_S)}
        if claims.deliberation_id is not None:
            payload["del"] = claims.deliberation_id
        if claims.room_id is not None:
            payload["room"] = claims.room_id
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def read(self, token: str) -> ParticipantClaims:
        try:
            payload = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                 options={"require": ["exp", "sub"], "verify_exp": False,
                                          "verify_iat": False})
        except jwt.PyJWTError as exc:
            raise InvalidCredential(str(exc)) from exc
        if float(payload["exp"]) <= self._clock():
            raise InvalidCredential("the credential has expired")
        deliberation, room = payload.get("del"), payload.get("room")
        if (deliberation is None) == (room is None):
            raise InvalidCredential("a credential names a deliberation or a room")
        return ParticipantClaims(str(payload["sub"]), str(deliberation) if deliberation else None,
                                 str(room) if room else None)
