"""A bounded subset of RFC 8941 Structured Field Values, for the HTTP signature
fields (``Signature-Input``, ``Signature``) and ``Content-Digest`` (docs/protocol.md,
HTTP signatures section).

Dictionaries of items and inner lists with integer, string, token, byte-sequence
and boolean bare items; no decimals.  Stricter than RFC 8941 on purpose: a
repeated dictionary key or parameter is an error instead of "last one wins", so
one header can never mean two things.  Raises only :class:`MalformedError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Union

from schakel.protocol.errors import MalformedError

MAX_INT = 999_999_999_999_999
MAX_SF_MEMBERS = 16           #: dictionary members, inner-list items, parameters
MAX_SF_LENGTH = 4096          #: bytes in one Signature/Signature-Input/Content-Digest value
SF_KEY = re.compile(r"[a-z*][a-z0-9_.*-]{0,63}")                     # RFC 8941 §3.1.2
_SF_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")     # RFC 8941 §3.3.4
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_SF_INT = re.compile(r"-?[0-9]{1,15}")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_SF_BYTES = re.compile(r":([^:]*):")
_SF_BOOL = re.compile(r"\?[01]")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")                          # ASCII only, no CR/LF


def malformed(what: str) -> MalformedError:
    return MalformedError(what, details={"component": "httpsig"})


class Token(str):
    """An RFC 8941 sf-token, kept apart from an sf-string (``keyid="x"`` is not ``keyid=x``)."""


BareItem = Union[int, str, bytes, bool]
Params = dict[str, BareItem]
Item = tuple[BareItem, Params]
Member = tuple[Union[BareItem, tuple[Item, ...]], Params]


class _Parser:
    """RFC 8941 §4.2 parsing, restricted to dictionaries of items and inner lists with
    integer, string, token, byte-sequence and boolean bare items (no decimals).
    Stricter than RFC 8941 on purpose: a repeated dictionary key or parameter is an
    error instead of "last one wins", so one header can never mean two things."""

    def __init__(self, text: object, what: str) -> None:
        if not isinstance(text, str):
            raise malformed(f"{what}: expected a string")
        if len(text) > MAX_SF_LENGTH:
            raise malformed(f"{what}: longer than {MAX_SF_LENGTH} characters")
        if not _FIELD_VALUE.fullmatch(text):
            raise malformed(f"{what}: non-ASCII or control characters")
        self.s, self.i, self.what = text.strip(" "), 0, what

    def fail(self, why: str) -> MalformedError:
        return malformed(f"{self.what}: {why} at offset {self.i}")

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip(self, chars: str) -> None:
        while self.i < len(self.s) and self.s[self.i] in chars:
            self.i += 1

    def match(self, pattern: re.Pattern[str], why: str) -> str:
        m = pattern.match(self.s, self.i)
        if not m or not m.group():
            raise self.fail(why)
        self.i = m.end()
        return m.group()

    def dictionary(self) -> dict[str, Member]:
        out: dict[str, Member] = {}
        while self.i < len(self.s):
            key = self.match(SF_KEY, "expected a key")
            if key in out:
                raise self.fail(f"duplicate key {key!r}")
            if len(out) >= MAX_SF_MEMBERS:
                raise self.fail("too many members")
            if self.peek() == "=":
                self.i += 1
                out[key] = self.item_or_inner_list()
            else:
                out[key] = (True, self.params())
            self.skip(" \t")
            if self.i == len(self.s):
                break
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.i += 1
            self.skip(" \t")
            if self.i == len(self.s):
                raise self.fail("trailing ','")
        return out

    def item_or_inner_list(self) -> Member:
        if self.peek() != "(":
            return self.bare(), self.params()
        self.i += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.i += 1
                return tuple(items), self.params()
            if len(items) >= MAX_SF_MEMBERS * 2:
                raise self.fail("inner list too long")
            items.append((self.bare(), self.params()))
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')'")

    def params(self) -> Params:
        out: Params = {}
        while self.peek() == ";":
            self.i += 1
            self.skip(" ")
            key = self.match(SF_KEY, "expected a parameter key")
            if key in out or len(out) >= MAX_SF_MEMBERS:
                raise self.fail(f"duplicate or too many parameters ({key!r})")
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare()
            out[key] = value
        return out

    def bare(self) -> BareItem:
        c = self.peek()
        if c == "-" or c.isdigit():
            text = self.match(_SF_INT, "expected an integer")
            if self.peek() == "." or self.peek().isdigit():
                raise self.fail("decimals and integers over 15 digits are not supported")
            return int(text)
        if c == '"':
            m = _SF_STRING.match(self.s, self.i)
            if not m:
                raise self.fail("bad string")
            self.i = m.end()
            return re.sub(r'\\(["\\])', r"\1", m.group(1))
        if c == ":":
            m = _SF_BYTES.match(self.s, self.i)
            if not m or not _B64.fullmatch(m.group(1)):
                raise self.fail("bad byte sequence")
            self.i = m.end()
            return b64std_decode(m.group(1), self.fail)
        if c == "?":
            text = self.match(_SF_BOOL, "bad boolean")
            return text == "?1"
        if c.isalpha() or c == "*":
            return Token(self.match(_SF_TOKEN, "bad token"))
        raise self.fail("expected an item")


def b64std_decode(text: str, fail: Callable[[str], MalformedError]) -> bytes:
    """Standard, padded, canonical base64 (RFC 8941 §3.3.5 byte sequences)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise fail("bad base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise fail("non-canonical base64")
    return data


def parse_dictionary(value: object, what: str = "structured field") -> dict[str, Member]:
    """Parse an RFC 8941 §3.2 dictionary (bounded subset); raises only :class:`MalformedError`."""
    if type(value) is str and len(value) <= MAX_SF_LENGTH:
        fast = _fast_dictionary(value)
        if fast is not None:
            return fast
    return _Parser(value, what).dictionary()


# --- a fast path for the shapes every signed request carries ------------------------------
# One dictionary member that is either a byte sequence (``Signature``, ``Content-Digest``:
# ``sig1=:<base64>:``) or an inner list of plain strings with integer or escape-free string
# parameters (``Signature-Input``).  A value matched by these expressions -- exactly this
# grammar, nothing around it -- parses to the same result as :class:`_Parser`; a value the
# fast path is not sure about (not matched, too many items or parameters, a repeated
# parameter, non-canonical base64) goes to :class:`_Parser`, which parses it or words the
# refusal.  tests/test_sfv_fast.py compares both.

_KEY = r"[a-z*][a-z0-9_.*-]{0,63}"
_PLAIN_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_FAST_BYTES = re.compile(rf"({_KEY})=:([A-Za-z0-9+/]*={{0,2}}):")
_FAST_INNER = re.compile(
    rf"({_KEY})=\(((?:{_PLAIN_STRING}(?: {_PLAIN_STRING})*)?)\)"
    rf"((?:;{_KEY}=(?:-?[0-9]{{1,15}}|{_PLAIN_STRING}))*)")
_FAST_ITEM = re.compile(r'"([^"]*)"')
_FAST_PARAM = re.compile(rf';({_KEY})=(?:(-?[0-9]{{1,15}})|"([^"]*)")')


def _fast_dictionary(text: str) -> dict[str, Member] | None:
    m = _FAST_BYTES.fullmatch(text)
    if m is not None:
        encoded = m.group(2)
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
        if base64.b64encode(data).decode("ascii") != encoded:
            return None
        return {m.group(1): (data, {})}
    m = _FAST_INNER.fullmatch(text)
    if m is None:
        return None
    inner = m.group(2)
    items: tuple[Item, ...] = tuple((s, {}) for s in _FAST_ITEM.findall(inner))
    if len(items) > MAX_SF_MEMBERS * 2:
        return None
    params: Params = {}
    for p in _FAST_PARAM.finditer(m.group(3)):
        key = p.group(1)
        if key in params or len(params) >= MAX_SF_MEMBERS:
            return None
        number = p.group(2)
        params[key] = int(number) if number is not None else p.group(3)
    return {m.group(1): (items, params)}


_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


def serialize_string(value: str) -> str:
    if not isinstance(value, str) or not _PRINTABLE_ASCII.fullmatch(value):
        raise malformed("parameter strings must be printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_param_value(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise malformed("signature parameters must be integers or strings")
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise malformed("integer parameter out of range")
        return str(value)
    return serialize_string(value)


__all__ = ["Token", "BareItem", "Params", "Item", "Member", "parse_dictionary", "b64std_decode",
           "serialize_string", "serialize_param_value", "malformed", "MAX_SF_LENGTH",
           "MAX_SF_MEMBERS", "MAX_INT", "SF_KEY"]
