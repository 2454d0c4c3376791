"""Who may use the moderator and organiser APIs: one bearer token per deployment.

The token comes from ``MOOT_MODERATOR_TOKEN`` (set the same value on every node of a scaled deployment) or, for the
embedded default, is generated once and kept in ``<data_dir>/moderator-token`` (readable by its owner only), so a
pilot needs no configuration and the token survives restarts. Participants never need it: a room link is enough to
join. Per-person moderator and organiser accounts are future work; this keeps the organiser-only data (LLM calls,
flags, pending AI messages) and the controls (approve, pause) away from participants in the meantime.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from server.settings import Settings

logger = logging.getLogger(__name__)

TOKEN_FILE = "moderator-token"


def moderator_token_path(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE


def resolve_moderator_token(settings: Settings) -> str:
    """The deployment's moderator token (blocking: reads or creates the token file)."""
    if settings.moderator_token is not None:
        token = settings.moderator_token.get_secret_value().strip()
        if len(token) < 16:
            raise ValueError("MOOT_MODERATOR_TOKEN must be at least 16 characters")
        return token
    path = moderator_token_path(settings)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if len(token) >= 16:
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    logger.info("created a moderator token in %s", path)
    return token


def token_matches(expected: str, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries the token (constant-time comparison)."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected.encode())
