"""The network's feed, pulled, verified and stored (docs/protocol.md §16.2–§16.4).

:class:`Feed` reads ``GET .../sync`` page by page after this partner's cursor, checks that
feed positions only grow, and hands every item to the network's
:class:`~schakel.client.fold.Verifier`, which verifies and folds it; a page is stored in
one local transaction with the cursor after it, until the cursor reaches the head the
server names (or a page is empty); a :class:`~schakel.client.progress.SyncMeter` turns
each page into a progress report.  A core member first opens the epoch keys sealed to
it.  :meth:`schakel.client.partner.Partner.sync` is this plus the audit head check before
it and the duties after it; the services that must hold a case's latest events before
they write (cases, identity, case keys) pull on their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from schakel.client.progress import ProgressCallback, SyncMeter, tell
from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import SyncResult
from schakel.client.wire import PAGE, head_of, page_of


class Feed:
    """The sync feed of every network this partner syncs (module docstring)."""

    def __init__(self, session: Session, *,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.session = session
        self.timer = timer

    async def pull(self, network: str, tv: TrustView | None = None, *, wait: float = 0,
                   progress: ProgressCallback | None = None) -> SyncResult:
        """Verify and store everything new in ``network``'s feed.  ``wait`` (0..30 s)
        long-polls when nothing is new; ``progress`` is given a
        :class:`~schakel.client.progress.SyncProgress` after each page."""
        s = self.session
        tv = tv or await s.trusted(network)
        verifier = s.verifier(network, tv)
        if s.is_core(tv):
            with s.state.transaction():
                await verifier.fetch_epochs()
        cursor = s.state.cursor(network, "sync")
        meter = SyncMeter(network, cursor, clock=self.timer)
        count, first = 0, True
        wait = max(0, min(30, int(wait)))
        while True:
            page = await s.conn.get(
                s.path(network, "/sync"),
                {"after": cursor, "limit": PAGE, "wait": wait if first else 0},
                timeout=(wait if first else 0) + 30)
            first = False
            items, next_cursor = page_of(page)
            if not items:
                await tell(progress, meter.end())
                break
            if next_cursor is None:
                raise s.misbehaving(network, "context-mismatch",
                                    "a sync page without a valid cursor")
            head = head_of(page, next_cursor)
            if head is None:
                raise s.misbehaving(network, "context-mismatch", "a sync page whose head is "
                                    "not a feed position at or after its cursor")
            self._check_positions(network, cursor, items)
            verifier.page = items
            with s.state.transaction():
                for item in items:
                    await verifier.item(item)
                s.state.set_cursor(network, "sync", next_cursor)
            cursor = next_cursor
            count += len(items)
            report = meter.page(len(items), items[0]["cursor"], cursor, head)
            await tell(progress, report)
            if report.done:
                break
        return SyncResult(network=network, items=count, cursor=cursor,
                          cases=sorted(verifier.touched), epochs=sorted(verifier.new_epochs))

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
