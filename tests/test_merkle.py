"""Tests for protocol/merkle.py (docs/protocol.md §9).

The module is checked against an independent reference written straight from the
recursive definitions of RFC 6962 §2.1 (MTH, PATH, SUBPROOF) over list slices,
against published known answers, and by property tests that tamper with every
part of a proof.  One test per attack: flipped bits, truncated, extended or
reordered proofs, wrong index, wrong size, wrong or swapped roots.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schakel.protocol import merkle
from schakel.protocol.errors import MalformedError, ProofError, ProtocolError
from schakel.protocol.merkle import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    MemoryNodeStore,
    MerkleLog,
    NodeStoreError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
    verify_inclusion_by_hash,
)

REPO = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- independent reference: RFC 6962 §2.1, recursive, over tuples ------------

def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_k(n: int) -> int:
    """Largest power of two smaller than n (RFC 6962 §2.1)."""
    k = 1
    while 2 * k < n:
        k *= 2
    return k


@functools.lru_cache(maxsize=None)
def ref_mth(d: tuple[bytes, ...]) -> bytes:
    """MTH(D[n]), RFC 6962 §2.1."""
    if len(d) == 0:
        return _sha256(b"")
    if len(d) == 1:
        return _sha256(b"\x00" + d[0])
    k = ref_k(len(d))
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """PATH(m, D[n]), RFC 6962 §2.1.1."""
    if len(d) == 1:
        return []
    k = ref_k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 6962 §2.1.2."""
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = ref_k(len(d))
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """PROOF(m, D[n]); empty for m == 0 and m == n (docs/protocol.md §9)."""
    return [] if m in (0, len(d)) else ref_subproof(m, d, True)


def ref_directions(m: int, n: int) -> tuple[bool, ...]:
    """For PATH(m, D[n]): is each sibling, leaf to root, on the left?"""
    if n == 1:
        return ()
    k = ref_k(n)
    return ref_directions(m, k) + (False,) if m < k else ref_directions(m - k, n - k) + (True,)


def ref_consistency_shape(m: int, n: int) -> tuple[str, ...]:
    """How a verifier combines PROOF(m, D[n]): seed, then siblings leaf to root."""
    def sub(m: int, n: int, b: bool) -> tuple[str, ...]:
        if m == n:
            return ("old-root",) if b else ("seed",)
        k = ref_k(n)
        return sub(m, k, b) + ("right",) if m <= k else sub(m - k, n - k, False) + ("left",)
    return sub(m, n, True)


def max_inclusion_len(n: int) -> int:
    return 0 if n <= 1 else ref_k(n).bit_length()          # ceil(log2 n)


def max_consistency_len(m: int, n: int) -> int:
    return 0 if m in (0, n) else max_inclusion_len(n) + 1


ENTRIES: tuple[bytes, ...] = (b"",) + tuple(b"entry-%d" % i for i in range(1, 64))


@pytest.fixture(scope="module")
def log64() -> MerkleLog:
    log = MerkleLog()
    for entry in ENTRIES:
        log.append(leaf_hash(entry))
    return log


def flip(data: bytes, bit: int) -> bytes:
    i, j = divmod(bit, 8)
    return data[:i] + bytes([data[i] ^ (1 << j)]) + data[i + 1:]


# --- known answers -------------------------------------------------------------

# transparency-dev/merkle, proof/verify_test.go and rfc6962/rfc6962_test.go
# (the RFC 6962 test data of google/certificate-transparency): the eight leaves,
# the roots of their prefixes of size 1..8, and some proofs.  Indices here are
# 0-based (the Go file numbers leaves from 1).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
_H = {  # short names for the proof hashes below
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "b086": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
}
CT_INCLUSION = [  # (index, tree_size, proof)
    (0, 8, ["96a2", "5f08", "6b47"]),
    (5, 8, ["bc1a", "ca85", "d37e"]),
    (2, 3, ["fac5"]),
    (1, 5, ["6e34", "5f08", "bc1a"]),
    (0, 1, []),
]
CT_CONSISTENCY = [  # (old_size, new_size, proof)
    (1, 1, []),
    (1, 8, ["96a2", "5f08", "6b47"]),
    (6, 8, ["0ebc", "ca85", "d37e"]),
    (2, 5, ["5f08", "bc1a"]),
    (6, 7, ["0ebc", "b086", "d37e"]),
]


def test_known_answer_hashes() -> None:
    # echo -n | sha256sum
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([]) == EMPTY_ROOT == MerkleLog().root()
    # rfc6962_test.go: empty leaf and leaf "L123456"
    assert leaf_hash(b"").hex() == _H["6e34"]
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == CT_ROOTS[1]
    assert leaf_hash(bytearray(b"ab")) == leaf_hash(memoryview(b"ab")) == leaf_hash(b"ab")


def test_published_roots() -> None:
    log = MerkleLog()
    for size, (entry, expected) in enumerate(zip(CT_LEAVES, CT_ROOTS), start=1):
        log.append(leaf_hash(entry))
        assert root_hash(CT_LEAVES[:size]) == expected
        assert log.root() == expected
        assert ref_mth(tuple(CT_LEAVES[:size])) == expected
    assert [log.root(n) for n in range(1, 9)] == CT_ROOTS


@pytest.mark.parametrize(("index", "size", "names"), CT_INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, names: list[str]) -> None:
    proof = [bytes.fromhex(_H[n]) for n in names]
    assert inclusion_proof(CT_LEAVES[:size], index) == proof
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, CT_ROOTS[size - 1]) is None


@pytest.mark.parametrize(("old", "new", "names"), CT_CONSISTENCY)
def test_published_consistency_proofs(old: int, new: int, names: list[str]) -> None:
    proof = [bytes.fromhex(_H[n]) for n in names]
    assert consistency_proof(CT_LEAVES[:new], old) == proof
    assert verify_consistency(old, new, CT_ROOTS[old - 1], CT_ROOTS[new - 1], proof) is None


# --- exhaustive agreement with the reference, sizes 1..64 --------------------

@pytest.mark.parametrize("n", range(1, 65))
def test_matches_reference(n: int, log64: MerkleLog) -> None:
    d = ENTRIES[:n]
    root = ref_mth(d)
    assert root_hash(d) == root == log64.root(n)
    for i in range(n):
        proof = ref_path(i, d)
        assert inclusion_proof(d, i) == proof
        assert log64.inclusion_proof(i, n) == proof
        assert len(proof) <= max_inclusion_len(n)
        assert verify_inclusion(d[i], i, n, proof, root) is None
        assert verify_inclusion_by_hash(leaf_hash(d[i]), i, n, proof, root) is None
    for m in range(n + 1):
        proof = ref_proof(m, d)
        assert consistency_proof(d, m) == proof
        assert log64.consistency_proof(m, n) == proof
        assert len(proof) <= max_consistency_len(m, n)
        assert verify_consistency(m, n, ref_mth(d[:m]), root, proof) is None


def test_proof_length_bounds_are_reached() -> None:
    # The MalformedError bound is the true maximum, not a loose cap.
    assert len(ref_path(0, ENTRIES[:33])) == max_inclusion_len(33) == 6
    assert len(ref_proof(3, ENTRIES[:8])) == max_consistency_len(3, 8) == 4


# --- edge cases of RFC 9162 §2.1.4.2 as decided in docs/protocol.md §9 ------

R3, R5 = ref_mth(ENTRIES[:3]), ref_mth(ENTRIES[:5])


@pytest.mark.parametrize(("old", "new", "old_root", "new_root", "proof", "error"), [
    (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], None),
    (0, 5, EMPTY_ROOT, R5, [], None),              # every tree extends the empty tree
    (5, 5, R5, R5, [], None),
    (0, 0, EMPTY_ROOT, R5, [], ProofError),
    (0, 0, R5, R5, [], ProofError),                # the empty tree has one root
    (0, 5, R3, R5, [], ProofError),
    (5, 5, R5, R3, [], ProofError),
    (3, 5, R3, R5, [], ProofError),                # empty proof for 0 < old < new
    (5, 5, R5, R5, [R5], MalformedError),          # equal sizes take no proof
    (0, 5, EMPTY_ROOT, R5, [R5], MalformedError),
    (5, 3, R5, R3, [], MalformedError),            # the log never shrinks
    (-1, 3, R3, R3, [], MalformedError),
    (0, MAX_TREE_SIZE + 1, EMPTY_ROOT, R3, [], MalformedError),
])
def test_consistency_edge_cases(old: int, new: int, old_root: bytes, new_root: bytes,
                                proof: list[bytes], error: type[Exception] | None) -> None:
    if error is None:
        assert verify_consistency(old, new, old_root, new_root, proof) is None
    else:
        with pytest.raises(error):
            verify_consistency(old, new, old_root, new_root, proof)


def test_empty_tree_proofs() -> None:
    assert consistency_proof([], 0) == []
    assert consistency_proof(ENTRIES[:4], 0) == consistency_proof(ENTRIES[:4], 4) == []
    with pytest.raises(MalformedError):
        inclusion_proof([], 0)
    with pytest.raises(MalformedError):
        verify_inclusion(b"", 0, 0, [], EMPTY_ROOT)


# --- bad arguments -------------------------------------------------------------

H32 = bytes(32)
P8 = ref_path(0, ENTRIES[:8])
R8 = ref_mth(ENTRIES[:8])

BAD_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("leaf_hash str", lambda: leaf_hash("abc")),  # type: ignore[arg-type]
    ("leaf_hash None", lambda: leaf_hash(None)),  # type: ignore[arg-type]
    ("node_hash short", lambda: node_hash(H32[:31], H32)),
    ("node_hash long", lambda: node_hash(H32, H32 + b"\x00")),
    ("node_hash str", lambda: node_hash("a" * 32, H32)),  # type: ignore[arg-type]
    ("root_hash bytes", lambda: root_hash(b"abc")),
    ("root_hash str", lambda: root_hash("abc")),  # type: ignore[arg-type]
    ("root_hash int", lambda: root_hash(5)),  # type: ignore[arg-type]
    ("root_hash str entry", lambda: root_hash([b"a", "b"])),  # type: ignore[list-item]
    ("inclusion_proof -1", lambda: inclusion_proof(ENTRIES[:4], -1)),
    ("inclusion_proof n", lambda: inclusion_proof(ENTRIES[:4], 4)),
    ("inclusion_proof bool", lambda: inclusion_proof(ENTRIES[:4], True)),
    ("inclusion_proof float", lambda: inclusion_proof(ENTRIES[:4], 1.0)),  # type: ignore[arg-type]
    ("consistency_proof -1", lambda: consistency_proof(ENTRIES[:4], -1)),
    ("consistency_proof n+1", lambda: consistency_proof(ENTRIES[:4], 5)),
    ("consistency_proof str", lambda: consistency_proof(ENTRIES[:4], "1")),  # type: ignore[arg-type]
    ("incl entry str", lambda: verify_inclusion("x", 0, 8, P8, R8)),  # type: ignore[arg-type]
    ("incl index -1", lambda: verify_inclusion(ENTRIES[0], -1, 8, P8, R8)),
    ("incl index = size", lambda: verify_inclusion(ENTRIES[0], 8, 8, P8, R8)),
    ("incl index str", lambda: verify_inclusion(ENTRIES[0], "0", 8, P8, R8)),  # type: ignore[arg-type]
    ("incl size 0", lambda: verify_inclusion(ENTRIES[0], 0, 0, [], R8)),
    ("incl size 2**64", lambda: verify_inclusion(ENTRIES[0], 0, MAX_TREE_SIZE + 1, P8, R8)),
    ("incl size bool", lambda: verify_inclusion(ENTRIES[0], 0, True, [], R8)),
    ("incl root short", lambda: verify_inclusion(ENTRIES[0], 0, 8, P8, R8[:31])),
    ("incl root str", lambda: verify_inclusion(ENTRIES[0], 0, 8, P8, R8.hex())),  # type: ignore[arg-type]
    ("incl proof bytes", lambda: verify_inclusion(ENTRIES[0], 0, 8, b"".join(P8), R8)),  # type: ignore[arg-type]
    ("incl proof gen", lambda: verify_inclusion(ENTRIES[0], 0, 8, iter(P8), R8)),  # type: ignore[arg-type]
    ("incl proof elem 33", lambda: verify_inclusion(ENTRIES[0], 0, 8, [P8[0] + b"\0"] + P8[1:], R8)),
    ("incl proof elem empty", lambda: verify_inclusion(ENTRIES[0], 0, 8, [b""] + P8[1:], R8)),
    ("incl proof elem str", lambda: verify_inclusion(ENTRIES[0], 0, 8, ["a" * 32] + P8[1:], R8)),
    ("incl proof too long", lambda: verify_inclusion(ENTRIES[0], 0, 8, P8 + [H32], R8)),
    ("incl proof huge", lambda: verify_inclusion(ENTRIES[0], 0, 8, [H32] * 10**6, R8)),
    ("cons old -1", lambda: verify_consistency(-1, 8, R8, R8, [])),
    ("cons new huge", lambda: verify_consistency(1, MAX_TREE_SIZE + 1, R8, R8, [])),
    ("cons old > new", lambda: verify_consistency(9, 8, R8, R8, [])),
    ("cons old str", lambda: verify_consistency("3", 8, R3, R8, [])),  # type: ignore[arg-type]
    ("cons old_root short", lambda: verify_consistency(3, 8, R3[:16], R8, P8)),
    ("cons new_root None", lambda: verify_consistency(3, 8, R3, None, P8)),  # type: ignore[arg-type]
    ("cons proof dict", lambda: verify_consistency(3, 8, R3, R8, {})),  # type: ignore[arg-type]
    ("cons proof too long", lambda: verify_consistency(3, 8, R3, R8, [H32] * 5)),
    ("cons proof elem short", lambda: verify_consistency(3, 8, R3, R8, [H32[:5]] * 4)),
    ("log append short", lambda: MerkleLog().append(H32[:31])),
    ("log append str", lambda: MerkleLog().append("a" * 32)),  # type: ignore[arg-type]
    ("log size -1", lambda: MerkleLog(size=-1)),
    ("log root beyond size", lambda: MerkleLog().root(1)),
    ("log inclusion empty", lambda: MerkleLog().inclusion_proof(0, 0)),
    ("log consistency old > new", lambda: MerkleLog().consistency_proof(1, 0)),
]


@pytest.mark.parametrize("call", [c for _, c in BAD_CALLS], ids=[n for n, _ in BAD_CALLS])
def test_bad_arguments_raise_malformed(call: Callable[[], object]) -> None:
    with pytest.raises(MalformedError) as info:
        call()
    assert info.value.code == "malformed"


# --- tampering: inclusion proofs ----------------------------------------------

@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[list[bytes], int, list[bytes], bytes]:
    entries = draw(st.lists(st.binary(max_size=10), min_size=1, max_size=40, unique=True))
    index = draw(st.integers(0, len(entries) - 1))
    return entries, index, inclusion_proof(entries, index), root_hash(entries)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_flipped_proof_bit(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    if not proof:
        return
    i = data.draw(st.integers(0, len(proof) - 1))
    proof[i] = flip(proof[i], data.draw(st.integers(0, 255)))
    with pytest.raises(ProofError):
        verify_inclusion(entries[index], index, len(entries), proof, root)


@PROPERTY
@given(inclusion_cases(), st.integers(0, 255))
def test_inclusion_flipped_root_bit(case: Any, bit: int) -> None:
    entries, index, proof, root = case
    with pytest.raises(ProofError):
        verify_inclusion(entries[index], index, len(entries), proof, flip(root, bit))


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_changed_entry(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    entry = entries[index]
    if entry:
        entry = flip(entry, data.draw(st.integers(0, 8 * len(entry) - 1)))
    else:
        entry = data.draw(st.binary(min_size=1, max_size=3))
    with pytest.raises(ProofError):
        verify_inclusion(entry, index, len(entries), proof, root)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_wrong_index(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    n = len(entries)
    other = data.draw(st.integers(-2, n + 2).filter(lambda i: i != index))
    with pytest.raises(MalformedError if not 0 <= other < n else ProofError):
        verify_inclusion(entries[index], other, n, proof, root)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_wrong_tree_size(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    n = len(entries)
    size = data.draw(st.integers(-1, 2 * n + 2).filter(lambda s: s != n))
    if size < 1 or index >= size or len(proof) > max_inclusion_len(size):
        expected: type[Exception] | None = MalformedError
    elif ref_directions(index, size) == ref_directions(index, n):
        # The same path shape yields the same root: the root does not commit to
        # tree_size on its own (docs/protocol.md §9, "Binding the size").
        expected = None
    else:
        expected = ProofError
    if expected is None:
        assert verify_inclusion(entries[index], index, size, proof, root) is None
    else:
        with pytest.raises(expected):
            verify_inclusion(entries[index], index, size, proof, root)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_truncated_proof(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    if not proof:
        return
    start = data.draw(st.integers(0, len(proof)))
    stop = data.draw(st.integers(start, len(proof)).filter(lambda s: s - start < len(proof)))
    with pytest.raises(ProofError):
        verify_inclusion(entries[index], index, len(entries), proof[start:stop], root)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_extended_proof(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    for _ in range(data.draw(st.integers(1, 3))):
        extra = data.draw(st.sampled_from([root, H32, *proof]) | st.binary(min_size=32, max_size=32))
        proof.insert(data.draw(st.integers(0, len(proof))), extra)
    n = len(entries)
    with pytest.raises(MalformedError if len(proof) > max_inclusion_len(n) else ProofError):
        verify_inclusion(entries[index], index, n, proof, root)


@PROPERTY
@given(inclusion_cases(), st.data())
def test_inclusion_reordered_proof(case: Any, data: st.DataObject) -> None:
    entries, index, proof, root = case
    if len(proof) < 2:
        return
    i, j = data.draw(st.lists(st.integers(0, len(proof) - 1), min_size=2, max_size=2, unique=True))
    proof[i], proof[j] = proof[j], proof[i]
    with pytest.raises(ProofError):
        verify_inclusion(entries[index], index, len(entries), proof, root)


def test_length_errors_say_which_way() -> None:
    d = ENTRIES[:8]
    root, proof = ref_mth(d), ref_path(2, d)
    with pytest.raises(ProofError, match="shorter"):
        verify_inclusion(d[2], 2, 8, proof[:-1], root)
    with pytest.raises(ProofError, match="longer"):
        verify_inclusion(d[4], 4, 5, ref_path(4, d), ref_mth(d[:5]))
    with pytest.raises(ProofError, match="shorter"):
        verify_consistency(3, 8, ref_mth(d[:3]), root, ref_proof(3, d)[:-1])
    with pytest.raises(ProofError, match="longer"):
        verify_consistency(6, 8, ref_mth(d[:6]), root, ref_proof(6, d) + [root])


# --- tampering: consistency proofs ----------------------------------------------

@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[int, int, bytes, bytes, list[bytes]]:
    entries = draw(st.lists(st.binary(max_size=10), min_size=2, max_size=40, unique=True))
    old = draw(st.integers(1, len(entries) - 1))
    return (old, len(entries), root_hash(entries[:old]), root_hash(entries),
            consistency_proof(entries, old))


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_flipped_proof_bit(case: Any, data: st.DataObject) -> None:
    old, new, old_root, new_root, proof = case
    i = data.draw(st.integers(0, len(proof) - 1))
    proof[i] = flip(proof[i], data.draw(st.integers(0, 255)))
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, proof)


@PROPERTY
@given(consistency_cases(), st.integers(0, 255), st.booleans())
def test_consistency_flipped_root_bit(case: Any, bit: int, which: bool) -> None:
    old, new, old_root, new_root, proof = case
    if which:
        old_root = flip(old_root, bit)
    else:
        new_root = flip(new_root, bit)
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, proof)


@PROPERTY
@given(consistency_cases())
def test_consistency_swapped_roots(case: Any) -> None:
    old, new, old_root, new_root, proof = case
    with pytest.raises(ProofError):
        verify_consistency(old, new, new_root, old_root, proof)


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_wrong_sizes(case: Any, data: st.DataObject) -> None:
    old, new, old_root, new_root, proof = case
    old2 = data.draw(st.integers(-1, new + 2))
    new2 = data.draw(st.integers(-1, 2 * new + 2).filter(lambda s: (old2, s) != (old, new)))
    if min(old2, new2) < 0 or old2 > new2 or len(proof) > max_consistency_len(old2, new2):
        expected: type[Exception] | None = MalformedError
    elif ref_consistency_shape(old2, new2) == ref_consistency_shape(old, new):
        expected = None       # same shape, same hashes: sizes are bound by the signed head
    else:
        expected = ProofError
    if expected is None:
        assert verify_consistency(old2, new2, old_root, new_root, proof) is None
    else:
        with pytest.raises(expected):
            verify_consistency(old2, new2, old_root, new_root, proof)


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_truncated_proof(case: Any, data: st.DataObject) -> None:
    old, new, old_root, new_root, proof = case
    start = data.draw(st.integers(0, len(proof)))
    stop = data.draw(st.integers(start, len(proof)).filter(lambda s: s - start < len(proof)))
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, proof[start:stop])


@PROPERTY
@given(consistency_cases(), st.data())
def test_consistency_extended_proof(case: Any, data: st.DataObject) -> None:
    old, new, old_root, new_root, proof = case
    for _ in range(data.draw(st.integers(1, 3))):
        extra = data.draw(st.sampled_from([old_root, new_root, *proof])
                          | st.binary(min_size=32, max_size=32))
        proof.insert(data.draw(st.integers(0, len(proof))), extra)
    too_long = len(proof) > max_consistency_len(old, new)
    with pytest.raises(MalformedError if too_long else ProofError):
        verify_consistency(old, new, old_root, new_root, proof)


# --- MerkleLog -------------------------------------------------------------------

class RecordingStore(MemoryNodeStore):
    """A node store that remembers which nodes were read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int]] = []

    def get(self, level: int, index: int) -> bytes:
        self.reads.append((level, index))
        return super().get(level, index)


@pytest.fixture(scope="module")
def big_log() -> tuple[MerkleLog, RecordingStore, list[bytes]]:
    store = RecordingStore()
    log = MerkleLog(store)
    entries = [b"audit-%d" % i for i in range(1100)]
    for i, entry in enumerate(entries):
        assert log.append(leaf_hash(entry)) == i
    return log, store, entries


def test_log_root_after_each_append() -> None:
    log = MerkleLog()
    for n in range(1, 130):
        log.append(leaf_hash(ENTRIES[n % 64] + bytes([n])))
        d = tuple(ENTRIES[i % 64] + bytes([i]) for i in range(1, n + 1))
        assert log.size == n
        assert log.root() == ref_mth(d)


def test_log_stores_every_perfect_subtree_once(big_log: Any) -> None:
    log, store, _ = big_log
    n = log.size
    # one node per perfect subtree: n leaves, n - popcount(n) interior nodes
    assert len(store) == 2 * n - bin(n).count("1")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 255, 256, 257, 700, 1023, 1024, 1099, 1100])
def test_log_reads_only_nodes_inside_the_tree(n: int, big_log: Any) -> None:
    log, store, _ = big_log
    bound = 2 * n.bit_length() + 2
    calls: list[Callable[[], object]] = [lambda: log.root(n)]
    calls += [lambda i=i: log.inclusion_proof(i, n) for i in {0, n // 3, n // 2, n - 1}]
    calls += [lambda m=m: log.consistency_proof(m, n) for m in {1, n // 3, n - 1} if 0 < m < n]
    for call in calls:
        store.reads.clear()
        call()
        assert len(store.reads) <= bound                       # O(log n) work
        for level, index in store.reads:
            assert (index + 1) << level <= n                   # perfect subtrees inside [0, n)


@pytest.mark.parametrize("n", [5, 333, 1024, 1100])
def test_log_matches_list_functions(n: int, big_log: Any) -> None:
    log, _, entries = big_log
    d = entries[:n]
    root = root_hash(d)
    assert log.root(n) == root
    for i in (0, n // 2, n - 1):
        proof = log.inclusion_proof(i, n)
        assert proof == inclusion_proof(d, i)
        verify_inclusion(d[i], i, n, proof, root)
    for m in (1, n // 2, n - 1):
        proof = log.consistency_proof(m, n)
        assert proof == consistency_proof(d, m)
        verify_consistency(m, n, root_hash(d[:m]), root, proof)


@pytest.mark.parametrize("n", [1, 2, 5, 333, 1024, 1100])
def test_log_proofs_of_a_page_are_each_leafs_proof_and_read_shared_nodes_once(
        n: int, big_log: Any) -> None:
    """``inclusion_proofs`` (a page of the audit log with its proofs) gives every leaf
    the proof ``inclusion_proof`` gives it, in the order asked, out-of-range indexes
    refused; a run of neighbouring leaves reads about two nodes per leaf, not a path each."""
    log, store, _ = big_log
    page = list(range(max(0, n - 500), n))
    asked = [*page, 0, n - 1, n // 2] if n > 1 else page
    store.reads.clear()
    proofs = log.inclusion_proofs(asked, n)
    reads = list(store.reads)
    assert proofs == [log.inclusion_proof(i, n) for i in asked]
    assert len(set(reads)) == len(reads) <= 2 * len(page) + 4 * n.bit_length()
    assert log.inclusion_proofs([], n) == []
    for bad in (n, -1):
        with pytest.raises(MalformedError):
            log.inclusion_proofs([0, bad], n)


def test_log_reopens_on_an_existing_store() -> None:
    store = MemoryNodeStore()
    first = MerkleLog(store)
    for entry in ENTRIES[:37]:
        first.append(leaf_hash(entry))
    reopened = MerkleLog(store, size=37)
    assert reopened.root() == first.root()
    for entry in ENTRIES[37:]:
        reopened.append(leaf_hash(entry))
    assert reopened.root() == ref_mth(ENTRIES)
    assert reopened.consistency_proof(37) == ref_proof(37, ENTRIES)


def test_log_with_inconsistent_store_raises_store_error() -> None:
    with pytest.raises(NodeStoreError) as info:
        MerkleLog(MemoryNodeStore(), size=5).root()
    assert isinstance(info.value, ProtocolError) and info.value.status_hint == 500

    class Broken(MemoryNodeStore):
        def get(self, level: int, index: int) -> bytes:
            return "not bytes"  # type: ignore[return-value]

    log = MerkleLog(Broken())
    log.append(H32)
    with pytest.raises(NodeStoreError):
        log.append(H32)


# --- vector file and docs -----------------------------------------------------

def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vectors_merkle", Path(__file__).with_name("vectors_merkle.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VECTOR_FILE = REPO / "protocol" / "vectors" / "merkle.json"


def test_vector_file_is_current() -> None:
    # Regenerate with: python tests/vectors_merkle.py
    assert VECTOR_FILE.read_text(encoding="utf-8") == _generator().render()


def test_vector_file_against_reference() -> None:
    v = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))
    leaves = tuple(bytes.fromhex(h) for h in v["leaves"])
    assert list(leaves) == CT_LEAVES
    assert v["empty_root"] == EMPTY_ROOT.hex()
    assert [bytes.fromhex(r["root"]) for r in v["roots"]] == [EMPTY_ROOT, *CT_ROOTS]
    for r in v["roots"]:
        assert bytes.fromhex(r["root"]) == ref_mth(leaves[:r["tree_size"]])
    assert len(v["inclusion"]) == 36 and len(v["consistency"]) == 45
    for c in v["inclusion"]:
        i, n = c["index"], c["tree_size"]
        proof = [bytes.fromhex(h) for h in c["proof"]]
        assert proof == ref_path(i, leaves[:n])
        verify_inclusion(leaves[i], i, n, proof, ref_mth(leaves[:n]))
    for c in v["consistency"]:
        m, n = c["old_size"], c["new_size"]
        proof = [bytes.fromhex(h) for h in c["proof"]]
        assert proof == ref_proof(m, leaves[:n])
        verify_consistency(m, n, ref_mth(leaves[:m]), ref_mth(leaves[:n]), proof)


def test_vector_file_invalid_cases() -> None:
    cases = json.loads(VECTOR_FILE.read_text(encoding="utf-8"))["invalid"]
    assert {c["error"] for c in cases} == {"bad_proof", "malformed"}
    for c in cases:
        proof = [bytes.fromhex(h) for h in c["proof"]]
        with pytest.raises(ProtocolError) as info:
            if c["kind"] == "inclusion":
                verify_inclusion(bytes.fromhex(c["entry"]), c["index"], c["tree_size"], proof,
                                 bytes.fromhex(c["root"]))
            else:
                verify_consistency(c["old_size"], c["new_size"], bytes.fromhex(c["old_root"]),
                                   bytes.fromhex(c["new_root"]), proof)
        assert info.value.code == c["error"], c["why"]


def test_docs_cover_public_api() -> None:
    """Every public name is documented: the algorithms in the specification (§9), the
    incremental log the server keeps in the implementation guide."""
    text = "".join((REPO / "docs" / doc).read_text(encoding="utf-8")
                   for doc in ("protocol.md", "implementation.md"))
    for name in merkle.__all__:
        assert f"`{name}" in text, name
