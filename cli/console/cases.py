"""The cases of a network (ADR 0040): the list with a filter (status, problem domain),
one case's anonymous layer, adding a note, closing a case."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    HELD, FormError, explain, field_text, page, path_id, unlocked,
)
from schakel.cli.console.signals import form_choices
from schakel.protocol.errors import ProtocolError

async def cases(request: web.Request) -> web.Response:
    from schakel.cli.commands.case import case_summary, member_names

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
            await partner.sync(network)
            names = member_names(partner, network)
            rows = [case_summary(v, names) for v in partner.cases.all(network)]
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network, refusal=explain(error))
    rows = [r for r in rows if (status == "all" or r["status"] == status)
            and (not domain or domain in (r["domains"] or []))]
    return page(request, "cases.html", network=network, cases=rows, status=status,
                domain=domain, choices=choices)


async def case(request: web.Request, **context: Any) -> web.Response:
    from schakel.cli.commands.case import _event_row, member_names
    from schakel.cli.commands.output import plain

    network, wanted = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await partner.sync(network)
            view = plain(partner.cases.get(network, wanted))
            names = member_names(partner, network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=404, network=network, refusal=explain(error))
    events = [_event_row(e, names) for e in view.get("events") or []]
    return page(request, "case.html", http_status=context.pop("http_status", 200), network=network,
                view=view, state=view.get("state") or {}, events=events,
                owner=names.get(view["owner"], view["owner"]), **context)


async def note(request: web.Request) -> web.StreamResponse:
    from schakel.cli.commands.guard import refuse_early, showing

    network, wanted = path_id(request, "network"), path_id(request, "case")
    try:
        text = field_text(request[FORM], "text")
    except FormError as error:
        return await case(request, http_status=422, form_error=str(error))
    plaintext = {"kind": "note", "text": text}
    partner = unlocked(request)
    try:
        refuse_early(plaintext)
        with showing(plaintext):
            async with request.app[HELD].lock:
                await partner.sync(network)
                await partner.cases.add_event(network, wanted, plaintext)
    except ProtocolError as error:
        return await case(request, http_status=422, refusal=explain(error), text=text)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}#notes")


async def close(request: web.Request) -> web.StreamResponse:
    """Close a case (its owner or the coördinator), with a reason the PII guard checked."""
    from schakel.cli.commands.guard import refuse_early, showing

    network, wanted = path_id(request, "network"), path_id(request, "case")
    try:
        reason = field_text(request[FORM], "reason")
    except FormError as error:
        return await case(request, http_status=422, form_error=str(error))
    checked = {"reason": reason}
    partner = unlocked(request)
    try:
        refuse_early(checked)
        with showing(checked):
            async with request.app[HELD].lock:
                await partner.sync(network)
                await partner.cases.close(network, wanted, reason=reason or "")
    except ProtocolError as error:
        return await case(request, http_status=422, refusal=explain(error), reason=reason)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}")




def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/cases", cases)
    router.add_get("/n/{network}/cases/{case}", case)
    router.add_post("/n/{network}/cases/{case}/note", note)
    router.add_post("/n/{network}/cases/{case}/close", close)
