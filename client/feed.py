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

from collections.abc import Callable
from typing import Any

from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import SyncResult
from schakel.client.wire import PAGE, page_of


class Feed:
    """The sync feed of every network this partner syncs (module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def pull(self, network: str, tv: TrustView | None = None, *, wait: float = 0,
                   progress: Callable[[int], Any] | None = None) -> SyncResult:
        """Verify and store everything new in ``network``'s feed.  ``wait`` (0..30 s)
        long-polls when nothing is new; ``progress(items so far)`` is called after each
        page."""
        s = self.session
        tv = tv or await s.trusted(network)
        verifier = s.verifier(network, tv)
        if s.is_core(tv):
            with s.state.transaction():
                await verifier.fetch_epochs()
        cursor = s.state.cursor(network, "sync")
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
                break
            if next_cursor is None:
                raise s.misbehaving(network, "context-mismatch",
                                    "a sync page without a valid cursor")
            self._check_positions(network, cursor, items)
            verifier.page = items
            with s.state.transaction():
                for item in items:
                    await verifier.item(item)
                s.state.set_cursor(network, "sync", next_cursor)
            cursor = next_cursor
            count += len(items)
            if progress is not None:
                progress(count)
            if len(items) < PAGE:
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
