"""``schakel report``: what a network reports outward.

* ``schakel report figures NETWORK`` (also ``schakel report NETWORK``): aggregate figures
  for the municipality, from this home's cases, with small cells suppressed so no person
  can be singled out.
* ``schakel report access --bsn … --birth-date …``: a person's access request (inzage,
  AVG art. 15) answered by the coordinator as the one contact point, over every network
  it coordinates (docs/protocol.md §15.7; ADR 0033).  The BSN is checked (11-proef)
  before the keystore is opened and never leaves this computer: only blind-index
  tokens are sent.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import json_option, partner_options, sync_option, with_partner
from schakel.cli.commands.ids import check_network_id, network_argument
from schakel.cli.commands.output import cell, emit, heading, plain
from schakel.cli.helptext import SpokenGroup

if TYPE_CHECKING:
    from schakel.client.partner import Partner

#: A network id that starts with "-" (one in 64) is still the figures' NETWORK.
_DASH_ID = re.compile(r"-[A-Za-z0-9_-]{21}")


class ReportGroup(SpokenGroup, click.Group):
    """A group whose first argument may also be a NETWORK: ``schakel report NETWORK`` is
    ``schakel report figures NETWORK``, as it was before the group had subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and (
                not args[0].startswith("-") or _DASH_ID.fullmatch(args[0])):
            from schakel.cli.main import protect_ids

            # ``figures -x7… --json``: the dash id is put behind ``--`` as everywhere else.
            args = protect_ids(self, ctx, ["figures", *args])
        return super().parse_args(ctx, args)


@click.group(cls=ReportGroup)
def report() -> None:
    """Reports (rapportage): figures for the municipality, a person's access request.

    `schakel report NETWORK` still gives the figures (`schakel report figures NETWORK`).
    """


@report.command("figures")
@partner_options
@network_argument
@click.option("--min-cell", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Counts below this are shown as '<N' (celonderdrukking).")
@sync_option
@json_option
def figures(home: Path, server: str | None, network_id: str, min_cell: int, offline: bool,
            as_json: bool) -> None:
    """Aggregate report of the network's cases (rapportage) for the municipality.

    Counts by problem domain, neighbourhood, source, status and help type
    (informal, formal, combined), and the median days to a first action; no
    case ids, no free text. Computed on this computer from the anonymous layer
    it holds. JSON: the figures with stable keys (cases, consults, by_domain,
    by_neighbourhood, by_source, by_status, by_help_type, cases_with_action,
    median_days_to_first_action, min_cell).
    """
    async def compute(partner: "Partner") -> dict[str, Any]:
        if not offline:
            await partner.sync(network_id)
        return plain(partner.reports.aggregate(network_id, min_cell=min_cell))

    result = with_partner(home, server, compute)
    if as_json:
        emit(result, as_json=True)
        return
    print_figures(result)


def print_figures(figures: dict[str, Any]) -> None:
    """Scalars first as label/value lines, then each breakdown as its own block."""
    scalars = [(k.replace("_", " "), cell(v)) for k, v in figures.items() if not isinstance(v, dict)]
    emit({}, as_json=False, rows=scalars)
    for key, value in figures.items():
        if isinstance(value, dict):
            heading(key.replace("_", " "))
            if value:
                emit({}, as_json=False, rows=[(str(k), cell(v)) for k, v in value.items()])
            else:
                click.echo("-")


# --------------------------------------------------------------------------- access


def _check_bsn(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The BSN's 11-proef, before anything else runs; the message never repeats it."""
    if value is None:
        return None
    from schakel.protocol.access import check_bsn
    from schakel.protocol.errors import MalformedError

    try:
        return check_bsn(value)
    except MalformedError as error:
        raise click.BadParameter(error.message, ctx=ctx, param=param) from None


def _check_date(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import datetime

    from schakel.protocol.access import check_birth_date
    from schakel.protocol.errors import MalformedError

    try:
        return check_birth_date(value, today=datetime.datetime.now(datetime.UTC).date())
    except MalformedError as error:
        raise click.BadParameter(error.message, ctx=ctx, param=param) from None


def _check_networks(ctx: click.Context, param: click.Parameter,
                    value: tuple[str, ...]) -> tuple[str, ...]:
    for network in value:
        check_network_id(ctx, param, network)
    return value


@report.command("access")
@partner_options
@click.option("--bsn", default=None, callback=_check_bsn, metavar="BSN",
              help="The person's BSN (9 digits, checked with the 11-proef before anything "
                   "is sent). Leave it out to be asked for it: an option stays in the "
                   "shell's history and the process list. Never sent to a server.")
@click.option("--birth-date", required=True, callback=_check_date, metavar="YYYY-MM-DD",
              help="The person's date of birth.")
@click.option("--family-name", default=None, metavar="NAME",
              help="Also search by family name + date of birth (finds cases created "
                   "without a BSN).")
@click.option("--network", "networks", multiple=True, callback=_check_networks,
              metavar="NETWORK", help="Only this network (repeatable); default: every "
                                      "network this home coordinates.")
@click.option("--lang", type=click.Choice(["nl", "en"]), default="nl", show_default=True,
              help="Language of the report (Nederlands or English).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default=None,
              help="text (default on a terminal), json (the access-report object) or html "
                   "(one self-contained page to print or save as PDF) [default: html with "
                   "--out, else text].")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=None, help="Write the report to this file (created readable by you "
                                 "only) instead of standard output.")
@json_option
def access(home: Path, server: str | None, bsn: str | None, birth_date: str,
           family_name: str | None, networks: tuple[str, ...], lang: str, fmt: str | None,
           out: Path | None, as_json: bool) -> None:
    """A person's access request (inzageverzoek), answered as the one contact point.

    For every network this home coordinates: the person's blind-index tokens
    are made here from the BSN (and the family name, if given) under every
    match key held, the server says which cases carry them (each search is
    audited in the network's log), and one report is built from the verified
    audit log: per case what is held (classes; values only where you hold
    them), who received identity and on what basis, reads, consents and
    purposes. Matches you cannot confirm yourself are marked: confirm them
    with the case's owner before you hand the report over.
    """
    if bsn is None:
        ctx = click.get_current_context()
        option = next(p for p in ctx.command.params if p.name == "bsn")
        bsn = _check_bsn(ctx, option, click.prompt("BSN", hide_input=True, err=True))
    assert bsn is not None
    fmt = "json" if as_json else (fmt or ("html" if out is not None else "text"))
    person = bsn

    async def build(partner: "Partner") -> dict[str, Any]:
        return await partner.access.report(bsn=person, birth_date=birth_date,
                                           family_name=family_name, lang=lang,
                                           networks=networks or None)

    result = with_partner(home, server, build)
    from schakel.client.access_render import render_html, render_text

    if fmt == "json":
        import json

        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    elif fmt == "html":
        text = render_html(result)
    else:
        text = render_text(result)
    if out is None:
        click.echo(text, nl=False)
    else:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    unconfirmed = sum(1 for c in result["cases"] if c["match"] != "confirmed")
    if unconfirmed:
        click.echo(f"note: {unconfirmed} of the {len(result['cases'])} cases found are "
                   f"blind-index matches you cannot confirm yourself; confirm each with its "
                   f"owner before you hand the report over", err=True)
    if out is not None:
        click.echo(f"report written to {out}", err=True)
