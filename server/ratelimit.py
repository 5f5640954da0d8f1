"""Token buckets for anonymous signal intake, per network and source address
(docs/protocol.md §14, signals route; design §4.3).  :class:`IntakeLimiter` keeps them in
the memory of the one process serving a SQLite database (a restart forgets them);
:class:`SharedIntakeLimiter` in the PostgreSQL database every server process shares
(ADR 0052).

A bucket holds up to ``rate`` tokens and refills at ``rate`` per hour, so a source may
send ``rate`` signals at once and then one every ``3600 / rate`` seconds.  The least
recently used buckets are forgotten beyond ``max_buckets`` sources.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from schakel.server.data.shared import bucket_tokens, forget_full_buckets, take_token
from schakel.server.errors import RateLimited

if TYPE_CHECKING:
    from schakel.server.pgstore import PgStore

HOUR = 3600.0


class IntakeLimiter:
    """The buckets in this process's memory, the least recently used forgotten beyond
    ``max_buckets``."""

    def __init__(self, seconds: Callable[[], float], *, max_buckets: int = 100_000) -> None:
        self._seconds = seconds
        self._max = max_buckets
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    async def take(self, network: str, source: str, rate_per_hour: int) -> None:
        """Spend one token of ``(network, source)``'s bucket or raise :class:`RateLimited`."""
        now = self._seconds()
        key = (network, source)
        tokens, then = self._buckets.pop(key, (float(rate_per_hour), now))
        tokens = min(float(rate_per_hour), tokens + max(0.0, now - then) * rate_per_hour / HOUR)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise _limited(tokens, rate_per_hour)
        self._buckets[key] = (tokens - 1.0, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


class SharedIntakeLimiter:
    """The buckets as rows of ``intake_buckets``, each spent by one atomic statement, so
    that several processes together allow a source no more than one would.  Buckets
    untouched for an hour (full again) are deleted at most every :data:`FORGET_EVERY`
    seconds by each process."""

    FORGET_EVERY = 60.0

    def __init__(self, store: "PgStore", seconds: Callable[[], float]) -> None:
        self.store = store
        self._seconds = seconds
        self._forgot_at = 0.0

    async def take(self, network: str, source: str, rate_per_hour: int) -> None:
        now = self._seconds()
        if now - self._forgot_at >= self.FORGET_EVERY:
            self._forgot_at = now
            await self.store.record(forget_full_buckets, now, HOUR)
        if await self.store.record(take_token, network, source, rate_per_hour, now,
                                   HOUR) is None:
            tokens = await self.store.record(bucket_tokens, network, source, rate_per_hour,
                                             now, HOUR)
            raise _limited(tokens, rate_per_hour)


def _limited(tokens: float, rate_per_hour: int) -> RateLimited:
    retry = int((1.0 - tokens) * HOUR / rate_per_hour) + 1
    return RateLimited("too many anonymous signals from this address; try again later",
                       details={"retry_after": retry})


__all__ = ["IntakeLimiter", "SharedIntakeLimiter"]
