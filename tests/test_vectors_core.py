"""protocol/vectors/core.json is what the code produces, and a verifier built only
from the file's own numbers (not from protocol/envelopes.py) accepts it."""

from __future__ import annotations

import json

import nacl.bindings  # independent check of the AEAD vectors (tests may use nacl directly)
import pytest

from schakel.protocol import envelopes, signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import BoxSecretKey, ClassKey, VerifyKey
from schakel.protocol.encoding import b64d
from tests.vectors_core import VECTOR_PATH, _deterministic, deterministic_part

STORED = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))


def test_core_vectors_are_up_to_date() -> None:
    assert deterministic_part(STORED) == json.loads(json.dumps(_deterministic(), ensure_ascii=False)), \
        "protocol/vectors/core.json is stale: run `python tests/vectors_core.py` and review the diff"


@pytest.mark.parametrize("case", STORED["canonical_json"])
def test_canonical_vectors(case: dict) -> None:
    assert canonical_json(case["input"]).hex() == case["canonical_hex"]


def test_signature_vector_verifies() -> None:
    sig = STORED["signature"]
    key = VerifyKey.from_b64(sig["public_key"])
    assert signing.verify(sig["envelope"], "consent", [key])["type"] == "consent"
    assert bytes.fromhex(sig["signing_input_hex"]).startswith(b"schakel/v1/consent{")


@pytest.mark.parametrize("case", STORED["aead"], ids=lambda c: c["what"])
def test_aead_vectors_open_with_raw_libsodium(case: dict) -> None:
    ad = bytes.fromhex(case["associated_data_hex"])
    ctx = case["context"]
    assert ad == b"schakel/v1/aead" + canonical_json(ctx)
    blob = bytes.fromhex(case["ciphertext_hex"]) if "ciphertext_hex" in case else b64d(case["wrapped_case_key"])
    nonce, ct = blob[:24], blob[24:]
    assert nonce.hex() == case["nonce_hex"]
    plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, ad, nonce, bytes.fromhex(case["key_hex"]))
    assert plain.hex() == case["plaintext_hex"]


def test_gated_envelope_open_vector() -> None:
    g = STORED["gated_envelope"]
    ctx = envelopes.GateContext(network=g["context"]["network"], case=g["context"]["case"],
                                cls=g["context"]["class"], version=g["context"]["version"],
                                recipient=g["context"]["recipient"])
    inner = envelopes.open_gate(BoxSecretKey(bytes.fromhex(g["gate_secret_hex"])), g["gated"], ctx)
    assert inner == g["inner"]
    key = envelopes.open_class_key(BoxSecretKey(bytes.fromhex(g["member_secret_hex"])), inner, ctx)
    assert key == ClassKey(bytes.fromhex(g["class_key_hex"]))
