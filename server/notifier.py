"""Wake-ups for sync long-polls, per network (docs/protocol.md §14, sync route).

A waiting request takes a *ticket* for its network **before** it reads, so a commit that
lands between its read and its wait still wakes it.  The store's writer calls
:meth:`Notifier.wake` (through the event loop) after each commit with the networks it
touched; every ticket of those networks fires and the next :meth:`ticket` is a fresh
one.  No polling loop: a waiter sleeps until a commit or its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Notifier:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
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

    async def wait(self, ticket: asyncio.Event, timeout: float) -> bool:
        """Sleep until ``ticket`` fires or ``timeout`` seconds pass; True if it fired."""
        if timeout <= 0:
            return ticket.is_set()
        try:
            await asyncio.wait_for(ticket.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Release every waiter (graceful shutdown); later tickets fire at once."""
        self.closed = True
        self.wake(list(self._events))


__all__ = ["Notifier"]
