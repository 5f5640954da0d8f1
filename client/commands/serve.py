"""``schakel serve`` and ``schakel server init``: run the Schakel server, and prepare its
data directory (keys, config) so the coordinator can put the server's keys in the
network genesis (docs/protocol.md §14, "Data directory")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from client.commands.output import emit
from server import serverkeys
from server.app import serve as run_server
from server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig, load_or_create
from server.context import AppContext
from server.logconfig import configure_logging

DATA_HELP = ("the server's data directory: database, server keys and config.json; created "
             "on first use, reused after")


def _config(data_dir: Path, host: str | None, port: int | None,
            public_url: str | None) -> ServerConfig:
    try:
        return load_or_create(data_dir, host=host, port=port, public_url=public_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _passphrase_note(data_dir: Path) -> str:
    passphrase = data_dir / serverkeys.PASSPHRASE_FILE
    if passphrase.exists():
        return f"{passphrase} (keep it with the keys, or set {serverkeys.PASSPHRASE_ENV})"
    return f"from {serverkeys.PASSPHRASE_ENV}"


@click.group()
def server() -> None:
    """Prepare and inspect a Schakel server's data directory."""


@server.command("init")
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help=DATA_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the keys as JSON")
def init(data_dir: Path, as_json: bool) -> None:
    """Create the server's log and gate keys (or show them if they exist).

    The coordinator puts the two public keys in the network genesis (server.log and
    server.gate); compare the fingerprints printed here with those the coordinator
    reads back to you.  The keys are kept in server-keys.json in the data directory,
    encrypted with the passphrase in SCHAKEL_SERVER_PASSPHRASE or, when that is unset,
    a random one written to server-passphrase next to it (mode 0600).
    """
    _config(data_dir, None, None, None)
    keys, created = serverkeys.load_or_create(data_dir)
    info = keys.fingerprints()
    emit({**info, "created": created}, as_json=as_json, rows=[
        ("server keys", "created now" if created else "already existed"),
        ("log key (Ed25519)", info["log"]),
        ("log key id", info["log_key_id"]),
        ("log fingerprint", info["log_fingerprint"]),
        ("gate key (X25519)", info["gate"]),
        ("gate key id", info["gate_key_id"]),
        ("gate fingerprint", info["gate_fingerprint"]),
        ("keystore", str(data_dir / serverkeys.KEYSTORE_FILE)),
        ("passphrase", _passphrase_note(data_dir)),
    ])


@server.command("retention")
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path), help=DATA_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the steps taken as JSON")
def retention(data_dir: Path, as_json: bool) -> None:
    """Run one retention pass now and print what it did.

    Crypto-shreds the identity of cases closed longer than the policy's
    retention.identity_days, deletes the anonymous layer after anonymous_days, and
    issues the purge instructions of expired bemoeizorg access (each step audited;
    the running server does the same every limits.retention_interval seconds).
    """
    from server.retention import run_once

    if not (data_dir / serverkeys.KEYSTORE_FILE).exists():
        raise click.UsageError(f"{data_dir} holds no server keys (schakel server init)")
    config = _config(data_dir, None, None, None)
    keys, _ = serverkeys.load_or_create(data_dir)
    done = asyncio.run(run_once(AppContext.create(config, keys)))
    if as_json:
        emit({"steps": done}, as_json=True)
        return
    for step in done:
        click.echo(" ".join(f"{k}={v}" for k, v in step.items()))
    click.echo(f"{len(done)} retention step(s) taken")


@click.command()
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help=DATA_HELP)
@click.option("--host", default=None,
              help=f"address to listen on [default: {DEFAULT_HOST}, this machine only; "
                   "put a TLS proxy in front to serve partners]")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help=f"port to listen on [default: {DEFAULT_PORT}]")
@click.option("--public-url", default=None,
              help="the address partners use, e.g. https://schakel.gemeente.nl, when a proxy "
                   "sits in front; requests are signed for it [default: http://HOST:PORT]")
def serve(data_dir: Path, host: str | None, port: int | None, public_url: str | None) -> None:
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
    """
    config = _config(data_dir, host, port, public_url)
    keys, created = serverkeys.load_or_create(data_dir)
    if created:
        info = keys.fingerprints()
        click.echo(f"Created server keys. Log fingerprint: {info['log_fingerprint']}; "
                   f"gate fingerprint: {info['gate_fingerprint']} (schakel server init "
                   f"--data {data_dir} shows them again).")
    configure_logging()
    run_server(AppContext.create(config, keys), announce=click.echo)


__all__ = ["server", "serve"]
