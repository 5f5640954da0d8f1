"""Each network's trust log: the chain objects the server accepted, in acceptance order, in
an RFC 6962 log that every member reads whole (docs/protocol.md §15.8; ADR 0048).

Leaf 0 is the ``network-genesis``; then every ``network-policy``, ``membership``,
``membership-revocation``, ``covenant-acceptance`` and ``key-rotation``, each appended by
:func:`append_trust_txn` **inside the write transaction that accepts it** (so an object is
stored if and only if it is logged).  The leaf data is
:func:`schakel.protocol.trustlog.entry_data`; the tree's nodes live in ``trust_nodes``, the
node store of :class:`schakel.protocol.merkle.MerkleLog` that the audit log uses too
(:class:`schakel.server.audit.SqliteNodeStore` with ``log="trust"``).

Its head is served only as a C2SP checkpoint signed by the log key under the origin
``schakel/trust/<network>`` (``server/witnessing.py`` ``served_checkpoint``, signed when
asked: Ed25519 signs the same checkpoint the same way every time, so nothing but the tree
is stored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol.errors import MalformedError
from schakel.protocol.merkle import MerkleLog, leaf_hash
from schakel.protocol.trustlog import chain_type, entry_data_of
from schakel.protocol.witnessing import TRUST
from schakel.server.audit import SqliteNodeStore
from schakel.server.errors import NotFound
from schakel.server.storage import Db, lock_network


def trust_size(db: Db, network: str) -> int:
    """The number of entries of ``network``'s trust log (0 only before its genesis)."""
    row = db.execute("SELECT idx FROM trust_entries WHERE network = ? ORDER BY idx DESC"
                     " LIMIT 1", (network,)).fetchone()
    return 0 if row is None else int(row[0]) + 1


def append_trust_txn(db: Db, network: str, envelope: Mapping[str, Any] | str) -> int:
    """Append one accepted chain object to ``network``'s trust log inside the caller's write
    transaction; returns its index.  ``envelope`` is the object, or its JSON text as
    ``schakel.server.checks.stored`` made it (``Stored.envelope``); the entry is its RFC 8785
    canonical JSON either way.  Call it exactly when the object is newly stored (an identical
    retry appends nothing).

    The key-rotation route calls this too, for each ``key-rotation`` it accepts, in the
    same ``*_txn`` that stores it (docs/protocol.md §15.8)."""
    value = json.loads(envelope) if isinstance(envelope, str) else envelope
    text = canonical_json(value)
    kind = chain_type(value)
    if kind is None:
        raise MalformedError("only a chain object is a trust-log entry")
    lock_network(db, network, "trust")
    index = trust_size(db, network)
    if (index == 0) != (kind == "network-genesis"):
        raise MalformedError("the genesis is the first trust-log entry, and only it")
    MerkleLog(SqliteNodeStore(db, network, TRUST), size=index).append(
        leaf_hash(entry_data_of(text)))
    db.execute("INSERT INTO trust_entries (network, idx, type, envelope) VALUES (?, ?, ?, ?)",
               (network, index, kind, text.decode("utf-8")))
    return index


# --------------------------------------------------------------------------- reads


def _log(db: Db, network: str, size: int) -> MerkleLog:
    current = trust_size(db, network)
    if size > current:
        raise NotFound("the trust log has no entries up to this size",
                       details={"size": size, "latest": current})
    return MerkleLog(SqliteNodeStore(db, network, TRUST), size=current)


def trust_root(db: Db, network: str, size: int) -> bytes:
    """The root of ``network``'s trust log at ``size`` (a size it reached; 404 otherwise)."""
    return _log(db, network, size).root(size)


def trust_page(db: Db, network: str, after: int, limit: int) -> list[dict[str, Any]]:
    """Entries with index >= ``after`` in index order, at most ``limit``: ``{"index",
    "envelope"}`` each, the envelope as accepted."""
    return [{"index": r[0], "envelope": json.loads(r[1])} for r in db.execute(
        "SELECT idx, envelope FROM trust_entries WHERE network = ? AND idx >= ? ORDER BY idx"
        " LIMIT ?", (network, after, limit))]


def trust_consistency(db: Db, network: str, old: int, new: int) -> list[bytes]:
    """The consistency proof from size ``old`` to size ``new`` of the trust log (``0 <= old
    <= new``, ``new`` at most its size: 404 otherwise; empty when ``old`` is 0 or ``new``)."""
    if old > new:
        raise MalformedError("old must not exceed new", details={"field": "old"})
    return _log(db, network, new).consistency_proof(old, new)


def trust_envelopes(db: Db, network: str) -> list[dict[str, Any]]:
    """Every entry's envelope in index order (for tests and operators)."""
    return [json.loads(r[0]) for r in db.execute(
        "SELECT envelope FROM trust_entries WHERE network = ? ORDER BY idx", (network,))]


# --------------------------------------------------------------------------- migration 14

#: Where the chain objects are stored, and the rank of their table among objects received in
#: the same second (the genesis is leaf 0 whatever its time).
_TABLES = (("coordinator_rotations", 0), ("network_policies", 1), ("memberships", 2),
           ("revocations", 3), ("acceptances", 4))


def build_trust_logs(db: Db) -> None:
    """Build the trust log of every network of a database that had none (migration 14): the
    genesis, then its stored chain objects in the order the server received them (``received``,
    whole seconds; within one second by table -- rotations, policies, memberships,
    revocations, acceptances -- and by row id)."""
    for (network, genesis) in db.execute(
            "SELECT network, genesis FROM networks ORDER BY rowid").fetchall():
        if trust_size(db, network):
            continue
        append_trust_txn(db, network, genesis)
        rows: list[tuple[str, int, int, str]] = []
        for table, rank in _TABLES:
            rows += [(r[0] or "", rank, r[1], r[2]) for r in db.execute(
                f"SELECT received, id, envelope FROM {table} WHERE network = ?", (network,))]
        for _, _, _, envelope in sorted(rows):
            append_trust_txn(db, network, envelope)


__all__ = ["append_trust_txn", "build_trust_logs", "trust_consistency", "trust_root",
           "trust_envelopes", "trust_page", "trust_size"]
