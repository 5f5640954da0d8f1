"""How far a sync has come and how long the rest will take (docs/protocol.md §16.4,
"Head and progress"; ADR 0026).

Each sync page names the feed's *head*: the position of the newest item this partner may
read.  Positions are not item counts -- they are the server's row ids, shared by all its
networks, and a shell partner does not see every case of its own -- so
:class:`SyncMeter` estimates the items left from how densely the pages it read were
filled (items per position), and the rate from how long the last pages took.  Both come
from a window of the last :data:`WINDOW` pages; the rate is their median, so one slow
page (a busy server, a pause of the machine, a first page that long-polled) moves the
estimate by one rank instead of dragging the mean.

Pure: the clock is a parameter (seconds, monotonic), the meter does no I/O.
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: Pages the rate and the density are taken over.
WINDOW = 8


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncProgress:
    """One report during a sync of ``network``: ``items`` verified and stored so far,
    the feed position reached (``cursor``) and the newest one the server named
    (``head``), the estimated items still to read (``remaining``), the rate over the last
    pages (``items_per_s``, None before a page took measurable time) and the time left at
    that rate (``eta_s``; None with no rate, 0 when done).  ``done``: the feed is read
    to the head."""

    network: str
    items: int
    cursor: str
    head: str
    remaining: int
    items_per_s: float | None
    eta_s: float | None
    done: bool

    def __post_init__(self) -> None:
        if self.items < 0 or self.remaining < 0 or (self.done and self.remaining):
            raise ValueError("a sync's progress counts items read and left, none when done")

    @property
    def fraction(self) -> float:
        """Items read over items read and left: 1.0 when done."""
        if self.done:
            return 1.0
        total = self.items + self.remaining
        return self.items / total if total else 0.0


#: What :meth:`Partner.sync <schakel.client.partner.Partner.sync>` calls with each
#: report; a coroutine function is awaited before the next page is read.
ProgressCallback = Callable[[SyncProgress], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class _Page:
    items: int
    span: float       # positions the page's items stand for (:meth:`SyncMeter.page`)
    seconds: float


class SyncMeter:
    """Turns the pages of one sync into :class:`SyncProgress` reports (module docstring).
    ``cursor`` is the position the sync starts after; ``clock`` gives seconds."""

    def __init__(self, network: str, cursor: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.network = network
        self._clock = clock
        self._cursor = int(cursor)
        self._head = int(cursor)
        self._items = 0
        self._mark = clock()
        self._window: deque[_Page] = deque(maxlen=WINDOW)

    def page(self, items: int, first: str, cursor: str, head: str) -> SyncProgress:
        """A page of ``items`` items stored, from position ``first`` to ``cursor``, the
        server naming ``head``.  Positions are the validated decimal strings of the feed.

        The page stands for ``items`` times the mean gap between its items: the gap before
        its first item is not counted, since before a sync's first page it may hold the
        history of every network the server had before this one."""
        now = self._clock()
        gaps = int(cursor) - int(first)
        span = items * gaps / (items - 1) if items > 1 else 1.0
        self._window.append(_Page(items, span, now - self._mark))
        self._mark = now
        self._items += items
        self._cursor = int(cursor)
        self._head = max(self._head, int(head))
        return self._report(done=self._cursor >= self._head)

    def end(self) -> SyncProgress:
        """The feed had nothing more (an empty page): the sync is complete, whatever
        head an earlier page named."""
        self._head = self._cursor
        return self._report(done=True)

    def _report(self, *, done: bool) -> SyncProgress:
        rate = self._rate()
        remaining = 0 if done else self._remaining()
        eta = 0.0 if done else remaining / rate if rate else None
        return SyncProgress(
            network=self.network, items=self._items, cursor=str(self._cursor),
            head=str(self._head), remaining=remaining, items_per_s=rate, eta_s=eta, done=done)

    def _rate(self) -> float | None:
        rates = [p.items / p.seconds for p in self._window if p.seconds > 0 and p.items]
        return statistics.median(rates) if rates else None

    def _remaining(self) -> int:
        """At least one: the head is the position of an item not read yet."""
        items = sum(p.items for p in self._window)
        span = sum(p.span for p in self._window)
        return max(1, round((self._head - self._cursor) * items / span) if span else 1)


async def tell(progress: ProgressCallback | None, report: SyncProgress) -> None:
    """Give ``report`` to ``progress`` (if any), awaiting it when it is a coroutine."""
    if progress is None:
        return
    answer = progress(report)
    if inspect.isawaitable(answer):
        await answer


__all__ = ["WINDOW", "SyncProgress", "ProgressCallback", "SyncMeter", "tell"]
