"""A network as its coördinator starts it in the console (ADR 0040): found a network on
the server fingerprint the operator gave, see its overview (policy, covenant, the
fingerprint to read aloud), and publish its card for signallers (the resident's intake
address and what goes on the leaflet).

The same library calls as ``schakel network create`` and ``schakel network card``; the
server fingerprint is checked before anything is sent (``UntrustedKeyError``), and the
covenant's hash goes into the genesis.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    FIELD_LABELS, HELD, WORDS, FormError, explain, field_choice, field_text, label, page,
    path_id, sync, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import ProtocolError

#: The kinds of network the console founds (those of ``schakel network create``).
KINDS = ("neighbourhood", "oggz")
#: Who may signal with a card (those of ``schakel network card``).
SIGNALLER_KINDS = ("resident", "neighbour", "volunteer", "volunteer-driver", "gp", "family",
                   "professional", "other")
#: The longest a card may be valid, in days (as ``schakel network card --valid-days``).
MAX_CARD_DAYS = 800
#: The longest covenant text the founding form takes (characters; the body limit is the
#: guard's MAX_BODY).
MAX_COVENANT = 20_000
#: Most lines of a network's PII allow-list the founding form takes (the policy's bound).
MAX_ALLOW_LINES = 500

FIELD_LABELS.update({
    "name": N_("Name of the network"), "kind": N_("Kind of network"),
    "covenant": N_("Covenant (convenant) text"),
    "server_fingerprint": N_("The server's fingerprint, as its operator gave it"),
    "allow": N_("Words of this network the PII guard never reports (one per line)"),
    "valid_days": N_("Valid for (days)"), "signaller_kinds": N_("Who may signal"),
})
WORDS.update({"neighbourhood": N_("neighbourhood network (buurtnetwerk)"),
              "oggz": N_("OGGZ network (bemoeizorg possible)"),
              "not-synced": N_("not synced yet"),
              "not-admitted": N_("not admitted"), "former": N_("former member")})


def _choices() -> dict[str, Any]:
    return {"kinds": KINDS, "signaller_kinds": SIGNALLER_KINDS}


async def new_network(request: web.Request, **context: Any) -> web.Response:
    """The founding form."""
    unlocked(request)
    return page(request, "network_new.html", http_status=context.pop("http_status", 200),
                choices=_choices(), values=context.pop("values", {}), **context)


def _allow_words(text: str | None) -> list[str]:
    lines = [line.strip() for line in (text or "").splitlines()]
    words = [line for line in lines if line and not line.startswith("#")]
    if len(words) > MAX_ALLOW_LINES:
        raise FormError(_("The field “{field}” is too long (at most {n} lines).").format(
            field=label("allow"), n=MAX_ALLOW_LINES))
    return words


async def found(request: web.Request) -> web.StreamResponse:
    """Found a network with this home as its coördinator."""
    from schakel.cli.commands.network import with_allow_list
    from schakel.keys import Fingerprint
    from schakel.protocol.objects.network import default_policy

    form = request[FORM]
    values = {k: form.get(k, "") for k in ("name", "kind", "covenant", "server_fingerprint",
                                           "allow")}
    try:
        name = field_text(form, "name") or ""
        kind = field_choice(form, "kind", KINDS)
        covenant = field_text(form, "covenant", limit=MAX_COVENANT) or ""
        heard = field_text(form, "server_fingerprint") or ""
        words = _allow_words(field_text(form, "allow", required=False))
    except FormError as error:
        return await new_network(request, http_status=422, form_error=str(error), values=values)
    partner = unlocked(request)
    try:
        Fingerprint.parse(heard)
        policy = with_allow_list(default_policy(kind).to_json(), words) if words else None
        async with request.app[HELD].lock:
            network = await partner.networks.create(name=name, kind=kind, covenant=covenant,
                                                    server_fingerprint=heard, policy=policy)
    except ProtocolError as error:
        return await new_network(request, http_status=422, refusal=explain(error),
                                 values=values)
    raise web.HTTPSeeOther(f"/n/{network}?founded=1")


async def overview(request: web.Request, **context: Any) -> web.Response:
    """The network as this home verified it: name, kind, policy, the covenant's hash,
    this partner's place and fingerprint; for the coördinator the card form."""
    network = path_id(request, "network")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            view = partner.networks.verified(network)
            place = partner.networks.place(network)
            members = [m for m in partner.networks.members(network) if m.get("current")]
            served = await partner.cards.served(network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    policy = dict(view.policy or {})
    bemoeizorg = policy.get("bemoeizorg") or {}
    card = None
    if served is not None:
        card = {"serial": served.serial, "valid_until": served.valid_until,
                "signaller_kinds": list(served.signaller_kinds),
                "intake": _intake_address(served.server.origin, network,
                                          str(partner.fingerprint))}
    return page(request, "network.html", http_status=context.pop("http_status", 200),
                network=network, name=view.name, kind=view.kind, place=place,
                fingerprint=str(partner.fingerprint), covenant=view.covenant.hex(),
                informal_classes=policy.get("informal_classes") or [],
                anonymous_signals=bool(policy.get("anonymous_signals")),
                bemoeizorg=bemoeizorg.get("grounds") if bemoeizorg.get("enabled") else None,
                allow=policy.get("pii_allow") or [], members=len(members),
                policy_version=view.policy_version, card=card, choices=_choices(),
                founded=request.query.get("founded") == "1", **context)


def _intake_address(origin: str, network: str, fingerprint: str) -> str:
    """The resident's intake page with the coördinator's fingerprint in its fragment (a
    QR code on the leaflet may carry it; the page still shows it to compare)."""
    digits = "".join(ch for ch in fingerprint if ch.isdigit())
    return f"{origin.rstrip('/')}/intake/{quote(network)}#vingerafdruk={digits}"


async def publish_card(request: web.Request) -> web.StreamResponse:
    """Publish the network's card (the coördinator's key signs it)."""
    network = path_id(request, "network")
    form = request[FORM]
    try:
        kinds = form.getall("signaller_kinds", [])
        if not kinds or any(k not in SIGNALLER_KINDS for k in kinds):
            raise FormError(_("Choose a value for “{field}”.").format(
                field=label("signaller_kinds")))
        days_text = field_text(form, "valid_days") or ""
        if not days_text.isdigit() or not 1 <= int(days_text) <= MAX_CARD_DAYS:
            raise FormError(_("“{field}” is a number of days from 1 to {n}.").format(
                field=label("valid_days"), n=MAX_CARD_DAYS))
    except FormError as error:
        return await overview(request, http_status=422, form_error=str(error))
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            until = partner.session.now() + timedelta(days=int(days_text))
            await partner.cards.publish(network, valid_until=until, signaller_kinds=kinds)
    except ProtocolError as error:
        return await overview(request, http_status=403, refusal=explain(error))
    raise web.HTTPSeeOther(f"/n/{network}?published=1#card")


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/networks/new", new_network)
    router.add_post("/networks", found)
    router.add_get("/n/{network}", overview)
    router.add_post("/n/{network}/card", publish_card)
