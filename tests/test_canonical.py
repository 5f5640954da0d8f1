"""Canonical JSON (RFC 8785), the strict parser, and unpadded base64url."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schakel.protocol.canonical import MAX_SAFE_INTEGER, canonical_json, parse_json
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import MalformedError

# --- RFC 8785 known answers ----------------------------------------------------------

# RFC 8785 §3.2.2: the "values" example — numbers, string escaping, literals.
RFC8785_VALUES_IN = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
RFC8785_VALUES_OUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)

# RFC 8785 §3.2.3: property sorting by UTF-16 code units.
RFC8785_SORT_IN = (
    '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
    ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control",'
    ' "\\u00f6": "Latin Small Letter O With Diaeresis"}'
)
RFC8785_SORT_ORDER = ["Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis",
                      "Euro Sign", "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh"]

# RFC 8785 Appendix B: IEEE 754 double (hex) -> canonical number text.
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def test_rfc8785_values_example() -> None:
    assert canonical_json(json.loads(RFC8785_VALUES_IN)) == RFC8785_VALUES_OUT.encode("utf-8")


def test_rfc8785_sorting_example() -> None:
    out = canonical_json(json.loads(RFC8785_SORT_IN)).decode("utf-8")
    assert list(json.loads(out).values()) == RFC8785_SORT_ORDER
    assert out.startswith('{"\\r":"Carriage Return","1":"One","\u0080":"Control"')


@pytest.mark.parametrize("hex_bits, expected", RFC8785_NUMBERS)
def test_rfc8785_number_serialisation(hex_bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    assert canonical_json(value) == expected.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_rfc8785_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(MalformedError):
        canonical_json(value)


@pytest.mark.parametrize("value", [{1: "int key"}, {"a": object()}, b"bytes", {"s": "\ud800"}])
def test_canonical_refuses_non_json(value: object) -> None:
    with pytest.raises(MalformedError):
        canonical_json(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    # Integral floats of 2**53 and more serialise like integers, which the strict
    # parser refuses (I-JSON); protocol objects carry no floats at all.
    | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_canonical_round_trip_is_a_fixed_point(value: object) -> None:
    encoded = canonical_json(value)
    decoded = parse_json(encoded)
    assert canonical_json(decoded) == encoded


# --- the strict parser ----------------------------------------------------------------

@pytest.mark.parametrize("raw, why", [
    (b'{"a": 1, "a": 2}', "duplicate"),
    (b'{"a": NaN}', "NaN"),
    (b'[Infinity]', "Infinity"),
    (b'{"a": 9007199254740992}', "I-JSON"),
    (b'{"a": ', "invalid JSON"),
    (b'\xff\xfe', "UTF-8"),
    (b'[' * 40 + b']' * 40, "nested"),
    (b'"' + b"x" * 200 + b'"', "larger"),
])
def test_parse_json_refuses(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedError, match=why):
        parse_json(raw, max_bytes=100)


def test_parse_json_refuses_non_bytes() -> None:
    with pytest.raises(MalformedError):
        parse_json(42)  # type: ignore[arg-type]


def test_parse_json_reads_a_whole_number_float_as_the_integer_it_is() -> None:
    """I-JSON numbers are doubles, RFC 8785 writes 1.0 as 1 and JSON Schema 2020-12 calls it
    an integer: the parsed value is the int, with the canonical form (so the hash and the
    signature) of 1.  Fractions and integers beyond 2**53 stay floats, which every integer
    field refuses."""
    value = parse_json(b'{"a": 1.0, "b": 2e0, "c": -0.0, "d": 1.5, "e": 9007199254740992.0}')
    assert value == {"a": 1, "b": 2, "c": 0, "d": 1.5, "e": 9007199254740992.0}
    assert [type(value[k]) for k in "abcde"] == [int, int, int, float, float]
    assert canonical_json(parse_json(b'{"serial": 1.0}')) == b'{"serial":1}'


@given(st.binary(max_size=200))
def test_parse_json_raises_only_malformed_on_garbage(data: bytes) -> None:
    try:
        parse_json(data)
    except MalformedError:
        pass


# --- base64url ------------------------------------------------------------------------

@given(st.binary(max_size=100))
def test_b64_round_trip(data: bytes) -> None:
    text = b64e(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64d(text) == data


@pytest.mark.parametrize("text", ["AA==", "A", "AB", "a+b/", "ab cd", "AAB", "Zm9v\n", "é"])
def test_b64_refuses_non_canonical_or_invalid(text: str) -> None:
    # "AB" and "AAB" have non-zero trailing bits: another string decodes to the same bytes.
    with pytest.raises(MalformedError):
        b64d(text)


def test_b64_length_checks() -> None:
    assert b64d(b64e(b"x" * 32), length=32) == b"x" * 32
    with pytest.raises(MalformedError, match="expected 32 bytes"):
        b64d(b64e(b"x" * 31), length=32)
    with pytest.raises(MalformedError, match="longer than"):
        b64d(b64e(b"x" * 100), max_length=10)
    with pytest.raises(MalformedError, match="expected a base64url string"):
        b64d(None)
