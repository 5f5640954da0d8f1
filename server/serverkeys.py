"""The server's own keys (docs/protocol.md §14, "Data directory"; design §3): the Ed25519 **log
key** that signs tree heads and purge instructions, and the X25519 **gate key** whose seal
is the outer layer of every gated envelope.

Both are one :class:`schakel.keys.PartnerKeys` (its signer is the log key, its box key the gate
key) kept in ``DIR/server-keys.json``, a ``schakel-keystore/v1``.  The passphrase comes
from ``SCHAKEL_SERVER_PASSPHRASE`` or, when that is unset, from ``DIR/server-passphrase``,
which is generated at init with mode 0600.  The coordinator writes the two public keys
into the network genesis only when they have the server fingerprint
(:attr:`ServerKeys.fingerprint`) the operator gave it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from schakel.keys import Fingerprint, KdfParams, PartnerKeys, load_keystore, save_keystore
from schakel.keys.passphrase import service_passphrase
from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, Signer, VerifyKey

KEYSTORE_FILE = "server-keys.json"
PASSPHRASE_FILE = "server-passphrase"
PASSPHRASE_ENV = "SCHAKEL_SERVER_PASSPHRASE"
KEYSTORE_NAME = "Schakel server"


@dataclass(frozen=True)
class ServerKeys:
    """The log signer and gate secret.  ``repr`` shows key ids only."""

    keys: PartnerKeys

    @classmethod
    def generate(cls) -> "ServerKeys":
        return cls(PartnerKeys.generate())

    @property
    def log_signer(self) -> Signer:
        return self.keys.signer

    @property
    def gate_secret(self) -> BoxSecretKey:
        return self.keys.box_secret

    @property
    def log(self) -> VerifyKey:
        return self.keys.signer.verify_key

    @property
    def gate(self) -> BoxPublicKey:
        return self.keys.box_secret.public_key

    @property
    def fingerprint(self) -> Fingerprint:
        """The server fingerprint over both public keys (protocol.md §4.3): what the
        operator gives the coordinator, who founds a network only with it."""
        return Fingerprint.of_server(self.log, self.gate)

    def fingerprints(self) -> dict[str, str]:
        """What ``GET /v1/server`` answers and ``schakel server init`` prints."""
        return {"fingerprint": str(self.fingerprint),
                "log": self.log.b64(), "gate": self.gate.b64(),
                "log_key_id": self.log.key_id, "gate_key_id": self.gate.key_id,
                "log_fingerprint": str(Fingerprint.of(self.log)),
                "gate_fingerprint": str(Fingerprint.of(self.gate))}

    def __repr__(self) -> str:
        return f"ServerKeys(log={self.log.key_id}, gate={self.gate.key_id})"


def _passphrase(data_dir: Path, environ: Mapping[str, str], *, create: bool) -> str:
    return service_passphrase(data_dir / PASSPHRASE_FILE, PASSPHRASE_ENV, environ,
                              create=create, who="server")


def load_or_create(data_dir: Path, *, environ: Mapping[str, str] | None = None,
                   kdf: KdfParams | None = None) -> tuple[ServerKeys, bool]:
    """The server keys of ``data_dir``; generated (and saved) on first use.  Returns the
    keys and whether they were created now.

    The keystore's Argon2id cost defaults to MODERATE (256 MiB) for an operator's
    passphrase from ``SCHAKEL_SERVER_PASSPHRASE``, and to INTERACTIVE (64 MiB, the floor)
    for a passphrase the server generated itself: 256 random bits cannot be guessed, so a
    higher work factor would protect nothing and only raise the server's start-up memory.
    """
    environ = os.environ if environ is None else environ
    path = data_dir / KEYSTORE_FILE
    if path.exists():
        return ServerKeys(load_keystore(path, _passphrase(data_dir, environ, create=False))), False
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = PartnerKeys.generate()
    if kdf is None:
        kdf = KdfParams.MODERATE if environ.get(PASSPHRASE_ENV) else KdfParams.INTERACTIVE
    save_keystore(path, keys, _passphrase(data_dir, environ, create=True), name=KEYSTORE_NAME,
                  kdf=kdf)
    return ServerKeys(keys), True


__all__ = ["KEYSTORE_FILE", "PASSPHRASE_FILE", "PASSPHRASE_ENV", "ServerKeys", "load_or_create"]
