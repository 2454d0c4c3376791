"""The deployment's signing key for session tokens: ``MOOT_SECRET_KEY`` (the same on every node of a scaled
deployment), or, for the embedded default, generated once and kept in ``<data_dir>/secret-key`` (owner-only), so a
pilot needs no configuration and sessions survive restarts."""

from __future__ import annotations

import logging
import os
import secrets

from server.core.settings import Settings

logger = logging.getLogger(__name__)

KEY_FILE = "secret-key"
MIN_LENGTH = 32


def resolve_secret_key(settings: Settings) -> str:
    """The signing key (blocking: reads or creates the key file)."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value().strip()
        if len(key) < MIN_LENGTH:
            raise ValueError(f"MOOT_SECRET_KEY must be at least {MIN_LENGTH} characters")
        return key
    path = settings.data_dir / KEY_FILE
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= MIN_LENGTH:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    logger.info("created a session signing key in %s", path)
    return key
