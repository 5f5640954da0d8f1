"""Each network's verifiable audit log (docs/protocol.md §15 §15.1; protocol.md §9, §A.1,
§A.2).

An entry is an ``audit-entry`` (NEN 7513 fields, never identity); its leaf in the RFC 6962
tree is ``leaf_hash(entry_commitment(entry))``.  The tree lives in ``audit_nodes`` as the
node store of a :class:`schakel.protocol.merkle.MerkleLog` -- the hash of every perfect subtree,
so an append writes the leaf and the subtrees it completes (O(log n), amortised O(1)) and
a root or proof for any size reads O(log n) rows.  Every append signs a ``tree-head`` for
the new size with the server's log key and keeps it in ``tree_heads``: a client can ask
for any head the server ever signed and a consistency proof between any two of them.

:func:`append_txn` is the one write entry point.  It runs inside the caller's ``*_txn``
(so the entry commits or rolls back with the change it records) and computes the size from
the stored rows each time: no in-memory state can drift from the database when a savepoint
rolls an append back.  The read functions below are ``fn(db, ...)`` for ``Store.read``.

Visibility (§15.1): the network's auditors and coordinator read every entry; any other
member the entries whose ``actor.partner`` or ``subject`` is its key id (``reader``), and
the ``erase`` entries (server/retention.py) that say which erased bodies are legitimate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import BoxPublicKey, Signer, sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError
from schakel.protocol.merkle import MerkleLog, leaf_hash
from schakel.protocol.envelopes import seal_purpose
from schakel.protocol.objects.audit import (
    COMMITMENT_PREFIX, AuditActor, AuditEntry, SealedPurpose, TreeHead, new_salt,
)
from schakel.protocol.objects.base import format_timestamp
from schakel.server.errors import NotFound
from schakel.server.storage import Db, lock_network

if TYPE_CHECKING:
    from schakel.keys import Member, Revocation, VerifiedGenesis, VerifiedPolicy
    from schakel.server.auth import Caller
    from schakel.server.context import AppContext
    from schakel.server.data.cases import NewShare
    from schakel.server.directory import NetworkState


# --------------------------------------------------------------------------- the node store


#: The node table of each log of a network (the audit log, §15.1; the trust log, §15.8).
NODE_TABLES = {"audit": "audit_nodes", "trust": "trust_nodes"}


class SqliteNodeStore:
    """:class:`schakel.protocol.merkle.NodeStore` over the node table of one ``log`` of one
    network (:data:`NODE_TABLES`; ``audit_nodes`` by default), on the connection it is given
    (the writer's inside a transaction, or a reader's).  Nodes are only ever inserted: a
    second put of one node is an integrity error, never an update.  So each node read or
    written is kept for the store's lifetime (one append, or one read): the root and the
    proof an append returns read again the nodes its append just read or wrote, and on
    PostgreSQL every read is a round trip."""

    __slots__ = ("_db", "_network", "_get", "_put", "_known")

    def __init__(self, db: Db, network: str, log: str = "audit") -> None:
        table = NODE_TABLES[log]
        self._db = db
        self._network = network
        self._get = f"SELECT hash FROM {table} WHERE network = ? AND level = ? AND idx = ?"
        self._put = f"INSERT INTO {table} (network, level, idx, hash) VALUES (?, ?, ?, ?)"
        self._known: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        node = self._known.get((level, index))
        if node is not None:
            return node
        row = self._db.execute(self._get, (self._network, level, index)).fetchone()
        if row is None:
            raise LookupError((level, index))
        node = self._known[(level, index)] = bytes(row[0])
        return node

    def put(self, level: int, index: int, node: bytes) -> None:
        self._db.execute(self._put, (self._network, level, index, node))
        self._known[(level, index)] = node


def entry_count(db: Db, network: str) -> int:
    """The number of entries stored for ``network`` (indexes are 0..n-1, never erased as
    rows: retention erases a body, not its row)."""
    row = db.execute("SELECT idx FROM audit_entries WHERE network = ? ORDER BY idx DESC LIMIT 1",
                     (network,)).fetchone()
    return 0 if row is None else int(row[0]) + 1


def signed_size(db: Db, network: str) -> int:
    """The size of the latest signed tree head (0 while the log is empty)."""
    row = db.execute("SELECT size FROM tree_heads WHERE network = ? ORDER BY size DESC LIMIT 1",
                     (network,)).fetchone()
    return 0 if row is None else int(row[0])


# --------------------------------------------------------------------------- appending


@dataclass(frozen=True)
class Receipt:
    """What an append returns: the entry, its index, its inclusion proof in the tree of
    size ``index + 1`` and the signed head of that tree (§15.1)."""

    entry: AuditEntry
    index: int
    proof: tuple[bytes, ...]
    tree_head: dict[str, Any]

    @property
    def size(self) -> int:
        return self.index + 1

    def to_json(self) -> dict[str, Any]:
        """``{"entry", "index", "proof": [b64…], "tree_head": envelope}``; a client checks it
        with ``merkle.verify_inclusion(entry_commitment(entry), index, size, proof, root)``
        taking size and root from the head after verifying its signature by the log key."""
        return {"entry": self.entry.to_json(), "index": self.index,
                "proof": [b64e(p) for p in self.proof], "tree_head": self.tree_head}


@dataclass(frozen=True)
class Purpose:
    """The purpose text of an audited act and who may read it: ``(key id, box key)`` of
    the coordinator and of every current auditor (:func:`purpose_readers`).  The entry
    carries it sealed to each of them, never in the clear (§A.1)."""

    text: str
    readers: tuple[tuple[str, BoxPublicKey], ...]


def purpose_readers(state: "NetworkState", now: datetime) -> tuple[tuple[str, BoxPublicKey], ...]:
    """The readers of sealed purposes at ``now``: the coordinator (who answers the subject
    access request) and every current member with the ``auditor`` role."""
    coordinator = state.genesis.coordinator
    readers = {coordinator.key_id: coordinator.box}
    for keyid, member in sorted(state.current_members(now).items()):
        if member.has_role("auditor"):
            readers.setdefault(keyid, member.box)
    return tuple(readers.items())


def append_txn(db: Db, *, network: str, log_key: Signer, now: datetime, actor: AuditActor,
               action: str, basis: str, outcome: str, reason: str, case: str | None = None,
               cases: Sequence[str] | None = None,
               subject: str | None = None, classes: Sequence[str] | None = None,
               ref: str | None = None, review_required: bool = False,
               emergency: bool = False, erased_below: int | None = None,
               purpose: Purpose | None = None) -> Receipt:
    """Append one entry to ``network``'s log inside the caller's write transaction: build
    the entry (index = current size, fresh salt, ``time`` = ``now``, ``purpose`` sealed to
    each of its readers for this index and action), append its leaf to the tree, store
    the entry and the tree head for the new size signed by ``log_key``.
    Raises ``MalformedError`` for an entry that breaks the audit-entry rules; the caller's
    savepoint then rolls back its own change as well."""
    lock_network(db, network, "audit")
    index = entry_count(db, network)
    sealed = None if purpose is None else tuple(
        SealedPurpose(reader=keyid, sealed=seal_purpose(box, purpose.text, network=network,
                                                        index=index, action=action, reader=keyid))
        for keyid, box in purpose.readers)
    entry = AuditEntry(network=network, index=index, salt=new_salt(), time=format_timestamp(now),
                       actor=actor, case=case, cases=tuple(cases) if cases is not None else None,
                       subject=subject, action=action,
                       classes=tuple(classes) if classes is not None else None, basis=basis,
                       ref=ref, outcome=outcome, reason=reason, review_required=review_required,
                       emergency=emergency, erased_below=erased_below, purpose=sealed or None)
    body = canonical_json(entry.to_json())
    commitment = sha256(COMMITMENT_PREFIX + body)      # entry_commitment(entry), body hashed once
    log = MerkleLog(SqliteNodeStore(db, network), size=index)
    log.append(leaf_hash(commitment))
    db.execute("INSERT INTO audit_entries (network, idx, body, commitment, partner, subject,"
               " [case]) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (network, index, body.decode("utf-8"), commitment, actor.partner, subject, case))
    if entry.cases is not None:
        db.executemany("INSERT INTO audit_cases (network, [case], idx) VALUES (?, ?, ?)",
                       ((network, c, index) for c in entry.cases))
    root = log.root()
    head = TreeHead(network=network, size=index + 1, root=b64e(root),
                    time=entry.time).sign(log_key)
    db.execute("INSERT INTO tree_heads (network, size, root, time, envelope) VALUES (?, ?, ?, ?, ?)",
               (network, index + 1, root, entry.time, json.dumps(head, separators=(",", ":"))))
    return Receipt(entry=entry, index=index, proof=tuple(log.inclusion_proof(index)),
                   tree_head=head)


@dataclass(frozen=True, kw_only=True)
class AuditNote:
    """The arguments of one :func:`append_txn`, prepared on the event loop and handed to a
    ``*_txn`` that appends it when (and only when) it makes its change."""

    network: str
    log_key: Signer
    now: datetime
    actor: AuditActor
    action: str
    basis: str
    outcome: str = "allow"
    reason: str
    case: str | None = None
    cases: Sequence[str] | None = None
    subject: str | None = None
    classes: Sequence[str] | None = None
    ref: str | None = None
    review_required: bool = False
    emergency: bool = False
    purpose: Purpose | None = None

    def append_txn(self, db: Db) -> Receipt:
        return append_txn(db, **{f.name: getattr(self, f.name) for f in fields(self)})


def actor_of(caller: "Caller", role: str, *, organisation: str | None = None) -> AuditActor:
    """The audit actor for an authenticated caller: its key id, acting user, ``role`` and
    organisation -- the name in its membership; for the coordinator key acting without a
    current membership (or a former member), the name of its latest membership, else
    ``organisation``, else "coordinator of <network name>".  ``on_behalf_of`` comes from
    that same membership and ``party`` is the acting user's party in the membership in
    force (protocol.md §A.1): the server's verified directory, never the request."""
    source = caller.member
    if source is None:
        held = caller.network.memberships.get(caller.keyid)
        source = max(held.items())[1] if held else None
    name = (source.name if source is not None else
            organisation or f"coordinator of {caller.network.genesis.name}"[:200])
    behalf = source.on_behalf_of if source is not None else ()
    return AuditActor(partner=caller.keyid, acting_user=caller.acting_user, role=role,
                      organisation=name, party=caller.party, on_behalf_of=behalf or None)


def note(ctx: "AppContext", caller: "Caller", *, role: str, action: str, basis: str,
         reason: str, organisation: str | None = None, **optional: Any) -> AuditNote:
    """An :class:`AuditNote` for ``caller`` at the server's time, signed later with the
    server's log key; ``optional`` are the optional entry fields (case, subject, ...).  A
    ``subject`` equal to the actor is dropped (the field names another partner)."""
    if optional.get("subject") == caller.keyid:
        optional.pop("subject")
    return AuditNote(network=caller.network.network, log_key=ctx.keys.log_signer, now=ctx.now(),
                     actor=actor_of(caller, role, organisation=organisation), action=action,
                     basis=basis, reason=reason, **optional)


# The entries of the trust and sharing routes (§14): the coordinator acts; the partner
# concerned is the subject; the reason is built from the verified object's fields, never
# copied from its free text.


def membership_note(ctx: "AppContext", caller: "Caller", member: "Member") -> AuditNote:
    roles = ",".join(sorted(member.roles)) or "none"
    return note(ctx, caller, role="coordinator", action="membership", basis="none",
                subject=member.member,
                organisation=member.name if member.member == caller.keyid else None,
                reason=f"membership serial {member.serial}: {member.ring} ring, "
                       f"{member.party} party, roles {roles}"
                       + (f", on behalf of {len(member.on_behalf_of)} organisation(s)"
                          if member.on_behalf_of else "")
                       + (f", {len(member.users)} listed user(s) "
                          f"({sum(p == 'formal' for p in member.users.values())} formal)"
                          if member.users is not None else ""))


def revocation_note(ctx: "AppContext", caller: "Caller", revocation: "Revocation") -> AuditNote:
    return note(ctx, caller, role="coordinator", action="membership-revoke", basis="none",
                subject=revocation.member,
                reason=f"memberships up to serial {revocation.serial} revoked from "
                       f"{format_timestamp(revocation.at)}")


def read_note(ctx: "AppContext", caller: "Caller", *, cases: Sequence[str], served: str,
              classes: Sequence[str] | None = None) -> AuditNote:
    """The ``read`` entry of one answer that served case data (§15.6): the
    caller as actor (role coordinator or member), the ``cases`` served in the order they
    first appear, the identity ``classes`` whose records it served, and ``served`` -- what
    it served, counted by kind -- as the reason."""
    return note(ctx, caller, role="coordinator" if caller.is_coordinator else "member",
                action="read", basis="policy", reason=served, cases=tuple(dict.fromkeys(cases)),
                classes=classes)


def policy_note(ctx: "AppContext", caller: "Caller", policy: "VerifiedPolicy",
                ref: str) -> AuditNote:
    return note(ctx, caller, role="coordinator", action="policy", basis="none", ref=ref,
                reason=f"network policy version {policy.version} in force from "
                       f"{format_timestamp(policy.issued)}")


def rotation_note(ctx: "AppContext", caller: "Caller", genesis: "VerifiedGenesis",
                  ref: str) -> AuditNote:
    """The ``key-rotation`` entry of a coordinator key rotation (protocol.md §4.6.2, ADR
    0046): the coordinator (its retiring key) acts, the new key is the subject."""
    old, new = genesis.coordinator_keys[-2], genesis.coordinator_keys[-1]
    return note(ctx, caller, role="coordinator", action="key-rotation", basis="none", ref=ref,
                subject=new.keys.key_id,
                reason=f"coordinator key {old.keys.key_id} retired; key "
                       f"{new.keys.key_id} is the coordinator key from "
                       f"{format_timestamp(new.since)} (rotation "
                       f"{len(genesis.coordinator_keys) - 1})")


def share_note(ctx: "AppContext", caller: "Caller", share: "NewShare") -> AuditNote:
    return note(ctx, caller, role="coordinator", action="share", basis="policy",
                case=share.case, subject=share.partner,
                reason=f"anonymous layer shared (case key version {share.case_key_version})",
                purpose=Purpose(share.reason, purpose_readers(caller.network, ctx.now())))


def widen_note(ctx: "AppContext", caller: "Caller", *, case: str, member: str, version: int,
               reason: str) -> AuditNote:
    """The ``audience-widen`` entry for one member a subset case's owner added to its
    audience (protocol.md §C.1, "Audience"; ADR 0031): the owner acts, the added member is
    the subject, the owner's reason travels sealed to the coordinator and the auditors."""
    return note(ctx, caller, role="member", action="audience-widen", basis="policy",
                case=case, subject=member,
                reason=f"audience widened: case key versions 1..{version} sealed to the member",
                purpose=Purpose(reason, purpose_readers(caller.network, ctx.now())))


# --------------------------------------------------------------------------- reads


def latest_head(db: Db, network: str) -> dict[str, Any] | None:
    """The latest signed tree head, or None while the log is empty."""
    row = db.execute("SELECT envelope FROM tree_heads WHERE network = ? ORDER BY size DESC"
                     " LIMIT 1", (network,)).fetchone()
    return None if row is None else json.loads(row[0])


def head_at(db: Db, network: str, size: int) -> dict[str, Any]:
    """The tree head the server signed for ``size`` (404 if it never signed one)."""
    row = db.execute("SELECT envelope FROM tree_heads WHERE network = ? AND size = ?",
                     (network, size)).fetchone()
    if row is None:
        raise NotFound("the log has no signed tree head of this size", details={"size": size})
    return json.loads(row[0])


def entries_page(db: Db, network: str, after: int, limit: int, reader: str | None,
                 size: int | None = None) -> list[dict[str, Any]]:
    """Entries with index >= ``after`` in index order, at most ``limit``: every entry for
    ``reader=None`` (auditors, coordinator), else those whose actor or subject is
    ``reader`` and every ``erase`` entry whose body is kept (it names no case and no
    partner, and every reader needs it to accept an erased body, §15.1).  Each item is
    ``{"index", "entry" (null once erased), "commitment"}``.  With ``size``, a size the
    server signed (404 otherwise), only entries below it, each with ``"proof"``: its
    inclusion proof in the tree of that size (one read transaction, the nodes the
    page's proofs share read once)."""
    log = None if size is None else _signed_log(db, network, size)
    where = "network = ? AND idx >= ?"
    args: list[Any] = [network, after]
    if size is not None:
        where += " AND idx < ?"
        args.append(size)
    if reader is not None:
        where += (" AND (partner = ? OR subject = ? OR ([case] IS NULL AND subject IS NULL"
                  " AND json_extract(body, '$.action') = 'erase'))")
        args += [reader, reader]
    rows = db.execute(f"SELECT idx, body, commitment FROM audit_entries WHERE {where}"
                      " ORDER BY idx LIMIT ?", (*args, limit)).fetchall()
    items = [{"index": r[0], "entry": None if r[1] is None else json.loads(r[1]),
              "commitment": b64e(r[2])} for r in rows]
    if log is not None:
        proofs = log.inclusion_proofs([item["index"] for item in items], size)
        for item, proof in zip(items, proofs):
            item["proof"] = [b64e(p) for p in proof]
    return items


def case_entries(db: Db, network: str, case: str) -> list[dict[str, Any]]:
    """Every entry about ``case`` in index order (for the subject access report): those
    naming it as their ``case`` and the ``read`` entries listing it in ``cases``."""
    return [{"index": r[0], "entry": None if r[1] is None else json.loads(r[1])}
            for r in db.execute(
                "SELECT idx, body FROM audit_entries WHERE network = ? AND [case] = ?"
                " UNION ALL SELECT e.idx, e.body FROM audit_cases c JOIN audit_entries e"
                " ON e.network = c.network AND e.idx = c.idx WHERE c.network = ? AND c.[case] = ?"
                " ORDER BY idx", (network, case, network, case))]


def _signed_log(db: Db, network: str, size: int) -> MerkleLog:
    current = signed_size(db, network)
    if size > current:
        raise NotFound("the log has no signed tree head of this size",
                       details={"size": size, "latest": current})
    return MerkleLog(SqliteNodeStore(db, network), size=current)


def inclusion_proof(db: Db, network: str, index: int, size: int) -> list[bytes]:
    """The inclusion proof of entry ``index`` in the tree of ``size`` entries, a size the
    server signed (404 otherwise; ``index >= size`` is malformed)."""
    if index >= size:
        raise MalformedError("index must be below size", details={"field": "index"})
    return _signed_log(db, network, size).inclusion_proof(index, size)


def consistency_proof(db: Db, network: str, old: int, new: int) -> list[bytes]:
    """The consistency proof from size ``old`` to size ``new`` (``0 <= old <= new``, ``new``
    a size the server signed; empty when ``old`` is 0 or ``new``)."""
    if old > new:
        raise MalformedError("old must not exceed new", details={"field": "old"})
    return _signed_log(db, network, new).consistency_proof(old, new)


__all__ = ["NODE_TABLES", "SqliteNodeStore", "entry_count", "signed_size", "Receipt", "Purpose",
           "purpose_readers", "append_txn",
           "AuditNote", "actor_of", "note", "membership_note", "revocation_note", "rotation_note", "read_note",
           "share_note", "widen_note",
           "latest_head", "head_at", "entries_page",
           "case_entries", "inclusion_proof", "consistency_proof"]
