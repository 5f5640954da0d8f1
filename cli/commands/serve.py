"""``schakel serve``, ``schakel server init`` and ``schakel server fingerprint``: run the
Schakel server, prepare its data directory (keys, config), and print the server
fingerprint without which a coordinator does not put the server's keys in a network
genesis (docs/protocol.md §4.3, §14.6)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import click

from schakel.cli.commands.output import emit
from schakel.cli.helptext import Command, Group
from schakel.cli.i18n import N_, _
from schakel.server import serverkeys
from schakel.server.datalock import DataDirBusy
from schakel.server.app import serve as run_server
from schakel.server.config import ServerConfig, load_or_create
from schakel.server.context import AppContext
from schakel.server.logconfig import configure_logging

DATA_HELP = N_("the server's data directory: database, server keys and config.json; created "
                "on first use, reused after")


DATABASE_HELP = N_("keep the server's data in PostgreSQL at this URL "
                   "(postgresql://USER@HOST/DB) instead of in the data directory's SQLite "
                   "file; the keys stay in the data directory")


def _config(data_dir: Path, host: str | None, port: int | None,
            public_url: str | None, database_url: str | None = None) -> ServerConfig:
    try:
        return load_or_create(data_dir, host=host, port=port, public_url=public_url,
                              database_url=database_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _passphrase_note(data_dir: Path) -> str:
    passphrase = data_dir / serverkeys.PASSPHRASE_FILE
    if passphrase.exists():
        return f"{passphrase} (keep it with the keys, or set {serverkeys.PASSPHRASE_ENV})"
    return f"from {serverkeys.PASSPHRASE_ENV}"


@click.group(cls=Group)
def server() -> None:
    """Prepare, inspect, back up and restore a Schakel server's data directory."""


@server.command("init")
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help=DATA_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the keys as JSON")
def init(data_dir: Path, as_json: bool) -> None:
    """Create the server's log and gate keys (or show them if they exist).

    Prints the server fingerprint (vingerafdruk): give it to every coordinator who
    founds a network on this server, out of band (read aloud, or on paper). It covers
    both public keys; `schakel network create --server-fingerprint` refuses a server
    whose keys do not have it. The keys are kept in server-keys.json in the data
    directory, encrypted with the passphrase in SCHAKEL_SERVER_PASSPHRASE or, when that
    is unset, a random one written to server-passphrase next to it (mode 0600).

    JSON keys: fingerprint, log, gate, log_key_id, gate_key_id, log_fingerprint,
    gate_fingerprint, created.
    """
    _config(data_dir, None, None, None)
    keys, created = serverkeys.load_or_create(data_dir)
    info = keys.fingerprints()
    emit({**info, "created": created}, as_json=as_json, rows=[
        (N_("server keys"), "created now" if created else "already existed"),
        (N_("server fingerprint"), info["fingerprint"]),
        (N_("log key (Ed25519)"), info["log"]),
        (N_("log key id"), info["log_key_id"]),
        (N_("gate key (X25519)"), info["gate"]),
        (N_("gate key id"), info["gate_key_id"]),
        (N_("keystore"), str(data_dir / serverkeys.KEYSTORE_FILE)),
        (N_("passphrase"), _passphrase_note(data_dir)),
        (N_("next"), "give the server fingerprint to the coordinator, who passes it to `schakel "
                 "network create --server-fingerprint`"),
    ])


@server.command("fingerprint")
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path), help=DATA_HELP)
def fingerprint(data_dir: Path) -> None:
    """Print the server fingerprint in groups of five digits, to give a coordinator.

    Read from the server's own keystore (unlocked, so the fingerprint is that of the
    keys the server uses); nothing is created.
    """
    keys = existing_keys(data_dir)
    click.echo(str(keys.fingerprint))


def existing_keys(data_dir: Path) -> serverkeys.ServerKeys:
    if not (data_dir / serverkeys.KEYSTORE_FILE).exists():
        raise click.UsageError(f"{data_dir} holds no server keys (schakel server init)")
    keys, _ = serverkeys.load_or_create(data_dir)
    return keys


@server.command("retention")
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path), help=DATA_HELP)
@click.option("--database", "database_url", envvar="SCHAKEL_DATABASE", default=None,
              help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the steps taken as JSON")
def retention(data_dir: Path, database_url: str | None, as_json: bool) -> None:
    """Run one retention pass now and print what it did.

    Crypto-shreds the identity of cases closed longer than the policy's
    retention.identity_days, deletes the anonymous layer after anonymous_days,
    issues the purge instructions of expired bemoeizorg access, and erases the
    bodies of audit entries older than audit_days under an erase entry (each step
    audited; the running server does the same every limits.retention_interval
    seconds).
    """
    from schakel.server.retention import run_once

    keys = existing_keys(data_dir)
    config = _config(data_dir, None, None, None, database_url)
    done = asyncio.run(run_once(AppContext.create(config, keys)))
    if as_json:
        emit({"steps": done}, as_json=True)
        return
    for step in done:
        click.echo(" ".join(f"{k}={v}" for k, v in step.items()))
    click.echo(f"{len(done)} retention step(s) taken")


@click.command(cls=Command)
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help=DATA_HELP)
@click.option("--host", default=None,
              help="address to listen on [default: 127.0.0.1, this machine only; "
                   "put a TLS proxy in front to serve partners]")     # server.config.DEFAULT_HOST
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="port to listen on [default: 8470]")     # server.config.DEFAULT_PORT
@click.option("--public-url", default=None,
              help="the address partners use, e.g. https://schakel.gemeente.nl, when a proxy "
                   "sits in front; requests are signed for it [default: http://HOST:PORT]")
@click.option("--database", "database_url", envvar="SCHAKEL_DATABASE", default=None,
              help=DATABASE_HELP)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="server processes on the one address (PostgreSQL only: one SQLite file "
                   "is written by one process)")
def serve(data_dir: Path, host: str | None, port: int | None, public_url: str | None,
          database_url: str | None, workers: int) -> None:
    """Run the Schakel server until Ctrl-C or SIGTERM.

    On first start it creates the data directory with the database, the server's keys
    (see `schakel server init`) and config.json; later starts reuse them, and options
    given here override config.json for this run.  The server stores only ciphertext and
    signed objects, and logs one JSON line per request on stderr. On SIGTERM it stops
    accepting requests and lets writes in progress commit before it exits; a second
    signal, or a shutdown still running limits.shutdown_timeout + 10 s later, ends it at
    once.  config.json's limits also bound each connection: header_timeout and
    body_timeout (seconds for a request head and body to arrive) and
    max_connections_per_address (raise it behind a reverse proxy, whose address all
    connections share).

    With --workers N (PostgreSQL only) N processes serve the address; one that ends is
    replaced, and SIGTERM stops them all.  Processes on other machines may serve the
    same database too, each with a copy of this data directory's keys and config.json,
    behind one proxy (docs/roles/operator.md).
    """
    if workers > 1 and database_url is None:
        raise click.UsageError(_("--workers {n} needs --database (PostgreSQL): one SQLite "
                                 "database is written by one server process").format(n=workers))
    config = _config(data_dir, host, port, public_url, database_url)
    keys, created = serverkeys.load_or_create(data_dir)
    if created:
        click.echo(f"Created server keys. Server fingerprint: {keys.fingerprint} (give it to "
                   f"the coordinator; schakel server fingerprint --data {data_dir} shows it "
                   f"again).")
    configure_logging()
    if workers > 1:
        raise SystemExit(_serve_workers(config, keys, workers))
    try:
        run_server(AppContext.create(config, keys), announce=click.echo)
    except DataDirBusy as exc:
        raise click.ClickException(_("another process ({pid}) uses {dir}: a server runs on it "
                                     "already, or a restore; stop it first").format(
                                         pid=exc.pid or "?", dir=data_dir)) from None


def _serve_workers(config: ServerConfig, keys: serverkeys.ServerKeys, workers: int) -> int:
    """``schakel serve --workers N`` (server/workers.py): bind, fork, supervise."""
    import structlog

    from schakel.server.app import run_on
    from schakel.server.workers import bind, supervise

    try:
        sock = bind(config)
    except OSError as exc:
        raise click.ClickException(_("cannot listen on {host}:{port}: {why}").format(
            host=config.host, port=config.port, why=exc.strerror or exc)) from None

    def worker(slot: int, listening: socket.socket) -> int:
        log = structlog.get_logger("schakel").bind(worker=slot + 1)
        return run_on(AppContext.create(config, keys, log=log), listening)

    click.echo(f"Schakel server on http://{config.host}:{config.port} with {workers} workers "
               f"(requests are signed for {config.public_origin}); data in PostgreSQL")
    return supervise(workers, worker, sock, announce=click.echo)


__all__ = ["server", "serve", "existing_keys", "DATA_HELP"]
