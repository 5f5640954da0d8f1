"""keys/fingerprint.py: derivation, display, parsing, matching (docs/protocol.md §4.3)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.keys.fingerprint import Fingerprint, fingerprint
from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, Signer, VerifyKey
from schakel.protocol.errors import MalformedError, UntrustedKeyError

KEY = Signer(bytes(range(32))).verify_key
raw_keys = st.binary(min_size=32, max_size=32)


def _independent(raw: bytes) -> str:
    """The derivation of protocol.md §4.3, written out with hashlib (not schakel.protocol.crypto)."""
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


# --------------------------------------------------------------------------- the server's

LOG = Signer(bytes(range(32, 64))).verify_key
GATE = BoxSecretKey(bytes(range(64, 96))).public_key


def _independent_server(log: bytes, gate: bytes) -> str:
    """The server fingerprint of protocol.md §4.3, written out with hashlib."""
    digest = hashlib.blake2b(log + gate, digest_size=40,
                             key=b"schakel/v1/server-fingerprint").digest()
    return " ".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}"
                    for i in range(0, 40, 5))


def test_server_fingerprint_matches_independent_derivation() -> None:
    assert str(Fingerprint.of_server(LOG, GATE)) == _independent_server(LOG.raw, GATE.raw)
    assert Fingerprint.of_server(LOG, GATE).matches_server(LOG, GATE) is None


@settings(max_examples=100)
@given(raw_keys, raw_keys, st.sampled_from(["log", "gate", "both"]))
def test_server_fingerprint_refuses_a_swapped_log_or_gate_key(other_log: bytes,
                                                              other_gate: bytes,
                                                              swapped: str) -> None:
    """A server fingerprint binds both keys: keeping one and swapping the other is caught."""
    log = VerifyKey(other_log) if swapped in ("log", "both") else LOG
    gate = BoxPublicKey(other_gate) if swapped in ("gate", "both") else GATE
    if (log.raw, gate.raw) == (LOG.raw, GATE.raw):
        return
    with pytest.raises(UntrustedKeyError):
        Fingerprint.of_server(LOG, GATE).matches_server(log, gate)


def test_server_fingerprint_is_separated_from_key_fingerprints() -> None:
    """Neither key's own fingerprint, nor the pair in the other order, is the server's."""
    server = Fingerprint.of_server(LOG, GATE)
    assert server not in {Fingerprint.of(LOG), Fingerprint.of(GATE),
                          Fingerprint.of_server(VerifyKey(GATE.raw), BoxPublicKey(LOG.raw))}


def test_server_fingerprint_needs_a_log_key_and_a_gate_key() -> None:
    with pytest.raises(MalformedError):
        Fingerprint.of_server(GATE, LOG)  # type: ignore[arg-type]
