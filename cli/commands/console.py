"""``schakel console``: the organisation's own client as a local web application
(ADR 0040), on 127.0.0.1 only, opened with a one-time start address."""

from __future__ import annotations

import asyncio
import html
import os
import signal
import socket
import tempfile
import webbrowser
from pathlib import Path

import click

from schakel.cli.commands.common import check_home, partner_options, remember_server
from schakel.cli.helptext import Command
from schakel.cli.i18n import _


def free_port(host: str) -> int:
    """A port the system has free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_bind(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The console binds loopback only: any other address is refused."""
    from schakel.cli.console.guard import LOOPBACK

    if value != LOOPBACK:
        raise click.BadParameter(_("the console listens on {loopback} only: the keys and "
                                   "the plaintext stay on this computer").format(
            loopback=LOOPBACK), ctx=ctx, param=param)
    return value


def opener(address: str, folder: Path) -> Path:
    """A page only this user can read (mode 0600, in ``folder``) that sends the browser
    on to ``address``.  The browser is started with this file's name, not the address:
    the arguments of a process are visible to every user of the computer, and the
    address holds the start token."""
    fd, name = tempfile.mkstemp(prefix="schakel-console-", suffix=".html", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        target = html.escape(address, quote=True)
        out.write(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" '
                  f'content="0;url={target}"><title>Schakel</title>'
                  f'<p><a href="{target}">Schakel-console</a></p>\n')
    return Path(name)


@click.command(cls=Command)
@partner_options
@click.option("--bind", default="127.0.0.1", show_default=True, callback=check_bind,
              help="The address to listen on; only 127.0.0.1 is accepted.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="The port to listen on [default: a free one].")
@click.option("--no-browser", "browser", flag_value=False, default=True,
              help="Print the address only; do not open a browser.")
def console(home: Path, server: str | None, bind: str, port: int, browser: bool) -> None:
    """Open the console: your home's signals and cases in your browser, in Dutch.

    The console runs on this computer (127.0.0.1) until Ctrl-C (or SIGTERM); the keys and what you
    read stay in it, and the Schakel server sees only ciphertext. It prints an address
    with a one-time token: open it in your browser (it opens by itself unless
    --no-browser). The token is exchanged for a session at once; start the console
    again for a new address.
    """
    from aiohttp import web

    from schakel.cli.console.app import make_app
    from schakel.cli.console.guard import Gate

    check_home(home)
    remember_server(server)
    gate = Gate(port=port or free_port(bind))
    app = make_app(home, server, gate)

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, bind, gate.port, reuse_address=False)
        await site.start()
        address = gate.address()
        click.echo(_("The console is at {address}").format(address=address))
        click.echo(_("(the address works once; stop with Ctrl-C)"), err=True)
        page = opener(address, home) if browser else None
        try:
            if page is not None:
                webbrowser.open(page.as_uri())
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
        finally:
            if page is not None:
                page.unlink(missing_ok=True)
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
