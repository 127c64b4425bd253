"""Per-caller rate limit of the inference API: one token bucket per caller.

A caller is the bearer token (auth on: the actor name, derived from the token's SHA-256 digest)
or the client address (auth off). Each bucket holds up to ``burst`` tokens and refills at
``rate`` tokens per second; a request takes one token or is answered 429 with the time until
the next token (``Retry-After``).

Cost: O(1) per request (a dict lookup, a move to the end of an ordered dict, a few float
operations). Memory is bounded: a bucket idle long enough to be full again (``burst / rate``
seconds) is the same as a new one, so buckets are kept in least-recently-used order and, when
a new caller arrives, the idle ones at the front are dropped; at ``max_callers`` the least
recently used bucket is dropped whatever its state (its caller starts again with a full burst).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

#: Most callers tracked at once (with auth on they are the configured tokens; with auth off the
#: loopback client addresses).
MAX_CALLERS = 65_536


class RateLimiter:
    """``limiter.wait_s(key)``: 0.0 when ``key`` may go on (a token was taken), otherwise the
    seconds until its next token."""

    __slots__ = ("_buckets", "_clock", "burst", "idle_s", "max_callers", "rate")

    def __init__(
        self,
        rate: float,
        burst: int,
        max_callers: int = MAX_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_callers < 1:
            raise ValueError("a rate limit needs rate > 0, burst >= 1 and max_callers >= 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.idle_s = self.burst / self.rate
        self.max_callers = max_callers
        self._clock = clock
        # key -> [tokens, time of the last update]; least recently used first
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_s(self, key: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        self._buckets.move_to_end(key)
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _make_room(self, now: float) -> None:
        """Drop the idle buckets at the front, and the oldest one when still full (amortised
        O(1): every bucket is dropped at most once)."""
        buckets = self._buckets
        while buckets:
            _, (_, last) = next(iter(buckets.items()))
            if now - last < self.idle_s and len(buckets) < self.max_callers:
                return
            buckets.popitem(last=False)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` value (whole seconds, at least 1) for a wait of ``wait_s`` seconds."""
    return str(max(1, math.ceil(wait_s)))
