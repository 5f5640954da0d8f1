"""``schakel network covenant-example``: the sample covenant (convenant) shipped with
Schakel, for a coordinator to adapt before founding a network."""

from __future__ import annotations

from importlib import resources

import click

from schakel.cli.helptext import Command

#: The package data folder and file of the sample covenant (Dutch).
EXAMPLES = "schakel.cli.examples"
COVENANT = "convenant.txt"


def covenant_text() -> str:
    """The sample covenant, as installed with the package."""
    return resources.files(EXAMPLES).joinpath(COVENANT).read_text(encoding="utf-8")


@click.command("covenant-example", cls=Command)
def covenant_example() -> None:
    """Print a sample covenant (voorbeeldconvenant) in Dutch.

    What the partners of a care or signalling network promise each other:
    purpose, confidentiality, what is shared on which ground (consent,
    bemoeizorg), retention and the person's rights. Adapt it with your partners,
    then pass the file to `schakel network create --covenant-file`:

    \b
        schakel network covenant-example > convenant.txt
    """
    click.echo(covenant_text(), nl=False)
