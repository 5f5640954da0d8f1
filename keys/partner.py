"""A partner's key pair: Ed25519 signer + X25519 box key (docs/protocol.md §4.1).

:class:`PartnerKeys` holds the two secret keys as the role-named objects of
:mod:`schakel.protocol.crypto` and hands out *signers*, never raw private keys (style:
"keys/ hands out signers").  The only code that extracts the secret seeds is
the encrypted keystore (``keys/keystore.py``).  :class:`PublicKeys` is the
public half that travels on the wire as ``{"sign": b64url, "box": b64url}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, Signer, VerifyKey
from schakel.protocol.objects import network


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicKeys:
    """The public half of a partner's keys.

    ``sign`` verifies its signatures; ``box`` is what others seal to.  The
    partner's identity on the wire is :attr:`key_id`, the key id of ``sign``.
    """

    sign: VerifyKey
    box: BoxPublicKey

    def __post_init__(self) -> None:
        if not isinstance(self.sign, VerifyKey) or not isinstance(self.box, BoxPublicKey):
            raise TypeError("PublicKeys(sign=VerifyKey, box=BoxPublicKey)")

    @property
    def key_id(self) -> str:
        """The partner's identifier: ``schakel.protocol.crypto.key_id`` of the signing key."""
        return self.sign.key_id

    def to_json(self) -> dict[str, str]:
        """The wire form ``{"sign": b64url, "box": b64url}``."""
        return {"sign": self.sign.b64(), "box": self.box.b64()}

    def to_wire(self) -> network.PublicKeys:
        """The wire ``{sign, box}`` part, for the objects that embed it."""
        return network.PublicKeys.of(self.sign, self.box)

    @classmethod
    def from_json(cls, obj: object) -> "PublicKeys":
        """Parse ``{"sign", "box"}`` strictly: ``common.json#/$defs/public_keys`` through
        :class:`schakel.protocol.objects.network.PublicKeys` (no other fields, 32-byte keys)."""
        return cls.of(network.PublicKeys.from_json(obj))

    @classmethod
    def of(cls, wire: network.PublicKeys) -> "PublicKeys":
        """The typed keys of a validated wire ``{sign, box}`` part."""
        return cls(sign=wire.verify_key, box=wire.box_public_key)


class PartnerKeys:
    """A partner's secret keys: an Ed25519 :class:`Signer` and an X25519 :class:`BoxSecretKey`.

    Create with :meth:`generate`, or load from a keystore
    (:func:`schakel.keys.keystore.load_keystore`).  The ``repr`` shows the key id only.
    """

    __slots__ = ("_signer", "_box_secret")

    def __init__(self, signer: Signer, box_secret: BoxSecretKey) -> None:
        if not isinstance(signer, Signer) or not isinstance(box_secret, BoxSecretKey):
            raise TypeError("PartnerKeys(Signer, BoxSecretKey)")
        self._signer = signer
        self._box_secret = box_secret

    @classmethod
    def generate(cls) -> "PartnerKeys":
        """Fresh random keys from libsodium's CSPRNG."""
        return cls(Signer.generate(), BoxSecretKey.generate())

    @classmethod
    def from_secrets(cls, sign_seed: bytes, box_secret: bytes) -> "PartnerKeys":
        """Rebuild keys from their 32-byte secrets (keystore and test vectors only)."""
        return cls(Signer(sign_seed), BoxSecretKey(box_secret))

    @property
    def signer(self) -> Signer:
        """The Ed25519 signer: use it with :func:`schakel.protocol.signing.sign`."""
        return self._signer

    @property
    def box_secret(self) -> BoxSecretKey:
        """The X25519 secret key: opens sealed boxes addressed to :attr:`public` ``.box``."""
        return self._box_secret

    @property
    def public(self) -> PublicKeys:
        """The public keys (what goes into key bundles and memberships)."""
        return PublicKeys(sign=self._signer.verify_key, box=self._box_secret.public_key)

    @property
    def key_id(self) -> str:
        """The partner's key id (of the signing key)."""
        return self._signer.key_id

    def __repr__(self) -> str:
        return f"PartnerKeys(key_id={self.key_id})"


__all__ = ["PublicKeys", "PartnerKeys"]
