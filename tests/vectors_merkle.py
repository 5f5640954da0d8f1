"""Generator for protocol/vectors/merkle.json (docs/protocol.md §9).

Run ``python tests/vectors_merkle.py`` to rewrite the file after a deliberate
change; ``tests/test_merkle.py`` recomputes it and fails when the committed file
differs, and checks it against an independent reference and published roots.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schakel.protocol import merkle

VECTOR_PATH = Path(__file__).resolve().parent.parent / "protocol" / "vectors" / "merkle.json"

#: The eight leaves of the RFC 6962 test data used by google/certificate-transparency
#: and transparency-dev/merkle (proof/verify_test.go).
LEAVES: list[bytes] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]


def _hx(proof: list[bytes]) -> list[str]:
    return [h.hex() for h in proof]


def _invalid_cases() -> list[dict[str, Any]]:
    """Inputs a verifier MUST refuse, with the error code it MUST raise."""
    root8 = merkle.root_hash(LEAVES)
    root6 = merkle.root_hash(LEAVES[:6])
    p0 = merkle.inclusion_proof(LEAVES, 0)
    p68 = merkle.consistency_proof(LEAVES, 6)
    flipped = bytes([p0[1][0] ^ 0x01]) + p0[1][1:]

    def incl(why: str, error: str, index: int, size: int, proof: list[bytes], root: bytes,
             entry: bytes = LEAVES[0]) -> dict[str, Any]:
        return {"kind": "inclusion", "why": why, "error": error, "entry": entry.hex(),
                "index": index, "tree_size": size, "proof": _hx(proof), "root": root.hex()}

    def cons(why: str, error: str, old: int, new: int, old_root: bytes, new_root: bytes,
             proof: list[bytes]) -> dict[str, Any]:
        return {"kind": "consistency", "why": why, "error": error, "old_size": old,
                "new_size": new, "old_root": old_root.hex(), "new_root": new_root.hex(),
                "proof": _hx(proof)}

    return [
        incl("last proof hash removed", "bad_proof", 0, 8, p0[:-1], root8),
        incl("one bit flipped in proof[1]", "bad_proof", 0, 8, [p0[0], flipped, p0[2]], root8),
        incl("wrong entry", "bad_proof", 0, 8, p0, root8, entry=LEAVES[1]),
        incl("index not below tree_size", "malformed", 8, 8, p0, root8),
        incl("tree_size 0", "malformed", 0, 0, [], merkle.EMPTY_ROOT),
        incl("proof longer than any path in the tree", "malformed", 0, 8, p0 + [root8], root8),
        incl("proof hash of 31 bytes", "malformed", 0, 8, [p0[0][:31], p0[1], p0[2]], root8),
        cons("last proof hash removed", "bad_proof", 6, 8, root6, root8, p68[:-1]),
        cons("empty proof for 0 < old_size < new_size", "bad_proof", 6, 8, root6, root8, []),
        cons("roots swapped", "bad_proof", 6, 8, root8, root6, p68),
        cons("equal sizes, different roots", "bad_proof", 8, 8, root6, root8, []),
        cons("old_size 0 with a root other than the empty root", "bad_proof", 0, 8, root6,
             root8, []),
        cons("old_size greater than new_size", "malformed", 8, 6, root8, root6, []),
        cons("equal sizes with a non-empty proof", "malformed", 8, 8, root8, root8, [root8]),
    ]


def build() -> dict[str, Any]:
    """The vector document, computed by schakel.protocol.merkle."""
    n = len(LEAVES)
    return {
        "title": "Schakel Merkle tree test vectors: RFC 9162 section 2.1 with SHA-256",
        "spec": "docs/protocol.md §9",
        "generator": "tests/vectors_merkle.py",
        "sources": "leaves and the roots of sizes 1..8 are those of transparency-dev/merkle "
                   "proof/verify_test.go (RFC 6962 test data); every value is cross-checked "
                   "against an independent RFC 6962 reference in tests/test_merkle.py",
        "encoding": "all byte strings are lowercase hex; proofs list hashes leaf to root",
        "leaf_prefix": "00",
        "node_prefix": "01",
        "empty_root": merkle.EMPTY_ROOT.hex(),
        "leaves": [leaf.hex() for leaf in LEAVES],
        "leaf_hashes": [merkle.leaf_hash(leaf).hex() for leaf in LEAVES],
        "roots": [{"tree_size": size, "root": merkle.root_hash(LEAVES[:size]).hex()}
                  for size in range(n + 1)],
        "inclusion": [{"index": index, "tree_size": size,
                       "proof": _hx(merkle.inclusion_proof(LEAVES[:size], index))}
                      for size in range(1, n + 1) for index in range(size)],
        "consistency": [{"old_size": old, "new_size": new,
                         "proof": _hx(merkle.consistency_proof(LEAVES[:new], old))}
                        for new in range(n + 1) for old in range(new + 1)],
        "invalid": _invalid_cases(),
    }


def render() -> str:
    """The exact text of protocol/vectors/merkle.json."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    VECTOR_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {VECTOR_PATH}")
