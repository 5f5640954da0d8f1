"""RFC 6962 / RFC 9162 Merkle tree for the audit log (docs/protocol.md §9).

Hashing is RFC 9162 §2.1.1 with SHA-256: a leaf is ``SHA-256(0x00 || entry)``,
an interior node ``SHA-256(0x01 || left || right)`` and the empty tree
``SHA-256("")``; a tree of ``n > 1`` leaves splits at ``k``, the largest power
of two smaller than ``n``.  Proofs are RFC 9162 §2.1.3.1 inclusion paths and
§2.1.4.1 consistency proofs, lists of 32-byte hashes ordered leaf to root.

Two producers share one proof-shape algorithm (:func:`_path`, :func:`_subproof`)
and differ only in where subtree hashes come from: the list functions hash the
raw entries they are given; :class:`MerkleLog` reads the perfect subtrees it
stored while leaves were appended, so the server answers any historical root or
proof in ``O(log n)`` hash operations.  The verifiers implement RFC 9162
§2.1.3.2 and §2.1.4.2 literally; they return ``None`` or raise
:class:`~schakel.protocol.errors.ProofError` (the proof does not verify) or
:class:`~schakel.protocol.errors.MalformedError` (arguments no tree could satisfy).

Pure: no I/O, no clock; only :mod:`hashlib`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from schakel.protocol.errors import MalformedError, NodeStoreError, ProofError

#: Size of every hash in the tree (SHA-256).
HASH_SIZE = 32
#: Largest tree size (RFC 9162 carries tree sizes as uint64).
MAX_TREE_SIZE = (1 << 64) - 1
#: Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

#: ``subtree(lo, hi)`` returns MTH(D[lo:hi]) for ``0 <= lo < hi``.
_Subtree = Callable[[int, int], bytes]


# --- argument checks ---------------------------------------------------------

def _bytes(value: object, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise MalformedError(f"{what}: expected bytes, got {type(value).__name__}",
                         details={"field": what})


def _hash(value: object, what: str) -> bytes:
    data = _bytes(value, what)
    if len(data) != HASH_SIZE:
        raise MalformedError(f"{what}: expected a {HASH_SIZE}-byte hash, got {len(data)} bytes",
                             details={"field": what})
    return data


def _int(value: object, what: str, lo: int = 0, hi: int = MAX_TREE_SIZE) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedError(f"{what}: expected an integer, got {type(value).__name__}",
                             details={"field": what})
    if not lo <= value <= hi:
        raise MalformedError(f"{what}: {value} is outside [{lo}, {hi}]", details={"field": what})
    return value


def _index(value: object, size: int) -> int:
    index = _int(value, "index")
    if index >= size:
        raise MalformedError(f"index: {index} is not below the tree size {size}",
                             details={"field": "index"})
    return index


def _proof(value: object, max_len: int) -> list[bytes]:
    if not isinstance(value, (list, tuple)):
        raise MalformedError(f"proof: expected a list of hashes, got {type(value).__name__}",
                             details={"field": "proof"})
    if len(value) > max_len:
        raise MalformedError(f"proof: {len(value)} hashes, but no proof for these sizes has more "
                             f"than {max_len}", details={"field": "proof"})
    return [_hash(item, f"proof[{i}]") for i, item in enumerate(value)]


def _max_inclusion_len(tree_size: int) -> int:
    """Longest inclusion path in a tree of ``tree_size >= 1`` leaves: ceil(log2 n)."""
    return (tree_size - 1).bit_length()


def _max_consistency_len(old_size: int, new_size: int) -> int:
    """Longest consistency proof between the sizes (RFC 9162 §2.1.4.1)."""
    if old_size in (0, new_size):
        return 0
    return (new_size - 1).bit_length() + 1


# --- hashing (RFC 9162 §2.1.1) -------------------------------------------------

def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x00 || entry)`` for one raw leaf entry."""
    return hashlib.sha256(_LEAF_PREFIX + _bytes(entry, "entry")).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: ``SHA-256(0x01 || left || right)`` for two 32-byte child hashes."""
    return _node(_hash(left, "left"), _hash(right, "right"))


# --- proof shapes, shared by the list functions and MerkleLog ----------------

def _path(index: int, size: int, subtree: _Subtree) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, siblings ordered leaf to root."""
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo += k
    proof.reverse()
    return proof


def _subproof(old_size: int, size: int, subtree: _Subtree) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1, ``0 < m < n``."""
    proof: list[bytes] = []
    lo, hi, whole_old_tree = 0, size, True          # the RFC's flag b
    while old_size != hi:                           # invariant: lo < old_size <= hi
        k = _split(hi - lo)
        if old_size <= lo + k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo += k
            whole_old_tree = False
    if not whole_old_tree:
        proof.append(subtree(lo, hi))
    proof.reverse()
    return proof


# --- list-based API (design §6) ----------------------------------------------

def _leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    if isinstance(entries, (bytes, bytearray, memoryview, str)) or not isinstance(entries, Iterable):
        raise MalformedError("entries: expected a sequence of byte strings",
                             details={"field": "entries"})
    return [hashlib.sha256(_LEAF_PREFIX + _bytes(e, f"entries[{i}]")).digest()
            for i, e in enumerate(entries)]


def _list_subtree(hashes: Sequence[bytes]) -> _Subtree:
    def subtree(lo: int, hi: int) -> bytes:
        # Pairing neighbours level by level and promoting an odd last node
        # yields the same tree as the RFC's split at k.
        level = list(hashes[lo:hi])
        while len(level) > 1:
            paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                paired.append(level[-1])
            level = paired
        return level[0]
    return subtree


def root_hash(entries: Iterable[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over raw entries; :data:`EMPTY_ROOT` for none."""
    hashes = _leaf_hashes(entries)
    return _list_subtree(hashes)(0, len(hashes)) if hashes else EMPTY_ROOT


def inclusion_proof(entries: Iterable[bytes], index: int) -> list[bytes]:
    """Inclusion proof (RFC 9162 §2.1.3.1) of ``entries[index]`` in the tree of all ``entries``."""
    hashes = _leaf_hashes(entries)
    index = _index(index, len(hashes))
    return _path(index, len(hashes), _list_subtree(hashes))


def consistency_proof(entries: Iterable[bytes], old_size: int) -> list[bytes]:
    """Consistency proof (RFC 9162 §2.1.4.1) from the first ``old_size`` entries to all of
    them.  Empty when ``old_size`` is 0 or ``len(entries)``."""
    hashes = _leaf_hashes(entries)
    old_size = _int(old_size, "old_size", 0, len(hashes))
    if old_size in (0, len(hashes)):
        return []
    return _subproof(old_size, len(hashes), _list_subtree(hashes))


# --- verification (RFC 9162 §2.1.3.2, §2.1.4.2) ------------------------------

def verify_inclusion(entry: bytes, index: int, tree_size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """Check that raw ``entry`` is leaf ``index`` of the tree with ``tree_size`` leaves and
    ``root``.  Returns ``None``; raises :class:`ProofError` or :class:`MalformedError`.

    The root does not bind ``tree_size`` here: take both from one signed tree head.
    """
    verify_inclusion_by_hash(leaf_hash(entry), index, tree_size, proof, root)


def verify_inclusion_by_hash(hashed_leaf: bytes, index: int, tree_size: int,
                             proof: Sequence[bytes], root: bytes) -> None:
    """:func:`verify_inclusion` for a leaf given by its leaf hash (RFC 9162 §2.1.3.2)."""
    hashed_leaf = _hash(hashed_leaf, "leaf_hash")
    tree_size = _int(tree_size, "tree_size", 1)
    index = _index(index, tree_size)                       # step 1: index < tree_size
    root = _hash(root, "root")
    path = _proof(proof, _max_inclusion_len(tree_size))
    fn, sn, r = index, tree_size - 1, hashed_leaf          # steps 2-3
    for p in path:                                         # step 4
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the leaf")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while fn != 0 and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:                                            # step 5
        raise ProofError("inclusion proof is shorter than the path to the leaf")
    if r != root:
        raise ProofError("inclusion proof does not lead to the given root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``).
    Returns ``None``; raises :class:`ProofError` or :class:`MalformedError`.

    ``old_size == new_size`` needs an empty proof and equal roots; ``old_size == 0``
    needs an empty proof and ``old_root == EMPTY_ROOT`` (every tree extends the
    empty tree); otherwise RFC 9162 §2.1.4.2.
    """
    old_size = _int(old_size, "old_size")
    new_size = _int(new_size, "new_size")
    if old_size > new_size:
        raise MalformedError(f"old_size {old_size} exceeds new_size {new_size}",
                             details={"field": "old_size"})
    old_root = _hash(old_root, "old_root")
    new_root = _hash(new_root, "new_root")
    path = _proof(proof, _max_consistency_len(old_size, new_size))
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError("old_root is not the root of the empty tree")
    if old_size == new_size:
        if old_root != new_root:
            raise ProofError("trees of equal size have different roots")
        return
    if old_size == 0:
        return
    if not path:                                           # step 1
        raise ProofError("empty consistency proof between different non-empty sizes")
    if old_size & (old_size - 1) == 0:                     # step 2
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1                    # step 3
    while fn & 1:                                          # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]                                      # step 5
    for c in path[1:]:                                     # step 6
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees need")
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn != 0 and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:                                            # step 7
        raise ProofError("consistency proof is shorter than the trees need")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to old_root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to new_root")


# --- incremental log -----------------------------------------------------------

class NodeStore(Protocol):
    """Where a :class:`MerkleLog` keeps the hash of every perfect subtree.

    Node ``(level, index)`` covers leaves ``[index * 2**level, (index + 1) * 2**level)``;
    level 0 holds leaf hashes.  ``get`` raises :class:`LookupError` for a node it lacks.
    """

    def get(self, level: int, index: int) -> bytes: ...

    def put(self, level: int, index: int, node: bytes) -> None: ...


class MemoryNodeStore:
    """The default :class:`NodeStore`: a dict in memory."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        return self._nodes[(level, index)]

    def put(self, level: int, index: int, node: bytes) -> None:
        self._nodes[(level, index)] = node

    def __len__(self) -> int:
        return len(self._nodes)


class MerkleLog:
    """An append-only RFC 9162 tree over leaf hashes, backed by a :class:`NodeStore`.

    ``append`` stores the leaf and every perfect subtree it completes (amortised
    O(1), at most O(log n) hashes).  Roots and proofs for any size up to
    :attr:`size` read only perfect subtrees inside ``[0, size)`` and rehash at
    most O(log n) nodes on the right edge; they equal :func:`root_hash`,
    :func:`inclusion_proof` and :func:`consistency_proof` over the same entries.

    To reopen a persistent store, pass the number of leaves it holds as ``size``.
    A store that disagrees with ``size`` makes queries raise :class:`NodeStoreError`.
    """

    def __init__(self, store: NodeStore | None = None, size: int = 0) -> None:
        self._store: NodeStore = store if store is not None else MemoryNodeStore()
        self._size = _int(size, "size")

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def store(self) -> NodeStore:
        """The node store this log writes to."""
        return self._store

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash (see :func:`leaf_hash`); returns its index."""
        node = _hash(leaf_hash, "leaf_hash")
        index = self._size
        if index == MAX_TREE_SIZE:
            raise MalformedError("the log holds the maximum number of leaves")
        self._store.put(0, index, node)
        level, i = 0, index
        while i & 1:                       # node (level, i) is a right child: its parent is complete
            node = _node(self._get(level, i - 1), node)
            level, i = level + 1, i >> 1
            self._store.put(level, i, node)
        self._size = index + 1
        return index

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all); :data:`EMPTY_ROOT` for 0."""
        n = self._check_size(size, "size")
        return self._subtree(0, n) if n else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves."""
        n = self._check_size(size, "size")
        index = _index(index, n)
        return _path(index, n, self._subtree)

    def inclusion_proofs(self, indexes: Iterable[int], size: int | None = None
                         ) -> list[list[bytes]]:
        """The inclusion proofs of several leaves in the tree of the first ``size``
        leaves, in the order of ``indexes``: each equals :meth:`inclusion_proof`, and a
        subtree hash the proofs share is read (or folded) once.  For a run of ``k``
        neighbouring leaves that is about ``2k + log n`` reads instead of ``k log n``."""
        n = self._check_size(size, "size")
        memo: dict[tuple[int, int], bytes] = {}
        return [_path(_index(index, n), n, lambda lo, hi: self._subtree(lo, hi, memo))
                for index in indexes]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from the first ``old_size`` leaves to the first ``new_size``."""
        n = self._check_size(new_size, "new_size")
        m = _int(old_size, "old_size", 0, n)
        return [] if m in (0, n) else _subproof(m, n, self._subtree)

    def _check_size(self, size: int | None, what: str) -> int:
        return self._size if size is None else _int(size, what, 0, self._size)

    def _subtree(self, lo: int, hi: int,
                 memo: dict[tuple[int, int], bytes] | None = None) -> bytes:
        # Perfect, aligned ranges are stored; any other range the proofs ask for
        # lies on the right edge [x, n) and folds from O(log n) stored nodes.
        # ``memo`` keeps what one batch of proofs already read or folded.
        if memo is not None and (lo, hi) in memo:
            return memo[(lo, hi)]
        width = hi - lo
        if width & (width - 1) == 0 and lo & (width - 1) == 0:
            level = width.bit_length() - 1
            node = self._get(level, lo >> level)
        else:
            k = _split(width)
            node = _node(self._subtree(lo, lo + k, memo), self._subtree(lo + k, hi, memo))
        if memo is not None:
            memo[(lo, hi)] = node
        return node

    def _get(self, level: int, index: int) -> bytes:
        try:
            node = self._store.get(level, index)
        except LookupError:
            raise NodeStoreError(f"node store lacks node ({level}, {index})",
                                 details={"level": level, "index": index}) from None
        if not isinstance(node, bytes) or len(node) != HASH_SIZE:
            raise NodeStoreError(f"node store returned a malformed node ({level}, {index})",
                                 details={"level": level, "index": index})
        return node


__all__ = [
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "EMPTY_ROOT",
    "NodeStoreError",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "inclusion_proof",
    "consistency_proof",
    "verify_inclusion",
    "verify_inclusion_by_hash",
    "verify_consistency",
    "NodeStore",
    "MemoryNodeStore",
    "MerkleLog",
]
