"""Context-bound encryption (protocol/envelopes.py): AEAD contexts, sealed payloads,
gated envelopes and blind indexes.  One test per attack; hypothesis for bit flips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schakel.protocol import envelopes as env
from schakel.protocol.crypto import (
    BoxSecretKey, CaseKey, ClassKey, EpochKey, MatchKey, aead_decrypt, aead_encrypt,
)
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import ContextMismatchError, DecryptionError, MalformedError

NET, CASE, OTHER_CASE = "n" * 21 + "A", "c" * 21 + "A", "d" * 21 + "A"
CASE_KEY = CaseKey(bytes(range(32)))
CLASS_KEY = ClassKey(bytes(range(1, 33)))
GATE = BoxSecretKey(bytes([7]) * 32)
MEMBER = BoxSecretKey(bytes([9]) * 32)
OTHER_MEMBER = BoxSecretKey(bytes([11]) * 32)
FAST = dict(opslimit=1, memlimit=8192 * 1024)

EVENT_CTX = env.event_context(NET, CASE, "e1", version=1)
GATE_CTX = env.GateContext(network=NET, case=CASE, cls="name", version=1, recipient="member-a")


def flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- AEAD -----------------------------------------------------------------------------

def test_aead_round_trip() -> None:
    blob = env.encrypt(CASE_KEY, b"anonymous layer", EVENT_CTX)
    assert env.decrypt(CASE_KEY, blob, EVENT_CTX) == b"anonymous layer"


@settings(max_examples=200)
@given(st.integers(min_value=0))
def test_aead_any_flipped_ciphertext_bit_is_rejected(bit: int) -> None:
    blob = env.encrypt(CASE_KEY, b"some event plaintext", EVENT_CTX)
    with pytest.raises(DecryptionError):
        env.decrypt(CASE_KEY, flip(blob, bit), EVENT_CTX)


@settings(max_examples=200)
@given(st.integers(min_value=0))
def test_aead_any_flipped_associated_data_bit_is_rejected(bit: int) -> None:
    ad = EVENT_CTX.associated_data()
    blob = aead_encrypt(CASE_KEY, b"payload", ad)
    with pytest.raises(DecryptionError):
        aead_decrypt(CASE_KEY, blob, flip(ad, bit))


@pytest.mark.parametrize("other", [
    env.event_context(NET, OTHER_CASE, "e1", version=1),          # swapped between cases
    env.event_context("m" * 21 + "A", CASE, "e1", version=1),     # moved to another network
    env.event_context(NET, CASE, "e2", version=1),                # replayed as another event
    env.event_context(NET, CASE, "e1", version=2),                # replayed under a new key version
    env.identity_context(NET, CASE, "name", version=1),           # moved to the identity layer
], ids=["other-case", "other-network", "other-event", "other-version", "other-layer"])
def test_ciphertext_does_not_open_in_another_context(other: env.AeadContext) -> None:
    blob = env.encrypt(CASE_KEY, b"event", EVENT_CTX)
    with pytest.raises(DecryptionError):
        env.decrypt(CASE_KEY, blob, other)


def test_identity_class_does_not_open_as_another_class() -> None:
    blob = env.encrypt(CLASS_KEY, b'{"bsn":"111222333"}', env.identity_context(NET, CASE, "official", version=1))
    with pytest.raises(DecryptionError):
        env.decrypt(CLASS_KEY, blob, env.identity_context(NET, CASE, "name", version=1))


def test_wrong_key_is_rejected_like_any_other_failure() -> None:
    blob = env.encrypt(CASE_KEY, b"event", EVENT_CTX)
    with pytest.raises(DecryptionError, match="^cannot decrypt$"):
        env.decrypt(CaseKey(bytes(32)), blob, EVENT_CTX)
    with pytest.raises(DecryptionError, match="^cannot decrypt$"):
        env.decrypt(CASE_KEY, blob[:10], EVENT_CTX)


@pytest.mark.parametrize("kwargs", [
    dict(layer="secret", version=1),
    dict(layer="anonymous", version=0),
    dict(layer="anonymous", version=True),
    dict(layer="identity", version=1),                  # identity needs a class
    dict(layer="anonymous", version=1, cls="name"),     # anonymous has none
    dict(layer="anonymous", version=1, object="x" * 65),
])
def test_bad_aead_context_is_malformed(kwargs: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        env.AeadContext(network=NET, case=CASE, **kwargs)  # type: ignore[arg-type]


def test_case_key_wrap_is_bound_to_epoch_and_case() -> None:
    epoch = EpochKey(bytes([3]) * 32)
    wrapped = env.wrap_case_key(epoch, CASE_KEY, network=NET, case=CASE, epoch=1, version=1)
    assert env.unwrap_case_key(epoch, wrapped, network=NET, case=CASE, epoch=1, version=1) == CASE_KEY
    for kwargs in (dict(case=OTHER_CASE, epoch=1), dict(case=CASE, epoch=2)):
        with pytest.raises(DecryptionError):
            env.unwrap_case_key(epoch, wrapped, network=NET, version=1, **kwargs)  # type: ignore[arg-type]


def test_encrypt_json_round_trip() -> None:
    text = env.encrypt_json(CASE_KEY, {"kind": "note", "text": "hallo"}, EVENT_CTX)
    assert env.decrypt_json(CASE_KEY, text, EVENT_CTX) == {"kind": "note", "text": "hallo"}


# --- sealed payloads ------------------------------------------------------------------

def test_case_key_sealed_to_shell_partner_opens_only_for_its_context() -> None:
    sealed = env.seal_case_key(MEMBER.public_key, CASE_KEY, network=NET, case=CASE, version=1,
                               recipient_id="housing")
    assert env.open_case_key(MEMBER, sealed, network=NET, case=CASE, version=1,
                             recipient_id="housing") == CASE_KEY
    with pytest.raises(ContextMismatchError):
        env.open_case_key(MEMBER, sealed, network=NET, case=OTHER_CASE, version=1, recipient_id="housing")
    with pytest.raises(ContextMismatchError):
        env.open_case_key(MEMBER, sealed, network=NET, case=CASE, version=1, recipient_id="police")
    with pytest.raises(DecryptionError):
        env.open_case_key(OTHER_MEMBER, sealed, network=NET, case=CASE, version=1, recipient_id="housing")


def test_epoch_keys_round_trip_and_bind_epoch() -> None:
    # The payload is an epoch-key-payload (schema): the recipient is a key id.
    epoch, match, a = EpochKey(bytes([1]) * 32), MatchKey(bytes([2]) * 32), "a" * 42 + "A"
    sealed = env.seal_epoch_keys(MEMBER.public_key, epoch, match, network=NET, epoch=4, recipient_id=a)
    assert env.open_epoch_keys(MEMBER, sealed, network=NET, epoch=4, recipient_id=a) == (epoch, match)
    with pytest.raises(ContextMismatchError):
        env.open_epoch_keys(MEMBER, sealed, network=NET, epoch=5, recipient_id=a)


def test_epoch_key_payload_is_checked_against_its_schema_on_both_sides() -> None:
    epoch, match = EpochKey(bytes([1]) * 32), MatchKey(bytes([2]) * 32)
    with pytest.raises(MalformedError, match="recipient"):
        env.seal_epoch_keys(MEMBER.public_key, epoch, match, network=NET, epoch=4, recipient_id="a")
    forged = env.seal_json(MEMBER.public_key, "epoch-key-payload", {
        "network": NET, "epoch": 4, "recipient": "a", "epoch_key": b64e(bytes(32)),
        "match_key": b64e(bytes(32)), "extra": 1})
    with pytest.raises(MalformedError):
        env.open_epoch_keys(MEMBER, forged, network=NET, epoch=4, recipient_id="a")


def test_sealed_payload_that_is_not_a_typed_object_is_malformed() -> None:
    for plain in (b"[1]", b'{"network": "x"}', b'{"type": 1}'):
        with pytest.raises(MalformedError):
            env.open_json(MEMBER, b64e(MEMBER.public_key.seal(plain)), "case-key", {})


def test_justification_round_trip_and_context() -> None:
    ctx = dict(network=NET, invocation="i" * 21 + "A", case=CASE, auditor="auditor-1")
    sealed = env.seal_justification(MEMBER.public_key, "Grond: vervuiling.\nZie dossier.", **ctx)
    assert env.open_justification(MEMBER, sealed, **ctx) == "Grond: vervuiling.\nZie dossier."
    for field, value in (("invocation", "j" * 21 + "A"), ("case", OTHER_CASE), ("auditor", "x")):
        with pytest.raises(ContextMismatchError):
            env.open_justification(MEMBER, sealed, **{**ctx, field: value})
    with pytest.raises(DecryptionError):
        env.open_justification(OTHER_MEMBER, sealed, **ctx)
    for text in ("", "x" * 12001):
        with pytest.raises(MalformedError):
            env.seal_justification(MEMBER.public_key, text, **ctx)


def test_sealed_payload_of_other_type_is_refused() -> None:
    sealed = env.seal_json(MEMBER.public_key, "case-key", {"network": NET})
    with pytest.raises(ContextMismatchError):
        env.open_json(MEMBER, sealed, "class-key", {"network": NET})


# --- gated envelopes ------------------------------------------------------------------

def test_gated_envelope_needs_both_server_and_member() -> None:
    blob = env.make_gated(GATE.public_key, MEMBER.public_key, CLASS_KEY, GATE_CTX)
    # The member alone cannot remove the server's seal.
    with pytest.raises(DecryptionError):
        env.open_class_key(MEMBER, blob, GATE_CTX)
    # The server alone gets only the inner envelope, which it cannot open.
    inner = env.open_gate(GATE, blob, GATE_CTX)
    with pytest.raises(DecryptionError):
        env.open_class_key(GATE, inner, GATE_CTX)
    assert env.open_class_key(MEMBER, inner, GATE_CTX) == CLASS_KEY


@pytest.mark.parametrize("field, value", [
    ("case", OTHER_CASE), ("cls", "official"), ("version", 2), ("recipient", "member-b"),
    ("network", "m" * 21 + "A"),
])
def test_gated_envelope_for_one_context_does_not_open_as_another(field: str, value: object) -> None:
    blob = env.make_gated(GATE.public_key, MEMBER.public_key, CLASS_KEY, GATE_CTX)
    other = env.GateContext(**{"network": NET, "case": CASE, "cls": "name", "version": 1,
                               "recipient": "member-a", field: value})
    with pytest.raises(ContextMismatchError):
        env.open_gate(GATE, blob, other)
    inner = env.open_gate(GATE, blob, GATE_CTX)
    with pytest.raises(ContextMismatchError):
        env.open_class_key(MEMBER, inner, other)


@settings(max_examples=100)
@given(st.integers(min_value=0))
def test_gated_envelope_any_flipped_bit_is_rejected(bit: int) -> None:
    blob = b64d(env.make_gated(GATE.public_key, MEMBER.public_key, CLASS_KEY, GATE_CTX))
    with pytest.raises(DecryptionError):
        env.open_gate(GATE, b64e(flip(blob, bit)), GATE_CTX)


@settings(max_examples=100)
@given(st.integers(min_value=0))
def test_released_inner_envelope_any_flipped_bit_is_rejected(bit: int) -> None:
    inner = b64d(env.open_gate(GATE, env.make_gated(GATE.public_key, MEMBER.public_key, CLASS_KEY,
                                                    GATE_CTX), GATE_CTX))
    with pytest.raises(DecryptionError):
        env.open_class_key(MEMBER, b64e(flip(inner, bit)), GATE_CTX)


def test_gated_envelope_rejects_garbage() -> None:
    for garbage in ("", "!!!", b64e(b"x" * 47), b64e(b"x" * 200)):
        with pytest.raises((DecryptionError, MalformedError)):
            env.open_gate(GATE, garbage, GATE_CTX)


# --- blind indexes --------------------------------------------------------------------

def test_blind_index_is_deterministic_per_network_and_truncated() -> None:
    key = MatchKey(bytes([5]) * 32)
    a = env.blind_index(key, "bsn", env.normalise_bsn("111.222.333"), size=8, **FAST)
    b = env.blind_index(key, "bsn", env.normalise_bsn("111222333"), size=8, **FAST)
    other_net = env.blind_index(MatchKey(bytes([6]) * 32), "bsn", "111222333", size=8, **FAST)
    other_kind = env.blind_index(key, "name-dob", "111222333", size=8, **FAST)
    assert a == b and len(a) == 8
    assert a not in (other_net, other_kind)


def test_blind_index_normalisation() -> None:
    assert env.normalise_bsn("11122233") == "011122233"
    assert env.normalise_name("Dijkstra-Émile") == "dijkstraemile"
    assert env.normalise_name("van der Berg") == "vanderberg"
    with pytest.raises(MalformedError):
        env.normalise_bsn("12")
    with pytest.raises(MalformedError):
        env.normalise_name("123")
    with pytest.raises(MalformedError):
        env.blind_index(MatchKey(bytes(32)), "bsn", "x", size=2, **FAST)
    with pytest.raises(MalformedError):
        env.blind_index(MatchKey(bytes(32)), "name", "x", size=8, **FAST)  # type: ignore[arg-type]


def test_blind_index_is_the_prefix_of_a_32_byte_argon2id_output() -> None:
    """protocol.md §3.6 computed without schakel.protocol.envelopes: the salt is BLAKE2b-128 keyed
    with the match key; Argon2id (t = opslimit, m = memlimit / 1024 KiB, p = 1) always
    gives 32 bytes, and the token is their first ``size`` bytes, not a shorter output."""
    import hashlib

    import nacl.pwhash.argon2id as argon2id

    match_key = bytes([5]) * 32
    for kind, normalised in (("bsn", "111222333"), ("name-dob", "vanderberg|1948-03-12")):
        salt = hashlib.blake2b(b"schakel/v1/blind-index-salt/" + kind.encode(), key=match_key,
                               digest_size=16).digest()
        out = argon2id.kdf(32, f"{kind}:{normalised}".encode(), salt, **FAST)
        token = env.blind_index(MatchKey(match_key), kind, normalised, size=8, **FAST)
        assert token == out[:8]
        assert token != argon2id.kdf(16, f"{kind}:{normalised}".encode(), salt, **FAST)[:8]
    assert env.normalise_name("'t Hart") == "thart"
    assert env.normalise_name("Straße") == "strasse"
    assert env.normalise_name("Ĳsselmuiden") == "ijsselmuiden"
