"""Unpadded base64url (RFC 4648 §5) for every binary value on the wire.

Decoding is strict: padding, whitespace, characters outside the url-safe
alphabet and non-canonical encodings (non-zero trailing bits) are refused with
:class:`~schakel.protocol.errors.MalformedError`, so one byte string has exactly one
text form and signatures over text cannot be malleated.
"""

from __future__ import annotations

import base64
import binascii
import re

from schakel.protocol.errors import MalformedError

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64e(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode("ascii")


def b64d(text: object, *, length: int | None = None, max_length: int | None = None,
         what: str = "value") -> bytes:
    """Decode unpadded base64url, refusing anything that is not its canonical form.

    ``length`` demands an exact decoded length (keys, nonces, hashes);
    ``max_length`` bounds it (ciphertexts).  ``what`` names the field in errors.
    """
    if not isinstance(text, str):
        raise MalformedError(f"{what}: expected a base64url string, got {type(text).__name__}",
                             details={"field": what})
    if max_length is not None and len(text) > (max_length * 4 + 2) // 3:
        raise MalformedError(f"{what}: longer than {max_length} bytes", details={"field": what})
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedError(f"{what}: not unpadded base64url", details={"field": what})
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedError(f"{what}: not unpadded base64url", details={"field": what}) from None
    if b64e(data) != text:
        raise MalformedError(f"{what}: non-canonical base64url", details={"field": what})
    if length is not None and len(data) != length:
        raise MalformedError(f"{what}: expected {length} bytes, got {len(data)}",
                             details={"field": what})
    return data


__all__ = ["b64e", "b64d"]
