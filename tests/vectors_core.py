"""Generator for protocol/vectors/core.json: canonical JSON, signed envelopes,
AEAD with context, sealed and gated envelopes, blind indexes.

Keys and nonces are fixed (bytes 0x00.., 0x01.., ...), so everything except the
sealed boxes is byte-for-byte reproducible.  Sealed boxes use a fresh ephemeral
key by construction (crypto_box_seal), so their vectors are *open* vectors: the
recipient's secret key, the ciphertext and the plaintext it must open to.

Run ``python tests/vectors_core.py`` to rewrite the file after a deliberate change;
tests/test_vectors_core.py rebuilds the deterministic part and checks the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schakel.protocol import envelopes, signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import BoxSecretKey, CaseKey, ClassKey, EpochKey, MatchKey, Signer
from schakel.protocol.encoding import b64e

VECTOR_PATH = Path(__file__).resolve().parent.parent / "protocol" / "vectors" / "core.json"

NETWORK = b64e(bytes(range(16)))
CASE = b64e(bytes(range(16, 32)))
EVENT = b64e(bytes(range(32, 48)))
SIGNER_SEED = bytes([0x01]) * 32
CASE_KEY = bytes([0x02]) * 32
CLASS_KEY = bytes([0x03]) * 32
EPOCH_KEY = bytes([0x04]) * 32
MATCH_KEY = bytes([0x05]) * 32
GATE_SECRET = bytes([0x06]) * 32
MEMBER_SECRET = bytes([0x07]) * 32
NONCE = bytes(range(24))

CANONICAL_CASES: list[Any] = [
    {"b": 1, "a": [True, None, "x"], "é": "ü"},
    {"network": NETWORK, "classes": ["name", "address"], "version": 1},
    {"nested": {"z": 1, "a": {"y": [], "b": {}}}, "text": "tab\tnewline\nquote\"€"},
]


def _deterministic() -> dict[str, Any]:
    signer = Signer(SIGNER_SEED)
    signed = {"type": "consent", "network": NETWORK, "case": CASE, "classes": ["name", "address"]}
    envelope = signing.sign("consent", signed, signer)
    ctx_event = envelopes.event_context(NETWORK, CASE, EVENT, version=1)
    ctx_identity = envelopes.identity_context(NETWORK, CASE, "name", version=1)
    event_plain = canonical_json({"kind": "note", "text": "Mevrouw woont alleen sinds het overlijden van haar man."})
    identity_plain = canonical_json({"given_names": "Jan", "family_name": "Jansen"})
    wrapped = envelopes.wrap_case_key(EpochKey(EPOCH_KEY), CaseKey(CASE_KEY), network=NETWORK,
                                      case=CASE, epoch=1, version=1, nonce=NONCE)
    fast = dict(opslimit=1, memlimit=8192 * 1024)
    return {
        "canonical_json": [{"input": c, "canonical_hex": canonical_json(c).hex()} for c in CANONICAL_CASES],
        "signature": {
            "seed_hex": SIGNER_SEED.hex(),
            "public_key": signer.verify_key.b64(),
            "key_id": signer.key_id,
            "type": "consent",
            "signing_input_hex": signing.signing_input("consent", signed).hex(),
            "envelope": envelope,
        },
        "aead": [
            {"what": "anonymous event", "key_hex": CASE_KEY.hex(), "nonce_hex": NONCE.hex(),
             "context": {"network": NETWORK, "case": CASE, "layer": "anonymous", "class": "",
                         "version": 1, "object": EVENT},
             "associated_data_hex": ctx_event.associated_data().hex(),
             "plaintext_hex": event_plain.hex(),
             "ciphertext_hex": envelopes.encrypt(CaseKey(CASE_KEY), event_plain, ctx_event, nonce=NONCE).hex()},
            {"what": "identity record, class name", "key_hex": CLASS_KEY.hex(), "nonce_hex": NONCE.hex(),
             "context": {"network": NETWORK, "case": CASE, "layer": "identity", "class": "name",
                         "version": 1, "object": ""},
             "associated_data_hex": ctx_identity.associated_data().hex(),
             "plaintext_hex": identity_plain.hex(),
             "ciphertext_hex": envelopes.encrypt(ClassKey(CLASS_KEY), identity_plain, ctx_identity, nonce=NONCE).hex()},
            {"what": "case key wrapped under epoch 1", "key_hex": EPOCH_KEY.hex(), "nonce_hex": NONCE.hex(),
             "context": {"network": NETWORK, "case": CASE, "layer": "case-key", "class": "",
                         "version": 1, "object": "epoch-1"},
             "associated_data_hex": envelopes.case_key_context(NETWORK, CASE, epoch=1, version=1).associated_data().hex(),
             "plaintext_hex": CASE_KEY.hex(),
             "wrapped_case_key": wrapped},
        ],
        "blind_index": [
            {"match_key_hex": MATCH_KEY.hex(), "kind": "bsn", "normalised": "111222333",
             "opslimit": 1, "memlimit": 8192 * 1024, "size": 8,
             "token_hex": envelopes.blind_index(MatchKey(MATCH_KEY), "bsn", "111222333", size=8, **fast).hex()},
            {"match_key_hex": MATCH_KEY.hex(), "kind": "name-dob", "normalised": "jansen|1948-03-12",
             "opslimit": 1, "memlimit": 8192 * 1024, "size": 8,
             "token_hex": envelopes.blind_index(MatchKey(MATCH_KEY), "name-dob", "jansen|1948-03-12",
                                                size=8, **fast).hex()},
        ],
    }


def build() -> dict[str, Any]:
    """Everything: the deterministic part plus freshly sealed open vectors."""
    gate, member = BoxSecretKey(GATE_SECRET), BoxSecretKey(MEMBER_SECRET)
    gctx = envelopes.GateContext(network=NETWORK, case=CASE, cls="name", version=1,
                                 recipient=Signer(SIGNER_SEED).key_id)
    gated = envelopes.make_gated(gate.public_key, member.public_key, ClassKey(CLASS_KEY), gctx)
    inner = envelopes.open_gate(gate, gated, gctx)
    vectors = _deterministic()
    vectors["gated_envelope"] = {
        "note": "open vector: sealed boxes are randomised; check that yours opens these",
        "gate_secret_hex": GATE_SECRET.hex(), "member_secret_hex": MEMBER_SECRET.hex(),
        "context": gctx.fields(), "class_key_hex": CLASS_KEY.hex(),
        "gated": gated, "inner": inner,
    }
    return vectors


def deterministic_part(vectors: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in vectors.items() if k != "gated_envelope"}


if __name__ == "__main__":
    VECTOR_PATH.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {VECTOR_PATH}")
