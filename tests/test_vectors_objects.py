"""protocol/vectors/objects.json: a signed vector for every signed object type, and
each one is exactly what the protocol signs (see tests/vectors_objects.py)."""

from __future__ import annotations

import json

import pytest

from schakel.protocol import signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import Signer, VerifyKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.objects import audit, cases, disclosure, network, signals
from schakel.protocol.objects.base import WireObject
from tests.vectors_objects import SEED, VECTOR_PATH, examples

STORED = json.loads(VECTOR_PATH.read_text(encoding="utf-8"))
CLASSES = {cls.TYPE: cls for module in (network, disclosure, audit, cases, signals)
           for cls in vars(module).values()
           if isinstance(cls, type) and issubclass(cls, WireObject) and cls.SIGNED and hasattr(cls, "TYPE")}


def test_every_signed_object_type_has_a_vector() -> None:
    assert sorted(v["type"] for v in STORED["vectors"]) == sorted(CLASSES)
    assert sorted(examples()) == sorted(CLASSES)


@pytest.mark.parametrize("vector", STORED["vectors"], ids=lambda v: v["type"])
def test_signing_input_is_prefix_type_and_canonical_json(vector: dict) -> None:
    signed = vector["envelope"]["signed"]
    expected = b"schakel/v1/" + vector["type"].encode() + canonical_json(signed)
    assert bytes.fromhex(vector["signing_input_hex"]) == expected


@pytest.mark.parametrize("vector", STORED["vectors"], ids=lambda v: v["type"])
def test_signature_is_the_deterministic_ed25519_signature(vector: dict) -> None:
    signer = Signer(SEED)
    assert STORED["public_key"] == signer.verify_key.b64()
    sig = vector["envelope"]["signatures"][0]
    assert sig == {"keyid": signer.key_id, "sig": b64e(signer.sign(bytes.fromhex(vector["signing_input_hex"])))}
    signing.verify(vector["envelope"], vector["type"], [VerifyKey(b64d(STORED["public_key"]))])


@pytest.mark.parametrize("vector", STORED["vectors"], ids=lambda v: v["type"])
def test_vector_object_is_valid_for_its_class(vector: dict) -> None:
    cls = CLASSES[vector["type"]]
    assert cls.__name__ == vector["class"]
    assert cls.from_json(vector["envelope"]["signed"]).to_json() == vector["envelope"]["signed"]
