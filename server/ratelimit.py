"""Token buckets for anonymous signal intake, per network and source address
(docs/protocol.md §14, signals route; design §4.3).  In memory: a restart forgets them.

A bucket holds up to ``rate`` tokens and refills at ``rate`` per hour, so a source may
send ``rate`` signals at once and then one every ``3600 / rate`` seconds.  The least
recently used buckets are forgotten beyond ``max_buckets`` sources.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from schakel.server.errors import RateLimited

HOUR = 3600.0


class IntakeLimiter:
    def __init__(self, seconds: Callable[[], float], *, max_buckets: int = 100_000) -> None:
        self._seconds = seconds
        self._max = max_buckets
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def take(self, network: str, source: str, rate_per_hour: int) -> None:
        """Spend one token of ``(network, source)``'s bucket or raise :class:`RateLimited`."""
        now = self._seconds()
        key = (network, source)
        tokens, then = self._buckets.pop(key, (float(rate_per_hour), now))
        tokens = min(float(rate_per_hour), tokens + max(0.0, now - then) * rate_per_hour / HOUR)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            retry = int((1.0 - tokens) * HOUR / rate_per_hour) + 1
            raise RateLimited("too many anonymous signals from this address; try again later",
                              details={"retry_after": retry})
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


__all__ = ["IntakeLimiter"]
