"""Work on a case's anonymous layer in the console (ADR 0040, ADR 0044): the kern's
analysis, agreed actions ("informal where possible, professional where necessary",
report §4.4.1, protocol.md §7) and how an action worked out (an outcome, plaintext kind
``feedback``).

Each form writes one event with ``partner.cases.add_event`` after the PII guard
(``screen.sending``: the guard before anything else, and its spans shown), and a
refusal is shown on the case page as the CLI explains it.  The library checks an action
against the network policy before it sends it (a formal action says in words why
informal help is not possible) and every member's client judges it again when it reads
the case: the page lists those breaches.

The forms and the readable analysis and actions are in templates/casework.html, included
by the case page; what they need is the template global :func:`casework`, computed when
the page renders (after the case screen synced).
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
from aiohttp import web

from schakel.cli.console.guard import FORM
from schakel.cli.console.screen import (
    FIELD_LABELS, HELD, FormError, explain, field_choice, field_text, label, path_id,
    sending, unlocked,
)
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import ProtocolError

HELP_TYPES = ("informal", "formal", "combined")
RELATIONS = ("preceding", "complementary", "co-partner", "follow-up")
OUTCOMES = ("improved", "unchanged", "worse", "unknown")
#: An outcome names its action by this prefix of its text (ADR 0044): the protocol's
#: ``feedback`` carries no reference to an action.
OUTCOME_OF = re.compile(r"#(\d{1,9}): ")

FIELD_LABELS.update({
    "analysis": N_("Analysis (without names, addresses or numbers)"),
    "description": N_("What will be done (without identifying data)"),
    "help_type": N_("Kind of help"), "relation": N_("Relation to the other help"),
    "by": N_("Carried out by"), "supporting_professional": N_("Supporting professional"),
    "informal_not_possible": N_("Why informal help is not possible"),
    "action": N_("Which action"), "outcome": N_("Outcome"),
    "outcome_text": N_("How it worked out (without identifying data)"),
})

#: The codes of analysis, actions and outcomes as words.
CODES = {
    "informal": N_("informal help"), "formal": N_("formal (professional) help"),
    "combined": N_("informal and formal help combined"),
    "preceding": N_("preceding the other help"), "complementary": N_("complementing the other help"),
    "co-partner": N_("together with the other help"), "follow-up": N_("following up the other help"),
    "improved": N_("improved"), "unchanged": N_("unchanged"), "worse": N_("worse"),
    "unknown": N_("unknown"),
    "low": N_("low"), "medium": N_("medium"), "high": N_("high"), "acute": N_("acute"),
}

#: The action rules' refusals in the console's words (the CLI's hints name its options).
ACTION_RULE = N_("Informal where possible, professional where necessary: formal help says "
                 "in words why informal help (volunteers, neighbours, family) is not "
                 "possible, and informal help on a complex case names the professional "
                 "who supports the volunteer.")
ACTION_HINTS = {
    "formal-action-needs-reason": N_("write in “Why informal help is not possible” why "
                                     "a volunteer, neighbour or family cannot do this"),
    "formal-action-reason-says-nothing": N_("write in “Why informal help is not possible” a "
                                            "reason in a few words, not a placeholder such "
                                            "as “nvt” or “-”"),
    "informal-action-needs-professional": N_("choose the supporting professional: this case "
                                             "is complex"),
}


#: What each breach of the action rules is, as the case page lists it.
BREACHES = {
    "formal-action-needs-reason": N_("formal help without a reason why informal help is not "
                                     "possible"),
    "formal-action-reason-says-nothing": N_("formal help whose reason why informal help is not "
                                            "possible says nothing (a placeholder)"),
    "informal-action-needs-professional": N_("informal help on a complex case without a "
                                             "supporting professional"),
}


def choices(partner: Any, network: str) -> dict[str, list[tuple[str, str]]]:
    """Who an action can name, from the current members this partner verified: ``by``
    any member but an auditor; ``supporting_professional`` a formal (professional)
    member."""
    current = [m for m in partner.networks.verified(network).members()
               if not m.has_role("auditor")]
    current.sort(key=lambda m: m.name)
    return {"by": [(m.key_id, m.name) for m in current],
            "professionals": [(m.key_id, m.name) for m in current if m.party == "formal"]}


def breach_words(reason: str, message: str) -> str:
    return _(BREACHES[reason]) if reason in BREACHES else message


def code(value: Any) -> str:
    return _(CODES[value]) if isinstance(value, str) and value in CODES else str(value)


@jinja2.pass_context
def casework(context: Any) -> dict[str, Any]:
    """What the case page's casework block shows, read when the page renders: the
    choices of its forms (members by name), the analyses, and the actions each with its
    breach and the outcomes recorded against it."""
    from schakel.cli.commands.case import member_names
    from schakel.protocol.objects.plaintext import PROBLEM_DOMAINS, SEVERITIES

    partner = context["app"][HELD].partner
    network, view = context["network"], context["view"]
    names = member_names(partner, network) if partner is not None else {}
    chosen = choices(partner, network) if partner is not None else {"by": [], "professionals": []}
    state = view.get("state") or {}
    breaches = {b["seq"]: b for b in view.get("breaches") or []}
    outcomes: dict[int, list[dict[str, Any]]] = {}
    general = []
    for f in state.get("feedback") or []:
        found = OUTCOME_OF.match(f.get("text") or "")
        row = {**f, "outcome_word": code(f.get("outcome")),
               "author_name": names.get(f.get("author", ""), f.get("author")),
               "text": f["text"][found.end():] if found else f.get("text")}
        if found:
            outcomes.setdefault(int(found.group(1)), []).append(row)
        else:
            general.append(row)
    actions = [{**a, "help_word": code(a.get("help_type")), "relation_word": code(a.get("relation")),
                "by_name": names.get(a.get("by", ""), a.get("by")),
                "professional_name": names.get(a.get("supporting_professional") or "",
                                               a.get("supporting_professional")),
                "author_name": names.get(a.get("author", ""), a.get("author")),
                "breach": breach_words(breaches[a["seq"]]["reason"], breaches[a["seq"]]["message"])
                if a["seq"] in breaches else None, "outcomes": outcomes.get(a["seq"], [])}
               for a in state.get("actions") or []]
    analyses = [{**a, "author_name": names.get(a.get("author", ""), a.get("author")),
                 "severity_word": code(a.get("severity")) if a.get("severity") else None}
                for a in state.get("analysis") or []]
    return {
        "me": getattr(partner, "key_id", None), **chosen,
        "domains": PROBLEM_DOMAINS, "severities": [(s, code(s)) for s in SEVERITIES],
        "help_types": [(h, code(h)) for h in HELP_TYPES],
        "relations": [(r, code(r)) for r in RELATIONS],
        "outcomes": [(o, code(o)) for o in OUTCOMES],
        "analyses": analyses, "actions": actions, "general_outcomes": general,
        "breaches": [{**b, "explained": breach_words(b["reason"], b["message"])}
                     for b in view.get("breaches") or []],
        "rule": _(ACTION_RULE),
    }


#: Template globals this module adds to the console's Jinja environment (app.py).
GLOBALS = {"casework": casework}


async def _write(request: web.Request, plaintext: dict[str, Any], anchor: str,
                 kept: dict[str, Any]) -> web.StreamResponse:
    """Write one event to the case after the PII guard; on a refusal the case page again,
    with the refusal explained and what was typed kept in ``kept``."""
    from schakel.cli.console.cases import case
    from schakel.protocol.objects.plaintext import ANONYMOUS_EVENT_KINDS

    network, wanted = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    # the free texts only: a member's key id is no text the guard reads
    texts = {k: plaintext[k] for k in ANONYMOUS_EVENT_KINDS[plaintext["kind"]].FREE_TEXT
             if k in plaintext}
    try:
        async with sending(request, network, texts):
            await partner.cases.add_event(network, wanted, plaintext)
    except ProtocolError as error:
        refusal = explain(error)
        reason = (error.details or {}).get("reason")
        if reason in ACTION_HINTS:
            refusal["why"] = _("reason: {reason}: {explanation}").format(
                reason=reason, explanation=_(BREACHES[reason]))
            refusal["meaning"] = _(ACTION_RULE)
            refusal["todo"] = _(ACTION_HINTS[reason])
        return await case(request, http_status=422, refusal=refusal, work=kept)
    raise web.HTTPSeeOther(f"/n/{network}/cases/{wanted}#{anchor}")


async def _form_refused(request: web.Request, error: FormError,
                        kept: dict[str, Any]) -> web.StreamResponse:
    from schakel.cli.console.cases import case

    return await case(request, http_status=422, form_error=str(error), work=kept)


async def analysis(request: web.Request) -> web.StreamResponse:
    """The kern's analysis of the case; it may re-assess the problem domains and the
    severity (the case's state then shows the new ones)."""
    from schakel.protocol.objects.plaintext import PROBLEM_DOMAINS, SEVERITIES

    form = request[FORM]
    kept = {"analysis": form.get("analysis", ""), "domains": form.getall("domains", []),
            "severity": form.get("severity", "")}
    try:
        text = field_text(form, "analysis")
        domains = form.getall("domains", [])
        if any(d not in PROBLEM_DOMAINS for d in domains) or len(set(domains)) != len(domains):
            raise FormError(_("Choose a value for “{field}”.").format(field=label("domains")))
        severity = form.get("severity") or None
        if severity is not None:
            severity = field_choice(form, "severity", SEVERITIES)
    except FormError as error:
        return await _form_refused(request, error, kept)
    plaintext: dict[str, Any] = {"kind": "analysis", "text": text}
    if domains:
        plaintext["domains"] = list(domains)
    if severity:
        plaintext["severity"] = severity
    return await _write(request, plaintext, "analysis", kept)


async def action(request: web.Request) -> web.StreamResponse:
    """An agreed action: informal where possible; formal help says why informal help is
    not possible (the library refuses a placeholder before it sends anything)."""
    network = path_id(request, "network")
    partner = unlocked(request)
    form = request[FORM]
    kept = {k: form.get(k, "") for k in ("description", "informal_not_possible", "help_type",
                                         "relation", "by", "supporting_professional")}
    try:
        async with request.app[HELD].lock:
            chosen = choices(partner, network)
        description = field_text(form, "description")
        help_type = field_choice(form, "help_type", HELP_TYPES)
        relation = field_choice(form, "relation", RELATIONS)
        by = form.get("by") or partner.key_id
        if by != partner.key_id:
            by = field_choice(form, "by", tuple(k for k, _name in chosen["by"]))
        reason = field_text(form, "informal_not_possible", required=False, limit=2000)
        if help_type == "informal" and reason is not None:
            raise FormError(_("Informal help needs no reason: leave “{field}” empty.").format(
                field=label("informal_not_possible")))
        professional = form.get("supporting_professional") or None
        if professional is not None:
            professional = field_choice(form, "supporting_professional",
                                        tuple(k for k, _name in chosen["professionals"]))
    except FormError as error:
        return await _form_refused(request, error, kept)
    except ProtocolError as error:
        from schakel.cli.console.cases import case

        return await case(request, http_status=404, refusal=explain(error))
    plaintext: dict[str, Any] = {"kind": "action", "description": description,
                                 "help_type": help_type, "relation": relation, "by": by}
    if reason is not None:
        plaintext["informal_not_possible"] = reason
    if professional is not None:
        plaintext["supporting_professional"] = professional
    return await _write(request, plaintext, "actions", kept)


async def outcome(request: web.Request) -> web.StreamResponse:
    """How an action worked out: a ``feedback`` event whose text begins with the
    action's number (``#seq: ``, ADR 0044)."""
    from schakel.cli.commands.output import plain

    network, wanted = path_id(request, "network"), path_id(request, "case")
    partner = unlocked(request)
    form = request[FORM]
    kept = {"outcome_text": form.get("outcome_text", ""), "action": form.get("action", "")}
    try:
        async with request.app[HELD].lock:
            state = plain(partner.cases.get(network, wanted)).get("state") or {}
        actions = tuple(str(a["seq"]) for a in state.get("actions") or [])
        seq = field_choice(form, "action", actions)
        result = field_choice(form, "outcome", OUTCOMES)
        text = field_text(form, "outcome_text", limit=3980)
    except FormError as error:
        return await _form_refused(request, error, kept)
    except ProtocolError as error:
        from schakel.cli.console.cases import case

        return await case(request, http_status=404, refusal=explain(error))
    return await _write(request, {"kind": "feedback", "outcome": result,
                                  "text": f"#{seq}: {text}"}, "actions", kept)


def routes(router: web.UrlDispatcher) -> None:
    router.add_post("/n/{network}/cases/{case}/analysis", analysis)
    router.add_post("/n/{network}/cases/{case}/action", action)
    router.add_post("/n/{network}/cases/{case}/outcome", outcome)
