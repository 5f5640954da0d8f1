"""``schakel demo``: the report's practices, played against a real server (cli/demo/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from schakel.cli.demo.practices import REGISTRY


@click.command()
@click.option("--practice", "practices", type=click.Choice(list(REGISTRY)), multiple=True,
              help="Play only this practice of the report (repeatable); default: all of "
                   "them, in the order listed here.")
@click.option("--serve", is_flag=True,
              help="Afterwards keep the server and the organisations' homes running and print "
                   "how to try the command line against them, until Ctrl-C.")
@click.option("--keep", "keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR",
              help="Put the server's data and the homes in DIR (new or empty) and keep them "
                   "afterwards, instead of a temporary folder that is removed.")
def demo(practices: tuple[str, ...], serve: bool, keep: Path | None) -> None:
    """Play the report's practices against a real `schakel serve`.

    \b
    amersfoort  Buurtnetwerk 55+ Soesterkwartier: a consult, a volunteer
                driver's anonymous signal and the feedback he reads back, an
                isolated man brought in with his consent, name and address
                released to a church visiting service and his BSN refused.
    rotterdam   Lokaal Zorgnetwerk Woningvervuiling: bemoeizorg with four eyes
                and the auditor's review; domestic violence, the meldcode's
                grounds put in force as a new policy version, a referral to
                Veilig Thuis (shell); aftercare in a neighbourhood network.
    zeist       Steunpunt Eenzaamheid Zeist: a neighbour (with the command
                line) and a volunteer driver (with the library) signal without
                keys, using the network's card; the Steunpunt answers and each
                reads the answer back with a receipt.
    Then each network's auditor verifies its audit log from scratch, and the demo
    shows that the server's database holds no name.

    Every organisation has its own home, keys and signed requests. Each claim is a
    check; the exit code is 0 only if every check held.
    """
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise click.UsageError(f"--keep {keep}: the folder is not empty")
    from schakel.cli.demo.practices import load
    from schakel.cli.demo.runner import run

    sys.exit(run(practices=load(practices), serve=serve, keep=keep))
