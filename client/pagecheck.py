"""The signature checks of a sync page on a second core while the page before is folded
(docs/protocol.md §16.3; ADR 0026).

:func:`schakel.protocol.pagecheck.check_page` checks what a page's events need no local
state for: schemas, signatures, canonical bytes.  :class:`PageChecker` runs it in one
worker process (``concurrent.futures``, the ``spawn`` start method: nothing of the
parent's event loop, threads or open files is inherited) for long feeds, and in this
process for short ones and until the worker is ready.  Both run the same function, so a
page gets the same verdicts either way.  The worker only computes: it stores nothing, and
a refusal it finds is raised by the verifier (``schakel.client.fold``) when the fold
reaches that item, so the first bad object of the feed is the one reported and nothing
after it is stored.  Only public values cross to the worker: the page's envelopes and the
members' verify keys.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from schakel.protocol.crypto import VerifyKey
from schakel.protocol.pagecheck import CheckedEvent, check_page


class PageChecker:
    """Checks sync pages in a worker process (module docstring); ``workers=0`` checks
    every page in this process.

    The worker is started by the first page of a long feed (one with pages after it), or
    by :meth:`start`; pages go to it once it has answered a first, empty page, and are
    checked here until then, so its start-up (an interpreter and the protocol's imports)
    never holds a sync up.  A worker that fails is not used again; its page is checked
    here.  :meth:`close` stops it."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[list[CheckedEvent | None]] | None = None
        self._broken = False
        #: Pages checked by the worker so far.
        self.pages_in_worker = 0

    def _start(self) -> None:
        if self._pool is None and self.workers > 0 and not self._broken:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"))
            self._ready = self._pool.submit(check_page, [], {})

    async def start(self) -> None:
        """Start the worker and wait until it answers (for a partner that knows a long
        catch-up is coming; :meth:`submit` starts it on its own otherwise)."""
        self._start()
        if self._ready is not None:
            try:
                await asyncio.wrap_future(self._ready)
            except (BrokenProcessPool, OSError):
                self._give_up()

    def _worker_ready(self) -> bool:
        ready = self._ready
        if ready is None or not ready.done() or self._broken:
            return False
        if ready.exception() is not None:
            self._give_up()
            return False
        return True

    def submit(self, items: list[Any], keys: Mapping[str, VerifyKey],
               *, more: bool) -> asyncio.Future[list[CheckedEvent | None]]:
        """Start checking ``items`` (a page; ``more``: the feed has pages after it)."""
        raw = {key_id: key.raw for key_id, key in keys.items()}
        if more:
            self._start()
        if self._pool is not None and self._worker_ready():
            try:
                inner = self._pool.submit(check_page, items, raw)
            except (BrokenProcessPool, RuntimeError):   # died, or shut down
                self._give_up()
            else:
                self.pages_in_worker += 1
                return asyncio.ensure_future(self._from_worker(inner, items, raw))
        done: asyncio.Future[list[CheckedEvent | None]] = \
            asyncio.get_running_loop().create_future()
        done.set_result(check_page(items, raw))
        return done

    async def _from_worker(self, inner: Future[list[CheckedEvent | None]], items: list[Any],
                           raw: dict[str, bytes]) -> list[CheckedEvent | None]:
        try:
            return await asyncio.wrap_future(inner)
        except (BrokenProcessPool, OSError):
            self._give_up()
            return check_page(items, raw)

    def _give_up(self) -> None:
        self._broken = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._ready = None, None


__all__ = ["PageChecker"]
