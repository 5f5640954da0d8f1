"""``schakel review``: an auditor's verdict on a bemoeizorg invocation (toetsing)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from schakel.cli.commands.common import json_option, partner_options, with_partner
from schakel.cli.commands.guard import EPILOG as GUARD_EPILOG
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import emit
from schakel.cli.helptext import Command
from schakel.cli.i18n import N_

if TYPE_CHECKING:
    from schakel.client.partner import Partner


@click.command(cls=Command, epilog=GUARD_EPILOG)
@partner_options
@network_argument
@click.argument("invocation", metavar="INVOCATION")
@click.option("--approve", "outcome", flag_value="approved",
              help="The invocation was justified (goedgekeurd).")
@click.option("--question", "outcome", flag_value="questioned",
              help="The invocation needs answers (bevraagd); the note says which.")
@click.option("--note", required=True, help="Your review note; it goes into the audit log.")
@json_option
def review(home: Path, server: str | None, network_id: str, invocation: str, outcome: str | None,
           note: str, as_json: bool) -> None:
    """Review a bemoeizorg invocation as auditor: --approve or --question.

    Read the justification first (`schakel bemoeizorg justification`); the
    review opens it again with your key (only auditors can) and records your
    verdict, signed, in the audit log. The note is PII-guarded.
    """
    if outcome is None:
        raise click.UsageError("give --approve or --question")

    async def judge(partner: "Partner") -> None:
        await partner.sync(network_id)
        await partner.disclosure.review(network_id, invocation, approved=outcome == "approved", note=note)

    with_partner(home, server, judge, guard={"note": note})
    emit({"network": network_id, "invocation": invocation, "outcome": outcome, "note": note},
         as_json=as_json, rows=[(N_("invocation"), invocation), (N_("outcome"), outcome), (N_("note"), note)])
