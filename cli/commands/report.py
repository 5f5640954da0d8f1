"""``schakel report``: aggregate figures for the municipality, from this home's cases,
with small cells suppressed so no person can be singled out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import json_option, partner_options, sync_option, with_partner
from schakel.cli.commands.ids import network_argument
from schakel.cli.commands.output import cell, emit, heading, plain

if TYPE_CHECKING:
    from schakel.client.partner import Partner


@click.command()
@partner_options
@network_argument
@click.option("--min-cell", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Counts below this are shown as '<N' (celonderdrukking).")
@sync_option
@json_option
def report(home: Path, server: str | None, network_id: str, min_cell: int, offline: bool,
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

    figures = with_partner(home, server, compute)
    if as_json:
        emit(figures, as_json=True)
        return
    print_figures(figures)


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
