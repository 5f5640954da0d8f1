"""``schakel grant …``: release identity under consent (vrijgeven), and open a release."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.case import print_identity
from schakel.cli.commands.common import json_option, partner_options, with_partner
from schakel.cli.commands.guard import EPILOG as GUARD_EPILOG
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import emit, plain, table
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_, _

if TYPE_CHECKING:
    from schakel.client.partner import Partner


@click.group(cls=Group)
def grant() -> None:
    """Identity releases under consent (vrijgave): create a grant, receive it.

    The coordinator grants classes to a partner under a recorded consent; the
    partner then runs `schakel grant release` to receive them. The network
    policy decides: volunteers (informal parties) never get 'official', and
    'official' needs the professional-secrecy role.
    """


@grant.command("create", epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("case_id", metavar="CASE")
@click.option("--consent", "consent_id", required=True, metavar="CONSENT",
              help="The consent this release rests on (schakel consent record).")
@click.option("--to", "grantee", required=True, metavar="KEY_ID", help="The partner that receives it.")
@click.option("--class", "classes", multiple=True, required=True, metavar="CLASS",
              help="A disclosure class to release, repeatable (name, address, contact, official, care).")
@click.option("--reason", required=True, help="Why the partner needs it.")
@json_option
def create(home: Path, server: str | None, network_id: str, case_id: str, consent_id: str,
           grantee: str, classes: tuple[str, ...], reason: str, as_json: bool) -> None:
    """Grant a partner identity classes of a case under a consent (coordinator).

    Checked against the network policy on this computer first: a release the
    policy forbids is refused with its reason (exit 1) and nothing is sent.
    """
    async def give(partner: "Partner") -> str:
        await partner.sync(network_id)
        return await partner.disclosure.grant(network_id, case_id, consent=consent_id, grantee=grantee,
                                   classes=list(classes), reason=reason)

    grant_id = with_partner(home, server, give, guard={"reason": reason})
    emit({"network": network_id, "case": case_id, "grant": grant_id, "grantee": grantee,
          "classes": list(classes)}, as_json=as_json, rows=[
        (N_("grant"), grant_id), (N_("case"), case_id), (N_("to"), grantee), (N_("classes"), ", ".join(classes)),
        (N_("next"), f"the partner runs `schakel grant release {network_id} {grant_id}`"),
    ])


def receive_release(home: Path, server: str | None, network_id: str,
                    fetch: Callable[["Partner"], Awaitable[Any]], *, as_json: bool) -> None:
    """Sync ``network_id`` (the case's header must be known to open it), take the release
    ``fetch`` asks for, and print it: the case, the verified audit entry and the identity."""
    async def receive(partner: "Partner") -> dict[str, Any]:
        await partner.sync(network_id)
        return plain(await fetch(partner))

    released = with_partner(home, server, receive)
    if as_json:
        emit(released, as_json=True)
        return
    emit({}, as_json=False, rows=[
        (N_("case"), released["case"]),
        (N_("audit entry"), f"#{released['receipt_index']} (receipt verified)"),
    ])
    click.echo("")
    print_identity(released["classes"])


@grant.command("release")
@partner_options
@network_argument
@click.argument("grant_id", metavar="GRANT")
@json_option
def release(home: Path, server: str | None, network_id: str, grant_id: str, as_json: bool) -> None:
    """Receive the identity a grant releases to you, and print it.

    The server logs the release first; its receipt is verified against the
    audit log before the identity is opened and kept in this home.
    JSON: {"network", "case", "classes": {class: fields}, "receipt_index"}.
    """
    receive_release(home, server, network_id,
                    lambda partner: partner.disclosure.release(network_id, grant_id), as_json=as_json)


GRANT_COLUMNS = [("grant", N_("grant")), ("direction", N_("direction")), ("case", N_("case")),
                 ("grantee", N_("to")), ("classes", N_("classes")), ("granted", N_("granted")),
                 ("status", N_("status"))]


@grant.command("list")
@partner_options
@network_argument
@json_option
def list_grants(home: Path, server: str | None, network_id: str, as_json: bool) -> None:
    """List the grants you hold and the grants you gave, from the verified audit log.

    A partner learns here the GRANT id `schakel grant release` takes; the
    coordinator and auditors see every grant. Status: granted (not received
    yet), released, or release-refused (with the reason).
    JSON: {"network", "grants": [{"grant", "case", "grantee", "grantor",
    "grantor_name", "classes", "granted", "direction", "status", "released",
    "refusal"}]}; direction is to-you, by-you or other.
    """
    async def look(partner: "Partner") -> list[dict[str, Any]]:
        return [g.to_json() for g in await partner.disclosure.grants(network_id)]

    grants = with_partner(home, server, look)
    if as_json:
        emit({"network": network_id, "grants": grants}, as_json=True)
        return
    rows = [{**g, "direction": DIRECTIONS.get(g["direction"], g["direction"]),
             "status": g["status"] + (f" ({g['refusal']})" if g.get("refusal") else "")}
            for g in grants]
    table(rows, GRANT_COLUMNS, empty=_("no grants to you or by you in this network"))
    waiting = [g["grant"] for g in grants if g["direction"] == "to-you" and g["status"] != "released"]
    if waiting:
        click.echo("")
        click.echo(_("receive one with `schakel grant release {network} {grant}`").format(
            network=network_id, grant=waiting[0]))


DIRECTIONS = {"to-you": "to you", "by-you": "by you", "other": "-"}

