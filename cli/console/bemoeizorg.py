"""Bemoeizorg in an OGGZ network (ADR 0040, ADR 0042; protocol.md §D.4–§D.6): invoke it
on a case, co-sign a colleague's invocation (four eyes), receive the identity one's own
invocation releases, and the auditor's review.

Every step is the library's (:class:`schakel.client.disclosure.Disclosure`), with its
refusals explained.  The justification is sealed to the network's current auditors: the
console neither PII-guards nor keeps it, and shows it only to an auditor, opened with the
auditor's own key, above the review form (a review of something not read is no review).
A released identity is shown once, on the answer to the release (every page of the
console is ``no-store``); it is kept in the home until the access ends.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    FIELD_LABELS, HELD, ID, WORDS, FormError, explain, field_choice, field_text, page,
    path_id, sending, sync, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import MalformedError, ProtocolError

FIELD_LABELS.update({
    "case": N_("Case"), "ground": N_("Ground"),
    "justification": N_("Justification for the auditors"), "invocation": N_("Invocation"),
    "outcome": N_("Outcome"), "note": N_("Review note (without identifying data)"),
})
WORDS.update({
    "waiting-for-cosign": N_("waiting for a co-signature"), "cosigned": N_("co-signed"),
    "released": N_("released"), "reviewed": N_("reviewed"), "refused": N_("refused"),
    "approved": N_("approved"), "questioned": N_("questioned"),
    "severe-self-neglect": N_("severe self-neglect"), "housing-pollution": N_("housing pollution"),
    "danger-to-self": N_("danger to self"), "danger-to-others": N_("danger to others"),
    "nuisance": N_("nuisance"), "domestic-violence": N_("domestic violence"),
    "child-abuse": N_("child abuse"),
})


def _id(form: Any, name: str, *, required: bool = True) -> str | None:
    value = field_text(form, name, required=required)
    if value is not None and not ID.fullmatch(value):
        raise FormError(_("“{field}” is not an id (letters, digits, - and _).").format(
            field=_(FIELD_LABELS[name])))
    return value


async def _situation(partner: Any, network: str) -> dict[str, Any]:
    """What this partner may do here: the policy's bemoeizorg rules and its own roles,
    from what it verified (call with the lock held, after a sync)."""
    from schakel.client.disclosure import rules_of
    from schakel.client.wire import refuse

    tv = partner.networks.verified(network)
    rules = rules_of(tv.policy, tv.kind)
    me = tv.member(partner.session.key_id)
    user = partner.session.acting_user
    current = me is not None and me.current
    unavailable = None
    if rules.network_kind != "oggz":
        unavailable = explain(refuse("bemoeizorg-not-in-oggz", "bemoeizorg exists only in oggz "
                                     "networks; this network needs consent"))
    elif not rules.bemoeizorg_enabled:
        unavailable = explain(refuse("bemoeizorg-disabled",
                                     "this network's policy does not allow bemoeizorg"))
    return {
        "unavailable": unavailable,
        "grounds": sorted(rules.bemoeizorg_grounds), "classes": sorted(rules.classes),
        "access_hours": rules.access_hours, "four_eyes": rules.four_eyes,
        "role_holder": bool(current and me.party_of(user) == "formal"
                            and "bemoeizorg" in me.roles_of(user)),
        "auditor": bool(current and me.has_role("auditor")),
        "auditors": sorted(a.name for a in tv.auditors() if a.current),
    }


async def overview(request: web.Request, **context: Any) -> web.Response:
    network = path_id(request, "network")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            where = await _situation(partner, network)
            invocations = [] if where["unavailable"] else [
                i.to_json() for i in await partner.disclosure.invocations(network)]
            cases = [v.case for v in partner.cases.all(network)] if where["role_holder"] else []
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    invoked = {k: request.query[k] for k in ("invoked", "case", "cosigned")
               if k in request.query and ID.fullmatch(request.query[k])}
    mine = partner.session.key_id
    return page(request, "bemoeizorg.html", http_status=context.pop("http_status", 200),
                network=network, where=where, invocations=invocations, cases=cases,
                invoked=invoked, mine=mine, **context)


async def invoke(request: web.Request) -> web.StreamResponse:
    """Invoke bemoeizorg on a case: a ground from the policy, a justification sealed to
    the auditors, the classes asked (default: every class the policy has)."""
    network = path_id(request, "network")
    form = request[FORM]
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            where = await _situation(partner, network)
    except ProtocolError as error:
        return await overview(request, http_status=422, refusal=explain(error))
    try:
        case = _id(form, "case")
        ground = field_choice(form, "ground", tuple(where["grounds"]))
        justification = field_text(form, "justification")
        classes = [c for c in form.getall("classes", []) if c in where["classes"]]  # type: ignore[attr-defined]
    except FormError as error:
        return await overview(request, http_status=422, form_error=str(error))
    try:
        async with request.app[HELD].lock:
            invocation = await partner.disclosure.invoke_bemoeizorg(
                network, case or "", ground=ground, justification=justification or "",
                classes=classes or None)
    except ProtocolError as error:
        return await overview(request, http_status=422, refusal=explain(error),
                              kept={"case": case, "ground": ground, "classes": classes})
    raise web.HTTPSeeOther(f"/n/{network}/bemoeizorg?invoked={invocation}&case={case}")


async def cosign(request: web.Request) -> web.StreamResponse:
    """Co-sign a colleague's invocation as the second person (four eyes)."""
    network = path_id(request, "network")
    form = request[FORM]
    try:
        invocation = _id(form, "invocation")
        case = _id(form, "case", required=False)
    except FormError as error:
        return await overview(request, http_status=422, form_error=str(error))
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            await partner.disclosure.cosign(network, invocation or "", case=case)
    except MalformedError as error:
        if case is None and (error.details or {}).get("field") == "case":
            return await overview(request, http_status=422, form_error=_(
                "Your organisation cannot look up the case of this invocation (only the "
                "coördinator, the auditors and the invoker read an invocation): fill in the "
                "case the invoker gave you."), cosign_invocation=invocation)
        return await overview(request, http_status=422, refusal=explain(error),
                              cosign_invocation=invocation)
    except ProtocolError as error:
        return await overview(request, http_status=422, refusal=explain(error),
                              cosign_invocation=invocation)
    raise web.HTTPSeeOther(f"/n/{network}/bemoeizorg?cosigned={invocation}")


async def release(request: web.Request) -> web.Response:
    """Receive the identity this partner's own invocation releases, shown once."""
    network, invocation = path_id(request, "network"), path_id(request, "invocation")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            where = await _situation(partner, network)
            released = await partner.disclosure.bemoeizorg_release(network, invocation)
    except ProtocolError as error:
        return await overview(request, http_status=422, refusal=explain(error))
    fields = [(cls, name, value) for cls, held in sorted(released.classes.items())
              for name, value in (sorted(held.items()) if isinstance(held, dict) else [("", held)])]
    return page(request, "released.html", network=network, invocation=invocation,
                case=released.case, receipt=released.receipt_index, fields=fields,
                access_hours=where["access_hours"])


async def _listed(partner: Any, network: str, invocation: str) -> dict[str, Any] | None:
    for item in await partner.disclosure.invocations(network):
        if item.invocation == invocation:
            return dict(item.to_json())
    return None


async def examine(request: web.Request, **context: Any) -> web.Response:
    """An auditor's page of one invocation: the justification opened first, then the
    review form."""
    network, invocation = path_id(request, "network"), path_id(request, "invocation")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            item = await _listed(partner, network, invocation)
            text = await partner.disclosure.justification(network, invocation)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    return page(request, "invocation.html", http_status=context.pop("http_status", 200),
                network=network, invocation=invocation, item=item or {}, justification=text,
                **context)


async def review(request: web.Request) -> web.StreamResponse:
    """The auditor's verdict, approved or questioned, with a note the PII guard checked."""
    network, invocation = path_id(request, "network"), path_id(request, "invocation")
    form = request[FORM]
    try:
        outcome = field_choice(form, "outcome", ("approved", "questioned"))
        note = field_text(form, "note")
    except FormError as error:
        return await examine(request, http_status=422, form_error=str(error))
    checked = {"note": note}
    partner = unlocked(request)
    try:
        async with sending(request, network, checked):
            await partner.disclosure.review(network, invocation,
                                            approved=outcome == "approved", note=note or "")
    except ProtocolError as error:
        return await examine(request, http_status=422, refusal=explain(error), note=note,
                             outcome=outcome)
    raise web.HTTPSeeOther(f"/n/{network}/bemoeizorg#inv-{invocation}")


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/bemoeizorg", overview)
    router.add_post("/n/{network}/bemoeizorg/invoke", invoke)
    router.add_post("/n/{network}/bemoeizorg/cosign", cosign)
    router.add_get("/n/{network}/bemoeizorg/{invocation}", examine)
    router.add_post("/n/{network}/bemoeizorg/{invocation}/release", release)
    router.add_post("/n/{network}/bemoeizorg/{invocation}/review", review)
