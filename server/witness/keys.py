"""The witness's name and Ed25519 key (docs/protocol.md §17.4), kept as the Schakel server
keeps its log key (:mod:`schakel.server.serverkeys`): a ``schakel-keystore/v1`` at
``DIR/witness-keys.json`` whose passphrase comes from ``SCHAKEL_WITNESS_PASSPHRASE`` or,
when that is unset, from ``DIR/witness-passphrase`` (generated at init, mode 0600).  The
keystore holds a :class:`~schakel.keys.PartnerKeys`; the witness uses its signer only.

``DIR/witness.json`` holds the public part (name and verifier key), so that ``schakel
witness show`` and ``add-log`` need not unlock the key.  The secret key is never logged:
:class:`WitnessKey`'s ``repr`` shows the name and key hash only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schakel.keys import KdfParams, PartnerKeys, load_keystore, save_keystore
from schakel.keys.passphrase import service_passphrase
from schakel.protocol.crypto import Signer
from schakel.protocol.errors import KeystoreError
from schakel.protocol.note import (
    COSIGNATURE_V1,
    NoteSignature,
    NoteVerifier,
    check_name,
    cosign,
)

KEYSTORE_FILE = "witness-keys.json"
PASSPHRASE_FILE = "witness-passphrase"
PASSPHRASE_ENV = "SCHAKEL_WITNESS_PASSPHRASE"
IDENTITY_FILE = "witness.json"
KEYSTORE_NAME = "Schakel witness"


@dataclass(frozen=True)
class WitnessKey:
    """The witness's name and signer."""

    name: str
    signer: Signer

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, COSIGNATURE_V1, self.signer.verify_key)

    @property
    def vkey(self) -> str:
        """``<name>+<key hash>+base64(0x04 || key)``: what a network's coordinator puts in
        the policy."""
        return self.verifier.vkey()

    def cosign(self, text: str, timestamp: int) -> NoteSignature:
        return cosign(text, self.name, self.signer, timestamp)

    def __repr__(self) -> str:
        return f"WitnessKey({self.name}, {self.verifier.key_hash.hex()})"


def _passphrase(data_dir: Path, environ: Mapping[str, str], *, create: bool) -> str:
    return service_passphrase(data_dir / PASSPHRASE_FILE, PASSPHRASE_ENV, environ,
                              create=create, who="witness")


def identity(data_dir: Path) -> dict[str, str]:
    """The public ``{"name", "vkey"}`` of the witness in ``data_dir``."""
    path = data_dir / IDENTITY_FILE
    if not path.exists():
        raise KeystoreError(f"{data_dir} holds no witness (schakel witness init)")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {"name": str(data["name"]), "vkey": str(data["vkey"])}


def create(data_dir: Path, name: str, *, environ: Mapping[str, str] | None = None,
           kdf: KdfParams | None = None) -> WitnessKey:
    """Create the witness ``name``'s key in ``data_dir`` (refused if one exists)."""
    environ = os.environ if environ is None else environ
    check_name(name, "witness name")
    if (data_dir / KEYSTORE_FILE).exists():
        raise KeystoreError(f"{data_dir} holds a witness already")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = PartnerKeys.generate()
    if kdf is None:
        kdf = KdfParams.MODERATE if environ.get(PASSPHRASE_ENV) else KdfParams.INTERACTIVE
    save_keystore(data_dir / KEYSTORE_FILE, keys, _passphrase(data_dir, environ, create=True),
                  name=KEYSTORE_NAME, kdf=kdf)
    key = WitnessKey(name, keys.signer)
    (data_dir / IDENTITY_FILE).write_text(
        json.dumps({"name": name, "vkey": key.vkey}, indent=2) + "\n", encoding="utf-8")
    return key


def load(data_dir: Path, *, environ: Mapping[str, str] | None = None) -> WitnessKey:
    """Unlock the witness key of ``data_dir``; it must match ``witness.json``."""
    environ = os.environ if environ is None else environ
    public = identity(data_dir)
    keys = load_keystore(data_dir / KEYSTORE_FILE, _passphrase(data_dir, environ, create=False))
    key = WitnessKey(public["name"], keys.signer)
    if key.vkey != public["vkey"]:
        raise KeystoreError(f"{IDENTITY_FILE} does not name the key in {KEYSTORE_FILE}")
    return key


__all__ = ["IDENTITY_FILE", "KEYSTORE_FILE", "PASSPHRASE_ENV", "PASSPHRASE_FILE", "WitnessKey",
           "create", "identity", "load"]
