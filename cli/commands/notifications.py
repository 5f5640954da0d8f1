"""``schakel notifications``: the coördinator's feed of what needs their attention."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import json_option, partner_options, with_partner
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import emit, table
from schakel.cli.helptext import Command
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import PolicyViolation

if TYPE_CHECKING:
    from schakel.client.partner import Partner

#: The refusal of a member that is not the coördinator (explained in cli/main.py's REASONS).
COORDINATOR_ONLY = "notifications-coordinator-only"

#: What each kind means for the coördinator.
KINDS = {"bemoeizorg": "bemoeizorg invoked",
         "bemoeizorg-release": "identity released under bemoeizorg",
         "bemoeizorg-alert": "bemoeizorg refused: daily limit reached",
         "referral-closed": "a referred case was closed by the receiving network"}

COLUMNS = [("cursor", "#"), ("at", N_("when")), ("what", N_("what")), ("case", N_("case")),
           ("ref", N_("invocation / referral"))]


@click.command(cls=Command)
@partner_options
@network_argument
@click.option("--after", type=click.IntRange(min=0), default=0, show_default=True,
              metavar="CURSOR",
              help="Only notifications after this cursor (the # of the last one you read).")
@json_option
def notifications(home: Path, server: str | None, network_id: str, after: int,
                  as_json: bool) -> None:
    """The coördinator's notifications (meldingen), oldest first.

    Each bemoeizorg invocation, release under it and refusal at the daily limit,
    and each referred case the receiving network closed. They are pointers, not
    evidence: `schakel bemoeizorg list` and `schakel audit log` show the verified
    entries. Only the network's coördinator receives them; other members see
    their own grants with `schakel grant list` and invocations with `schakel
    bemoeizorg list`. JSON: {"network", "notifications": [{"cursor", "kind",
    "case", "at", "invocation" or "referral"}], "cursor"}.
    """
    async def read(partner: "Partner") -> list[dict[str, Any]]:
        role = partner.networks.place(network_id).role
        if role not in ("coordinator", "not-synced"):    # the server refuses them too
            raise PolicyViolation("only the network's coördinator receives its notifications",
                                  details={"reason": COORDINATOR_ONLY, "early": True})
        return await partner.networks.notifications(network_id, after=str(after))

    items = with_partner(home, server, read)
    cursor = items[-1]["cursor"] if items else str(after)
    if as_json:
        emit({"network": network_id, "notifications": items, "cursor": cursor}, as_json=True)
        return
    rows = [{**item, "what": KINDS.get(str(item.get("kind")), item.get("kind")),
             "ref": item.get("invocation") or item.get("referral")} for item in items]
    table(rows, COLUMNS, empty=(_("no notifications after #{after}").format(after=after) if after
                                else _("no notifications")))
    if items:
        click.echo("")
        click.echo(f"newer ones only: `schakel notifications {network_id} --after {cursor}`")


__all__ = ["notifications"]
