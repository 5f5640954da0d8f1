"""Canonical JSON (RFC 8785, JCS) and a strict, bounded JSON parser.

One encoder is used for signing *and* verifying, so a verifier never hashes a
different byte string than the signer did.  The parser is the only way external
JSON enters the protocol: it bounds size and nesting, refuses duplicate keys,
``NaN``/``Infinity`` and integers outside the I-JSON range (RFC 7493 §2.2), and
raises :class:`~protocol.errors.MalformedError` for everything it refuses.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from protocol.errors import MalformedError

#: Default upper bound for one JSON document (bytes).  Routes set tighter ones.
MAX_DOCUMENT_BYTES = 1 << 20
#: Default nesting bound: protocol objects nest a handful of levels deep.
MAX_DEPTH = 16
#: I-JSON safe integer range (RFC 7493 §2.2).
MAX_SAFE_INTEGER = (1 << 53) - 1


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` to its RFC 8785 canonical UTF-8 bytes.

    Raises :class:`MalformedError` for values JCS cannot represent (non-string
    keys, NaN, integers beyond 2**53, lone surrogates, other Python types).
    """
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeEncodeError) as exc:
        raise MalformedError(f"cannot canonicalise value: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in pairs:
        if key in out:
            raise MalformedError(f"duplicate JSON key {key!r}", details={"field": key})
        out[key] = val
    return out


def _check(value: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise MalformedError(f"JSON nested deeper than {max_depth} levels")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise MalformedError("JSON integer outside the I-JSON range (|n| <= 2**53-1)")
        return
    if isinstance(value, float):
        return
    if isinstance(value, list):
        for item in value:
            _check(item, depth + 1, max_depth)
        return
    if isinstance(value, dict):
        for item in value.values():
            _check(item, depth + 1, max_depth)
        return
    raise MalformedError(f"unexpected JSON value of type {type(value).__name__}")


def parse_json(data: bytes | str, *, max_bytes: int = MAX_DOCUMENT_BYTES,
               max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document from outside, strictly and within bounds."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError(f"expected JSON bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise MalformedError(f"JSON document larger than {max_bytes} bytes",
                             details={"limit": max_bytes})
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedError("JSON document is not valid UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates,
                           parse_constant=_reject_constant)
    except MalformedError:
        raise
    except RecursionError:
        raise MalformedError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise MalformedError(f"invalid JSON: {exc.args[0] if exc.args else exc}") from None
    _check(value, 0, max_depth)
    return value


__all__ = ["canonical_json", "parse_json", "MAX_DOCUMENT_BYTES", "MAX_DEPTH", "MAX_SAFE_INTEGER"]
