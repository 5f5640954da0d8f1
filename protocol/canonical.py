"""Canonical JSON (RFC 8785, JCS) and a strict, bounded JSON parser.

One encoder is used for signing *and* verifying, so a verifier never hashes a
different byte string than the signer did.  The parser is the only way external
JSON enters the protocol: it bounds size and nesting, refuses duplicate keys,
``NaN``/``Infinity`` and integers outside the I-JSON range (RFC 7493 §2.2), and
raises :class:`~schakel.protocol.errors.MalformedError` for everything it refuses.  A number
with a zero fraction (``2.0``, ``2e0``) is the integer it equals, as in I-JSON, RFC 8785
(which writes it ``2``) and JSON Schema 2020-12 (for which it is an ``integer``).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import rfc8785

from schakel.protocol.errors import MalformedError

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
    if _plain(value, 0):
        try:
            return _dumps(value).encode("utf-8")
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
            pass                        # lone surrogates and the like: rfc8785 words it
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, UnicodeEncodeError) as exc:
        raise MalformedError(f"cannot canonicalise value: {exc}") from None


# The fast path.  For a value built only of dicts with ASCII string keys, lists, strings,
# integers within the I-JSON range, booleans and None (exactly these types, not
# subclasses) -- every protocol object, which carries no floats -- RFC 8785 and the C
# encoder of the standard library write the same bytes: integers in decimal; strings with
# only '"', '\\' and U+0000..U+001F escaped, \b \f \n \r \t short and the others as
# lower-case \u00xx, everything else as UTF-8; members sorted by key, and for ASCII keys
# UTF-16 code-unit order (RFC 8785 §3.2.3) is code-point order.  Anything else (floats,
# tuples, subclasses, non-ASCII keys, deep nesting) takes rfc8785 itself.
# tests/test_canonical_fast.py compares both on arbitrary JSON and every code point.

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                          check_circular=False, allow_nan=False).encode
_PLAIN_DEPTH = 32


def _plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if type(value) is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if depth >= _PLAIN_DEPTH:
        return False
    if kind is dict:
        for key in value:
            if type(key) is not str or not key.isascii():
                return False
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if not _plain(item, depth + 1):
            return False
    return True


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: the integer it equals when it is whole
    and within the I-JSON range (so ``2.0`` has the canonical form, hash and signature of
    ``2``), else the float (refused wherever an object wants an integer)."""
    value = float(text)
    if value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return value


def _reject_constant(name: str) -> NoReturn:
    raise MalformedError(f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):                  # no key twice (the common case, in C)
        return out
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise MalformedError(f"duplicate JSON key {key!r}", details={"field": key})
        seen.add(key)
    raise AssertionError("unreachable")  # pragma: no cover


def _check(value: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise MalformedError(f"JSON nested deeper than {max_depth} levels")
    kind = type(value)
    if (kind is dict or kind is list) and depth < max_depth:
        # The same walk, in the same order, with the common members (strings, booleans,
        # null, integers in range) checked here instead of by a call each.
        for item in (value.values() if kind is dict else value):
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            _check(item, depth + 1, max_depth)
        return
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
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_number,
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
