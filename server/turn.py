"""Short-lived TURN credentials for browsers: coturn's ``use-auth-secret`` scheme (the "TURN REST API").

coturn started with ``--use-auth-secret --static-auth-secret=S`` accepts a username ``<unix expiry>:<id>`` with the
password ``base64(HMAC-SHA1(S, username))`` until that expiry. Moot holds the same secret and gives every browser a
credential of its own, so no long-lived TURN password ever leaves the server.

coturn checks the credential when a browser allocates a relay; an allocation it has accepted lives on (refreshed by
the browser) after the expiry. So the lifetime only has to cover the allocations a browser makes during one session,
and every (re)join brings a fresh credential in the ``welcome`` message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from server.core.settings import Settings

# The opaque part of the username: coturn rejects spaces, quotes and backslashes, and ':' separates the expiry.
_OPAQUE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class TurnCredential:
    username: str
    credential: str
    expires_at: int  # unix seconds


def turn_credential(secret: str, opaque_id: str, expires_at: int) -> TurnCredential:
    """The credential coturn accepts for ``opaque_id`` until ``expires_at`` (unix seconds)."""
    if not _OPAQUE_ID.fullmatch(opaque_id):
        raise ValueError(f"TURN user id {opaque_id!r}: use 1-64 letters, digits, '_', '.' or '-'")
    username = f"{expires_at}:{opaque_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires_at)


def browser_ice_servers(
    settings: Settings, opaque_id: str | None = None, now: float | None = None, with_turn: bool = True
) -> list[dict[str, Any]]:
    """The ``RTCIceServer`` list for one browser: the configured STUN servers, then (``with_turn``) the TURN servers
    with a credential of its own (``opaque_id``: the participant id; random when none, never a display name)."""
    servers: list[dict[str, Any]] = [s.model_dump(exclude_none=True) for s in settings.ice_servers]
    if with_turn and settings.turn_urls and settings.turn_secret is not None:
        expires_at = int(time.time() if now is None else now) + settings.turn_credential_ttl_s
        credential = turn_credential(settings.turn_secret.get_secret_value(), opaque_id or secrets.token_hex(8),
                                     expires_at)
        servers.append({"urls": list(settings.turn_urls), "username": credential.username,
                        "credential": credential.credential})
    return servers
