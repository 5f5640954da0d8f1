"""Strict readers for the fields ``keys/`` reads from wire objects (private).

``keys/`` does not depend on the wire-object models elsewhere in ``protocol/``;
it validates exactly the fields it consumes, following
docs/parts/00-conventions.md and the shared definitions in
``protocol/schemas/common.json`` (``short_text``, ``timestamp``, ``id``, ...).
Every refusal is a :class:`~protocol.errors.MalformedError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from protocol.crypto import KEY_BYTES, BoxPublicKey, VerifyKey
from protocol.encoding import b64d
from protocol.errors import MalformedError

#: Object ids are 16 random bytes (conventions: Identifiers).
ID_BYTES = 16
#: ``short_text`` in protocol/schemas/common.json: names, reasons.
SHORT_TEXT_MAX = 200
#: I-JSON safe integer bound (RFC 7493 §2.2).
MAX_SAFE_INTEGER = (1 << 53) - 1

_TIMESTAMP = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z")
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def require_mapping(value: object, what: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or :class:`MalformedError`."""
    if not isinstance(value, Mapping):
        raise MalformedError(f"{what}: expected a JSON object, got {type(value).__name__}",
                             details={"field": what})
    return value


def require_fields(obj: object, what: str, fields: frozenset[str] | set[str]) -> Mapping[str, Any]:
    """``obj`` as a JSON object with exactly ``fields``: none missing, none unknown."""
    obj = require_mapping(obj, what)
    missing = set(fields) - set(obj)
    if missing:
        raise MalformedError(f"{what}: missing field(s) {sorted(missing)}",
                             details={"field": what, "missing": sorted(missing)})
    unknown = set(obj) - set(fields)
    if unknown:
        raise MalformedError(f"{what}: unknown field(s) {sorted(unknown)}",
                             details={"field": what, "unknown": sorted(unknown)})
    return obj


def require_enum(value: object, what: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` exactly."""
    if not isinstance(value, str) or value not in allowed:
        raise MalformedError(f"{what}: must be one of {list(allowed)}, got {value!r}",
                             details={"field": what})
    return value


def require_text(value: object, what: str, max_chars: int = SHORT_TEXT_MAX) -> str:
    """A printable string of 1..``max_chars`` characters (no control characters)."""
    if not isinstance(value, str):
        raise MalformedError(f"{what}: expected a string, got {type(value).__name__}",
                             details={"field": what})
    if not 1 <= len(value) <= max_chars:
        raise MalformedError(f"{what}: must be 1..{max_chars} characters",
                             details={"field": what})
    if not value.isprintable():
        raise MalformedError(f"{what}: contains control or non-printable characters",
                             details={"field": what})
    return value


def require_serial(value: object, what: str) -> int:
    """An integer 1..2**53-1 (booleans are not integers on the wire)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAFE_INTEGER:
        raise MalformedError(f"{what}: must be an integer >= 1", details={"field": what})
    return value


def require_id(value: object, what: str) -> str:
    """An object id: 16 bytes in canonical unpadded base64url (22 characters)."""
    b64d(value, length=ID_BYTES, what=what)
    assert isinstance(value, str)
    return value


def require_key_id(value: object, what: str) -> str:
    """A key id: a 32-byte hash in canonical unpadded base64url (43 characters)."""
    b64d(value, length=KEY_BYTES, what=what)
    assert isinstance(value, str)
    return value


def require_verify_key(value: object, what: str) -> VerifyKey:
    """An Ed25519 public key (32 bytes, base64url)."""
    return VerifyKey.from_b64(value, what=what)


def require_box_key(value: object, what: str) -> BoxPublicKey:
    """An X25519 public key (32 bytes, base64url)."""
    return BoxPublicKey.from_b64(value, what=what)


def parse_timestamp(value: object, what: str) -> datetime:
    """RFC 3339 UTC with ``Z`` and whole seconds -> an aware UTC datetime."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise MalformedError(f"{what}: expected an RFC 3339 UTC timestamp like "
                             f"2026-11-28T22:00:00Z, got {value!r}", details={"field": what})
    try:
        return datetime.strptime(value, _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise MalformedError(f"{what}: not a calendar date/time: {value!r}",
                             details={"field": what}) from None


def require_aware(moment: object, what: str) -> datetime:
    """A timezone-aware datetime (the protocol never guesses a time zone)."""
    if not isinstance(moment, datetime):
        raise MalformedError(f"{what}: expected a datetime, got {type(moment).__name__}",
                             details={"field": what})
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MalformedError(f"{what}: datetime must be timezone-aware (UTC)",
                             details={"field": what})
    return moment.astimezone(UTC)


def format_timestamp(moment: datetime, what: str = "timestamp") -> str:
    """An aware datetime -> the wire form, floored to whole seconds."""
    m = require_aware(moment, what)
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}"
            f"T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z")


def whole_seconds(moment: datetime, what: str = "timestamp") -> datetime:
    """The instant :func:`format_timestamp` writes (aware, UTC, floored to seconds)."""
    return require_aware(moment, what).replace(microsecond=0)
