"""The self-signed ``key-bundle`` a partner hands the coordinator at the covenant
ceremony (docs/parts/keys.md §4).

``signed`` = ``{"type": "key-bundle", "sign", "box", "name", "created"}``, signed
by ``sign`` itself.  The self-signature proves possession of the signing key
and binds the box key and the name to it; it says nothing about *who* holds the
key.  That is what the fingerprint, read aloud at the ceremony, is for: pass it
as ``expected`` to :func:`verify_key_bundle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocol import signing
from protocol.errors import SignatureError

from keys._fields import (
    format_timestamp,
    parse_timestamp,
    require_box_key,
    require_fields,
    require_mapping,
    require_text,
    require_verify_key,
)
from keys.fingerprint import Fingerprint
from keys.partner import PartnerKeys, PublicKeys

TYPE = "key-bundle"
_FIELDS = frozenset({"type", "sign", "box", "name", "created"})


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
    require_text(name, "name")
    public = keys.public
    signed = {"type": TYPE, **public.to_json(), "name": name,
              "created": format_timestamp(created, "created")}
    return signing.sign(TYPE, signed, keys.signer)


def verify_key_bundle(envelope: Mapping[str, Any], *,
                      expected: Fingerprint | None = None) -> KeyBundle:
    """Check a ``key-bundle`` and return it.

    Raises :class:`MalformedError` for a malformed object,
    :class:`SignatureError` if it is not signed by its own ``sign`` key, and
    :class:`UntrustedKeyError` if ``expected`` is given and the key does not
    have that fingerprint.
    """
    env = require_mapping(envelope, "key-bundle envelope")
    signed = require_mapping(env.get("signed"), "key-bundle.signed")
    if signed.get("type") != TYPE:
        raise SignatureError(f"expected a {TYPE!r} object, got {signed.get('type')!r}")
    require_fields(signed, "key-bundle", _FIELDS)
    sign_key = require_verify_key(signed["sign"], "key-bundle.sign")
    box_key = require_box_key(signed["box"], "key-bundle.box")
    name = require_text(signed["name"], "key-bundle.name")
    created = parse_timestamp(signed["created"], "key-bundle.created")
    if expected is not None:
        expected.matches(sign_key)
    signing.verify(env, TYPE, [sign_key])
    return KeyBundle(name=name, created=created, public=PublicKeys(sign=sign_key, box=box_key))


__all__ = ["KeyBundle", "make_key_bundle", "verify_key_bundle"]
