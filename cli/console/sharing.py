"""Sharing a case with a member that does not read it (ADR 0040): the coördinator
chooses a current member outside the kern's reach — a schil partner, or a member outside
a subset case's audience — and gives a reason without identifying data; the case key
goes to that member sealed (``Cases.share``, as ``schakel case share``), and the server
sees the reason and who shares with whom, never the case.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    FIELD_LABELS, HELD, FormError, explain, field_text, label, page, path_id, sending,
    sync, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import ProtocolError

FIELD_LABELS.update({"partner": N_("Share with"),
                     "share_reason": N_("Reason for sharing (without identifying data)")})


async def share_page(request: web.Request, **context: Any) -> web.Response:
    """The form: the current members (not this partner) and the reason."""
    network, case = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            view = partner.cases.get(network, case)
            members = [m for m in partner.networks.members(network)
                       if m.get("current") and m.get("key_id") != partner.key_id]
    except ProtocolError as error:
        return page(request, "refused.html", http_status=404, network=network,
                    refusal=explain(error))
    members.sort(key=lambda m: (m.get("ring") != "shell", str(m.get("name"))))
    return page(request, "share.html", http_status=context.pop("http_status", 200),
                network=network, case=case, kind=view.kind, members=members, **context)


async def share(request: web.Request) -> web.StreamResponse:
    """Share the case's key with the chosen member, with the reason the PII guard read."""
    network, case = path_id(request, "network"), path_id(request, "case")
    form = request[FORM]
    partner = unlocked(request)
    try:
        chosen = field_text(form, "partner") or ""
        reason = field_text(form, "share_reason") or ""
        members = {m.get("key_id"): m for m in partner.networks.members(network)
                   if m.get("current")}
        if chosen not in members or chosen == partner.key_id:
            raise FormError(_("Choose a value for “{field}”.").format(field=label("partner")))
    except FormError as error:
        return await share_page(request, http_status=422, form_error=str(error))
    checked = {"reason": reason}
    try:
        async with sending(request, network, checked):
            await partner.cases.share(network, case, chosen, reason=reason)
    except ProtocolError as error:
        return await share_page(request, http_status=422, refusal=explain(error),
                                reason=reason)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}?shared=1")


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/cases/{case}/share", share_page)
    router.add_post("/n/{network}/cases/{case}/share", share)
