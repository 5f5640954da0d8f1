"""Domain-separated signatures over protocol objects (protocol/signing.py) and the
primitive wrappers in protocol/crypto.py.  One test per attack."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.protocol import signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import (
    BoxPublicKey, BoxSecretKey, CaseKey, EpochKey, Signer, VerifyKey, key_id,
)
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import DecryptionError, MalformedError, SignatureError

ALICE = Signer(bytes([1]) * 32)
BOB = Signer(bytes([2]) * 32)
CAROL = Signer(bytes([3]) * 32)
OBJ = {"type": "consent", "case": "c1", "classes": ["name"]}


def test_signing_input_is_prefix_type_and_canonical_json() -> None:
    assert signing.signing_input("consent", OBJ) == b"schakel/v1/consent" + canonical_json(OBJ)


def test_sign_and_verify_returns_the_signed_part() -> None:
    envelope = signing.sign("consent", OBJ, ALICE)
    assert signing.verify(envelope, "consent", [ALICE.verify_key]) == OBJ
    assert envelope["signatures"][0]["keyid"] == ALICE.key_id == key_id(ALICE.verify_key.raw)


def test_signature_for_one_type_does_not_verify_as_another() -> None:
    envelope = signing.sign("consent", OBJ, ALICE)
    forged = copy.deepcopy(envelope)
    forged["signed"]["type"] = "grant"
    with pytest.raises(SignatureError):
        signing.verify(forged, "grant", [ALICE.verify_key])
    with pytest.raises(SignatureError, match="expected a 'grant' object"):
        signing.verify(envelope, "grant", [ALICE.verify_key])


def test_tampered_signed_field_is_rejected() -> None:
    envelope = signing.sign("consent", OBJ, ALICE)
    envelope["signed"]["classes"] = ["name", "official"]
    with pytest.raises(SignatureError):
        signing.verify(envelope, "consent", [ALICE.verify_key])


def test_signature_by_unexpected_key_does_not_count() -> None:
    envelope = signing.sign("consent", OBJ, BOB)
    with pytest.raises(SignatureError, match="found 0"):
        signing.verify(envelope, "consent", [ALICE.verify_key])


def test_signature_claiming_expected_keyid_but_made_by_other_key() -> None:
    envelope = signing.sign("consent", OBJ, BOB)
    envelope["signatures"][0]["keyid"] = ALICE.key_id
    with pytest.raises(SignatureError):
        signing.verify(envelope, "consent", [ALICE.verify_key])


def test_co_signature_threshold() -> None:
    envelope = signing.add_signature(signing.sign("bemoeizorg-cosign", {"type": "bemoeizorg-cosign"}, ALICE), BOB)
    keys = [ALICE.verify_key, BOB.verify_key]
    signing.verify(envelope, "bemoeizorg-cosign", keys, threshold=2)
    with pytest.raises(SignatureError, match="needs 3"):
        signing.verify(envelope, "bemoeizorg-cosign", [*keys, CAROL.verify_key], threshold=3)
    with pytest.raises(MalformedError):
        signing.add_signature(envelope, BOB)  # the same key twice


def test_forged_co_signature_by_expected_key_is_an_error_not_skipped() -> None:
    envelope = signing.add_signature(signing.sign("consent", OBJ, ALICE), BOB)
    envelope["signatures"][1]["sig"] = envelope["signatures"][0]["sig"]
    with pytest.raises(SignatureError):
        signing.verify(envelope, "consent", [ALICE.verify_key, BOB.verify_key])


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=511))
def test_any_flipped_signature_bit_is_rejected(bit: int) -> None:
    envelope = signing.sign("consent", OBJ, ALICE)
    sig = bytearray(b64d(envelope["signatures"][0]["sig"]))
    sig[bit // 8] ^= 1 << (bit % 8)
    envelope["signatures"][0]["sig"] = b64e(bytes(sig))
    with pytest.raises(SignatureError):
        signing.verify(envelope, "consent", [ALICE.verify_key])


@settings(max_examples=200)
@given(st.integers(min_value=0))
def test_any_flipped_bit_of_the_signed_bytes_is_rejected(bit: int) -> None:
    message = signing.signing_input("consent", OBJ)
    sig = ALICE.sign(message)
    tampered = bytearray(message)
    tampered[(bit // 8) % len(message)] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        ALICE.verify_key.verify(bytes(tampered), sig)


@pytest.mark.parametrize("envelope", [
    None, [], {}, {"signed": OBJ}, {"signed": OBJ, "signatures": []},
    {"signed": OBJ, "signatures": [{"keyid": "x"}]},
    {"signed": OBJ, "signatures": [{"keyid": "x", "sig": "not base64!"}]},
    {"signed": OBJ, "signatures": [{"keyid": "x", "sig": b64e(b"short")}]},
    {"signed": OBJ, "signatures": [{"keyid": "x", "sig": b64e(bytes(64))}] * 2},
    {"signed": OBJ, "signatures": [{"keyid": str(i), "sig": b64e(bytes(64))} for i in range(9)]},
    {"signed": "x", "signatures": [{"keyid": "x", "sig": b64e(bytes(64))}]},
    {"signed": OBJ, "signatures": [{"keyid": "x", "sig": b64e(bytes(64))}], "extra": 1},
], ids=["none", "list", "empty", "no-signatures", "zero-signatures", "no-sig", "bad-base64",
        "short-sig", "duplicate-keyid", "too-many", "signed-not-object", "unknown-field"])
def test_malformed_envelope_raises_malformed(envelope: object) -> None:
    with pytest.raises(MalformedError):
        signing.verify(envelope, "consent", [ALICE.verify_key])  # type: ignore[arg-type]


@pytest.mark.parametrize("obj_type", ["", "Consent", "1abc", "a b", "x" * 65, None])
def test_invalid_object_type_is_malformed(obj_type: object) -> None:
    with pytest.raises(MalformedError):
        signing.signing_input(obj_type, OBJ)  # type: ignore[arg-type]


# --- primitive wrappers ---------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: Signer(b"short"), lambda: VerifyKey(bytes(31)), lambda: BoxPublicKey(bytes(33)),
    lambda: BoxSecretKey("x" * 32), lambda: CaseKey(bytes(16)), lambda: VerifyKey.from_b64("AAAA"),
    lambda: BoxPublicKey.from_b64(42),
], ids=["signer", "verify-key", "box-public", "box-secret-str", "case-key", "b64-short", "b64-int"])
def test_wrong_key_lengths_are_malformed(make: object) -> None:
    with pytest.raises(MalformedError):
        make()  # type: ignore[operator]


def test_secrets_do_not_appear_in_repr() -> None:
    key = CaseKey(bytes([0xAB]) * 32)
    assert "ab" not in repr(key).lower() and "<secret>" in repr(key)
    assert ALICE.export_seed().hex() not in repr(ALICE)
    box = BoxSecretKey(bytes([0xCD]) * 32)
    assert box.export_secret().hex() not in repr(box)


def test_symmetric_keys_of_different_roles_are_never_equal() -> None:
    assert CaseKey(bytes(32)) != EpochKey(bytes(32))
    assert CaseKey(bytes(32)) == CaseKey(bytes(32))


def test_sealed_box_round_trip_and_wrong_recipient() -> None:
    a, b = BoxSecretKey(bytes([4]) * 32), BoxSecretKey(bytes([5]) * 32)
    sealed = a.public_key.seal(b"epoch key")
    assert a.unseal(sealed) == b"epoch key"
    with pytest.raises(DecryptionError):
        b.unseal(sealed)
    with pytest.raises(DecryptionError):
        a.unseal(b"too short")
