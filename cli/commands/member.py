"""``schakel member …``: the coordinator admits and removes partners; anyone lists them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import (
    json_option, partner_options, read_object_file, sync_option, with_partner,
)
from schakel.cli.commands.guard import EPILOG as GUARD_EPILOG
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.network import MEMBER_COLUMNS
from schakel.cli.commands.output import cell, emit, plain, table
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_, _
from schakel.keys import Fingerprint, verify_key_bundle

if TYPE_CHECKING:
    from schakel.client.partner import Partner


#: What ``member list`` shows beyond the members' table of ``network show``.
BEHALF_COLUMNS = [("on_behalf_of", N_("on behalf of")), ("users", N_("users"))]

#: The opt-out of the fingerprint comparison: long and plain, so a script shows it.
UNCHECKED = "--without-fingerprint-check"


@click.group(cls=Group)
def member() -> None:
    """Members of a network (deelnemers): add, remove, list.

    Core (kern) partners read every case of the network; shell (schil) partners
    only cases shared with them. Formal parties are professionals; informal
    parties are volunteers (vrijwilligers) and get at most name, address and
    contact.
    """


@member.command("add")
@partner_options
@network_argument
@click.argument("bundle_file", metavar="BUNDLE_FILE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ring", type=click.Choice(["core", "shell"]), required=True,
              help="core (kern): reads every case; shell (schil): only shared cases.")
@click.option("--party", type=click.Choice(["formal", "informal"]), required=True,
              help="formal (professional) or informal (volunteer organisation).")
@click.option("--role", "roles", multiple=True, metavar="ROLE",
              help="A role, repeatable: professional-secrecy (beroepsgeheim: may receive "
                   "'official'), bemoeizorg, auditor.")
@click.option("--on-behalf-of", "on_behalf_of", multiple=True, metavar="NAME",
              help="An organisation this partner represents (namens), repeatable: e.g. the "
                   "volunteer organisations a Vrijwilligerscentrale speaks for. Every audit "
                   "entry of its acts names them.")
@click.option("--user", "users", multiple=True, metavar="ID=formal|informal",
              help="An acting user of this partner and its party, repeatable: beroepskracht "
                   "formal, vrijwilliger informal. With --user, only the listed users may act "
                   "for the partner, each with what its own party may receive.")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="How long the membership is valid.")
@click.option("--fingerprint", "expected", default=None,
              help="The fingerprint the partner read aloud to you (eight groups of five "
                   "digits); required: the bundle is refused unless it matches.")
@click.option(UNCHECKED, "unchecked", is_flag=True,
              help="Admit WITHOUT comparing the fingerprint: only when the bundle reached you "
                   "through a channel that already proves who made it. Anyone who could "
                   "swap the file on its way is then a member.")
@json_option
def add(home: Path, server: str | None, network_id: str, bundle_file: Path, ring: str, party: str,
        roles: tuple[str, ...], on_behalf_of: tuple[str, ...], users: tuple[str, ...],
        days: int, expected: str | None, unchecked: bool, as_json: bool) -> None:
    """Admit a partner from its key bundle (coordinator).

    Verifies the bundle's signature and that its key has the fingerprint the
    partner read aloud (--fingerprint), signs the membership and registers it.
    Admitting a core member starts a new key epoch and rotates every open case,
    so the newcomer reads new work but not history until someone re-shares it
    (`schakel case reshare`).  Admitting a member again replaces its membership:
    that is how its --on-behalf-of list and --user list change.
    """
    user_parties = parse_users(users, party)
    if expected is None and not unchecked:
        raise click.UsageError(
            "give --fingerprint with the fingerprint the partner read aloud to you (they "
            "see it with `schakel whoami`): the bundle file alone does not prove whose key "
            f"it is. To admit it without that check, say so with {UNCHECKED}.")
    if expected is not None and unchecked:
        raise click.UsageError(f"--fingerprint and {UNCHECKED} contradict each other")
    bundle = read_object_file(bundle_file, "key bundle")
    verified = verify_key_bundle(bundle, expected=Fingerprint.parse(expected) if expected else None)
    if unchecked:
        click.echo(f"schakel: WARNING: admitting {verified.name} without comparing its "
                   f"fingerprint ({verified.fingerprint}); compare it with them aloud now",
                   err=True)

    async def admit(partner: "Partner") -> str:
        return await partner.networks.admit(network_id, bundle, ring=ring, party=party,
                                            roles=roles, days=days, on_behalf_of=on_behalf_of,
                                            users=user_parties)

    key_id = with_partner(home, server, admit)
    emit({"network": network_id, "member": key_id, "name": verified.name, "ring": ring,
          "party": party, "roles": sorted(roles), "days": days,
          "on_behalf_of": list(on_behalf_of), "users": user_parties,
          "fingerprint_checked": expected is not None}, as_json=as_json, rows=[
        (N_("member"), key_id), (N_("organisation"), verified.name), (N_("ring"), ring), (N_("party"), party),
        (N_("roles"), ", ".join(sorted(roles)) or "-"),
        (N_("on behalf of"), ", ".join(on_behalf_of) or "-"),
        (N_("users"), cell(user_parties) if user_parties else "any (in the member's party)"),
        (N_("valid"), f"{days} days"),
        (N_("fingerprint"), "matches what was read aloud" if expected else
         f"NOT compared ({UNCHECKED})"),
    ])


def parse_users(values: tuple[str, ...], party: str) -> dict[str, str] | None:
    """``--user ID=formal|informal`` values as acting user -> party (None for none); a
    malformed value, a user named twice, or a formal user of an informal partner is a
    usage error naming it."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        user, sep, user_party = value.rpartition("=")
        if not sep or not user or user_party not in ("formal", "informal"):
            raise click.UsageError(f"--user {value!r}: write ID=formal or ID=informal")
        if user in out:
            raise click.UsageError(f"--user names {user!r} twice")
        if user_party == "formal" and party == "informal":
            raise click.UsageError(f"--user {value!r}: an informal partner has no formal users "
                                   f"(admit it with --party formal)")
        out[user] = user_party
    return out


@member.command("remove", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("key_id", metavar="KEY_ID")
@click.option("--reason", required=True, help='Why, e.g. "left the network".')
@json_option
def remove(home: Path, server: str | None, network_id: str, key_id: str, reason: str,
           as_json: bool) -> None:
    """Remove a partner (coordinator): revoke its membership.

    A removed core member's keys open nothing written afterwards: a new epoch
    goes to the remaining core and every open case is re-keyed.
    """
    async def revoke(partner: "Partner") -> None:
        await partner.networks.remove(network_id, key_id, reason=reason)

    with_partner(home, server, revoke, guard={"reason": reason})
    emit({"network": network_id, "member": key_id, "removed": True, "reason": reason},
         as_json=as_json, rows=[(N_("member"), key_id), (N_("removed"), "yes"), (N_("reason"), reason)])


@member.command("list")
@partner_options
@network_argument
@click.option("--all", "everyone", is_flag=True, help="Also list removed and expired members.")
@sync_option
@json_option
def list_members(home: Path, server: str | None, network_id: str, everyone: bool, offline: bool,
                 as_json: bool) -> None:
    """List a network's members, verified against the coordinator's key.

    JSON: {"network", "members": [{"key_id", "name", "ring", "party", "roles", "current"}]},
    with "on_behalf_of" (the organisations a member represents) and "users" (acting user
    -> party) for a member whose membership names them.
    """
    async def look(partner: "Partner") -> list[dict[str, Any]]:
        if not offline:
            await partner.sync(network_id)
        return [m for m in plain(partner.networks.members(network_id)) if everyone or m.get("current", True)]

    members = with_partner(home, server, look)
    if as_json:
        emit({"network": network_id, "members": members}, as_json=True)
        return
    table(members, MEMBER_COLUMNS + BEHALF_COLUMNS,
          empty=_("no members (did you sync, and are you a member?)"))
