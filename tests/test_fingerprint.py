"""keys/fingerprint.py: derivation, display, parsing, matching (docs/protocol.md §4.3)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.fingerprint import Fingerprint, fingerprint
from protocol.crypto import Signer, VerifyKey
from protocol.errors import MalformedError, UntrustedKeyError

KEY = Signer(bytes(range(32))).verify_key
raw_keys = st.binary(min_size=32, max_size=32)


def _independent(raw: bytes) -> str:
    """The derivation of protocol.md §4.3, written out with hashlib (not protocol.crypto)."""
    digest = hashlib.blake2b(raw, digest_size=40, key=b"schakel/v1/fingerprint").digest()
    return " ".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}"
                    for i in range(0, 40, 5))


def test_fingerprint_matches_independent_derivation() -> None:
    assert str(fingerprint(KEY)) == _independent(KEY.raw)


def test_fingerprint_is_eight_groups_of_five_digits() -> None:
    text = str(fingerprint(KEY))
    groups = text.split(" ")
    assert len(groups) == 8 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert len(fingerprint(KEY).digits) == 40


@settings(max_examples=200)
@given(raw_keys)
def test_parse_of_str_round_trips(raw: bytes) -> None:
    fp = fingerprint(VerifyKey(raw))
    assert Fingerprint.parse(str(fp)) == fp
    assert str(fp) == _independent(raw)


@settings(max_examples=200)
@given(raw_keys, st.integers(min_value=0, max_value=39), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_fails_matching(raw: bytes, position: int, delta: int) -> None:
    key = VerifyKey(raw)
    digits = list(fingerprint(key).digits)
    digits[position] = str((int(digits[position]) + delta) % 10)
    altered = Fingerprint.parse("".join(digits))
    with pytest.raises(UntrustedKeyError):
        altered.matches(key)


def test_matching_key_returns_none() -> None:
    assert fingerprint(KEY).matches(KEY) is None


def test_other_key_does_not_match() -> None:
    with pytest.raises(UntrustedKeyError):
        fingerprint(KEY).matches(Signer(bytes(32)).verify_key)


@pytest.mark.parametrize("sep", ["", " ", "-", "  ", "\t", "\n", " - "])
def test_parse_accepts_any_whitespace_or_dash_grouping(sep: str) -> None:
    fp = fingerprint(KEY)
    assert Fingerprint.parse(sep.join(fp.groups)) == fp
    assert Fingerprint.parse(f"  {sep.join(fp.digits)}  ") == fp


@pytest.mark.parametrize("text", [
    "", "1234", "1" * 39, "1" * 41, "a" * 40, "١" * 40,  # Arabic-Indic digits are not 0-9
    "12345.67890.12345.67890.12345.67890.12345.67890", "1" * 300,
])
def test_parse_refuses_malformed_text(text: str) -> None:
    with pytest.raises(MalformedError):
        Fingerprint.parse(text)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(MalformedError):
        Fingerprint.parse(b"1" * 40)


def test_fingerprint_is_immutable_and_hashable() -> None:
    fp = fingerprint(KEY)
    with pytest.raises(AttributeError):
        fp._digits = "0" * 40  # type: ignore[misc]
    assert {fp, Fingerprint.parse(str(fp))} == {fp}
