"""Sync: the feed of headers, events, shares and rekeys a member may see, with long-poll
(flow 2 step 4; docs/protocol.md §14)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from aiohttp import web

from schakel.server.audit import read_note
from schakel.server.data import cursor_text
from schakel.server.data.cases import FeedPage, FeedRow, sync_read
from schakel.server.registry import CURSOR, ID, Call, Query, RouteTable, array, obj, ref

routes = RouteTable("sync")

ITEM = obj(["cursor", "kind", "case", "envelope"], cursor=CURSOR,
           kind={"enum": ["header", "event", "share", "rekey", "purge"]}, case=ID, envelope=ref("envelope"))


@routes.route("GET", "/v1/networks/{network}/sync", auth="signed",
              who="core members: every case of the network but subset cases outside their "
                  "audience; shell partners: shared cases",
              query=(Query("after", "return items after this cursor", kind="cursor"),
                     Query("limit", "most items to return", low=1, high=500, default=100),
                     Query("wait", "seconds to hold the request while nothing is new",
                           low=0, high=30, default=0)),
              response=obj(["items", "cursor", "head"], items=array(ITEM, 500), cursor=CURSOR,
                           head=CURSOR))
async def sync(call: Call) -> web.Response:
    """Items after ``after`` in commit order: for core members every header, event, share
    and rekey of the network but those of subset cases whose audience does not name them
    (and a subset case's headers from before the one that first named them, ADR 0031);
    for a shell partner those of the cases shared with it and
    its own shares.  A page with items is logged first: one ``read`` audit entry naming
    the caller and the page's cases.  With ``wait`` and nothing new, the request is held until a commit in the
    network brings an item for the caller or ``wait`` seconds pass (no polling: the
    writer wakes the waiters after its commit).  ``cursor`` is the last item's, or
    ``after`` when there is none; ``head`` the position of the newest item the caller may
    read, or ``cursor`` when that is larger (read with the page: a client's progress).

    Example::

        GET /v1/networks/{network}/sync?after=17&limit=100&wait=25
        200 {"items": [{"cursor": "18", "kind": "event", "case": "<id>",
                        "envelope": {...}}], "cursor": "18", "head": "18"}
    """
    network = call.id("network")
    caller = call.member(network)
    q = call.query()
    limit = min(q["limit"], call.ctx.config.limits.max_page)
    wait = min(q["wait"], call.ctx.config.limits.max_wait)
    shell = caller.keyid if caller.ring == "shell" else None
    # A core member reads every case but the subset cases outside its audience (ADR 0031),
    # so its page is its own: waiters share a read only with themselves.
    reader = None if shell is not None else caller.keyid
    ctx, loop = call.ctx, asyncio.get_running_loop()
    deadline = loop.time() + wait
    woken = False
    while True:
        ticket = ctx.notifier.ticket(network)       # taken before the read: no lost wake-up
        if woken:
            # A commit woke every waiter of the network: those asking the same page under the
            # same ticket share one read (server/notifier.py) instead of a hundred.
            page = await ctx.notifier.read_once(
                ticket, ("sync", network, q["after"], limit, shell, reader),
                lambda: ctx.store.read(sync_read, network, q["after"], limit, shell, reader))
        else:
            page = await ctx.store.read(sync_read, network, q["after"], limit, shell, reader)
        remaining = deadline - loop.time()
        if page.rows or remaining <= 0 or ctx.notifier.closed:
            break
        with ctx.metrics.sync_waiters.track_inprogress():
            woken = await ctx.notifier.wait(ticket, remaining)
    if page.rows:
        # protocol.md §15.6: the page is logged before it is served.
        await ctx.store.write(read_note(ctx, caller, cases=[r.case for r in page.rows],
                                        served=served(page.rows)).append_txn)
    return web.Response(text=page_json(page, q["after"]), status=call.route.status,
                        content_type="application/json")


def served(rows: list[FeedRow]) -> str:
    """The reason of a page's ``read`` entry: the items it served, counted by kind, and
    their cursors, e.g. ``sync 18..517: 3 header, 480 event, 17 rekey``."""
    kinds = Counter(r.kind for r in rows)
    counts = ", ".join(f"{kinds[k]} {k}" for k in ("header", "event", "share", "rekey", "purge")
                        if k in kinds)
    return f"sync {cursor_text(rows[0].cursor)}..{cursor_text(rows[-1].cursor)}: {counts}"


def page_json(page: FeedPage, after: int) -> str:
    """The answer ``{"items": [...], "cursor": ..., "head": ...}`` with each envelope
    spliced in as it is stored (its canonical JSON text) instead of parsed and serialised
    again: a page of 500 events is most of a sync's cost otherwise."""
    items = ",".join(
        f'{{"cursor":"{cursor_text(r.cursor)}","kind":{json.dumps(r.kind)},'
        f'"case":{json.dumps(r.case, ensure_ascii=False)},"envelope":{r.envelope}}}'
        for r in page.rows)
    cursor = cursor_text(page.rows[-1].cursor) if page.rows else str(after)
    return f'{{"items":[{items}],"cursor":"{cursor}","head":"{cursor_text(page.head)}"}}'


__all__ = ["routes"]
