"""``schakel case …``: bring in a case, work on it, share and refer it.

The anonymous layer (age band, neighbourhood, domains, summary, notes, actions)
is read by the whole core; identity is sealed and only released under consent
or bemoeizorg.  Every free text goes through the PII guard before anything is
sent: a phone number in a summary is refused on this computer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import (
    json_option, partner_options, read_object_file, sync_option, with_partner,
)
from schakel.cli.commands.guard import EPILOG as GUARD_EPILOG
from schakel.cli.commands.ids import check_network_id, network_argument
from schakel.cli.commands.output import cell, emit, heading, plain, table
from schakel.cli.helptext import Command, Group
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.plaintext import AGE_BANDS, PROBLEM_DOMAINS, SEVERITIES

if TYPE_CHECKING:
    from schakel.client.partner import Partner

CARE_STATUSES = ("known", "misses-care", "avoids-care")
SOURCES = ("partner", "resident", "volunteer", "gp", "anonymous-signal", "shell-partner", "other")
HELP_TYPES = ("informal", "formal", "combined")
RELATIONS = ("preceding", "complementary", "co-partner", "follow-up")


@click.group(cls=Group)
def case() -> None:
    """Cases (casussen): create, read, work on, close, share, refer.

    A case has an anonymous layer the core works with and a sealed identity
    layer that only the owner holds until a release (see `schakel grant`).
    """


# ------------------------------------------------------------------ inputs

def _intake_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--intake-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="A JSON file with the intake (kind, age_band, neighbourhood, domains, "
                          "severity, care_status, source, complex, summary); the options "
                          "below override its fields."),
        click.option("--age-band", type=click.Choice(AGE_BANDS), help="Age band (leeftijdsgroep)."),
        click.option("--neighbourhood", help="Neighbourhood (wijk), e.g. Soesterkwartier."),
        click.option("--domain", "domains", multiple=True, type=click.Choice(PROBLEM_DOMAINS),
                     help="A problem domain, repeatable."),
        click.option("--severity", type=click.Choice(SEVERITIES), help="How serious (ernst)."),
        click.option("--care-status", type=click.Choice(CARE_STATUSES),
                     help="known (in zorg), misses-care (zorgmijder buiten schuld), avoids-care "
                          "(zorgmijder)."),
        click.option("--source", type=click.Choice(SOURCES), help="Who brought the case in."),
        click.option("--complex/--not-complex", "complex_", default=None,
                     help="A complex case (multiprobleem): informal actions then name a "
                          "supporting professional."),
        click.option("--summary", help="What is going on, without names, addresses or numbers."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _intake(intake_file: Path | None, **fields: Any) -> dict[str, Any]:
    intake = read_object_file(intake_file, "intake") if intake_file else {}
    intake.setdefault("kind", "intake")
    for key, value in fields.items():
        if value is not None and value != ():
            intake[key] = list(value) if isinstance(value, tuple) else value
    required = ("age_band", "neighbourhood", "domains", "severity", "care_status", "source",
                "complex", "summary")
    missing = [k for k in required if k not in intake]
    if missing:
        raise click.UsageError("the intake lacks " + ", ".join(missing) +
                               ": give --intake-file or the options "
                               + ", ".join("--" + k.replace("_", "-") for k in missing))
    return intake


def _identity_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--identity-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="A JSON file with the identity by disclosure class: {\"name\": "
                          "{given_names, family_name}, \"address\": {street, house_number, "
                          "postcode, city}, \"contact\": {phone, email}, \"official\": {bsn, "
                          "date_of_birth}}; the options below override its fields."),
        click.option("--given-names", help="Identity (sealed): given names (voornamen)."),
        click.option("--family-name", help="Identity (sealed): family name (achternaam)."),
        click.option("--street", help="Identity (sealed): street."),
        click.option("--house-number", help="Identity (sealed): house number."),
        click.option("--postcode", help="Identity (sealed): postcode."),
        click.option("--city", help="Identity (sealed): city (woonplaats)."),
        click.option("--phone", help="Identity (sealed): phone number."),
        click.option("--email", help="Identity (sealed): e-mail address."),
        click.option("--bsn", help="Identity (sealed, class 'official'): BSN."),
        click.option("--date-of-birth", metavar="YYYY-MM-DD",
                     help="Identity (sealed, class 'official'): date of birth."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


IDENTITY_FIELDS = {"given_names": "name", "family_name": "name", "street": "address",
                   "house_number": "address", "postcode": "address", "city": "address",
                   "phone": "contact", "email": "contact", "bsn": "official",
                   "date_of_birth": "official"}


def _identity(identity_file: Path | None, **fields: Any) -> dict[str, Any] | None:
    identity = read_object_file(identity_file, "identity") if identity_file else {}
    for key, value in fields.items():
        if value is not None:
            cls = IDENTITY_FIELDS[key]
            section = identity.setdefault(cls, {})
            if not isinstance(section, dict):
                raise MalformedError(f"the identity's {cls!r} must be an object")
            section[key] = value
    return identity or None


# ------------------------------------------------------------------ create / read

_AUDIENCE_HELP = N_("A kern (core) member who may read the case (KEY_ID; repeatable): the case "
                     "is then for this part of the kern only, you and the coördinator always "
                     "included (ADR 0031). Without it the whole kern reads the case.")


@case.command("create", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@_intake_options
@_identity_options
@click.option("--audience", "audience", multiple=True, metavar="MEMBER", help=_AUDIENCE_HELP)
@json_option
def create(home: Path, server: str | None, network_id: str, intake_file: Path | None,
           identity_file: Path | None, audience: tuple[str, ...], as_json: bool,
           **fields: Any) -> None:
    """Bring in a case (casus aanmelden): anonymous intake plus sealed identity.

    The intake is checked by the PII guard on this computer first: a name,
    phone number, BSN, e-mail or postcode with house number in it is refused
    (exit 1) and nothing is sent. The identity is encrypted per class; only
    releases under consent or bemoeizorg open it for others. With --audience the
    case is for part of the kern only: its key is sealed to each member named,
    and `schakel case widen` adds members later.
    """
    intake_keys = ("age_band", "neighbourhood", "domains", "severity", "care_status", "source",
                   "summary")
    intake = _intake(intake_file, complex=fields.pop("complex_"),
                     **{k: fields.pop(k) for k in intake_keys})
    identity = _identity(identity_file, **fields)

    async def bring_in(partner: "Partner") -> str:
        await partner.sync(network_id)      # the latest epoch key and members first
        return await partner.cases.create(network_id, intake, identity=identity,
                                          audience=list(audience) if audience else None)

    case_id = with_partner(home, server, bring_in, guard=intake)
    emit({"network": network_id, "case": case_id, "kind": "case",
          "identity_classes": sorted(identity or {}), "audience": sorted(audience) or None},
         as_json=as_json, rows=[
        (N_("case"), case_id), (N_("network"), network_id),
        (N_("identity"), ", ".join(sorted(identity or {})) or "none (anonymous only)"),
        (N_("audience"), ", ".join(sorted(audience)) + " (and you, the coördinator)"
         if audience else "the whole kern"),
    ])


@case.command("consult", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@_intake_options
@click.option("--audience", "audience", multiple=True, metavar="MEMBER", help=_AUDIENCE_HELP)
@json_option
def consult(home: Path, server: str | None, network_id: str, intake_file: Path | None,
            audience: tuple[str, ...], as_json: bool, **fields: Any) -> None:
    """Ask the core for advice on an anonymous situation (consultatie).

    A consult never carries identity and can never lead to a release. With
    --audience only the members named (and you, and the coördinator) read it.
    """
    intake = _intake(intake_file, complex=fields.pop("complex_"), **fields)

    async def ask(partner: "Partner") -> str:
        await partner.sync(network_id)
        return await partner.cases.consult(network_id, intake,
                                           audience=list(audience) if audience else None)

    case_id = with_partner(home, server, ask, guard=intake)
    emit({"network": network_id, "case": case_id, "kind": "consult"}, as_json=as_json,
         rows=[(N_("consult"), case_id), (N_("network"), network_id)])


CASE_COLUMNS = [("case", N_("case")), ("kind", N_("kind")), ("status", N_("status")), ("owner_name", N_("owner")),
                ("created", N_("created")), ("severity", N_("severity")),
                ("neighbourhood", N_("neighbourhood")), ("breaches", N_("policy breaches")),
                ("summary", N_("summary"))]


def case_summary(view: Any, names: dict[str, str]) -> dict[str, Any]:
    """One row of `case list` (and its JSON), from a CaseView."""
    state = dict(getattr(view, "state", None) or {})
    return {"network": view.network, "case": view.case, "kind": view.kind, "status": view.status,
            "owner": view.owner, "owner_name": names.get(view.owner, view.owner),
            "created": plain(view.created), "readable": view.readable,
            "severity": state.get("severity"), "neighbourhood": state.get("neighbourhood"),
            "domains": plain(state.get("domains")), "summary": state.get("summary"),
            "breaches": len(getattr(view, "breaches", None) or []),
            "unreadable_events": sum(1 for e in getattr(view, "events", None) or []
                                     if e.plaintext is None)}


def member_names(partner: "Partner", network_id: str) -> dict[str, str]:
    return {m["key_id"]: m["name"] for m in plain(partner.networks.members(network_id))}


@case.command("list")
@partner_options
@network_argument
@click.option("--status", type=click.Choice(["open", "closed", "all"]), default="all",
              show_default=True, help="Which cases to list.")
@sync_option
@json_option
def list_cases(home: Path, server: str | None, network_id: str, status: str, offline: bool,
               as_json: bool) -> None:
    """List the network's cases this home can see (after a sync).

    JSON: {"network", "cases": [{"case", "kind", "status", "owner", "owner_name",
    "created", "readable", "severity", "neighbourhood", "domains", "summary",
    "breaches", "unreadable_events"}]}; unreadable_events counts the events written
    before this home could read the case (`case show` says who can share them);
    breaches counts the events that break the network policy's action rules (see
    `case show`).
    """
    async def look(partner: "Partner") -> list[dict[str, Any]]:
        if not offline:
            await partner.sync(network_id)
        names = member_names(partner, network_id)
        return [case_summary(v, names) for v in partner.cases.all(network_id)
                if status == "all" or v.status == status]

    cases = with_partner(home, server, look)
    if as_json:
        emit({"network": network_id, "cases": cases}, as_json=True)
        return
    rows = [{**c, "summary": c["summary"] or "(history not readable: `schakel case show` "
                                             "says who can share it)"}
            if c["unreadable_events"] else c for c in cases]
    table(rows, CASE_COLUMNS, empty=_("no cases"), limits={"summary": 50, "owner_name": 24})


@case.command("show")
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@sync_option
@json_option
def show(home: Path, server: str | None, network_id: str, case_id: str, offline: bool,
         as_json: bool) -> None:
    """Show a case: its anonymous state and every event (verified, decrypted).

    Events this home cannot read (written before it joined, not re-shared) are
    shown as unreadable. An action that breaks the network policy (a formal action
    without a reason informal help was not possible, or with one that says nothing;
    an informal action on a complex case without a supporting professional) is
    shown, marked, and listed under "policy breaches". JSON: the whole CaseView
    (network, case, kind, owner, status, created, readable, state, events, each
    with its breach, case_key_version, breaches), and unreadable_events (how many
    events this home cannot read; their plaintext is null) with history (why, and
    who can share it; null when every event is readable).
    """
    async def look(partner: "Partner") -> tuple[dict[str, Any], dict[str, str]]:
        if not offline:
            await partner.sync(network_id)
        view = plain(partner.cases.get(network_id, case_id))
        names = member_names(partner, network_id)
        return {**view, **unread_history(partner, view, names)}, names

    view, names = with_partner(home, server, look)
    if as_json:
        emit(view, as_json=True)
        return
    state = view.get("state") or {}
    breaches = view.get("breaches") or []
    emit({}, as_json=False, rows=[
        (N_("case"), view["case"]), (N_("kind"), view["kind"]), (N_("status"), view["status"]),
        (N_("owner"), f"{names.get(view['owner'], '?')} ({view['owner']})"),
        (N_("created"), cell(view.get("created"))),
        (N_("readable"), "yes" if view.get("readable") else "no: the coördinator shares it with "
                                                        "you (`schakel case share`)"),
        *[(k.replace("_", " "), cell(state.get(k))) for k in
          ("age_band", "neighbourhood", "domains", "severity", "care_status", "source", "complex")
          if k in state],
        (N_("summary"), cell(state.get("summary"))
         + (" (in the history you cannot read)" if view["history"] and not state.get("summary")
            else "")),
        *([(N_("history"), view["history"])] if view["history"] else []),
        (N_("policy"), f"{len(breaches)} breach(es) of the network policy: see below" if breaches
         else "no breaches seen"),
    ])
    heading(_("events"))
    table([_event_row(e, names) for e in view.get("events") or []],
          [("seq", N_("seq")), ("created", N_("when")), ("author_name", N_("by")), ("kind", N_("kind")),
           ("text", N_("content"))], empty=_("no events"), limits={"text": 80, "author_name": 24})
    if breaches:
        heading(_("policy breaches (informal where possible, professional where necessary)"))
        table(breaches, [("seq", N_("seq")), ("author_name", N_("by")), ("reason", N_("reason")),
                         ("message", N_("what is wrong"))], empty="",
              limits={"author_name": 24})


def unread_history(partner: "Partner", view: dict[str, Any], names: dict[str, str]
                   ) -> dict[str, Any]:
    """How many of the case's events this home cannot read, and why and who can share
    them (``reshare_history``): the coördinator, the only one whose shares the server
    takes."""
    unread = [e for e in view.get("events") or [] if e.get("plaintext") is None]
    if not unread:
        return {"unreadable_events": 0, "history": None}
    tv = partner.networks.verified(view["network"])
    me = tv.member(partner.key_id)
    # A core member receives every case key from the epoch it joined in; what it lacks
    # was written before.  A shell member receives a case when it is shared with it.
    why = ("the case predates your organisation's membership" if me is not None
           and me.ring == "core" else "they were written before the case was shared with you")
    coordinator = tv.coordinator_key_id
    return {"unreadable_events": len(unread),
            "history": f"{len(unread)} event(s) not readable: {why}. The coördinator "
                       f"({names.get(coordinator, coordinator)}) can share its history with "
                       f"you: `schakel case reshare {view['network']} {view['case']} "
                       f"{partner.key_id} --reason …`"}


def _event_row(event: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    body = event.get("plaintext")
    if body is None:
        return {**event, "author_name": event.get("author_name") or names.get(event.get("author", ""), "?"),
                "kind": "?", "text": "(not readable: written before this home could read the "
                                     "case; see history above)"}
    text_keys = ("summary", "text", "description", "reason")
    text = next((body[k] for k in text_keys if body.get(k)), "")
    extra = [f"{k}={cell(body[k])}" for k in ("help_type", "relation", "status", "outcome",
                                              "severity") if body.get(k)]
    marks = [f"[POLICY BREACH: {event['breach']}]"] if event.get("breach") else []
    return {**event, "author_name": event.get("author_name") or names.get(event.get("author", ""), "?"),
            "kind": body.get("kind", "?"),
            "text": " ".join([*marks, text, *(f"[{e}]" for e in extra)])}


# ------------------------------------------------------------------ work on a case

def _add(home: Path, server: str | None, network_id: str, case_id: str, plaintext: dict[str, Any],
         as_json: bool) -> None:
    async def write(partner: "Partner") -> int:
        if plaintext.get("kind") == "action":
            plaintext["by"] = partner.key_id
        await partner.sync(network_id)      # the event must follow the case's latest one
        return await partner.cases.add_event(network_id, case_id, plaintext)

    seq = with_partner(home, server, write, guard=plaintext)
    emit({"network": network_id, "case": case_id, "seq": seq, "kind": plaintext["kind"]},
         as_json=as_json, rows=[(N_("case"), case_id), (N_("event"), f"#{seq} ({plaintext['kind']})")])


@case.command("note", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--text", required=True, help="The note (aantekening), without identifying data.")
@json_option
def note(home: Path, server: str | None, network_id: str, case_id: str, text: str,
         as_json: bool) -> None:
    """Add a note to a case (PII-guarded before it is sent)."""
    _add(home, server, network_id, case_id, {"kind": "note", "text": text}, as_json)


@case.command("analysis", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--text", required=True, help="The core's analysis (analyse).")
@click.option("--domain", "domains", multiple=True, type=click.Choice(PROBLEM_DOMAINS),
              help="Re-assessed problem domain, repeatable.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Re-assessed severity.")
@json_option
def analysis(home: Path, server: str | None, network_id: str, case_id: str, text: str,
             domains: tuple[str, ...], severity: str | None, as_json: bool) -> None:
    """Add the core's analysis to a case, optionally re-assessing domains and severity."""
    body: dict[str, Any] = {"kind": "analysis", "text": text}
    if domains:
        body["domains"] = list(domains)
    if severity:
        body["severity"] = severity
    _add(home, server, network_id, case_id, body, as_json)


@case.command("action", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--description", required=True, help="What will be done (actie).")
@click.option("--help-type", type=click.Choice(HELP_TYPES), required=True,
              help="informal (informele hulp), formal (formele hulp) or combined.")
@click.option("--relation", type=click.Choice(RELATIONS), required=True,
              help="How informal and formal help relate: preceding (voorafgaand), complementary "
                   "(aanvullend), co-partner (samenwerkend) or follow-up (nazorg).")
@click.option("--informal-not-possible", metavar="TEXT",
              help="Why informal help is not possible; the policy requires it for formal help "
                   "(informeel waar mogelijk, formeel waar nodig).")
@click.option("--supporting-professional", metavar="KEY_ID",
              help="The professional who supports the volunteer; required for informal help on "
                   "a complex case.")
@json_option
def action(home: Path, server: str | None, network_id: str, case_id: str, description: str,
           help_type: str, relation: str, informal_not_possible: str | None,
           supporting_professional: str | None, as_json: bool) -> None:
    """Record an agreed action, by your organisation (informal where possible).

    A formal action without --informal-not-possible, or an informal action on
    a complex case without --supporting-professional, is refused (exit 1).
    """
    body: dict[str, Any] = {"kind": "action", "description": description, "help_type": help_type,
                            "relation": relation}
    if informal_not_possible is not None:
        body["informal_not_possible"] = informal_not_possible
    if supporting_professional is not None:
        body["supporting_professional"] = supporting_professional
    _add(home, server, network_id, case_id, body, as_json)


def _status_command(name: str, verb: str, doc: str) -> click.Command:
    @click.command(name, cls=Command, help=doc, epilog=GUARD_EPILOG)
    @partner_options
    @network_argument
    @click.argument("case_id", metavar="CASE")
    @click.option("--reason", required=True, help="Why (reden), without identifying data.")
    @json_option
    def command(home: Path, server: str | None, network_id: str, case_id: str, reason: str,
                as_json: bool) -> None:
        async def change(partner: "Partner") -> None:
            await partner.sync(network_id)
            change_status = partner.cases.close if verb == "close" else partner.cases.reopen
            await change_status(network_id, case_id, reason=reason)

        with_partner(home, server, change, guard={"reason": reason})
        status = "closed" if verb == "close" else "open"
        emit({"network": network_id, "case": case_id, "status": status, "reason": reason},
             as_json=as_json, rows=[(N_("case"), case_id), (N_("status"), status), (N_("reason"), reason)])
    return command


case.add_command(_status_command(
    "close", "close",
    N_("Close a case (owner or coordinator). Retention starts counting; the identity is "
       "crypto-shredded after the policy's period.")))
case.add_command(_status_command("reopen", "reopen",
                                 N_("Reopen a closed case (owner or coordinator).")))


# ------------------------------------------------------------------ erasure, rectification

@case.command("erase", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--reason", required=True,
              help="Why (reden), e.g. 'verzoek betrokkene, AVG art. 17', without identifying "
                   "data. Sealed for the coördinator and the auditors.")
@json_option
def erase(home: Path, server: str | None, network_id: str, case_id: str, reason: str,
          as_json: bool) -> None:
    """Erase the person's identity in a case (AVG art. 17, recht op vergetelheid).

    The case's owner or the coördinator (the network's contact point for the
    person). The server deletes the sealed identity, its gated envelopes and
    blind-index tokens and logs an 'erasure' entry; every partner holding class
    keys or identity of the case destroys them when it syncs. The anonymous
    layer stays until retention. This cannot be undone.
    """
    async def run(partner: "Partner") -> Any:
        await partner.sync(network_id)
        return await partner.erasure.erase(network_id, case_id, reason=reason)

    done = with_partner(home, server, run, guard={"reason": reason})
    _emit_purge(done, as_json)


@case.command("rectify", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@_identity_options
@click.option("--reason", required=True,
              help="Why (reden), e.g. 'verzoek betrokkene, AVG art. 16', without identifying "
                   "data. Sealed for the coördinator and the auditors.")
@json_option
def rectify(home: Path, server: str | None, network_id: str, case_id: str,
            identity_file: Path | None, reason: str, as_json: bool, **fields: Any) -> None:
    """Correct the person's identity in a case (AVG art. 16, rectificatie).

    The case's owner only. The identity is sealed as a new identity version:
    each class you give fields of (name, address, ...) is replaced by those
    fields, the classes you do not name stay as they are. Every partner
    holding the old version destroys it when it syncs, and partners that hold
    a basis get the new version on their next release.
    """
    identity = _identity(identity_file, **fields)
    if not identity:
        raise click.UsageError("name the corrected fields (--family-name, --street, ... or "
                               "--identity-file)")

    async def run(partner: "Partner") -> Any:
        await partner.sync(network_id)
        return await partner.erasure.rectify(network_id, case_id, identity, reason=reason)

    done = with_partner(home, server, run, guard={"reason": reason})
    _emit_purge(done, as_json, classes=sorted(identity))


def _emit_purge(done: Any, as_json: bool, classes: list[str] | None = None) -> None:
    value = {"network": done.network, "case": done.case, "purge": done.purge,
             "kind": done.kind, "identity_version": done.identity_version,
             "audit_index": done.audit_index}
    if classes is not None:
        value["classes"] = classes
    what = ("erased: no partner can open this identity any more" if done.kind == "erasure"
            else f"rectified: version {done.identity_version} destroyed, version "
                 f"{done.identity_version + 1} holds the corrected fields")
    emit(value, as_json=as_json, rows=[(N_("case"), done.case), (N_("purge"), done.purge),
                                       (N_("identity"), what),
                                       (N_("audit entry"), str(done.audit_index))])


@case.command("share", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.argument("partner_id", metavar="PARTNER")
@click.option("--reason", required=True, help="Why this shell partner needs the case.")
@json_option
def share(home: Path, server: str | None, network_id: str, case_id: str, partner_id: str,
          reason: str, as_json: bool) -> None:
    """Share a case's anonymous layer with a shell partner (coordinator; schil).

    Identity is not shared: that needs consent and a grant.
    """
    async def give(partner: "Partner") -> None:
        await partner.sync(network_id)
        await partner.cases.share(network_id, case_id, partner_id, reason=reason)

    with_partner(home, server, give, guard={"reason": reason})
    emit({"network": network_id, "case": case_id, "partner": partner_id, "shared": True},
         as_json=as_json, rows=[(N_("case"), case_id), (N_("shared with"), partner_id), (N_("reason"), reason)])


@case.command("widen", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--member", "members", multiple=True, required=True, metavar="MEMBER",
              help="A kern (core) member to add to the case's audience (KEY_ID; repeatable).")
@click.option("--reason", required=True,
              help="Why these members need the case; sealed into the audit entry for the "
                   "coördinator and the auditors.")
@json_option
def widen(home: Path, server: str | None, network_id: str, case_id: str,
          members: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Let more kern members read a case that is for part of the kern (owner only).

    The case key of every version is sealed to each member added; the audit log
    records one entry per member with your reason. An audience only grows: to
    take a member out, the coördinator removes it from the network.
    """
    async def add(partner: "Partner") -> list[str]:
        await partner.sync(network_id)
        return await partner.cases.widen(network_id, case_id, members, reason=reason)

    added = with_partner(home, server, add, guard={"reason": reason})
    emit({"network": network_id, "case": case_id, "added": added}, as_json=as_json,
         rows=[(N_("case"), case_id), (N_("added"), ", ".join(added)), (N_("reason"), reason)])


@case.command("reshare", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.argument("member_id", metavar="MEMBER")
@click.option("--reason", required=True, help="Why this member needs the case's history.")
@json_option
def reshare(home: Path, server: str | None, network_id: str, case_id: str, member_id: str,
            reason: str, as_json: bool) -> None:
    """Give a member that joined later the case's history (coordinator).

    Shares every earlier key version of the case this home holds; the server
    takes shares from the coordinator only (docs/protocol.md, POST .../shares).
    """
    async def give(partner: "Partner") -> None:
        await partner.sync(network_id)
        await partner.cases.reshare_history(network_id, case_id, member_id, reason=reason)

    with_partner(home, server, give, guard={"reason": reason})
    emit({"network": network_id, "case": case_id, "member": member_id, "reshared": True},
         as_json=as_json, rows=[(N_("case"), case_id), (N_("history shared with"), member_id)])


@case.command("refer", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.argument("to_network", metavar="TO_NETWORK", callback=check_network_id)
@click.option("--consent", "consent_id", metavar="CONSENT", help="The consent that allows the referral.")
@click.option("--invocation", metavar="INVOCATION", help="The bemoeizorg invocation that allows it.")
@click.option("--reason", required=True, help="Why the case moves (doorverwijzing).")
@json_option
def refer(home: Path, server: str | None, network_id: str, case_id: str, to_network: str,
          consent_id: str | None, invocation: str | None, reason: str, as_json: bool) -> None:
    """Refer a case to another network, e.g. from a buurtnetwerk to the OGGZ (coordinator).

    You must coordinate NETWORK and be a core member of TO_NETWORK. The anonymous
    state moves into a new case there; the basis is a consent or a bemoeizorg
    invocation (exactly one).
    """
    if (consent_id is None) == (invocation is None):
        raise click.UsageError("give exactly one of --consent or --invocation")

    async def move(partner: "Partner") -> str:
        await partner.sync(network_id)
        await partner.sync(to_network)      # the new case is made there
        return await partner.referrals.refer(network_id, case_id, to_network, consent=consent_id,
                                   invocation=invocation, reason=reason)

    new_case = with_partner(home, server, move, guard={"reason": reason})
    emit({"network": network_id, "case": case_id, "to_network": to_network, "new_case": new_case},
         as_json=as_json, rows=[(N_("case"), case_id), (N_("referred to"), to_network),
                                (N_("new case"), new_case)])


@case.command("identity")
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@json_option
def identity(home: Path, server: str | None, network_id: str, case_id: str, as_json: bool) -> None:
    """Show the identity this home holds for a case (its own, or released to it).

    Nothing is fetched: identity only arrives through `schakel grant release`
    or `schakel bemoeizorg release`. A class your own party may not read (a
    vrijwilliger of an organisation that also employs beroepskrachten) is not
    shown, only named. JSON: {"network", "case", "identity": {class: fields},
    "withheld": [class]}.
    """
    async def look(partner: "Partner") -> tuple[dict[str, Any], list[str]]:
        return (plain(partner.identity.get(network_id, case_id)),
                partner.identity.withheld(network_id, case_id))

    held, withheld = with_partner(home, server, look)
    if as_json:
        emit({"network": network_id, "case": case_id, "identity": held, "withheld": withheld},
             as_json=True)
        return
    print_identity(held)
    if withheld:
        click.echo(f"niet getoond / withheld for your party (informal: vrijwilliger): "
                   f"{', '.join(withheld)}")


def print_identity(held: dict[str, Any]) -> None:
    """Identity by class, one line per field, for `case identity` and the releases."""
    if not held:
        click.echo("no identity held for this case")
        return
    rows = [(f"{cls}.{field}", cell(value)) for cls, fields in sorted(held.items())
            for field, value in (fields.items() if isinstance(fields, dict) else [("", fields)])]
    emit({}, as_json=False, rows=rows)
