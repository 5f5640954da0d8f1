"""The coördinator's signals inbox (ADR 0040): read a signal, answer the signaller, turn
a signal into a case."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    HELD, FormError, explain, field_choice, field_text, label, page, path_id, sync,
    unlocked,
)
from schakel.cli.i18n import _
from schakel.protocol.errors import ProtocolError

async def _received(request: web.Request, network: str) -> list[Any]:
    partner = unlocked(request)
    async with request.app[HELD].lock:
        return list(await partner.signals.received(network))


async def inbox(request: web.Request) -> web.Response:
    network = path_id(request, "network")
    try:
        signals = await _received(request, network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    return page(request, "inbox.html", network=network, signals=signals,
                count=_("Signals: {n}").format(n=len(signals)))


async def _one_signal(request: web.Request, network: str, wanted: str) -> Any:
    for item in await _received(request, network):
        if item.signal == wanted:
            return item
    raise web.HTTPNotFound()


async def signal(request: web.Request, **context: Any) -> web.Response:
    network, wanted = path_id(request, "network"), path_id(request, "signal")
    try:
        item = await _one_signal(request, network, wanted)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    return page(request, "signal.html", http_status=context.pop("http_status", 200), network=network,
                item=item, choices=form_choices(), **context)


def form_choices() -> dict[str, Any]:
    from schakel.cli.commands.case import CARE_STATUSES
    from schakel.cli.commands.signal import FEEDBACK_STATUSES
    from schakel.protocol.objects.plaintext import AGE_BANDS, PROBLEM_DOMAINS, SEVERITIES

    return {"statuses": FEEDBACK_STATUSES, "age_bands": AGE_BANDS, "domains": PROBLEM_DOMAINS,
            "severities": SEVERITIES, "care_statuses": CARE_STATUSES}


async def feedback(request: web.Request) -> web.StreamResponse:
    from schakel.cli.commands.signal import FEEDBACK_STATUSES

    network, wanted = path_id(request, "network"), path_id(request, "signal")
    form = request[FORM]
    try:
        status = field_choice(form, "status", FEEDBACK_STATUSES)
        message = field_text(form, "message", required=False)
    except FormError as error:
        return await signal(request, http_status=422, form_error=str(error))
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await partner.signals.feedback(network, wanted, status, message)
    except ProtocolError as error:
        return await signal(request, http_status=403, refusal=explain(error))
    raise web.HTTPSeeOther(f"/n/{network}/signals/{wanted}?sent=1")


SOURCE_OF = {"resident": "resident", "neighbour": "resident", "family": "resident",
             "volunteer": "volunteer", "volunteer-driver": "volunteer", "gp": "gp",
             "shell-partner": "shell-partner", "professional": "partner", "other": "other"}


async def to_case(request: web.Request) -> web.StreamResponse:
    """Turn a signal into a case: the coördinator writes the anonymous intake (the
    concern itself may name the person and stays with the signal), the signal's sealed
    identity becomes the case's, and the signaller hears "taken-up"."""
    from schakel.cli.commands.guard import refuse_early, showing
    from schakel.cli.commands.output import plain

    network, wanted = path_id(request, "network"), path_id(request, "signal")
    form = request[FORM]
    choices = form_choices()
    try:
        domains = form.getall("domains", [])
        if not domains or any(d not in choices["domains"] for d in domains):
            raise FormError(_("Choose a value for “{field}”.").format(
                field=label("domains")))
        intake = {"kind": "intake", "summary": field_text(form, "summary"),
                  "age_band": field_choice(form, "age_band", choices["age_bands"]),
                  "neighbourhood": field_text(form, "neighbourhood"),
                  "domains": list(domains),
                  "severity": field_choice(form, "severity", choices["severities"]),
                  "care_status": field_choice(form, "care_status", choices["care_statuses"]),
                  "complex": form.get("complex") == "yes"}
    except FormError as error:
        return await signal(request, http_status=422, form_error=str(error))
    partner = unlocked(request)
    try:
        refuse_early(intake)
        item = await _one_signal(request, network, wanted)
        intake["source"] = ("anonymous-signal" if item.sender is None
                            else SOURCE_OF.get(item.content.get("signaller_kind"), "other"))
        identity = {cls: {k: v for k, v in fields.items() if k != "type"}
                    for cls, fields in plain(item.content.get("identity") or {}).items()}
        with showing(intake):
            async with request.app[HELD].lock:
                await sync(partner, network)
                case = await partner.cases.create(network, intake, identity=identity or None)
                await partner.signals.feedback(network, wanted, "taken-up", None)
    except ProtocolError as error:
        return await signal(request, http_status=422, refusal=explain(error), intake=intake)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}")


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/signals", inbox)
    router.add_get("/n/{network}/signals/{signal}", signal)
    router.add_post("/n/{network}/signals/{signal}/feedback", feedback)
    router.add_post("/n/{network}/signals/{signal}/case", to_case)
