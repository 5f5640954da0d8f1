"""``schakel init``, ``schakel whoami`` and ``schakel keys bundle``: an organisation's
home directory — its keys, its server, the networks it trusts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from schakel.cli.commands.common import (
    check_url, json_option, partner_options, remember_server, run, with_partner,
)
from schakel.cli.commands.output import emit, heading, plain, table
from schakel.cli.helptext import Command
from schakel.cli.i18n import N_, _
from schakel.keys import KdfParams, passphrase_from
from schakel.protocol.errors import KeystoreError

if TYPE_CHECKING:
    from schakel.client.partner import Partner

KDF_CHOICES = {"moderate": KdfParams.MODERATE, "interactive": KdfParams.INTERACTIVE}


def _acting_user(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The wire form (docs/protocol.md common.json): 1..128 printable ASCII, no spaces."""
    if not 1 <= len(value) <= 128 or not all("!" <= ch <= "~" for ch in value):
        raise click.BadParameter("1 to 128 printable ASCII characters without spaces, e.g. "
                                 "a staff number or j.jansen@welzijn.nl", ctx=ctx, param=param)
    return value


@click.command(cls=Command)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default="schakel-home",
              envvar="SCHAKEL_HOME", show_default=True, show_envvar=True,
              help="The new home directory; it must not hold a keystore yet.")
@click.option("--name", required=True, help='Your organisation, e.g. "Welzijn Amersfoort".')
@click.option("--server", required=True, metavar="URL", callback=check_url,
              help="The Schakel server's address, e.g. https://schakel.gemeente.nl.")
@click.option("--acting-user", required=True, metavar="USER",
              callback=_acting_user,
              help="Who works with this home (a staff id or e-mail); every signed request "
                   "and every audit entry names this user.")
@click.option("--kdf", type=click.Choice(sorted(KDF_CHOICES)), default="moderate", show_default=True,
              help="How hard the passphrase is to guess by brute force: 'moderate' uses 256 MiB "
                   "of memory per try, 'interactive' 64 MiB (for small machines).")
@json_option
def init(home: Path, name: str, server: str, acting_user: str, kdf: str, as_json: bool) -> None:
    """Create your organisation's Schakel home: keys, server address, local state.

    Generates the signing and encryption keys (sleutels), encrypts them with a
    passphrase you choose, and prints the fingerprint (vingerafdruk) you read
    aloud at the covenant ceremony. Next: a coördinator founds a network
    (`schakel network create`); a partner hands `schakel keys bundle` and the
    fingerprint to the network's coördinator.
    """
    if (home / "keystore.json").exists():
        raise KeystoreError(f"{home} already holds a keystore; refusing to overwrite it "
                            "(choose another --home)")
    remember_server(server)
    passphrase = passphrase_from(confirm=True, prompt="New passphrase: ")

    async def create() -> dict[str, Any]:
        from schakel.client import Partner

        partner = await Partner.create(home, passphrase, name=name, server=server,
                                       acting_user=acting_user, kdf=KDF_CHOICES[kdf])
        try:
            return _identity(partner, home, server)
        finally:
            await partner.close()

    info = run(create())
    emit(info, as_json=as_json, rows=[
        (N_("home"), info["home"]), (N_("organisation"), info["name"]), (N_("key id"), info["key_id"]),
        (N_("fingerprint"), info["fingerprint"]), (N_("server"), info["server"]),
        (N_("acting user"), info["acting_user"]),
        *next_steps(home),
    ])


def next_steps(home: Path) -> list[tuple[str, str]]:
    """What comes after `schakel init`: it cannot know whether this organisation founds
    a network (the coördinator) or joins one (a partner), so it says both."""
    return [
        ("next, to found a network", "`schakel network create --home "
         f"{home} --name … --kind … --covenant-file … --server-fingerprint …`; then read "
         "this fingerprint aloud to every partner at the covenant ceremony"),
        ("next, to join a network", "read this fingerprint aloud to the network's "
         f"coördinator and send them `schakel keys bundle --home {home}`"),
    ]


def _identity(partner: "Partner", home: Path, server: str | None) -> dict[str, Any]:
    return {"home": str(home), "name": partner.name, "key_id": partner.key_id,
            "fingerprint": partner.fingerprint, "server": server or partner.server,
            "acting_user": partner.acting_user}


MISBEHAVIOUR_COLUMNS = [("at", N_("when")), ("network", N_("network")), ("what", N_("what")),
                        ("message", N_("message"))]


@click.command(cls=Command)
@partner_options
@json_option
def whoami(home: Path, server: str | None, as_json: bool) -> None:
    """Show who this home acts as: organisation, key id, fingerprint, server,
    networks, and any server misbehaviour this home caught and recorded.

    Nothing is fetched from the server. JSON keys: home, name, key_id,
    fingerprint, server, acting_user, networks, misbehaviours.
    """
    async def look(partner: "Partner") -> dict[str, Any]:
        info = _identity(partner, home, server)
        info["networks"] = list(partner.networks.trusted())
        info["misbehaviours"] = plain(partner.misbehaviours())
        return info

    info = with_partner(home, server, look)
    if as_json:
        emit(info, as_json=True)
        return
    recorded = info["misbehaviours"]
    emit(info, as_json=False, rows=[
        (N_("organisation"), info["name"]), (N_("key id"), info["key_id"]),
        (N_("fingerprint"), info["fingerprint"]), (N_("server"), info["server"] or "-"),
        (N_("acting user"), info["acting_user"]), (N_("home"), info["home"]),
        (N_("networks"), ", ".join(info["networks"]) or "none yet (schakel network trust / create)"),
        (N_("server misbehaviour"), f"{len(recorded)} recorded" if recorded else "none recorded"),
    ])
    if recorded:
        heading(_("server misbehaviour recorded by this home"))
        table(recorded, MISBEHAVIOUR_COLUMNS, empty=_("none"), limits={"message": 80})


@click.command("bundle", cls=Command)
@partner_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the bundle to this file instead of standard output.")
def keys_bundle(home: Path, server: str | None, out: Path | None) -> None:
    """Export this home's public keys, signed, for the coordinator (sleutelbundel).

    The same bundle as `schakel keys export-bundle`, for the keystore in --home.
    The coordinator adds you with `schakel member add NETWORK BUNDLE_FILE`,
    after comparing the fingerprint you read aloud.
    """
    async def bundle(partner: "Partner") -> dict[str, Any]:
        return partner.bundle()

    text = json.dumps(with_partner(home, server, bundle), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
