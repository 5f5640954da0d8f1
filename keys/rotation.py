"""Key rotation: the ``key-rotation`` object (docs/protocol.md §4.5).

``signed`` = ``{"type": "key-rotation", "old": <key id>, "new": {"sign", "box"},
"at": <timestamp>, "reason": <text>}``, signed by the old signing key (the
holder authorises the change) **and** the new one (proof of possession: nobody
can rotate *to* a key they do not hold, or claim someone else's key).  The
envelope carries exactly these two signatures.

The object, its schema and its signature rule are
:class:`schakel.protocol.objects.network.KeyRotation`; this module adds the trust checks
(which key is being rotated) and the typed result.  A partner's rotation is
followed by a new membership from the coordinator; a coordinator's rotations
form the chain ``keys/chain.py`` follows from the genesis key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schakel.protocol import signing
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.errors import UntrustedKeyError
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.protocol.objects.network import KeyRotation

from schakel.keys.partner import PartnerKeys, PublicKeys

TYPE = KeyRotation.TYPE


@dataclass(frozen=True, slots=True, kw_only=True)
class Rotation:
    """A verified key rotation: ``old`` (key id) was replaced by ``new`` at ``at``."""

    old: str
    new: PublicKeys
    at: datetime
    reason: str


def rotate(old: PartnerKeys, *, at: datetime, reason: str,
           new: PartnerKeys | None = None) -> tuple[PartnerKeys, dict[str, Any]]:
    """Replace ``old`` by fresh keys (or by ``new``, for test vectors).

    Returns the new keys and the ``key-rotation`` envelope signed by the old
    key and then the new key.  ``at`` is floored to whole seconds; a rotation to
    the same signing key is a :class:`MalformedError`.
    """
    new = PartnerKeys.generate() if new is None else new
    rotation = KeyRotation(old=old.key_id, new=new.public.to_wire(),
                           at=format_timestamp(at, "at"), reason=reason)
    return new, signing.add_signature(rotation.sign(old.signer), new.signer)


def verify_rotation_record(envelope: Mapping[str, Any], old_key: VerifyKey) -> Rotation:
    """Verify a ``key-rotation`` away from ``old_key`` and return all its fields.

    Raises :class:`MalformedError` for a malformed object,
    :class:`UntrustedKeyError` if it rotates another key, or rotates to the
    same key, and :class:`SignatureError` unless it carries exactly two valid
    signatures: by ``old_key`` and by the new signing key.
    """
    signed = KeyRotation.peek(envelope)
    if signed["old"] != old_key.key_id:
        raise UntrustedKeyError(
            f"key-rotation replaces key {signed['old']}, not the expected key {old_key.key_id}",
            details={"expected": old_key.key_id, "old": signed["old"]})
    if PublicKeys.from_json(signed["new"]).key_id == old_key.key_id:
        raise UntrustedKeyError("key-rotation does not change the signing key")
    rotation = KeyRotation.from_envelope_with_old_key(envelope, old_key)
    return Rotation(old=rotation.old, new=PublicKeys.of(rotation.new),
                    at=parse_timestamp(rotation.at), reason=rotation.reason)


def verify_rotation(envelope: Mapping[str, Any], old_key: VerifyKey) -> PublicKeys:
    """Verify a ``key-rotation`` away from ``old_key``; return the new public keys.

    See :func:`verify_rotation_record` for the checks and errors.
    """
    return verify_rotation_record(envelope, old_key).new


__all__ = ["Rotation", "rotate", "verify_rotation", "verify_rotation_record"]
