"""The network's feed, pulled, verified and stored (docs/protocol.md §16.2–§16.4).

:class:`Feed` reads ``GET .../sync`` page by page after this partner's cursor, checks that
feed positions only grow, and hands every item to the network's
:class:`~schakel.client.fold.Verifier`, which verifies and folds it; a page is stored in
one local transaction with the cursor after it, until the cursor reaches the head the
server names (or a page is empty); a :class:`~schakel.client.progress.SyncMeter` turns
each page into a progress report.  A pull that stored items ends with the audit log's
latest head, checked against the held ones (protocol.md §16.5: a rolled-back server is
``audit-rollback``, ADR 0050).  A core member first opens the epoch keys sealed to
it.  :meth:`schakel.client.partner.Partner.sync` is this plus the audit head check before
it and the duties after it; the services that must hold a case's latest events before
they write (cases, identity, case keys) pull on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from schakel.protocol.pagecheck import CheckedEvent

from schakel.client.audit import Audit
from schakel.client.progress import ProgressCallback, SyncMeter, tell
from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import SyncResult
from schakel.client.wire import PAGE, head_of, page_of

#: Items folded between two turns of the event loop, so that the next page's request
#: and answer move on while a page is folded.
YIELD_EVERY = 100


class _Page(NamedTuple):
    """A sync page, its feed positions checked: its items, its cursor (``after`` when it
    is empty) and the head it names."""

    items: list[Any]
    cursor: str
    head: str


class Feed:
    """The sync feed of every network this partner syncs (module docstring)."""

    def __init__(self, session: Session, *, audit: Audit | None = None,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.audit = audit
        self.timer = timer

    async def pull(self, network: str, tv: TrustView | None = None, *, wait: float = 0,
                   progress: ProgressCallback | None = None) -> SyncResult:
        """Verify and store everything new in ``network``'s feed.  ``wait`` (0..30 s)
        long-polls when nothing is new; ``progress`` is given a
        :class:`~schakel.client.progress.SyncProgress` after each page.

        Pages overlap: while one page is folded, the next one's signatures are being
        checked (:class:`~schakel.client.pagecheck.PageChecker`) and the one after it is
        asked for, as long as the cursor is short of the highest head named.  Each page is
        still stored in its own transaction, in feed order, with the cursor after it;
        whatever goes wrong with a later page is raised only once every page before it
        is stored."""
        s = self.session
        tv = tv or await s.trusted(network)
        verifier = s.verifier(network, tv)
        if s.is_core(tv):
            with s.state.transaction():
                await verifier.fetch_epochs()
        keys = tv.verify_keys()
        cursor = s.state.cursor(network, "sync")
        meter = SyncMeter(network, cursor, clock=self.timer)
        count, head = 0, int(cursor)
        page = await self._page(network, cursor, max(0, min(30, int(wait))))
        checks: asyncio.Future[list[CheckedEvent | None]] | None = None
        fetching: asyncio.Task[_Page] | None = None
        if page.items:
            head = max(head, int(page.head))
            checks = s.page_checker.submit(page.items, keys, more=int(page.cursor) < head)
            fetching = self._fetch_after(network, page, head)
        else:
            await tell(progress, meter.end())
        try:
            while checks is not None:
                # The next page was asked for while this one's predecessor was folded; it is
                # handed to the checker, and the one after it asked for, before this page is
                # folded.  What goes wrong with it waits for this page's commit.
                following: _Page | BaseException | None = None
                if fetching is not None:
                    try:
                        following = await fetching
                    except Exception as exc:            # raised in its turn, below
                        following = exc
                    fetching = None
                checked = await checks
                checks = None
                if isinstance(following, _Page) and following.items:
                    head = max(head, int(following.head))
                    checks = s.page_checker.submit(following.items, keys,
                                                   more=int(following.cursor) < head)
                    fetching = self._fetch_after(network, following, head)
                verifier.page = page.items
                with s.state.transaction():
                    verifier.prefetch(page.items)
                    for n, (item, check) in enumerate(zip(page.items, checked)):
                        if n % YIELD_EVERY == 0:
                            await asyncio.sleep(0)      # the next page's request moves on
                        await verifier.item(item, check)
                    s.state.set_cursor(network, "sync", page.cursor)
                cursor = page.cursor
                count += len(page.items)
                report = meter.page(len(page.items), page.items[0]["cursor"], cursor, page.head)
                await tell(progress, report)
                if isinstance(following, BaseException):
                    raise following
                if isinstance(following, _Page):
                    if following.items:
                        page = following
                        continue
                    if not report.done:
                        await tell(progress, meter.end())     # an empty page ends the sync
        finally:
            for pending in (checks, fetching):
                if pending is not None:
                    pending.cancel()
        if count and self.audit is not None:
            # Each page with items was logged (a ``read`` entry) before it was served
            # (protocol.md §15.6), so the latest head now covers every page stored: a
            # partner whose cursor is past some point of the feed holds a head past that
            # point of the log too, and a server rolled back behind it (a restored backup)
            # is ``audit-rollback`` at its next look, not a cursor that silently skips the
            # positions written again (§16.5; ADR 0050).
            await self.audit.monitor(network).refresh()
        return SyncResult(network=network, items=count, cursor=cursor,
                          cases=sorted(verifier.touched), epochs=sorted(verifier.new_epochs))

    def _fetch_after(self, network: str, page: _Page, head: int) -> asyncio.Task[_Page] | None:
        """Ask for the page after ``page`` while its cursor is short of ``head`` (the
        highest head named in this sync)."""
        if int(page.cursor) >= head:
            return None
        return asyncio.ensure_future(self._page(network, page.cursor, 0))

    async def _page(self, network: str, after: str, wait: int) -> _Page:
        """The feed page after ``after``, its cursor, head and feed positions checked
        (``context-mismatch`` before anything of it is checked or stored)."""
        s = self.session
        answer = await s.conn.get(s.path(network, "/sync"),
                                  {"after": after, "limit": PAGE, "wait": wait},
                                  timeout=wait + 30)
        items, next_cursor = page_of(answer)
        if not items:
            return _Page([], after, after)
        if next_cursor is None:
            raise s.misbehaving(network, "context-mismatch",
                                "a sync page without a valid cursor")
        head = head_of(answer, next_cursor)
        if head is None:
            raise s.misbehaving(network, "context-mismatch", "a sync page whose head is "
                                "not a feed position at or after its cursor")
        self._check_positions(network, after, items)
        return _Page(items, next_cursor, head)

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
