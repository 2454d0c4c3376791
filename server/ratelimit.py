"""Per-connection rate limits on signaling actions: token buckets, one per kind of action.

A participant may add or edit a statement, vote, flag a summary point or toggle their media only so often; past the
limit the action is refused with a ``rate_limited`` error saying when to try again, and nothing else happens (nothing
stored, nothing published). Every message also counts against a general flood limit. Limits are generous for a
person and tight for a script: voting on twenty statements in a row is fine, a thousand votes a second are not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.core.errors import Refused


@dataclass
class TokenBucket:
    """``burst`` actions at once, refilled at ``per_second``."""

    burst: float
    per_second: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._at = self.clock()

    def take(self) -> float:
        """Take one token: 0.0 if allowed, else the seconds until one is available."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.per_second


# (burst, per second) for each limited action, and what the error calls it.
LIMITS: dict[str, tuple[float, float, str]] = {
    "statement": (5, 1 / 10, "statements"),  # five at once, then one every 10 s
    "vote": (40, 2, "votes"),
    "flag": (5, 1 / 30, "flags"),
    "help": (3, 1 / 60, "calls for a moderator"),
    "media": (10, 1, "camera and microphone changes"),
    "any": (60, 20, "messages"),  # every message, whatever it is
}
ACTION_OF_TYPE = {"statement.add": "statement", "statement.edit": "statement", "vote": "vote",
                  "summary.flag": "flag", "media": "media", "help.request": "help"}


class ConnectionLimits:
    """The buckets of one signaling connection."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 limits: dict[str, tuple[float, float, str]] | None = None) -> None:
        self._limits = limits or LIMITS
        self._buckets = {action: TokenBucket(burst, rate, clock)
                         for action, (burst, rate, _) in self._limits.items()}
        self.refused = 0

    def flood(self) -> Refused | None:
        """Count one incoming message of any kind: None if within the general limit, else the refusal."""
        return self._take("any")

    def check(self, message_type: str) -> Refused | None:
        """None if this action may go ahead, else why it may not (a ``rate_limited`` refusal: ``reason`` the action,
        ``params.seconds`` when to try again)."""
        action = ACTION_OF_TYPE.get(message_type)
        return self._take(action) if action is not None else None

    def _take(self, action: str) -> Refused | None:
        wait = self._buckets[action].take()
        if wait <= 0:
            return None
        self.refused += 1
        seconds = max(1, round(wait))
        return Refused("rate_limited", f"Too many {self._limits[action][2]}: please wait {seconds} s and try again.",
                       reason=action, params={"seconds": seconds})
