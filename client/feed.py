"""The network's feed, pulled, verified and stored (docs/protocol.md §16.2–§16.4).

:class:`Feed` reads ``GET .../sync`` page by page after this partner's cursor, checks that
feed positions only grow, and hands every item to the network's
:class:`~schakel.client.fold.Verifier`, which verifies and folds it; a page is stored in
one local transaction with the cursor after it.  A core member first opens the epoch keys
sealed to it.  :meth:`schakel.client.partner.Partner.sync` is this plus the audit head
check before it and the duties after it; the services that must hold a case's latest
events before they write (cases, identity, case keys) pull on their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import SyncResult
from schakel.client.wire import PAGE, page_of

#: Items folded between two turns of the event loop, so that the next page's request
#: and answer move on while a page is folded.
YIELD_EVERY = 100


class Feed:
    """The sync feed of every network this partner syncs (module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def pull(self, network: str, tv: TrustView | None = None, *, wait: float = 0,
                   progress: Callable[[int], Any] | None = None) -> SyncResult:
        """Verify and store everything new in ``network``'s feed.  ``wait`` (0..30 s)
        long-polls when nothing is new; ``progress(items so far)`` is called after each
        page.

        Pages overlap: while one page is folded, the next one's signatures are being
        checked (:class:`~schakel.client.pagecheck.PageChecker`) and the one after it is
        asked for.
        Each page is still stored in its own transaction, in feed order, with the cursor
        after it; whatever goes wrong with a later page is raised only once every page
        before it is stored."""
        s = self.session
        tv = tv or await s.trusted(network)
        verifier = s.verifier(network, tv)
        if s.is_core(tv):
            with s.state.transaction():
                await verifier.fetch_epochs()
        keys = tv.verify_keys()
        cursor = s.state.cursor(network, "sync")
        count = 0
        page = await self._page(network, cursor, max(0, min(30, int(wait))))
        checks = s.page_checker.submit(page[0], keys, more=len(page[0]) == PAGE) \
            if page[0] else None
        fetching = self._fetch_after(network, page)
        try:
            while checks is not None:
                items, next_cursor = page
                # The next page was asked for while this one's predecessor was folded; it is
                # handed to the checker, and the one after it asked for, before this page is
                # folded.  What goes wrong with it waits for this page's commit.
                following: tuple[list[Any], str] | BaseException | None = None
                if fetching is not None:
                    try:
                        following = await fetching
                    except Exception as exc:            # raised in its turn, below
                        following = exc
                    fetching = None
                checked = await checks
                checks = None
                if isinstance(following, tuple) and following[0]:
                    checks = s.page_checker.submit(following[0], keys,
                                                   more=len(following[0]) == PAGE)
                    fetching = self._fetch_after(network, following)
                verifier.page = items
                with s.state.transaction():
                    verifier.prefetch(items)
                    for n, (item, check) in enumerate(zip(items, checked)):
                        if n % YIELD_EVERY == 0:
                            await asyncio.sleep(0)      # the next page's request moves on
                        await verifier.item(item, check)
                    s.state.set_cursor(network, "sync", next_cursor)
                cursor = next_cursor
                count += len(items)
                if progress is not None:
                    progress(count)
                if isinstance(following, BaseException):
                    raise following
                if isinstance(following, tuple):
                    page = following
        finally:
            for pending in (checks, fetching):
                if pending is not None:
                    pending.cancel()
        return SyncResult(network=network, items=count, cursor=cursor,
                          cases=sorted(verifier.touched), epochs=sorted(verifier.new_epochs))

    def _fetch_after(self, network: str,
                     page: tuple[list[Any], str]) -> asyncio.Task[tuple[list[Any], str]] | None:
        """Ask for the page after ``page`` when ``page`` was full (the feed may go on)."""
        items, cursor = page
        if len(items) < PAGE:
            return None
        return asyncio.ensure_future(self._page(network, cursor, 0))

    async def _page(self, network: str, after: str, wait: int) -> tuple[list[Any], str]:
        """The feed page after ``after`` (its items, and its cursor when it has items),
        its feed positions checked."""
        s = self.session
        page = await s.conn.get(s.path(network, "/sync"),
                                {"after": after, "limit": PAGE, "wait": wait},
                                timeout=wait + 30)
        items, next_cursor = page_of(page)
        if not items:
            return [], after
        if next_cursor is None:
            raise s.misbehaving(network, "context-mismatch",
                                "a sync page without a valid cursor")
        self._check_positions(network, after, items)
        return items, next_cursor

    def _check_positions(self, network: str, after: str, items: list[Any]) -> None:
        """Feed positions only grow (docs/protocol.md §16): every item of a page lies after
        the ``after`` the client asked for and after the item before it.  An item at or
        before a position the client already passed is the server replaying it."""
        last = int(after) if after.isdigit() else 0
        for item in items:
            position = item.get("cursor") if isinstance(item, dict) else None
            if not (isinstance(position, str) and position.isdigit() and len(position) <= 16):
                raise self.session.misbehaving(network, "context-mismatch",
                                               "a sync item without a valid feed position")
            if int(position) <= last:
                what = "event-replayed" if item.get("kind") == "event" else "context-mismatch"
                raise self.session.misbehaving(network, what, "a sync item at a feed position "
                                               "this partner already passed", position=position)
            last = int(position)


__all__ = ["Feed"]
