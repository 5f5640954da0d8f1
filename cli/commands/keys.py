"""``schakel keys``: a partner's own keys — create, show, hand over, verify, rotate."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypeVar

import click

from schakel.cli.commands.common import HOME_ENV
from schakel.cli.commands.output import emit
from schakel.cli.helptext import Group
from schakel.cli.i18n import N_
from schakel.keys import (
    Fingerprint, KdfParams, PartnerKeys, load_keystore, make_key_bundle, passphrase_from,
    read_keystore_info, rotate, save_keystore, verify_key_bundle,
)
from schakel.protocol.canonical import parse_json
from schakel.protocol.errors import MalformedError

DEFAULT_KEYSTORE = "schakel-keystore.json"
F = TypeVar("F", bound=Callable[..., Any])
KDF_CHOICES = {"moderate": KdfParams.MODERATE, "interactive": KdfParams.INTERACTIVE}

keystore_option = click.option(
    "--keystore", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_KEYSTORE,
    envvar="SCHAKEL_KEYSTORE", show_default=True, show_envvar=True,
    help="The encrypted keystore file of your organisation.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _read_keystore(f: F) -> F:
    """``--home DIR`` like every other command (its keystore.json), or ``--keystore FILE``
    (a keystore made by `schakel keys generate`; kept for the scripts that use it)."""
    f = click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     envvar="SCHAKEL_KEYSTORE", show_envvar=True,
                     help="A keystore file made by `schakel keys generate` [default: "
                          "schakel-keystore.json when no --home is given].")(f)   # DEFAULT_KEYSTORE
    return click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
                        envvar=HOME_ENV, show_envvar=True,
                        help="Your organisation's Schakel home: its keystore.json is read.")(f)


def keystore_of(home: Path | None, keystore: Path | None) -> Path:
    """The keystore file meant: what was typed wins over the environment, and --keystore
    over --home; with neither, ./schakel-keystore.json (where `keys generate` writes)."""
    ctx = click.get_current_context()
    typed = {name for name in ("home", "keystore")
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    if typed == {"home", "keystore"}:
        raise click.UsageError("give --home or --keystore, not both")
    if keystore is not None and (home is None or "home" not in typed):
        return keystore
    if home is not None:
        return home / "keystore.json"
    return Path(DEFAULT_KEYSTORE)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@click.group(cls=Group)
def keys() -> None:
    """Your organisation's keys (sleutels): create, show, hand over, rotate.

    The passphrase is asked at a prompt, or read from the environment variable
    SCHAKEL_PASSPHRASE when it is set (for scripts).
    """


@keys.command()
@click.option("--name", required=True, help='Your organisation, e.g. "Welzijn Amersfoort".')
@keystore_option
@click.option("--kdf", type=click.Choice(sorted(KDF_CHOICES)), default="moderate", show_default=True,
              help="How hard the passphrase is to guess by brute force: 'moderate' uses 256 MiB "
                   "of memory per try, 'interactive' 64 MiB (for small machines).")
@json_option
def generate(name: str, keystore: Path, kdf: str, as_json: bool) -> None:
    """Create your organisation's signing and encryption keys.

    Writes them to an encrypted keystore file (never overwrites one) and prints
    the fingerprint you read aloud at the covenant ceremony.
    """
    passphrase = passphrase_from(confirm=True, prompt="New passphrase: ")
    info = save_keystore(keystore, PartnerKeys.generate(), passphrase, name=name, kdf=KDF_CHOICES[kdf])
    emit({"keystore": str(keystore), "name": info.name, "key_id": info.key_id,
          "fingerprint": str(info.fingerprint)}, as_json=as_json,
         rows=[(N_("keystore"), str(keystore)), (N_("organisation"), info.name), (N_("key id"), info.key_id),
               (N_("fingerprint"), str(info.fingerprint))])


@keys.command()
@_read_keystore
@json_option
def show(home: Path | None, keystore: Path | None, as_json: bool) -> None:
    """Show the public part of a keystore (no passphrase needed): of the home in
    --home (or SCHAKEL_HOME), or of a --keystore file."""
    info = read_keystore_info(keystore_of(home, keystore))
    emit({"name": info.name, "key_id": info.key_id, "fingerprint": str(info.fingerprint),
          "public": info.public.to_json(),
          "kdf": {"opslimit": info.kdf.opslimit, "memlimit": info.kdf.memlimit}},
         as_json=as_json,
         rows=[(N_("organisation"), info.name), (N_("key id"), info.key_id),
               (N_("fingerprint"), str(info.fingerprint)), (N_("signing key"), info.public.sign.b64()),
               (N_("box key"), info.public.box.b64()),
               (N_("passphrase cost"), f"Argon2id, {info.kdf.opslimit} passes, "
                                   f"{info.kdf.memlimit // (1 << 20)} MiB")])


@keys.command()
@_read_keystore
def fingerprint(home: Path | None, keystore: Path | None) -> None:
    """Print your fingerprint in groups of five digits, to read aloud."""
    click.echo(str(read_keystore_info(keystore_of(home, keystore)).fingerprint))


@keys.command("export-bundle")
@_read_keystore
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the bundle to this file instead of standard output.")
def export_bundle(home: Path | None, keystore: Path | None, out: Path | None) -> None:
    """Export your public keys, signed, for the coordinator (sleutelbundel).

    The coordinator checks it with 'schakel keys verify-bundle' and the
    fingerprint you read aloud.
    """
    keystore = keystore_of(home, keystore)
    info = read_keystore_info(keystore)
    partner = load_keystore(keystore, passphrase_from())
    text = json.dumps(make_key_bundle(partner, name=info.name, created=_now()), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@keys.command("verify-bundle")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--fingerprint", "expected",
              help="The fingerprint the partner read aloud; the bundle is refused unless it matches.")
@json_option
def verify_bundle(bundle: Path, expected: str | None, as_json: bool) -> None:
    """Check a partner's key bundle (signature, and the spoken fingerprint)."""
    anchor = Fingerprint.parse(expected) if expected else None
    data = bundle.read_bytes()
    verified = verify_key_bundle(parse_json(data, max_bytes=16384), expected=anchor)
    emit({"name": verified.name, "key_id": verified.key_id, "fingerprint": str(verified.fingerprint),
          "fingerprint_checked": anchor is not None}, as_json=as_json,
         rows=[(N_("organisation"), verified.name), (N_("key id"), verified.key_id),
               (N_("fingerprint"), str(verified.fingerprint)),
               (N_("result"), "signature valid; fingerprint matches" if anchor else
                "signature valid; fingerprint NOT checked (use --fingerprint)")])


@keys.command("rotate")
@keystore_option
@click.option("--reason", required=True, help='Why, e.g. "laptop replaced" or "yearly rotation".')
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the rotation record to send to your coordinator.")
def rotate_keys(keystore: Path, reason: str, record: Path) -> None:
    """Replace your keys; the old key signs the hand-over to the new one.

    The old keystore is kept next to the new one as <keystore>.retired-<key id>,
    because identity released to the old key can only be opened with it.
    """
    if record.exists():
        raise MalformedError(f"{record} already exists; choose another --record path")
    info = read_keystore_info(keystore)
    passphrase = passphrase_from()
    old = load_keystore(keystore, passphrase)
    new, envelope = rotate(old, at=_now(), reason=reason)
    retired = keystore.with_name(f"{keystore.name}.retired-{old.key_id[:8]}")
    save_keystore(retired, old, passphrase, name=info.name, kdf=info.kdf)
    record.write_text(json.dumps(envelope, indent=2) + "\n", encoding="utf-8")
    save_keystore(keystore, new, passphrase, name=info.name, kdf=info.kdf, overwrite=True)
    click.echo(f"new key id   {new.key_id}")
    click.echo(f"retired key  kept in {retired}")
    click.echo(f"record       {record} (send it to your coordinator)")
