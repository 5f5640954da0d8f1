"""``schakel duties``: what this home owes the network (re-keying, backfilling,
purging), done now; and what it caught the server doing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import json_option, partner_options, with_partner
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.init import MISBEHAVIOUR_COLUMNS
from schakel.cli.commands.output import cell, emit, heading, plain, table
from schakel.cli.helptext import Command
from schakel.cli.i18n import _

if TYPE_CHECKING:
    from schakel.client.partner import Partner


@click.command(cls=Command)
@partner_options
@network_argument
@json_option
def duties(home: Path, server: str | None, network_id: str, as_json: bool) -> None:
    """Do this home's duties for a network now (also done at every sync).

    Rotates the identity keys of this home's cases after a recipient lost its
    basis, backfills identity envelopes for members who joined, re-keys open
    cases after a membership change, re-shares to shell partners, executes purge
    instructions (consent revoked, member removed) and purges expired bemoeizorg
    access. A home the network removed still executes its purge instructions.
    Also lists every server misbehaviour this home recorded.
    JSON: {"network", "duties": {...}, "misbehaviours": [...]}.
    """
    async def work(partner: "Partner") -> dict[str, Any]:
        done = await partner.duties(network_id)
        return {"network": network_id, "duties": plain(done),
                "misbehaviours": plain(partner.misbehaviours())}

    result = with_partner(home, server, work)
    if as_json:
        emit(result, as_json=True)
        return
    done = result["duties"]
    emit({}, as_json=False, rows=[(k.replace("_", " "), _count(v)) for k, v in done.items()
                                  if k != "network"])
    if result["misbehaviours"]:
        heading(_("server misbehaviour recorded by this home"))
        table(result["misbehaviours"], MISBEHAVIOUR_COLUMNS, empty=_("none"), limits={"message": 80})


def _count(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"{len(value)}" + (f" ({cell(value, limit=60)})" if value else "")
    return cell(value)
