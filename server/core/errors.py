"""Error types shared by every Moot component.

``Refused`` carries one of the protocol's error codes (``server.core.events.ErrorCode``) and a message meant for the
person who asked; hosts turn it into an ``error`` message or an HTTP status. ``Unavailable`` says that a configured
backend cannot run here, and its message says what to install or change. ``ConnectionLost`` says that a shared
backend (Redis) stayed unreachable for longer than its caller retries; ``connection_lost(exc)`` tells such transient
faults (expected while Redis restarts: retried, logged in one line) from bugs.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


class MootError(Exception):
    """Base of Moot's own errors."""


class Refused(MootError):
    """A request was refused for a reason the requester can act on (``code`` is a protocol error code). ``reason``
    and ``params`` say the same for a client that words it in its reader's language (``message`` is English)."""

    def __init__(self, code: str, message: str, reason: str | None = None,
                 params: dict[str, str | int] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.params = params or {}


class Unavailable(MootError, RuntimeError):
    """A configured backend or optional dependency cannot be used here; the message says what to do."""


class EventDecodeError(MootError, ValueError):
    """Raised for malformed JSON, unknown ``type`` values or fields that fail validation."""


class ConnectionLost(MootError, ConnectionError):
    """A shared backend (the Redis bus) could not be reached, even after retrying for a while."""


def connection_lost(exc: BaseException) -> bool:
    """A lost, refused or timed-out connection (or a Redis still loading its data): a fault that passes."""
    return isinstance(exc, OSError | RedisConnectionError | RedisTimeoutError)  # (ConnectionLost is an OSError)
