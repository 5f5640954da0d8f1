"""Domain-separated signatures over protocol objects (docs/protocol.md §3).

Every signed object travels as an *envelope*, never with in-band signatures::

    {"signed": {"type": "<object-type>", ...}, "signatures": [{"keyid": "...", "sig": "..."}]}

Each signature is Ed25519 over the *signing input*::

    b"schakel/v1/" + type + canonical_json(signed)

``type`` matches ``[a-z][a-z0-9-]*`` and the canonical JSON of an object always
starts with ``{``, so the concatenation is unambiguous: a signature made for one
object type can never verify as another.  ``keyid`` is
:func:`schakel.protocol.crypto.key_id` of the signer's public key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import SIGNATURE_BYTES, Signer, VerifyKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import MalformedError, SignatureError

DOMAIN_PREFIX = b"schakel/v1/"
_TYPE = re.compile(r"[a-z][a-z0-9-]{0,63}")
#: An object is signed by at most this many keys (author + co-signers).
MAX_SIGNATURES = 8


def _check_type(obj_type: object) -> str:
    if not isinstance(obj_type, str) or not _TYPE.fullmatch(obj_type):
        raise MalformedError(f"invalid object type {obj_type!r}", details={"field": "type"})
    return obj_type


def signing_input(obj_type: str, signed: Mapping[str, Any]) -> bytes:
    """The exact bytes every signature over a ``obj_type`` object covers."""
    _check_type(obj_type)
    if type(signed) is not dict and not isinstance(signed, Mapping):
        raise MalformedError("signed part must be a JSON object", details={"field": "signed"})
    if signed.get("type") != obj_type:
        raise MalformedError(f"signed.type must be {obj_type!r}", details={"field": "signed.type"})
    return DOMAIN_PREFIX + obj_type.encode("ascii") + canonical_json(dict(signed))


def sign(obj_type: str, signed: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """Wrap ``signed`` (which must carry ``"type": obj_type``) in a one-signature envelope."""
    sig = signer.sign(signing_input(obj_type, signed))
    return {"signed": dict(signed), "signatures": [{"keyid": signer.key_id, "sig": b64e(sig)}]}


def add_signature(envelope: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """Return a copy of ``envelope`` with one more signature (a co-sign)."""
    signed, signatures = _split(envelope)
    if any(s["keyid"] == signer.key_id for s in signatures):
        raise MalformedError("this key already signed the object")
    if len(signatures) >= MAX_SIGNATURES:
        raise MalformedError(f"an object carries at most {MAX_SIGNATURES} signatures")
    sig = signer.sign(signing_input(signed["type"], signed))
    return {"signed": signed, "signatures": [*signatures, {"keyid": signer.key_id, "sig": b64e(sig)}]}


def _split(envelope: object) -> tuple[dict[str, Any], list[dict[str, str]]]:
    signed, signatures, _ = _split_decoded(envelope)
    return signed, signatures


def _split_decoded(envelope: object) -> tuple[dict[str, Any], list[dict[str, str]], list[bytes]]:
    """:func:`_split`, with each signature's decoded bytes (decoded once, to check them)."""
    if type(envelope) is not dict and not isinstance(envelope, Mapping):
        raise MalformedError("envelope must be a JSON object")
    extra = set(envelope) - {"signed", "signatures"}
    if extra:
        raise MalformedError(f"unknown envelope fields: {sorted(extra)}")
    signed = envelope.get("signed")
    signatures = envelope.get("signatures")
    if type(signed) is not dict and not isinstance(signed, Mapping):
        raise MalformedError("envelope.signed must be a JSON object", details={"field": "signed"})
    if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_SIGNATURES:
        raise MalformedError(f"envelope.signatures must be a list of 1..{MAX_SIGNATURES}",
                             details={"field": "signatures"})
    seen: set[str] = set()
    raw: list[bytes] = []
    for i, s in enumerate(signatures):
        if (type(s) is not dict and not isinstance(s, Mapping)) or set(s) != {"keyid", "sig"}:
            raise MalformedError("a signature is {keyid, sig}", details={"field": f"signatures[{i}]"})
        if not isinstance(s["keyid"], str) or s["keyid"] in seen:
            raise MalformedError("signature keyids must be distinct strings",
                                 details={"field": f"signatures[{i}].keyid"})
        seen.add(s["keyid"])
        raw.append(b64d(s["sig"], length=SIGNATURE_BYTES, what=f"signatures[{i}].sig"))
    return dict(signed), [dict(s) for s in signatures], raw


def signers_of(envelope: Mapping[str, Any]) -> list[str]:
    """The key ids an envelope *claims* signed it (unverified; for key lookup)."""
    return [s["keyid"] for s in _split(envelope)[1]]


def verify(envelope: Mapping[str, Any], obj_type: str, keys: Iterable[VerifyKey],
           *, threshold: int = 1) -> dict[str, Any]:
    """Verify an envelope and return its ``signed`` part — only after verification.

    ``keys`` are the keys whose signatures count; at least ``threshold`` distinct
    ones among them must have a valid signature.  Signatures by other key ids are
    ignored; a signature by a counted key that does not verify is an error, not
    something to skip (a forged co-signature is an attack worth reporting).
    """
    _check_type(obj_type)
    signed, signatures, raw = _split_decoded(envelope)
    if signed.get("type") != obj_type:
        raise SignatureError(f"expected a {obj_type!r} object, got {signed.get('type')!r}")
    _check_signatures(obj_type, signing_input(obj_type, signed), signatures, raw, keys,
                      threshold)
    return signed


def verify_canonical(envelope: Mapping[str, Any], obj_type: str, keys: Iterable[VerifyKey],
                     canonical_signed: bytes, *, threshold: int = 1) -> dict[str, Any]:
    """:func:`verify` for a reader that already holds the canonical JSON of the signed
    part (it stores or hashes the envelope too): the signatures of ``envelope`` are
    checked over ``canonical_signed``, and the answer is parsed from those very bytes --
    what was verified, whatever ``envelope["signed"]`` holds."""
    _check_type(obj_type)
    _, signatures, raw = _split_decoded(envelope)
    signed = parse_json(canonical_signed, max_bytes=len(canonical_signed))
    if not isinstance(signed, dict) or signed.get("type") != obj_type:
        got = signed.get("type") if isinstance(signed, dict) else None
        raise SignatureError(f"expected a {obj_type!r} object, got {got!r}")
    _check_signatures(obj_type, DOMAIN_PREFIX + obj_type.encode("ascii") + canonical_signed,
                      signatures, raw, keys, threshold)
    return signed


def _check_signatures(obj_type: str, message: bytes, signatures: list[dict[str, str]],
                      raw: list[bytes], keys: Iterable[VerifyKey], threshold: int) -> None:
    by_id = {k.key_id: k for k in keys}
    if threshold < 1 or threshold > len(by_id):
        raise MalformedError("threshold must be between 1 and the number of keys")
    valid = 0
    for s, sig in zip(signatures, raw):
        key = by_id.get(s["keyid"])
        if key is None:
            continue
        key.verify(message, sig)
        valid += 1
    if valid < threshold:
        raise SignatureError(f"{obj_type} needs {threshold} valid signature(s) from the "
                             f"expected keys, found {valid}")


__all__ = ["DOMAIN_PREFIX", "MAX_SIGNATURES", "signing_input", "sign", "add_signature",
           "signers_of", "verify", "verify_canonical"]
