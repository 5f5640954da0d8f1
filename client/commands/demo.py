"""``schakel demo``: the mission, played with real keys and real cryptography."""

from __future__ import annotations

import sys

import click

from client.demo import run


@click.command()
def demo() -> None:
    """Play a neighbourhood network from the report, narrating what each party sees.

    A coordinator founds "Buurtnetwerk 55+ Soesterkwartier", partners join after
    the covenant ceremony, social work brings in a case, the PII guard keeps a
    phone number out of the anonymous layer, a volunteer visiting service gets
    name and address under consent but not the BSN, and an auditor verifies the
    log. Exits 0 only if every check held.
    """
    narrator = run(click.echo)
    click.echo("")
    if narrator.failures:
        click.echo(f"{len(narrator.failures)} of {narrator.checks} checks FAILED:", err=True)
        for what in narrator.failures:
            click.echo(f"  - {what}", err=True)
        sys.exit(1)
    click.echo(f"All {narrator.checks} checks held. This demo runs the protocol in one process; "
               "the networked demo against `schakel serve` arrives with the client library "
               "(issue 5).")
