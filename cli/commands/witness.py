"""``schakel witness``: run a witness for networks' audit logs (docs/protocol.md §17.4,
docs/roles/witness.md): create its key, add the logs it witnesses, serve
c2sp.org/tlog-witness, and show what it cosigned and what it refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from schakel.cli.commands.output import emit, print_json
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_, _
from schakel.protocol.errors import MalformedError
from schakel.server.witness import keys as witness_keys
from schakel.server.witness.store import KeyReplaced, WitnessStore

DIR_HELP = N_("the witness's data directory: its key, witness.json and witness.db")


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _identity(data_dir: Path) -> dict[str, str]:
    if not (data_dir / witness_keys.IDENTITY_FILE).exists():
        raise click.UsageError(_("{dir} holds no witness: run `schakel witness init --dir "
                                 "{dir} --name NAME` first").format(dir=data_dir))
    return witness_keys.identity(data_dir)


def _store(data_dir: Path) -> WitnessStore:
    _identity(data_dir)
    return WitnessStore.open(data_dir)


F = TypeVar("F", bound=Callable[..., Any])


def _dir_option() -> Callable[[F], F]:
    return click.option("--dir", "data_dir", required=True,
                        type=click.Path(file_okay=False, path_type=Path), help=DIR_HELP)


@click.group(cls=Group)
def witness() -> None:
    """Run a witness that cosigns networks' audit logs and refuses split views."""


@witness.command("init")
@_dir_option()
@click.option("--name", required=True,
              help="the witness's name, e.g. witness.gemeente.example/w1 (no spaces or '+')")
@click.option("--json", "as_json", is_flag=True, help="print the witness's key as JSON")
def init(data_dir: Path, name: str, as_json: bool) -> None:
    """Create the witness's Ed25519 key and print its verifier key.

    Give the verifier key (name and key) to the coordinator of each network this witness
    witnesses: it goes in the network's policy. The key is kept in witness-keys.json,
    encrypted with the passphrase in SCHAKEL_WITNESS_PASSPHRASE or, when that is unset, a
    random one written to witness-passphrase next to it (mode 0600).

    JSON keys: name, vkey.
    """
    if (data_dir / witness_keys.KEYSTORE_FILE).exists():
        raise click.UsageError(_("{dir} holds a witness already (`schakel witness show --dir "
                                 "{dir}`)").format(dir=data_dir))
    try:
        key = witness_keys.create(data_dir, name)
    except MalformedError:
        raise click.UsageError(_("--name: 1 to 255 characters, no spaces, '+' or control "
                                 "characters")) from None
    WitnessStore.open(data_dir).close()
    emit({"name": key.name, "vkey": key.vkey}, as_json=as_json, rows=[
        (N_("witness name"), key.name),
        (N_("verifier key"), key.vkey),
        (N_("next"), _("give the verifier key to each network's coordinator; add a network's "
                       "log with `schakel witness add-log`")),
    ])


@witness.command("add-log")
@_dir_option()
@click.option("--vkey", required=True,
              help="the log's verifier key, schakel/audit/<network>+<key hash>+<key>; its "
                   "name is the log's origin")
@click.option("--replace", is_flag=True,
              help="take this key for a log already witnessed under another key (after the "
                   "server's operator replaced the log key, confirmed out of band)")
def add_log(data_dir: Path, vkey: str, replace: bool) -> None:
    """Witness a network's audit log: cosign its checkpoints from now on.

    The network's coordinator gives the log's verifier key (the server's log key under
    the origin schakel/audit/<network-id>); compare it with them out of band. A log this
    witness already witnesses under another key is refused without --replace.
    """
    store = _store(data_dir)
    try:
        log = store.add_log(vkey, int(datetime.now(UTC).timestamp()), replace=replace)
    except KeyReplaced as exc:
        raise click.UsageError(_("--vkey: the log {origin} is witnessed under another key; "
                                 "confirm the new key with the network's coördinator and "
                                 "give --replace").format(origin=exc.origin)) from None
    except (MalformedError, ValueError):
        raise click.UsageError(_("--vkey: not an Ed25519 verifier key "
                                 "(<name>+<8 hex digits>+<base64 key>)")) from None
    finally:
        store.close()
    click.echo(_("witnessing the log {origin}").format(origin=log.name))


@witness.command("serve")
@_dir_option()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; put a TLS proxy in front to serve logs")
@click.option("--port", type=click.IntRange(1, 65535), default=8471, show_default=True,
              help="port to listen on")
def serve(data_dir: Path, host: str, port: int) -> None:
    """Run the witness until Ctrl-C or SIGTERM (c2sp.org/tlog-witness).

    POST /add-checkpoint cosigns a checkpoint consistent with the last one cosigned, and
    refuses and records one that is not; GET /<sha256 of origin>/checkpoint serves the
    latest cosigned checkpoint.
    """
    from schakel.server.witness.app import WitnessContext
    from schakel.server.witness.app import serve as run_witness

    _identity(data_dir)
    key = witness_keys.load(data_dir)
    ctx = WitnessContext(_store(data_dir), key)
    click.echo(_("Schakel witness {name} on http://{host}:{port}").format(
        name=key.name, host=host, port=port), nl=True)
    run_witness(ctx, host=host, port=port)


@witness.command("show")
@_dir_option()
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
def show(data_dir: Path, as_json: bool) -> None:
    """Show the witness's verifier key, the logs it witnesses and their latest checkpoints.

    JSON keys: name, vkey, logs (origin, vkey), checkpoints (origin, size, root,
    cosigned_at).
    """
    public = _identity(data_dir)
    store = _store(data_dir)
    try:
        logs, latest = store.logs(), store.all_latest()
    finally:
        store.close()
    checkpoints: list[dict[str, Any]] = [{"origin": c.origin, "size": c.size, "root": c.root.hex(),
                    "cosigned_at": c.cosigned_at} for c in latest]
    if as_json:
        print_json({**public, "logs": [{"origin": r["origin"], "vkey": r["vkey"]} for r in logs],
                    "checkpoints": checkpoints})
        return
    emit(public, as_json=False, rows=[(N_("witness name"), public["name"]),
                                      (N_("verifier key"), public["vkey"])])
    sizes = {c["origin"]: c for c in checkpoints}
    for row in logs:
        c = sizes.get(row["origin"])
        click.echo(f"{row['origin']}  " + (
            _("size {size}, cosigned {when}").format(size=c["size"], when=_when(c["cosigned_at"]))
            if c else _("nothing cosigned yet")))


@witness.command("refused")
@_dir_option()
@click.option("--json", "as_json", is_flag=True, help="print as JSON, with the checkpoints")
def refused(data_dir: Path, as_json: bool) -> None:
    """Show the checkpoints the witness refused as inconsistent, and why.

    Each is signed by the log's key and contradicts what the witness cosigned: evidence of a
    split view. Keep it, and tell the network's coordinator and its auditors.

    JSON keys: refused (id, time, origin, reason, message, old_size, size, checkpoint,
    proof).
    """
    store = _store(data_dir)
    try:
        rows = store.refused()
    finally:
        store.close()
    if as_json:
        print_json({"refused": rows})
        return
    if not rows:
        click.echo(_("nothing refused"))
        return
    for row in rows:
        click.echo(f"{_when(row['time'])}  {row['origin']}  {row['reason']}  "
                   + _("old {old}, size {size}").format(old=row["old_size"], size=row["size"]))
        click.echo(f"  {row['message']}")


__all__ = ["witness"]
