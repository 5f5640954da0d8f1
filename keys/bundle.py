"""The self-signed ``key-bundle`` a partner hands the coordinator at the covenant
ceremony (docs/protocol.md §4.4).

``signed`` = ``{"type": "key-bundle", "sign", "box", "name", "created"}``, signed
by ``sign`` itself.  The self-signature proves possession of the signing key
and binds the box key and the name to it; it says nothing about *who* holds the
key.  That is what the fingerprint, read aloud at the ceremony, is for: pass it
as ``expected`` to :func:`verify_key_bundle`.

The object and its schema are :class:`schakel.protocol.objects.network.KeyBundle`; this
module adds the fingerprint check and the typed result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schakel.protocol.crypto import VerifyKey
from schakel.protocol.objects import network
from schakel.protocol.objects.base import format_timestamp, parse_timestamp

from schakel.keys.fingerprint import Fingerprint
from schakel.keys.partner import PartnerKeys, PublicKeys

TYPE = network.KeyBundle.TYPE


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyBundle:
    """A verified key bundle."""

    name: str
    created: datetime
    public: PublicKeys

    @property
    def key_id(self) -> str:
        return self.public.key_id

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint.of(self.public.sign)


def make_key_bundle(keys: PartnerKeys, *, name: str, created: datetime) -> dict[str, Any]:
    """A ``key-bundle`` envelope for ``keys``, self-signed (``created`` floored to seconds)."""
    public = keys.public
    bundle = network.KeyBundle(sign_key=public.sign.b64(), box_key=public.box.b64(), name=name,
                               created=format_timestamp(created, "created"))
    return bundle.sign(keys.signer)


def verify_key_bundle(envelope: Mapping[str, Any], *,
                      expected: Fingerprint | None = None) -> KeyBundle:
    """Check a ``key-bundle`` and return it.

    Raises :class:`MalformedError` for a malformed object,
    :class:`SignatureError` if it is not signed by its own ``sign`` key, and
    :class:`UntrustedKeyError` if ``expected`` is given and the key does not
    have that fingerprint.
    """
    if expected is not None:
        expected.matches(VerifyKey.from_b64(network.KeyBundle.peek(envelope)["sign"], "sign"))
    bundle = network.KeyBundle.from_self_signed(envelope)
    return KeyBundle(name=bundle.name, created=parse_timestamp(bundle.created),
                     public=PublicKeys.of(bundle.keys))


__all__ = ["KeyBundle", "make_key_bundle", "verify_key_bundle"]
