"""protocol/vectors/keys.json: rebuilt from tests/vectors_keys.py and re-verified
(docs/protocol.md §4.8).  Fails if code and vectors drift apart."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests import vectors_keys as vectors
from schakel.keys.bundle import verify_key_bundle
from schakel.keys.chain import verify_genesis, verify_membership, verify_revocation
from schakel.keys.fingerprint import Fingerprint
from schakel.keys.keystore import decrypt_keystore
from schakel.keys.partner import PartnerKeys
from schakel.keys.rotation import verify_rotation
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.encoding import b64d
from schakel.protocol.errors import UntrustedKeyError


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return json.loads(vectors.PATH.read_text(encoding="utf-8"))


def _t(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_vectors_file_is_reproducible() -> None:
    assert vectors.PATH.read_text(encoding="utf-8") == vectors.render(), \
        "protocol/vectors/keys.json is stale: run `python -m tests.vectors_keys --write` and review"


def test_key_vectors_match_independent_derivation(stored: dict[str, Any]) -> None:
    for entry in stored["keys"]:
        keys = PartnerKeys.from_secrets(b64d(entry["sign_seed"]), b64d(entry["box_secret"]))
        raw = keys.public.sign.raw
        assert keys.public.sign.b64() == entry["sign"] and keys.public.box.b64() == entry["box"]
        key_id = hashlib.blake2b(raw, digest_size=32, key=b"schakel/v1/key-id").digest()
        assert b64d(entry["key_id"]) == key_id
        digest = hashlib.blake2b(raw, digest_size=40, key=b"schakel/v1/fingerprint").digest()
        groups = [f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}"
                  for i in range(0, 40, 5)]
        assert entry["fingerprint"] == " ".join(groups)


def test_server_fingerprint_vector_matches_independent_derivation(stored: dict[str, Any]) -> None:
    """The server fingerprint (protocol.md §4.3) of the genesis's log and gate keys."""
    server = stored["genesis"]["envelope"]["signed"]["server"]
    digest = hashlib.blake2b(b64d(server["log"]) + b64d(server["gate"]), digest_size=40,
                             key=b"schakel/v1/server-fingerprint").digest()
    groups = [f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 40, 5)]
    assert stored["genesis"]["server_fingerprint"] == " ".join(groups)


def test_vector_objects_verify(stored: dict[str, Any]) -> None:
    by_label = {e["label"]: e for e in stored["keys"]}
    bundle = verify_key_bundle(stored["key_bundle"]["envelope"],
                               expected=Fingerprint.parse(by_label["partner"]["fingerprint"]))
    assert bundle.key_id == by_label["partner"]["key_id"]

    anchor = Fingerprint.parse(stored["genesis"]["anchor"])
    rotation = stored["coordinator_rotation"]["envelope"]
    old = VerifyKey.from_b64(by_label["coordinator"]["sign"])
    assert verify_rotation(rotation, old).key_id == by_label["coordinator-2"]["key_id"]
    genesis = verify_genesis(stored["genesis"]["envelope"], anchor, [rotation])
    assert genesis.coordinator.key_id == by_label["coordinator-2"]["key_id"]

    now = _t(stored["membership"]["now"])
    member = verify_membership(stored["membership"]["envelope"], genesis, now=now)
    assert member.member == by_label["partner"]["key_id"]
    assert member.issuer == by_label["coordinator-2"]["key_id"]

    revocation = stored["revocation"]["envelope"]
    assert verify_revocation(revocation, genesis).serial == 1
    verify_membership(stored["membership"]["envelope"], genesis, now=now, revocations=[revocation])
    with pytest.raises(UntrustedKeyError, match="revoked"):
        verify_membership(stored["membership"]["envelope"], genesis,
                          now=_t(stored["revocation"]["revoked_at_or_after"]),
                          revocations=[revocation])


def test_keystore_vector_opens(stored: dict[str, Any]) -> None:
    v = stored["keystore"]
    keys = decrypt_keystore(json.dumps(v["document"]).encode(), v["passphrase"])
    partner = next(e for e in stored["keys"] if e["label"] == v["keys"])
    assert keys.key_id == partner["key_id"]


def test_vector_objects_are_valid_wire_objects(stored: dict[str, Any]) -> None:
    """Cross-check with the JSON Schemas of protocol/schemas (written independently)."""
    schema = pytest.importorskip("schakel.protocol.schema")
    for obj_type, envelope in [
            ("key-bundle", stored["key_bundle"]["envelope"]),
            ("network-genesis", stored["genesis"]["envelope"]),
            ("key-rotation", stored["coordinator_rotation"]["envelope"]),
            ("membership", stored["membership"]["envelope"]),
            ("membership-revocation", stored["revocation"]["envelope"])]:
        schema.validate_envelope(obj_type, envelope)
