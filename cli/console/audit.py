"""The audit screen (ADR 0040): verify a network's log in the background with progress,
show the verified head and entries, and what a failure means."""

from __future__ import annotations

import asyncio

from aiohttp import web

from schakel.cli.console.screen import (
    HELD, Held, Verification, explain, page, path_id, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import ProtocolError

#: What each way the audit log can fail verification means for the person reading it.
AUDIT_MEANINGS = {
    "audit-rollback": N_("The server showed an older, shorter log than it showed this home "
                         "before: entries that were in the log are being hidden."),
    "audit-fork": N_("The server showed a log that does not continue the one it showed this "
                     "home before: it shows different histories to different readers."),
    "audit-entry-rewritten": N_("An entry differs from what the server signed: someone "
                                "changed who did what, when or why after the fact."),
    "audit-entry-missing": N_("Entries the signed log holds were not handed over: a release "
                              "or a refusal may be hidden from you."),
}
#: What to do when the audit log fails verification.
AUDIT_TODO = N_("Stop sharing identity through this server, tell the coördinator and the "
                "network's auditor, and keep this home as it is: it holds the evidence "
                "(the signed heads) that `schakel audit verify` shows again.")

#: Entries on one page of the audit screen.
AUDIT_PAGE = 50


async def _verify(held: Held, network: str, run: Verification) -> None:
    """Verify the whole log as ``schakel audit verify`` does, and keep the entries that
    verification read and checked; the outcome (or the refusal) is kept in ``run`` for
    the page to show.  One pass: the same checks as ``AuditMonitor.verify_all`` (and
    ``entries``, which would fetch and check the whole log a second time), the leaves
    kept for the table."""
    from schakel.cli.commands.audit import entry_row
    from schakel.cli.commands.output import plain
    from schakel.client.views import AuditVerification
    from schakel.protocol.encoding import b64e

    def progress(n: int) -> None:
        run.checked = n

    try:
        async with held.lock:
            monitor = held.partner.audit.monitor(network)
            head = await monitor.refresh()
            leaves = await monitor._verified(head, progress) if head is not None else []
        erased = sum(1 for leaf in leaves if leaf.entry is None)
        result = plain(AuditVerification(
            network=network, size=head.size if head else 0,
            root=head.root if head else b64e(bytes(32)), checked=len(leaves) - erased,
            erased=erased, head_time=head.time if head else None))
        run.entries = [entry_row({"index": leaf.index, "entry": leaf.body})
                       for leaf in reversed(leaves) if leaf.body is not None]
        run.result = result
    except ProtocolError as error:
        run.refusal = explain(error)
        what = (error.details or {}).get("what")
        if isinstance(what, str) and what in AUDIT_MEANINGS:
            run.refusal["meaning"] = _(AUDIT_MEANINGS[what])
            run.refusal["todo"] = _(AUDIT_TODO)
    finally:
        run.done = True


async def audit_page(request: web.Request) -> web.Response:
    """The verified head and entries (newest first, paged), the progress of a
    verification still running (the page refreshes itself), or what a failure means."""
    network = path_id(request, "network")
    unlocked(request)
    run = request.app[HELD].audits.get(network)
    try:
        at = max(0, int(request.query.get("page", "0")))
    except ValueError:
        at = 0
    shown = run.entries[at * AUDIT_PAGE:(at + 1) * AUDIT_PAGE] if run else []
    more = bool(run) and len(run.entries) > (at + 1) * AUDIT_PAGE
    return page(request, "audit.html", network=network, run=run, shown=shown, at=at,
                more=more, refusal=None)


async def audit_verify(request: web.Request) -> web.StreamResponse:
    """Start verifying the log from scratch in the background (one at a time per network)."""
    network = path_id(request, "network")
    unlocked(request)
    held = request.app[HELD]
    running = held.audits.get(network)
    if running is None or running.done:
        run = Verification()
        held.audits[network] = run
        run.task = asyncio.create_task(_verify(held, network, run))
    raise web.HTTPSeeOther(f"/n/{network}/audit")




def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/audit", audit_page)
    router.add_post("/n/{network}/audit/verify", audit_verify)
