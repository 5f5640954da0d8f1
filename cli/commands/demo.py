"""``schakel demo``: the report's practices, played against a real server (cli/demo/)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click

from schakel.cli.demo.practices import REGISTRY
from schakel.cli.i18n import use


def _help() -> str:
    """The command's help: the registered practices, each with its line."""
    practices = "\n".join(textwrap.fill(f"{name:<11} {entry.summary}", width=76,
                                         subsequent_indent=" " * 12)
                           for name, entry in REGISTRY.items())
    return f"""Play the report's practices against a real `schakel serve`.

    Each practice opens with what the report says of it, and plays on networks and
    organisations of its own:

    \b
{textwrap.indent(practices, "    ")}

    Then each network's auditor verifies its audit log from scratch, and the demo
    shows that the server's database holds no name.

    Every organisation has its own home, keys and signed requests. Each claim is a
    check; the exit code is 0 only if every check held.
    """


@click.command(help=_help())
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
    # The narration and its checks are English, and so are the refusals and advice the
    # demo quotes from the command line: one language on the screen (ADR 0037).
    use("en")
    if keep is not None and keep.exists() and any(keep.iterdir()):
        raise click.UsageError(f"--keep {keep}: the folder is not empty")
    from schakel.cli.demo.practices import load
    from schakel.cli.demo.runner import run

    sys.exit(run(practices=load(practices), serve=serve, keep=keep))
