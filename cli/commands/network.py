"""``schakel network …`` and ``schakel sync``: found a network, trust and join one,
and bring this home up to date with the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import (
    check_url, json_option, partner_options, progress_option, read_object_file,
    read_text_file, sync_option, with_partner,
)
from schakel.cli.commands.ids import network_argument, optional_network_argument
from schakel.cli.commands.output import cell, emit, plain, table
from schakel.cli.commands.syncbar import sync_bar
from schakel.cli.helptext import Command, Group
from schakel.cli.i18n import N_, _
from schakel.keys import Fingerprint
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.network import (
    MAX_ALLOW_ENTRIES, WitnessSettings, allow_entry_problem, default_policy,
)
from schakel.protocol.witnessing import LOGS, log_verifier

if TYPE_CHECKING:
    from schakel.client.partner import Partner

KINDS = ("neighbourhood", "oggz")


@click.group(cls=Group)
def network() -> None:
    """Networks (netwerken): found one, trust and join one, look at one.

    A neighbourhood network (buurtnetwerk) shares cases between welfare, care and
    volunteer organisations; an OGGZ network handles public mental health,
    where bemoeizorg is possible.
    """


@network.command("create")
@partner_options
@click.option("--name", required=True, help='e.g. "Buurtnetwerk 55+ Soesterkwartier".')
@click.option("--kind", type=click.Choice(KINDS), required=True,
              help="neighbourhood (buurtnetwerk) or oggz (bemoeizorg possible).")
@click.option("--covenant-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The covenant (convenant) text every partner accepts; its hash "
                                  "goes into the network's genesis.")
@click.option("--server-fingerprint", required=True,
              help="The server's fingerprint, as its operator gave it to you (`schakel server "
                   "init` or `schakel server fingerprint` prints it; eight groups of five "
                   "digits). A server whose keys do not have it is refused (exit 4).")
@click.option("--policy-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON network policy; default: the standard policy of --kind.")
@click.option("--allow-word", "allow_words", multiple=True, metavar="TEXT",
              help="A word or phrase of this network (a town, district, street-named "
                   "building or partner) that the PII guard never reports as a name or "
                   "street address, e.g. \"Soesterkwartier\"; repeatable. It goes into the "
                   "signed policy (pii_allow: at most 500, each 1..80 characters).")
@click.option("--allow-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A UTF-8 file with one such word or phrase per line (blank lines and "
                   "lines starting with # are skipped).")
@json_option
def create(home: Path, server: str | None, name: str, kind: str, covenant_file: Path,
           server_fingerprint: str, policy_file: Path | None, allow_words: tuple[str, ...],
           allow_file: Path | None, as_json: bool) -> None:
    """Found a network with you as coordinator (regisseur).

    Checks the server's log and gate keys against --server-fingerprint, signs the
    genesis with your key, registers it on the server, trusts it and admits you as
    a core member. Read the printed fingerprint aloud to every partner: they pass
    it to `schakel network trust`.

    The policy's allow-list (--allow-word, --allow-file, or pii_allow in
    --policy-file) is signed with the genesis as policy version 1; `schakel network
    policy` puts a later version in force.
    """
    Fingerprint.parse(server_fingerprint)   # a misheard digit count, before the passphrase
    covenant = read_text_file(covenant_file, "covenant")
    policy = read_object_file(policy_file, "network policy") if policy_file else None
    words = [*allow_words, *(allow_lines(allow_file) if allow_file else [])]
    if words:
        policy = with_allow_list(policy or default_policy(kind).to_json(), words)

    async def found(partner: "Partner") -> dict[str, Any]:
        network_id = await partner.networks.create(name=name, kind=kind, covenant=covenant,
                                                  server_fingerprint=server_fingerprint,
                                                  policy=policy)
        return {"network": network_id, "name": name, "kind": kind,
                "coordinator": partner.key_id, "fingerprint": str(partner.fingerprint),
                "server_fingerprint": str(Fingerprint.parse(server_fingerprint))}

    info = with_partner(home, server, found)
    emit(info, as_json=as_json, rows=[
        (N_("network"), info["network"]), (N_("name"), name), (N_("kind"), kind),
        (N_("server"), f"keys checked against fingerprint {info['server_fingerprint']}"),
        (N_("coordinator"), info["coordinator"]), (N_("fingerprint"), info["fingerprint"]),
        (N_("next"), "partners run `schakel network trust NETWORK --fingerprint \"…\"`; you add them "
                 "with `schakel member add NETWORK BUNDLE_FILE`"),
    ])


@network.command("trust")
@partner_options
@network_argument
@click.option("--fingerprint", required=True,
              help="The coordinator's fingerprint, as read aloud at the covenant ceremony "
                   '(eight groups of five digits, e.g. "12345 67890 …").')
@json_option
def trust(home: Path, server: str | None, network_id: str, fingerprint: str, as_json: bool) -> None:
    """Trust a network: anchor it to its coordinator's spoken fingerprint.

    Everything this home later accepts from the server about the network must
    chain to this key; anything else is refused as untrusted (exit 4).
    """
    Fingerprint.parse(fingerprint)   # a misheard digit count is refused before the passphrase

    async def anchor(partner: "Partner") -> dict[str, Any]:
        partner.trust(network_id, fingerprint)
        return {"network": network_id, "fingerprint": str(Fingerprint.parse(fingerprint))}

    info = with_partner(home, server, anchor)
    emit(info, as_json=as_json, rows=[
        (N_("network"), info["network"]), (N_("trusted coordinator"), info["fingerprint"]),
        (N_("next"), "once the coordinator added you: `schakel network join NETWORK --covenant-file F`"),
    ])


CARD_KINDS = ("resident", "neighbour", "volunteer", "volunteer-driver", "gp", "family",
              "professional", "other")


@network.command("card")
@partner_options
@network_argument
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the signed card here (JSON), to publish on the network's website or "
                   "leaflet; an existing file is not overwritten.")
@click.option("--signaller-kind", "kinds", type=click.Choice(CARD_KINDS), multiple=True,
              help="Who may signal with the card (repeatable) [default: resident, neighbour, "
                   "volunteer, volunteer-driver].")
@click.option("--valid-days", type=click.IntRange(1, 800), default=365, show_default=True,
              help="How long the card stays valid; publish a new one before it ends.")
@click.option("--origin", metavar="URL", callback=check_url,
              help="Where signallers reach the server [default: this home's server address].")
@click.option("--name", help="The network's name as signallers know it [default: its name].")
@json_option
def card(home: Path, server: str | None, network_id: str, out: Path, kinds: tuple[str, ...],
         valid_days: int, origin: str | None, name: str | None, as_json: bool) -> None:
    """Publish the network's card (coordinator): who may signal, and how.

    The card is public and signed by your key: the intake keys signals are
    sealed to, the server's address and keys, and who may signal. The server
    serves it to anyone; residents and volunteers use it with `schakel signal
    send --anonymous --network-card FILE`. Print your fingerprint (`schakel
    keys show`) next to it on the leaflet, so they can check it.
    """
    if out.exists():
        raise MalformedError(f"{out} already exists; choose another --out")

    async def publish(partner: "Partner") -> dict[str, Any]:
        from datetime import timedelta

        from schakel.client.card import DEFAULT_SIGNALLER_KINDS

        until = partner.session.now() + timedelta(days=valid_days)
        return await partner.cards.publish(network_id, valid_until=until,
                                           signaller_kinds=kinds or DEFAULT_SIGNALLER_KINDS,
                                           origin=origin, name=name)

    envelope = with_partner(home, server, publish)
    out.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    signed = envelope["signed"]
    emit({"network": network_id, "serial": signed["serial"], "card_file": str(out),
          "valid_until": signed["valid_until"], "signaller_kinds": signed["signaller_kinds"],
          "origin": signed["server"]["origin"]}, as_json=as_json, rows=[
        (N_("network"), f"{signed['name']} ({network_id})"), (N_("card"), f"{out} (serial {signed['serial']})"),
        (N_("who may signal"), ", ".join(signed["signaller_kinds"])),
        (N_("server"), signed["server"]["origin"]), (N_("valid until"), signed["valid_until"]),
        (N_("next"), "publish the file with your fingerprint (`schakel keys show`)"),
    ])


@network.command("join")
@partner_options
@network_argument
@click.option("--covenant-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The covenant text you received; it must be the exact text "
                                  "whose hash is in the genesis.")
@json_option
def join(home: Path, server: str | None, network_id: str, covenant_file: Path, as_json: bool) -> None:
    """Accept the network's covenant (convenant) as a member, then sync.

    Run it after `schakel network trust` and after the coordinator added you.
    A covenant that differs from the one in the genesis is refused.
    """
    covenant = read_text_file(covenant_file, "covenant")

    async def accept(partner: "Partner") -> dict[str, Any]:
        await partner.networks.accept_covenant(network_id, covenant)
        result = await partner.sync(network_id)
        return {"network": network_id, "accepted": True, "sync": plain(result)}

    info = with_partner(home, server, accept)
    emit(info, as_json=as_json, rows=[(N_("network"), network_id), (N_("covenant"), "accepted"),
                                      (N_("synced"), "yes")])


PLACE_COLUMNS = [("network", N_("network")), ("name", N_("name")), ("kind", N_("kind")), ("role", N_("your role"))]

#: A role as `network list` shows it.
ROLE_TEXT = {"coordinator": "coördinator (regie)", "auditor": "auditor", "core": "kern (core)",
             "shell": "schil (shell)", "former": "former member",
             "not-admitted": "not admitted yet", "not-synced": "not synced yet"}


@network.command("list")
@partner_options
@sync_option
@json_option
def list_networks(home: Path, server: str | None, offline: bool, as_json: bool) -> None:
    """List the networks this home trusts: id, name, kind and your role in each.

    Syncs each first (--no-sync: only what this home verified before; a network
    never synced shows no name yet). Copy the id into the commands that take
    NETWORK. JSON: {"networks": [{"network", "name", "kind", "role", "ring", "party",
    "roles"}]}; role is coordinator, auditor, core, shell, former, not-admitted or
    not-synced.
    """
    async def look(partner: "Partner") -> list[dict[str, Any]]:
        if not offline:
            for network_id in partner.networks.trusted():
                await sync_if_admitted(partner, network_id)
        return [place.to_json() for place in partner.networks.places()]

    networks = with_partner(home, server, look)
    if as_json:
        emit({"networks": networks}, as_json=True)
        return
    rows = [{**n, "role": ROLE_TEXT.get(n["role"], n["role"])
             + (f" ({', '.join(n['roles'])})" if n.get("roles") else "")} for n in networks]
    table(rows, PLACE_COLUMNS,
          empty=_("no networks yet: found one (`schakel network create`) or trust one "
                  "(`schakel network trust NETWORK --fingerprint \"…\"`)"))


async def sync_if_admitted(partner: "Partner", network_id: str) -> None:
    """Sync ``network_id``; a network that does not admit this home (yet) is left as it
    is -- the list shows it as not admitted, not as an error."""
    from schakel.client.errors import ServerRefused

    try:
        await partner.sync(network_id)
    except ServerRefused as error:
        if error.code not in ("untrusted_key", "forbidden", "not_found"):
            raise


@network.command("policy")
@partner_options
@network_argument
@click.option("--policy-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The complete new JSON network policy; default: the policy in force, "
                   "with the --allow-word/--allow-file words added.")
@click.option("--allow-word", "allow_words", multiple=True, metavar="TEXT",
              help="A word or phrase the PII guard never reports as a name or street "
                   "address (pii_allow), added to the policy; repeatable.")
@click.option("--allow-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A UTF-8 file with one such word or phrase per line.")
@click.option("--witness", "witnesses", multiple=True, type=(str, str), metavar="VKEY URL",
              help="A witness that cosigns the network's logs: its verifier key (from "
                   "`schakel witness init`) and its address; repeatable. Replaces the "
                   "witnesses of the policy (docs/protocol.md §17.5).")
@click.option("--quorum", type=click.IntRange(1, 16), default=None,
              help="How many of the --witness witnesses must have cosigned a checkpoint; "
                   "default: all of them.")
@click.option("--witness-max-age", type=click.IntRange(1, 720), default=24, show_default=True,
              metavar="HOURS", help="A partner counts a cosignature only when it is at most "
                                    "this many hours old.")
@json_option
def policy(home: Path, server: str | None, network_id: str, policy_file: Path | None,
           allow_words: tuple[str, ...], allow_file: Path | None,
           witnesses: tuple[tuple[str, str], ...], quorum: int | None, witness_max_age: int,
           as_json: bool) -> None:
    """Put a new version of the network's policy in force (coördinator).

    The whole policy is signed with your key as the next version, in force from
    now: the server enforces it from the next request and every partner follows
    it at its next sync. Its disclosure classes and blind index stay as the
    network was founded with (cases are sealed under them); anything else may
    change: bemoeizorg grounds, informal classes, anonymous signals, intake
    rate, retention, the allow-list, the witnesses (--witness, --quorum): once
    they are in the policy, partners believe the server's audit log only on a
    checkpoint the quorum cosigned.

    JSON: {"network", "version"}.
    """
    given = read_object_file(policy_file, "network policy") if policy_file else None
    words = [*allow_words, *(allow_lines(allow_file) if allow_file else [])]
    witness_part = None
    if witnesses:
        witness_part = {"quorum": quorum if quorum is not None else len(witnesses),
                        "max_age_hours": witness_max_age,
                        "witnesses": [{"vkey": v, "url": u} for v, u in witnesses]}
        try:
            WitnessSettings.from_json(witness_part)
        except MalformedError as exc:
            raise click.BadParameter(exc.message, param_hint="--witness/--quorum") from None
    elif quorum is not None:
        raise click.UsageError("--quorum needs the witnesses (--witness VKEY URL)")
    if given is None and not words and witness_part is None:
        raise click.UsageError("give the new policy (--policy-file), words to add "
                               "(--allow-word, --allow-file) or witnesses (--witness)")

    async def put(partner: "Partner") -> dict[str, Any]:
        await partner.sync(network_id)
        new = dict(given) if given is not None else dict(partner.networks.verified(network_id).policy)
        if words:
            new = with_allow_list(new, words)
        if witness_part is not None:
            new["witnesses"] = witness_part
        version = await partner.networks.change_policy(network_id, new)
        return {"network": network_id, "version": version}

    info = with_partner(home, server, put)
    emit(info, as_json=as_json, rows=[
        (N_("network"), network_id), (N_("policy version"), info["version"]),
        (N_("next"), "every partner follows it at its next `schakel sync`"),
    ])


@network.command("rotate-coordinator")
@partner_options
@network_argument
@click.option("--reason", required=True,
              help='Why, e.g. "laptop lost" or "key possibly copied". It goes into the signed '
                   'rotation every partner sees: no names.')
@json_option
def rotate_coordinator(home: Path, server: str | None, network_id: str, reason: str,
                       as_json: bool) -> None:
    """Replace your coordinator key, e.g. after a suspected compromise (coördinator).

    Your old key signs the hand-over to a new key and the server takes the new key
    as the network's coordinator key; the old key signs nothing dated after it. This
    home moves to the new key: the old keystore is kept as
    keystore.json.retired-<key id> (what was sealed to it opens only with it). Your
    own membership is issued again under the new key, the old key's is revoked, and
    the core gets a new epoch. Every partner follows at its next `schakel sync`.

    The network's anchor stays the fingerprint partners configured: give new
    partners that one, not your new key's. Only a home that takes part in this one
    network can rotate this way.

    JSON: {"network", "old", "new", "retired", "position", "anchor"}.
    """
    from schakel.cli.commands.guard import refuse_early
    from schakel.keys import passphrase_from

    refuse_early({"reason": reason})
    passphrase = passphrase_from()

    async def run(partner: "Partner") -> dict[str, Any]:
        await partner.sync(network_id)
        result = await partner.rotate_coordinator_key(network_id, reason=reason,
                                                      passphrase=passphrase)
        return {**result, "anchor": partner.session.anchor(network_id)}

    info = with_partner(home, server, run, secret=passphrase)
    emit(info, as_json=as_json, rows=[
        (N_("network"), network_id), (N_("old key id"), info["old"]),
        (N_("new key id"), info["new"]), (N_("retired keystore"), info["retired"]),
        (N_("anchor"), info["anchor"]),
        (N_("next"), "every partner follows at its next `schakel sync`"),
    ])


@network.command("show")
@partner_options
@network_argument
@sync_option
@json_option
def show(home: Path, server: str | None, network_id: str, offline: bool, as_json: bool) -> None:
    """Show a network: name, kind, policy, its members (verified) and how many
    cases this home holds.

    JSON keys: network, name, kind, policy, policy_version, log_vkeys (the
    verifier keys of the network's logs, for witnesses: `schakel witness add-log`),
    members, cases, open_cases.
    """
    async def look(partner: "Partner") -> dict[str, Any]:
        if not offline:
            await partner.sync(network_id)
        cases = partner.cases.all(network_id)
        # TrustView is the library's verified view of the genesis (name, kind, policy).
        view = partner.networks.verified(network_id)
        return {"network": network_id, "name": view.name, "kind": view.kind,
                "policy": plain(view.policy), "policy_version": view.policy_version,
                "log_vkeys": [log_verifier(log, network_id, view.server_log).vkey()
                              for log in LOGS],
                "members": plain(partner.networks.members(network_id)),
                "cases": len(cases), "open_cases": sum(1 for c in cases if c.status == "open")}

    info = with_partner(home, server, look)
    if as_json:
        emit(info, as_json=True)
        return
    policy = info["policy"] or {}
    witnessing = policy.get("witnesses")
    bemoeizorg = (policy.get("bemoeizorg") or {}).get("enabled")
    emit({}, as_json=False, rows=[
        (N_("network"), network_id), (N_("name"), info["name"]), (N_("kind"), info["kind"]),
        (N_("policy version"), info["policy_version"]),
        (N_("informal classes"), cell(policy.get("informal_classes"))),
        (N_("anonymous signals"), cell(policy.get("anonymous_signals"))),
        (N_("PII allow-list"), cell(policy.get("pii_allow")) if policy.get("pii_allow")
         else "none"),
        (N_("bemoeizorg"), "grounds: " + cell((policy.get("bemoeizorg") or {}).get("grounds"))
         if bemoeizorg else "not enabled"),
        (N_("witnesses"), _("{quorum} of {names}, cosignatures at most {hours} h old").format(
            quorum=witnessing["quorum"], hours=witnessing["max_age_hours"],
            names=cell([w["vkey"].split("+", 1)[0] for w in witnessing["witnesses"]]))
         if witnessing else _("none")),
        (N_("log keys for witnesses"), cell(info["log_vkeys"])),
        (N_("cases"), f"{info['cases']} ({info['open_cases']} open)"),
    ])
    click.echo("")
    table(info["members"], MEMBER_COLUMNS, empty=_("no members yet"))


def allow_lines(path: Path) -> list[str]:
    """The entries of an --allow-file: one per line, blank lines and # comments skipped."""
    lines = (line.strip() for line in read_text_file(path, "allow-list").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def with_allow_list(policy: dict[str, Any], words: list[str]) -> dict[str, Any]:
    """``policy`` with ``words`` added to its ``pii_allow`` (repeats, compared ignoring
    case, dropped); a word the policy cannot hold is refused naming it (it is the
    coordinator's own input), before the passphrase is asked."""
    merged = list(policy.get("pii_allow") or [])
    seen = {w.casefold() for w in merged if isinstance(w, str)}
    for word in words:
        problem = allow_entry_problem(word)
        if problem is not None:
            raise click.BadParameter(f"{word!r}: {problem}", param_hint="--allow-word/--allow-file")
        if word.casefold() not in seen:
            seen.add(word.casefold())
            merged.append(word)
    if len(merged) > MAX_ALLOW_ENTRIES:
        raise click.BadParameter(f"{len(merged)} words; a policy holds at most "
                                 f"{MAX_ALLOW_ENTRIES}", param_hint="--allow-word/--allow-file")
    return {**policy, "pii_allow": merged}


MEMBER_COLUMNS = [("key_id", N_("key id")), ("name", N_("organisation")), ("ring", N_("ring")),
                  ("party", N_("party")), ("roles", N_("roles")), ("current", N_("current"))]


@click.command(cls=Command)
@partner_options
@optional_network_argument
@click.option("--wait", type=click.FloatRange(0, 30), default=0, show_default=True,
              help="Wait up to this many seconds for something new when nothing is.")
@progress_option
@json_option
def sync(home: Path, server: str | None, network_id: str | None, wait: float,
         progress: bool | None, as_json: bool) -> None:
    """Fetch, verify and decrypt what is new (bijwerken), then do this home's duties.

    Without NETWORK: every trusted network. Everything is checked against the
    coordinator's key before it is believed; a server that sends something that
    does not verify is recorded and refused (exit 4). The progress line on
    standard error shows the items so far of the estimated total, items/s and
    the time left.
    """
    async def update(partner: "Partner") -> list[dict[str, Any]]:
        networks = [network_id] if network_id else list(partner.networks.trusted())
        results = []
        for name in networks:
            with sync_bar(_("sync {network}").format(network=name[:8]), progress) as bar:
                result = await partner.sync(name, wait=wait, progress=bar)
            results.append({"network": name, **plain(result)})
        return results

    results = with_partner(home, server, update)
    if as_json:
        emit({"networks": results}, as_json=True)
        return
    if not results:
        click.echo(_("no networks to sync yet: `schakel network trust` or `schakel network "
                     "create`"))
    for result in results:
        emit({}, as_json=False, rows=[
            (_("network"), result["network"]),
            (_("new items"), str(result.get("items", 0))),
            (_("cases updated"), str(len(result.get("cases") or []))),
            (_("new key epochs"), ", ".join(map(str, result.get("epochs") or [])) or "-"),
            (_("duties"), duty_summary(result.get("duties"))),
        ])


def duty_summary(duties: dict[str, Any] | None) -> str:
    """"rekeyed 2, backfilled 1", or "nothing to do": what a sync or `duties` did."""
    done = [f"{name} {len(ids)}" for name, ids in (duties or {}).items()
            if isinstance(ids, list) and ids]
    return ", ".join(done) or _("nothing to do")
