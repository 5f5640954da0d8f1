"""Key rotation: the ``key-rotation`` object (docs/parts/keys.md §5).

``signed`` = ``{"type": "key-rotation", "old": <key id>, "new": {"sign", "box"},
"at": <timestamp>, "reason": <text>}``, signed by the old signing key (the
holder authorises the change) **and** the new one (proof of possession: nobody
can rotate *to* a key they do not hold, or claim someone else's key).  The
envelope carries exactly these two signatures.

A partner's rotation is followed by a new membership from the coordinator; a
coordinator's rotations form the chain ``keys/chain.py`` follows from the
genesis key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from protocol import signing
from protocol.crypto import VerifyKey
from protocol.errors import MalformedError, SignatureError, UntrustedKeyError

from keys._fields import (
    format_timestamp,
    parse_timestamp,
    require_fields,
    require_key_id,
    require_mapping,
    require_text,
)
from keys.partner import PartnerKeys, PublicKeys

TYPE = "key-rotation"
_FIELDS = frozenset({"type", "old", "new", "at", "reason"})


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
    key and then the new key.  ``at`` is floored to whole seconds.
    """
    require_text(reason, "reason")
    new = PartnerKeys.generate() if new is None else new
    if new.key_id == old.key_id:
        raise MalformedError("a rotation must change the signing key")
    signed = {"type": TYPE, "old": old.key_id, "new": new.public.to_json(),
              "at": format_timestamp(at, "at"), "reason": reason}
    envelope = signing.add_signature(signing.sign(TYPE, signed, old.signer), new.signer)
    return new, envelope


def verify_rotation_record(envelope: Mapping[str, Any], old_key: VerifyKey) -> Rotation:
    """Verify a ``key-rotation`` away from ``old_key`` and return all its fields.

    Raises :class:`MalformedError` for a malformed object,
    :class:`UntrustedKeyError` if it rotates another key, or rotates to the
    same key, and :class:`SignatureError` unless it carries exactly two valid
    signatures: by ``old_key`` and by the new signing key.
    """
    env = require_mapping(envelope, "key-rotation envelope")
    signed = require_mapping(env.get("signed"), "key-rotation.signed")
    if signed.get("type") != TYPE:
        raise SignatureError(f"expected a {TYPE!r} object, got {signed.get('type')!r}")
    require_fields(signed, "key-rotation", _FIELDS)
    old_id = require_key_id(signed["old"], "key-rotation.old")
    new = PublicKeys.from_json(signed["new"], "key-rotation.new")
    at = parse_timestamp(signed["at"], "key-rotation.at")
    reason = require_text(signed["reason"], "key-rotation.reason")
    if old_id != old_key.key_id:
        raise UntrustedKeyError(
            f"key-rotation replaces key {old_id}, not the expected key {old_key.key_id}",
            details={"expected": old_key.key_id, "old": old_id})
    if new.key_id == old_id:
        raise UntrustedKeyError("key-rotation does not change the signing key")
    claimed = signing.signers_of(env)
    if old_id not in claimed:
        raise SignatureError("key-rotation is not signed by the old key")
    if new.key_id not in claimed:
        raise SignatureError("key-rotation is not signed by the new key (no proof of possession)")
    if len(claimed) != 2:
        raise SignatureError("key-rotation must carry exactly the old and the new key's "
                             "signatures")
    signing.verify(env, TYPE, [old_key, new.sign], threshold=2)
    return Rotation(old=old_id, new=new, at=at, reason=reason)


def verify_rotation(envelope: Mapping[str, Any], old_key: VerifyKey) -> PublicKeys:
    """Verify a ``key-rotation`` away from ``old_key``; return the new public keys.

    See :func:`verify_rotation_record` for the checks and errors.
    """
    return verify_rotation_record(envelope, old_key).new


__all__ = ["Rotation", "rotate", "verify_rotation", "verify_rotation_record"]
