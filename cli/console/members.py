"""The members of a network (ADR 0040, ADR 0042): the verified member list, admitting a
partner from its key bundle against the fingerprint read aloud, removing a member.

Admitting compares the fingerprint the coördinator typed, as the partner read it aloud,
with the bundle's own key (``Networks.admit`` refuses a mismatch, ``untrusted_key``,
before anything is sent).  The bundle's fingerprint is shown only next to a typed one,
never on its own: a screen that showed it first would invite copying it instead of
listening (ADR 0042).  The console has no way to admit without the comparison.

Removing a member revokes its membership; a core member's removal starts a new epoch
sealed to the remaining core and re-keys every open case, so the page shows the epoch
before and after.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    FIELD_LABELS, HELD, FormError, explain, field_choice, field_text, page, path_id,
    sending, sync, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import ProtocolError

#: The roles a coördinator may give in the admit form (``coordinator`` is the network's own).
ROLES = ("professional-secrecy", "bemoeizorg", "auditor")
#: Largest key bundle read from the form (a bundle is well under a kilobyte).
MAX_BUNDLE = 16 * 1024

FIELD_LABELS.update({
    "bundle": N_("Key bundle (the JSON file the organisation handed over)"),
    "fingerprint": N_("Fingerprint as the partner read it aloud to you"),
    "ring": N_("Ring (core or shell)"), "party": N_("Party"),
    "removal": N_("Reason for removal (without identifying data)"),
})


def grouped(fingerprint: Any) -> list[str]:
    """The eight groups of five digits of a fingerprint, for reading aloud."""
    return list(fingerprint.groups)


def _epoch(partner: Any, network: str) -> int:
    from schakel.client.fold import latest_epoch

    return int(latest_epoch(partner.session.state, network))


def _is_coordinator(partner: Any, network: str) -> bool:
    return bool(partner.networks.place(network).role == "coordinator")


def _roles(partner: Any, network: str) -> tuple[str, ...]:
    """The roles a member of this network may hold (bemoeizorg: in OGGZ networks only)."""
    kind = partner.networks.place(network).kind
    return tuple(r for r in ROLES if r != "bemoeizorg" or kind == "oggz")


def _check_roles(roles: tuple[str, ...], party: str, allowed: tuple[str, ...]) -> None:
    """The membership rules on roles (keys/chain.py), as a form error before anything is
    checked or sent: the library reports them as an untrusted key, which is not what the
    coördinator did wrong."""
    from schakel.protocol.objects.network import FORMAL_ONLY_ROLES

    if "bemoeizorg" in roles and "bemoeizorg" not in allowed:
        raise FormError(_("The bemoeizorg role exists only in OGGZ networks."))
    if party != "formal" and set(roles) & FORMAL_ONLY_ROLES:
        raise FormError(_("Professional secrecy and bemoeizorg are roles of a formal party "
                          "only."))


def _rows(partner: Any, network: str) -> list[dict[str, Any]]:
    from schakel.keys.fingerprint import Fingerprint

    tv = partner.networks.verified(network)
    rows = []
    for m in tv.members(current_only=False):
        rows.append({"key_id": m.key_id, "name": m.name, "ring": m.ring, "party": m.party,
                     "roles": sorted(m.roles), "current": m.current,
                     "fingerprint": grouped(Fingerprint.of(m.sign)),
                     "self": m.key_id == partner.session.key_id})
    return sorted(rows, key=lambda r: (not r["current"], r["name"].casefold()))


async def members(request: web.Request, **context: Any) -> web.Response:
    network = path_id(request, "network")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            rows = _rows(partner, network)
            epoch = _epoch(partner, network)
            coordinator = _is_coordinator(partner, network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    admitted = request.query.get("admitted")
    done = next((r for r in rows if r["key_id"] == admitted), None) if admitted else None
    return page(request, "members.html", http_status=context.pop("http_status", 200),
                network=network, members=rows, epoch=epoch, coordinator=coordinator,
                roles=_roles(partner, network), admitted=done, **context)


def _bundle(form: Any) -> dict[str, Any]:
    """The key bundle from the form: the uploaded file, else the pasted text."""
    upload = form.get("bundle_file")
    raw: bytes | str | None = None
    if upload is not None and not isinstance(upload, str) and getattr(upload, "file", None):
        raw = upload.file.read(MAX_BUNDLE + 1)
        if not raw:
            raw = None
    if raw is None:
        raw = field_text(form, "bundle", required=False)
    if raw is None:
        raise FormError(_("Choose the key bundle file, or paste its text."))
    if len(raw) > MAX_BUNDLE:
        raise FormError(_("The key bundle is larger than {n} KiB; is it the right file?").format(
            n=MAX_BUNDLE // 1024))
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FormError(_("The key bundle is not JSON text; is it the right file?")) from None
    if not isinstance(value, dict):
        raise FormError(_("The key bundle must be a JSON object; is it the right file?"))
    return value


async def admit(request: web.Request) -> web.StreamResponse:
    """Admit the partner of an uploaded or pasted key bundle, refused unless its key has
    the fingerprint the coördinator typed as it was read aloud."""
    from schakel.keys import verify_key_bundle
    from schakel.keys.fingerprint import Fingerprint

    network = path_id(request, "network")
    form = request[FORM]
    try:
        bundle = _bundle(form)
        ring = field_choice(form, "ring", ("core", "shell"))
        party = field_choice(form, "party", ("formal", "informal"))
        roles = tuple(r for r in form.getall("roles", []) if r in ROLES)   # type: ignore[attr-defined]
        typed = field_text(form, "fingerprint")
        _check_roles(roles, party, _roles(unlocked(request), network))
    except FormError as error:
        return await members(request, http_status=422, form_error=str(error))
    kept = {"ring": ring, "party": party, "roles": roles, "fingerprint": typed}
    partner = unlocked(request)
    comparison = None
    try:
        own = verify_key_bundle(bundle)          # its self-signature, before anything else
        expected = Fingerprint.parse(typed)
        theirs, heard = grouped(Fingerprint.of(own.public.sign)), grouped(expected)
        comparison = {"name": own.name, "groups": [
            {"heard": h, "bundle": b, "same": h == b} for h, b in zip(heard, theirs)]}
        comparison["differ"] = sum(not g["same"] for g in comparison["groups"])
        async with request.app[HELD].lock:
            await sync(partner, network)
            key_id = await partner.networks.admit(network, bundle, ring=ring, party=party,
                                                  roles=roles, fingerprint=typed)
    except ProtocolError as error:
        return await members(request, http_status=422, refusal=explain(error), kept=kept,
                             comparison=comparison)
    raise web.HTTPSeeOther(f"/n/{network}/members?admitted={key_id}")


async def confirm_removal(request: web.Request, **context: Any) -> web.Response:
    """The confirmation page of a removal: who, what it causes (a rekey), a reason."""
    network, key_id = path_id(request, "network"), path_id(request, "member")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            rows = _rows(partner, network)
            epoch = _epoch(partner, network)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    member = next((r for r in rows if r["key_id"] == key_id and r["current"]), None)
    if member is None:
        raise web.HTTPNotFound()
    return page(request, "remove.html", http_status=context.pop("http_status", 200),
                network=network, member=member, epoch=epoch, **context)


async def remove(request: web.Request) -> web.StreamResponse:
    """Revoke a membership with a reason the PII guard checked; show the epoch before and
    after (a core member's removal seals a new epoch key to the remaining core)."""
    network, key_id = path_id(request, "network"), path_id(request, "member")
    try:
        reason = field_text(request[FORM], "removal")
    except FormError as error:
        return await confirm_removal(request, http_status=422, form_error=str(error))
    checked = {"reason": reason}
    partner = unlocked(request)
    try:
        async with sending(request, network, checked):
            info = partner.networks.verified(network).member(key_id)
            before = _epoch(partner, network)
            await partner.networks.remove(network, key_id, reason=reason or "")
            await sync(partner, network)
            after = _epoch(partner, network)
    except ProtocolError as error:
        return await confirm_removal(request, http_status=422, refusal=explain(error),
                                     reason=reason)
    return page(request, "removed.html", network=network, name=info.name if info else key_id,
                ring=info.ring if info else None, before=before, after=after)


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/members", members)
    router.add_post("/n/{network}/members/admit", admit)
    router.add_get("/n/{network}/members/{member}/remove", confirm_removal)
    router.add_post("/n/{network}/members/{member}/remove", remove)
