"""Wake-ups for sync long-polls, per network (docs/protocol.md §14, sync route).

A waiting request takes a *ticket* for its network **before** it reads, so a commit that
lands between its read and its wait still wakes it.  The store's writer calls
:meth:`Notifier.wake` (through the event loop) after each commit with the networks it
touched; every ticket of those networks fires and the next :meth:`ticket` is a fresh
one.  Processes sharing a PostgreSQL database hear each other's commits through the store
(``LISTEN``/``NOTIFY``) and wake their own waiters the same way (ADR 0052).  No polling loop: a waiter sleeps until a commit or its deadline.

A commit wakes every waiter of its network at once, and they all read again.
:meth:`Notifier.read_once` lets waiters that hold the *same* ticket and ask the same
question share one read: a ticket is the same object only while no commit of the network
was announced, and the shared read starts after that ticket was taken, so it sees every
commit announced before any of them took it -- and a commit announced later fires the
ticket they all hold, so none of them misses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class Notifier:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._reads: dict[tuple[asyncio.Event, Hashable], asyncio.Future[Any]] = {}
        self.closed = False

    def ticket(self, network: str) -> asyncio.Event:
        """The event the next commit touching ``network`` will set."""
        event = self._events.get(network)
        if event is None:
            event = self._events[network] = asyncio.Event()
            if self.closed:
                event.set()
        return event

    def wake(self, networks: Iterable[str]) -> None:
        for network in networks:
            event = self._events.pop(network, None)
            if event is not None:
                event.set()

    async def read_once(self, ticket: asyncio.Event, key: Hashable,
                        read: Callable[[], Awaitable[T]]) -> T:
        """``await read()``, or the result of the same read (``key``) already under way for
        a caller holding the same ``ticket`` (module docstring).  A caller that goes away
        does not cancel a read others wait for."""
        shared = (ticket, key)
        future = self._reads.get(shared)
        if future is None:
            future = asyncio.ensure_future(read())
            self._reads[shared] = future
            future.add_done_callback(lambda _: self._reads.pop(shared, None))
        return await asyncio.shield(future)  # type: ignore[no-any-return]

    async def wait(self, ticket: asyncio.Event, timeout: float) -> bool:
        """Sleep until ``ticket`` fires or ``timeout`` seconds pass; True if it fired."""
        if timeout <= 0:
            return ticket.is_set()
        try:
            await asyncio.wait_for(ticket.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def wake_all(self) -> None:
        """Fire every ticket (commits may have been missed: waiters read again)."""
        self.wake(list(self._events))

    def close(self) -> None:
        """Release every waiter (graceful shutdown); later tickets fire at once."""
        self.closed = True
        self.wake_all()


__all__ = ["Notifier"]
