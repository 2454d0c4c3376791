"""Sign-in attempts limited per client address and per account name, before any password is checked (Argon2 is
costly on purpose: unlimited attempts would be both a guessing attack and a way to burn the server's CPU).

Buckets live in this process (a scaled deployment's limit is per node: the router spreads a client's attempts over
few nodes); the number of buckets is bounded, the least recently used dropped first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from server.ratelimit import TokenBucket

PER_ADDRESS = (20.0, 1 / 6)  # twenty at once, then one every six seconds
PER_ACCOUNT = (5.0, 1 / 60)  # five at once, then one a minute
MAX_KEYS = 10_000


class SignInThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, key: str, limits: tuple[float, float]) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(limits[0], limits[1], self._clock)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def attempt(self, address: str, account: str) -> float:
        """Count one attempt: 0.0 if it may go ahead, else the seconds to wait."""
        waits = [self._bucket("a:" + address, PER_ADDRESS).take(),
                 self._bucket("u:" + account.strip().casefold(), PER_ACCOUNT).take()]
        return max(waits)
