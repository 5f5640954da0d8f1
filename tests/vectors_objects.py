"""Generator for protocol/vectors/objects.json: one signed envelope for every
signed object type, with the exact bytes its signature covers.

The examples are the ones the object tests use.  Some contain sealed boxes
(random by construction), so the file is not rebuilt byte for byte; instead
tests/test_vectors_objects.py checks that it is self-consistent and current:
every signed type is present, each signing input is exactly
"schakel/v1/" || type || canonical_json(signed), re-signing with the stated seed
gives the stated signature (Ed25519 is deterministic), and each object still
parses with its class.  Run ``python tests/vectors_objects.py`` after a change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schakel.protocol import signing
from schakel.protocol.crypto import Signer
from schakel.protocol.objects.base import WireObject

VECTOR_PATH = Path(__file__).resolve().parent.parent / "protocol" / "vectors" / "objects.json"
SEED = bytes([0x5C]) * 32


def examples() -> dict[str, WireObject]:
    """One example object per signed type, from the object tests."""
    from tests import test_objects_cases as cases
    from tests import test_objects_disclosure as disclosure
    from tests import test_objects_network as network

    found: dict[str, WireObject] = {}
    for make in [*network.EXAMPLES.values(), *disclosure.EXAMPLES.values()]:
        obj = make()
        if obj.SIGNED:
            found.setdefault(obj.TYPE, obj)
    for cls, make_json in cases.EXAMPLES.values():
        if cls.SIGNED:
            found.setdefault(cls.TYPE, cls.from_json(make_json()))
    return dict(sorted(found.items()))


def build() -> dict[str, Any]:
    signer = Signer(SEED)
    vectors = []
    for obj_type, obj in examples().items():
        envelope = signing.sign(obj_type, obj.to_json(), signer)
        vectors.append({"type": obj_type, "class": type(obj).__name__,
                        "signing_input_hex": signing.signing_input(obj_type, envelope["signed"]).hex(),
                        "envelope": envelope})
    return {"description": "One signed envelope per Schakel object type (docs/protocol.md §2, §5, §6). "
                           "Signature = Ed25519(seed, 'schakel/v1/' || type || canonical_json(signed)).",
            "seed_hex": SEED.hex(), "public_key": signer.verify_key.b64(), "key_id": signer.key_id,
            "vectors": vectors}


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(VECTOR_PATH.parents[2]))  # the repository root, for `tests.*`
    VECTOR_PATH.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {VECTOR_PATH}")
