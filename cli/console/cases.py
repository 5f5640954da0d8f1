"""The cases of a network (ADR 0040): the list with a filter (status, problem domain),
in pages of :data:`CASES_PAGE`; one case's anonymous layer, adding a note, closing a case.

The list filters every case the home holds, then shows one page of the result.  Its rows
are kept in this process between requests (:class:`Listed`), each with the case's summary
document in the local state it was built from: after each sync (and after a case page
showed a case the list does not hold) the summary documents are read (one query) and a row is built again only for a case that is new, whose summary
changed (an event, a status, a rekey), that the sync touched, or when the member names or
the epoch keys changed; so a network of 10,000 cases is not decrypted and folded again on
every page, and what another process wrote into the home (``schakel case note``) shows
after the next sync.

A case page asks the server for what is new (``Partner.sync``) when this console last did
so for the network more than :data:`SYNC_EVERY` seconds ago, after the console wrote to it,
or when the list's "update now" link asks; in between it shows the home's state as it
is.  A sync of a coördinator's home also runs the coördinator's duties over every open
case, so on a network of 10,000 cases it costs about a second, which every click would
otherwise pay.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    HELD, SYNC_LISTENERS, FormError, explain, field_text, page, path_id, sending,
    since_sync, sync, unlocked,
)
from schakel.cli.console.signals import form_choices
from schakel.client.errors import NotFound
from schakel.protocol.errors import ProtocolError

#: Cases on one page of the list.
CASES_PAGE = 50
#: Above this many rows to build again, the whole list is built in one pass
#: (``Cases.all`` reads the member names and the policy's rules once for all cases).
REBUILD_ALL = 200


@dataclass
class Listed:
    """The rows of one network's case list, each with the summary document (the local
    state's ``case`` document) it was built from, and the member names and epochs they
    were built under."""

    names: dict[str, str]
    epochs: int = 0
    rows: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)
    #: The rows in the list's order, as last built.
    ordered: list[dict[str, Any]] = field(default_factory=list)
    #: The home may have changed since: a sync ran (``pending``: the cases it touched),
    #: or a case page showed a case the list does not hold yet.
    dirty: bool = False
    pending: set[str] = field(default_factory=set)


#: The lists of each unlocked partner, by network (gone with the partner).
_LISTED: weakref.WeakKeyDictionary[Any, dict[str, Listed]] = weakref.WeakKeyDictionary()


def listed_rows(partner: Any, network: str, touched: list[str] | None = None
                ) -> list[dict[str, Any]]:
    """Every case ``partner`` holds in ``network`` as a row of the list (oldest first, as
    ``schakel case list``), built again only where the home changed (module docstring);
    ``touched``: the cases the sync just done touched, or None when there was none (then
    the rows as last built are returned, if there are any).  Call it under the console's
    lock."""
    from schakel.cli.commands.case import case_summary, member_names

    known = _LISTED.get(partner, {}).get(network)
    if touched is None and known is not None and not known.dirty:
        return known.ordered
    names = member_names(partner, network)
    state = partner.session.state
    epochs = len(state.docs("epoch", (network,)))
    by_network = _LISTED.setdefault(partner, {})
    listed = by_network.get(network)
    if listed is None or listed.names != names or listed.epochs != epochs:
        listed = by_network[network] = Listed(names=names, epochs=epochs)
    docs = {ref[1]: doc for ref, doc in state.docs("case", (network,))}
    redo = set(touched or ()) | (known.pending if known is not None else set())
    listed.dirty, listed.pending = False, set()
    stale = [case for case, doc in docs.items()
             if case in redo or case not in listed.rows or listed.rows[case][0] != doc]
    if len(stale) > REBUILD_ALL:
        listed.rows = {v.case: (docs.get(v.case), case_summary(v, names))
                       for v in partner.cases.all(network)}
    else:
        for case in stale:
            listed.rows[case] = (docs[case], case_summary(partner.cases.get(network, case), names))
        for case in set(listed.rows) - set(docs):
            del listed.rows[case]
    listed.ordered = sorted((row for _, row in listed.rows.values()),
                            key=lambda r: (r["created"], r["case"]))
    return listed.ordered


#: Seconds a case page shows the home's state without asking the server what is new.
SYNC_EVERY = 15.0


def _heard(partner: Any, network: str, touched: list[str]) -> None:
    """A screen synced ``network``: the list builds the touched cases' rows again."""
    listed = _LISTED.get(partner, {}).get(network)
    if listed is not None:
        listed.dirty = True
        listed.pending.update(touched)


SYNC_LISTENERS.append(_heard)


async def synced(partner: Any, network: str, *, now: bool = False) -> list[str] | None:
    """Sync ``network`` unless this console did within :data:`SYNC_EVERY` seconds and
    sent nothing since (``now``: sync anyway); the cases the sync touched, None when it
    did not sync.  Call it under the console's lock."""
    age = since_sync(partner, network)
    if not now and age is not None and age < SYNC_EVERY:
        return None
    return await sync(partner, network)


def last_synced(partner: Any, network: str) -> str | None:
    """When this console last synced ``network``, as local wall-clock time (HH:MM:SS)."""
    age = since_sync(partner, network)
    if age is None:
        return None
    return time.strftime("%H:%M:%S", time.localtime(time.time() - age))


def _page_number(value: str | None) -> int:
    """The page asked for (1-based); anything that is not a small positive number is 1."""
    if value is None or not value.isdigit() or len(value) > 6:
        return 1
    return max(1, int(value))


async def cases(request: web.Request) -> web.Response:
    network = path_id(request, "network")
    status = request.query.get("status", "all")
    domain = request.query.get("domain", "")
    choices = form_choices()
    if status not in ("all", "open", "closed"):
        status = "all"
    if domain not in choices["domains"]:
        domain = ""
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            touched = await synced(partner, network, now=request.query.get("sync") == "1")
            rows = listed_rows(partner, network, touched)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network, refusal=explain(error))
    held = len(rows)
    rows = [r for r in rows if (status == "all" or r["status"] == status)
            and (not domain or domain in (r["domains"] or []))]
    pages = max(1, -(-len(rows) // CASES_PAGE))
    at = min(_page_number(request.query.get("page")), pages)
    first = (at - 1) * CASES_PAGE

    def link(number: int) -> str:
        query = {k: v for k, v in (("status", status), ("domain", domain)) if v and v != "all"}
        return f"/n/{network}/cases?" + urlencode({**query, "page": number})

    return page(request, "cases.html", network=network, cases=rows[first:first + CASES_PAGE],
                updated=last_synced(partner, network), refresh=link(at) + "&sync=1",
                status=status, domain=domain, choices=choices, held=held, matched=len(rows),
                first=first + 1, last=min(first + CASES_PAGE, len(rows)), at=at, pages=pages,
                previous=link(at - 1) if at > 1 else None,
                next=link(at + 1) if at < pages else None)


async def case(request: web.Request, **context: Any) -> web.Response:
    from schakel.cli.commands.case import _event_row, member_names
    from schakel.cli.commands.output import plain

    network, wanted = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            fresh = await synced(partner, network) is not None
            try:
                found = partner.cases.get(network, wanted)
            except NotFound:
                if fresh:
                    raise
                await synced(partner, network, now=True)      # a case new since the last sync
                found = partner.cases.get(network, wanted)
            view = plain(found)
            names = member_names(partner, network)
            listed = _LISTED.get(partner, {}).get(network)
            if listed is not None and wanted not in listed.rows:
                listed.dirty = True         # e.g. made from a signal a moment ago
    except ProtocolError as error:
        return page(request, "refused.html", http_status=404, network=network, refusal=explain(error))
    events = [_event_row(e, names) for e in view.get("events") or []]
    return page(request, "case.html", http_status=context.pop("http_status", 200), network=network,
                view=view, state=view.get("state") or {}, events=events,
                owner=names.get(view["owner"], view["owner"]), **context)


async def note(request: web.Request) -> web.StreamResponse:
    network, wanted = path_id(request, "network"), path_id(request, "case")
    try:
        text = field_text(request[FORM], "text")
    except FormError as error:
        return await case(request, http_status=422, form_error=str(error))
    plaintext = {"kind": "note", "text": text}
    partner = unlocked(request)
    try:
        async with sending(request, network, plaintext):
            await partner.cases.add_event(network, wanted, plaintext)
    except ProtocolError as error:
        return await case(request, http_status=422, refusal=explain(error), text=text)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}#notes")


async def close(request: web.Request) -> web.StreamResponse:
    """Close a case (its owner or the coördinator), with a reason the PII guard checked."""
    network, wanted = path_id(request, "network"), path_id(request, "case")
    try:
        reason = field_text(request[FORM], "reason")
    except FormError as error:
        return await case(request, http_status=422, form_error=str(error))
    checked = {"reason": reason}
    partner = unlocked(request)
    try:
        async with sending(request, network, checked):
            await partner.cases.close(network, wanted, reason=reason or "")
    except ProtocolError as error:
        return await case(request, http_status=422, refusal=explain(error), reason=reason)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}")


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/cases", cases)
    router.add_get("/n/{network}/cases/{case}", case)
    router.add_post("/n/{network}/cases/{case}/note", note)
    router.add_post("/n/{network}/cases/{case}/close", close)
