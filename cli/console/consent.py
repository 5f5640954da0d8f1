"""Consent and disclosure (ADR 0040, ADR 0041): a case's "Toestemming en inzage" page —
record the person's consent with the signed form (only its SHA-256 leaves the computer),
revoke it, and, for the coördinator, check a grant against the network policy before
sending it — and the grantee's side: the grants to this partner, their release, and the
identity this home holds for a case, shown on that one page only.

Every action is the library's (:class:`schakel.client.disclosure.Disclosure`), as the
``schakel consent`` and ``schakel grant`` commands use it; the policy check is
:meth:`~schakel.client.disclosure.Disclosure.judge_grant`, the very judgement ``grant``
makes before it sends.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.cli.console.guard import FORM, MAX_UPLOAD, upload
from schakel.cli.console.screen import (
    FIELD_LABELS, HELD, ID, FormError, explain, field_text, label, page, path_id, sending,
    sync, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import PolicyViolation, ProtocolError

#: The consent's validity the form offers, in days (the CLI's ``--days`` bounds).
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 3650, 365
PARTIES = ("formal", "informal")
#: The disclosure classes, as words (a network's own class is shown by its code).
CLASS_WORDS = {
    "name": N_("name"), "address": N_("address"), "contact": N_("contact details"),
    "official": N_("official data (BSN, date of birth)"), "care": N_("care contacts"),
    "formal": N_("formal parties (professionals)"),
    "informal": N_("informal parties (volunteers)"),
    "granted": N_("granted, not yet released"), "released": N_("released"),
    "release-refused": N_("release refused"),
}

#: This module's form fields (the labels a refusal of a field names).
FIELD_LABELS.update({
    "classes": N_("Classes the person agreed to"), "parties": N_("Party types that may receive it"),
    "partners": N_("Members that may receive it"), "purpose": N_("Purpose (without identifying data)"),
    "days": N_("Valid for (days)"), "evidence": N_("Signed consent form"),
    "revoke_reason": N_("Reason for revoking (without identifying data)"),
    "grant_classes": N_("Classes to grant"), "grantee": N_("Grantee"),
    "grant_consent": N_("Consent"), "grant_reason": N_("Reason for the grant (without identifying data)"),
})


def _word(code: str) -> str:
    return _(CLASS_WORDS[code]) if code in CLASS_WORDS else code


def _checked(form: Any, name: str, allowed: list[str] | tuple[str, ...]) -> list[str]:
    """The ticked checkboxes ``name`` of ``form``, each one of ``allowed``."""
    values = [v for v in form.getall(name, []) if isinstance(v, str)]
    if any(v not in allowed for v in values):
        raise FormError(_("Choose a value for “{field}”.").format(field=label(name)))
    return sorted(set(values))


def _days(form: Any) -> int:
    text = field_text(form, "days")
    try:
        days = int(text or "")
    except ValueError:
        days = 0
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise FormError(_("“{field}” is a whole number of days from {low} to {high}.").format(
            field=label("days"), low=MIN_DAYS, high=MAX_DAYS))
    return days


def _evidence(form: Any) -> bytes:
    """The signed consent form's bytes (a file field, at most :data:`MAX_UPLOAD`: the
    guard read no more)."""
    field = form.get("evidence")
    data = field.file.read(MAX_UPLOAD + 1) if hasattr(field, "file") else b""
    if not data:
        raise FormError(_("Choose the file of the signed consent form."))
    if len(data) > MAX_UPLOAD:
        raise FormError(_("The consent form is larger than {mib} MiB.").format(
            mib=MAX_UPLOAD // (1024 * 1024)))
    return data


def _identity_rows(value: Any) -> str:
    """One identity field as a line of text (a nested object as ``key: value`` parts)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_identity_rows(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_identity_rows(v) for v in value)
    return str(value)


async def _context(request: web.Request, network: str, case: str) -> dict[str, Any]:
    """What the consent page shows: the policy's classes, the verified members, the
    consents this home recorded for the case, and the grants of the case the audit
    log shows this partner."""
    partner = unlocked(request)
    async with request.app[HELD].lock:
        await sync(partner, network)
        rules = await partner.disclosure.rules(network)
        members = [m for m in partner.networks.members(network)
                   if m["current"] and m["key_id"] != partner.key_id]
        consents = partner.disclosure.consents(network, case)
        role = partner.networks.place(network).role
        logged = (await partner.disclosure.logged_consents(network, case)
                  if role == "coordinator" else [])
        grants = [g for g in await partner.disclosure.grants(network) if g.case == case]
    names = {m["key_id"]: m["name"] for m in members}
    names[partner.key_id] = getattr(partner, "name", None) or partner.key_id
    for c in consents:
        c["class_words"] = [_word(x) for x in c["classes"]]
        c["receivers"] = [_("all {parties}").format(parties=_word(p)) for p in c["parties"]] + [
            names.get(p, p) for p in c["partners"]]
    here = {c["consent"] for c in consents}
    elsewhere = [c for c in logged if c["consent"] not in here]
    for c in elsewhere:
        c["class_words"] = [_word(x) for x in c["classes"]]
        c["recorder_name"] = c["recorder_name"] or names.get(c["recorder"], c["recorder"])
    return {"network": network, "case": case, "classes": sorted(rules.classes),
            "elsewhere": elsewhere,
            "informal_classes": sorted(rules.informal_classes),
            "restricted": dict(rules.restricted), "members": members, "names": names,
            "consents": consents, "grants": grants, "coordinator": role == "coordinator",
            "parties": PARTIES, "term": _word, "max_upload_mib": MAX_UPLOAD // (1024 * 1024),
            "min_days": MIN_DAYS, "max_days": MAX_DAYS}


async def consent_page(request: web.Request, **context: Any) -> web.Response:
    network, case = path_id(request, "network"), path_id(request, "case")
    try:
        shown = await _context(request, network, case)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    form: dict[str, Any] = {"days": DEFAULT_DAYS, "classes": [], "parties": [], "partners": [],
                            "purpose": "", "grant_classes": [], "grantee": "",
                            "grant_consent": "", "grant_reason": ""}
    form.update(context.pop("form", {}))
    done = request.query.get("recorded")
    if done and ID.fullmatch(done):
        for c in shown["consents"]:
            if c["consent"] == done:
                context["recorded"] = {"consent": done, "sha256": c["evidence_sha256"]}
    done = request.query.get("granted")
    if done and ID.fullmatch(done):
        context["granted"] = done
    return page(request, "consent.html", http_status=context.pop("http_status", 200),
                **shown, form=form, **context)


@upload(MAX_UPLOAD)
async def record(request: web.Request) -> web.StreamResponse:
    """Record the person's consent: classes, who may receive them, purpose, validity,
    and the signed form, of which only the SHA-256 is sent."""
    network, case = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    data = request[FORM]
    kept = {"classes": data.getall("classes", []), "parties": data.getall("parties", []),
            "partners": data.getall("partners", []), "purpose": data.get("purpose") or "",
            "days": data.get("days") or DEFAULT_DAYS}
    try:
        async with request.app[HELD].lock:
            rules = await partner.disclosure.rules(network)
            members = [m["key_id"] for m in partner.networks.members(network) if m["current"]]
        classes = _checked(data, "classes", sorted(rules.classes))
        parties = _checked(data, "parties", PARTIES)
        partners = _checked(data, "partners", members)
        if not classes:
            raise FormError(_("Tick at least one class the person agreed to."))
        if not parties and not partners:
            raise FormError(_("Name who may receive it: a party type or a member."))
        purpose = field_text(data, "purpose") or ""
        days = _days(data)
        evidence = _evidence(data)
    except FormError as error:
        return await consent_page(request, http_status=422, form_error=str(error), form=kept)
    except ProtocolError as error:
        return await consent_page(request, http_status=422, refusal=explain(error), form=kept)
    checked = {"purpose": purpose}
    try:
        async with sending(request, network, checked):
            consent = await partner.disclosure.record_consent(
                network, case, classes=classes, partners=partners, parties=parties,
                purpose=purpose, valid_days=days, evidence=evidence)
    except ProtocolError as error:
        return await consent_page(request, http_status=422, refusal=explain(error), form=kept)
    # Redirected, so that reloading the answer does not record the consent again.
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}/consent?recorded={consent}")


async def revoke(request: web.Request) -> web.StreamResponse:
    """Revoke a consent this home recorded, with a reason the PII guard checked."""
    network, case = path_id(request, "network"), path_id(request, "case")
    consent = path_id(request, "consent")
    partner = unlocked(request)
    try:
        reason = field_text(request[FORM], "revoke_reason") or ""
    except FormError as error:
        return await consent_page(request, http_status=422, form_error=str(error))
    checked = {"reason": reason}
    try:
        async with sending(request, network, checked):
            await partner.disclosure.revoke_consent(network, case, consent, reason=reason)
    except ProtocolError as error:
        return await consent_page(request, http_status=422, refusal=explain(error))
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}/consent#consents")


async def grant(request: web.Request) -> web.StreamResponse:
    """The coördinator's grant: ``do=check`` shows the policy's decision and sends
    nothing; ``do=grant`` sends it, after the same judgement (the library refuses early
    what the policy denies)."""
    network, case = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    data = request[FORM]
    action = data.get("do")
    kept = {"grant_classes": data.getall("grant_classes", []),
            "grantee": data.get("grantee") or "", "grant_consent": data.get("grant_consent") or "",
            "grant_reason": data.get("grant_reason") or ""}
    try:
        if action not in ("check", "grant"):
            raise FormError(_("Choose “Check against the policy” or “Grant”."))
        async with request.app[HELD].lock:
            rules = await partner.disclosure.rules(network)
            members = [m["key_id"] for m in partner.networks.members(network) if m["current"]]
            consents = [c["consent"] for c in partner.disclosure.consents(network, case)]
            consents += [c["consent"] for c in
                         await partner.disclosure.logged_consents(network, case)
                         if not c["revoked"]]
        classes = _checked(data, "grant_classes", sorted(rules.classes))
        if not classes:
            raise FormError(_("Tick at least one class to grant."))
        grantee = data.get("grantee")
        if grantee not in members:
            raise FormError(_("Choose a value for “{field}”.").format(field=label("grantee")))
        chosen = data.get("grant_consent")
        if chosen not in consents:
            raise FormError(_("Choose a value for “{field}”.").format(
                field=label("grant_consent")))
        reason = field_text(data, "grant_reason", required=action == "grant") or ""
    except FormError as error:
        return await consent_page(request, http_status=422, form_error=str(error), form=kept)
    except ProtocolError as error:
        return await consent_page(request, http_status=422, refusal=explain(error), form=kept)
    if action == "check":
        try:
            async with request.app[HELD].lock:
                decision = await partner.disclosure.judge_grant(
                    network, case, consent=str(chosen), grantee=str(grantee), classes=classes)
        except ProtocolError as error:
            return await consent_page(request, http_status=422, refusal=explain(error), form=kept)
        judged: dict[str, Any] = {"allowed": decision.allowed}
        if decision.allowed:
            judged["message"] = decision.message
        else:
            judged.update(explain(PolicyViolation(decision.message,
                                                  details={"reason": decision.reason})))
        return await consent_page(request, judged=judged, form=kept)
    checked = {"reason": reason}
    try:
        async with sending(request, network, checked):
            made = await partner.disclosure.grant(network, case, consent=str(chosen),
                                                  grantee=str(grantee), classes=classes,
                                                  reason=reason)
    except ProtocolError as error:
        return await consent_page(request, http_status=422, refusal=explain(error), form=kept)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{case}/consent?granted={made}")


async def grants(request: web.Request, **context: Any) -> web.Response:
    """The grants the verified audit log shows this partner in the network: the ones to
    it, with a release button, and the ones it gave."""
    network = path_id(request, "network")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            shown = await partner.disclosure.grants(network)
            names = {m["key_id"]: m["name"] for m in partner.networks.members(network)}
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    case = request.query.get("case")
    if case:
        shown = [g for g in shown if g.case == case]
    return page(request, "grants.html", http_status=context.pop("http_status", 200),
                network=network, to_you=[g for g in shown if g.direction == "to-you"],
                others=[g for g in shown if g.direction != "to-you"], names=names,
                term=_word, **context)


async def release(request: web.Request) -> web.StreamResponse:
    """Receive what a grant gave this partner (the server writes the audit entry first;
    the library believes the answer only after its receipt verified), then show it."""
    network, grant_id = path_id(request, "network"), path_id(request, "grant")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            await sync(partner, network)
            released = await partner.disclosure.release(network, grant_id)
    except ProtocolError as error:
        return await grants(request, http_status=422, refusal=explain(error))
    raise web.HTTPSeeOther(f"/n/{network}/cases/{released.case}/identity")


async def identity(request: web.Request) -> web.Response:
    """The identity this home holds for a case (as its owner or through a release), on
    this page only; like every page it is never kept in the browser's cache."""
    network, case = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    try:
        async with request.app[HELD].lock:
            held = partner.identity.get(network, case)
            withheld = partner.identity.withheld(network, case)
    except ProtocolError as error:
        return page(request, "refused.html", http_status=403, network=network,
                    refusal=explain(error))
    rows = [(cls, _word(cls), [(k, _identity_rows(v)) for k, v in value.items()]
             if isinstance(value, dict) else [("", _identity_rows(value))])
            for cls, value in sorted(held.items())]
    return page(request, "identity.html", network=network, case=case, rows=rows,
                withheld=[_word(c) for c in withheld])


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/n/{network}/cases/{case}/consent", consent_page)
    router.add_post("/n/{network}/cases/{case}/consent", record)
    router.add_post("/n/{network}/cases/{case}/consent/{consent}/revoke", revoke)
    router.add_post("/n/{network}/cases/{case}/grant", grant)
    router.add_get("/n/{network}/cases/{case}/identity", identity)
    router.add_get("/n/{network}/grants", grants)
    router.add_post("/n/{network}/grants/{grant}/release", release)
