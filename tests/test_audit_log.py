"""The audit log (server/audit.py; docs/protocol.md §15 §15.1; protocol.md §9, §A.1, §A.2;
issue 4 item 1 and "Done when": consistency between any two signed heads, tampering detected).

The server side is real: the application over HTTP (tests/server_harness.py) on a real
SQLite file; entries come from real routes (memberships, revocations, shares).  The client
side is :class:`Monitor`: what a partner's client does with the log -- it verifies every
tree head by the server's log key, keeps the heads it accepted, accepts a new head only
with a consistency proof from the ones it holds, and checks entries by recomputing their
commitments and verifying inclusion proofs against a head it holds.  Each tampering test
edits the SQLite file directly, as someone with access to the disk but not to the log key
would, and shows that the monitor raises ``ProofError``; the rollback tests show a server
that shows a smaller or rewritten log (even one re-signed with the log key) is caught.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from protocol import merkle
from protocol.canonical import canonical_json
from protocol.crypto import Signer, VerifyKey
from protocol.encoding import b64d, b64e
from protocol.errors import ProofError
from protocol.objects.audit import AuditActor, AuditEntry, TreeHead, entry_commitment
from protocol.objects.base import parse_timestamp
from server.audit import SqliteNodeStore, append_txn, entry_count, head_at, inclusion_proof
from server.errors import Conflict, NotFound
from server.storage import Db, Store, migrate
from tests.server_harness import (
    Actor, Caller, CaseState, FakeClock, InProcessServer, Network, assert_error, assert_status,
    create_case, enrol, register, server_keys,
)

# =========================================================================== the client side


def _root(head: TreeHead) -> bytes:
    return b64d(head.root, length=32, what="root")


class Monitor:
    """A client's view of one network's audit log, read as ``reader``."""

    def __init__(self, caller: Caller, net: Network, reader: Actor, log_key: VerifyKey) -> None:
        self.caller, self.net, self.reader, self.log_key = caller, net, reader, log_key
        self.heads: dict[int, TreeHead] = {}

    @property
    def latest(self) -> TreeHead | None:
        return self.heads[max(self.heads)] if self.heads else None

    async def get(self, suffix: str) -> Any:
        reply = await self.caller.get(self.net.path(suffix), self.reader)
        if reply.status != 200:
            raise ProofError(f"the server refused {suffix}: {reply!r}")
        return reply.json

    def verify_head(self, envelope: Any) -> TreeHead:
        head = TreeHead.from_envelope(envelope, [self.log_key])
        if head.network != self.net.id:
            raise ProofError("a tree head of another network")
        return head

    async def consistency(self, old: TreeHead, new: TreeHead) -> None:
        answer = await self.get(f"/audit/proof/consistency?old={old.size}&new={new.size}")
        merkle.verify_consistency(old.size, new.size, _root(old), _root(new),
                                  [b64d(p, length=32) for p in answer["proof"]])

    async def accept(self, head: TreeHead) -> None:
        """Keep ``head`` if it is consistent with the latest head held (protocol.md §A.2)."""
        latest = self.latest
        if latest is not None:
            if head.size == latest.size and head.root != latest.root:
                raise ProofError("two heads of one size with different roots: a forked log")
            await (self.consistency(latest, head) if head.size >= latest.size
                   else self.consistency(head, latest))
        self.heads[head.size] = head

    async def update(self) -> TreeHead:
        """Fetch the server's latest head; a head smaller than one held is a rollback."""
        head = self.verify_head((await self.get("/audit/head"))["tree_head"])
        latest = self.latest
        if latest is not None and head.size < latest.size:
            raise ProofError(f"rollback: the server's head has {head.size} entries, the client "
                             f"holds one of {latest.size}")
        await self.accept(head)
        return head

    async def head_at(self, size: int) -> TreeHead:
        head = self.verify_head((await self.get(f"/audit/heads/{size}"))["tree_head"])
        if head.size != size:
            raise ProofError("the server answered a head of another size")
        await self.accept(head)
        return head

    async def entries(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.get(f"/audit/entries?after={after}&limit=500")
            items += page["items"]
            if not page["items"]:
                return items
            after = int(page["cursor"])

    async def check_entry(self, index: int, entry: AuditEntry, head: TreeHead) -> None:
        answer = await self.get(f"/audit/proof/inclusion?index={index}&size={head.size}")
        merkle.verify_inclusion(entry_commitment(entry), index, head.size,
                                [b64d(p, length=32) for p in answer["proof"]], _root(head))
        if entry.index != index:
            raise ProofError("an entry names another index than its place in the log")

    async def audit(self, *, complete: bool) -> list[AuditEntry]:
        """Check every entry the reader sees against the latest head held; ``complete``:
        the reader sees the whole log (auditor, coordinator), so no index may be missing."""
        head = self.latest
        assert head is not None, "fetch a head first"
        checked: list[AuditEntry] = []
        for item in await self.entries():
            if item["index"] >= head.size:
                continue                      # newer than the head held: checked next time
            entry = AuditEntry.from_json(item["entry"])
            await self.check_entry(item["index"], entry, head)
            checked.append(entry)
        if complete and [e.index for e in checked] != list(range(head.size)):
            raise ProofError("entries are missing from the log the head commits to")
        return checked


# =========================================================================== a populated log


@dataclass
class Log:
    server: InProcessServer
    caller: Caller
    net: Network
    members: dict[str, Actor]
    case: CaseState
    log_key: VerifyKey

    def monitor(self, reader: str = "auditor") -> Monitor:
        actor = self.net.coordinator if reader == "coordinator" else self.members[reader]
        return Monitor(self.caller, self.net, actor, self.log_key)

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "schakel.db"


async def populate(server: InProcessServer, *, shares: int) -> Log:
    """A network whose log holds: the coordinator's and six members' memberships, two
    spare members admitted and revoked, and ``shares`` shares of one case."""
    caller = await server.start()
    keys = await server_keys(caller)
    net = Network(keys, caller.clock)
    members = {"core": net.actor("core", ring="core"),
               "shell-1": net.actor("shell-1", ring="shell"),
               "shell-2": net.actor("shell-2", ring="shell", party="informal"),
               "auditor": net.actor("auditor", ring="shell", roles=("auditor",)),
               "core-2": net.actor("core-2", ring="core", party="informal"),
               "shell-3": net.actor("shell-3", ring="shell")}
    await register(caller, net, members.values(), accept=False)
    for label in ("spare-1", "spare-2"):
        spare = await enrol(caller, net, label, ring="shell")
        assert_status(await caller.post(net.path("/revocations"), net.coordinator,
                                         {"revocation": net.revocation(spare)}), 201)
    case = await create_case(caller, net, members["core"])
    for i in range(shares):
        partner = members["shell-1"] if i % 2 == 0 else members["shell-3"]
        assert_status(await caller.post(net.path("/shares"), net.coordinator,
                                         {"share": net.share(case, partner)}), 201)
    return Log(server, caller, net, members, case, keys.log)


@pytest.fixture
async def log(tmp_path: Path) -> Any:
    server = InProcessServer(tmp_path / "srv", FakeClock())
    try:
        yield await populate(server, shares=3)
    finally:
        await server.stop()


@contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    """A direct connection to the server's SQLite file, as an intruder on the disk has."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


# =========================================================================== tests: the whole log


async def test_every_entry_is_included_and_every_pair_of_signed_heads_is_consistent(
        tmp_path: Path) -> None:
    server = InProcessServer(tmp_path / "srv", FakeClock())
    try:
        log = await populate(server, shares=19)
        monitor = log.monitor()
        latest = await monitor.update()
        assert latest.size == 30
        heads = [await monitor.head_at(size) for size in range(1, latest.size + 1)]
        assert heads[-1] == latest
        # every entry against its own head (size index + 1) and against the latest
        entries = await monitor.audit(complete=True)
        for entry in entries:
            await monitor.check_entry(entry.index, entry, heads[entry.index])
        # a consistency proof between ANY two heads the server signed verifies
        pairs = 0
        for old, new in itertools.combinations_with_replacement(heads, 2):
            await monitor.consistency(old, new)
            pairs += 1
        assert pairs == 30 * 31 // 2
        # ... and from the empty tree; the empty log itself has no signed head
        await monitor.consistency(TreeHead(network=log.net.id, size=0, root=b64e(merkle.EMPTY_ROOT),
                                           time=latest.time), latest)
        assert_error(await log.caller.get(log.net.path("/audit/heads/31"), log.net.coordinator),
                     404, "not_found")
    finally:
        await server.stop()


async def test_routes_write_their_entries(log: Log) -> None:
    """Memberships, revocations and shares are audited by the coordinator (role
    coordinator, its acting user), naming the partner concerned; an identical retry of a
    membership adds nothing."""
    monitor = log.monitor("coordinator")
    head = await monitor.update()
    entries = await monitor.audit(complete=True)
    coordinator = log.net.coordinator
    assert [e.action for e in entries] == (
        ["membership"] * 7 + ["membership", "membership-revoke"] * 2 + ["share"] * 3)
    assert all(e.actor.partner == coordinator.key_id and e.actor.role == "coordinator"
               and e.actor.acting_user == coordinator.acting_user and e.outcome == "allow"
               for e in entries)
    assert entries[0].subject is None                       # the coordinator admitted itself
    assert entries[0].actor.organisation == coordinator.name
    assert {e.subject for e in entries[1:7]} == {a.key_id for a in log.members.values()}
    shares = entries[-3:]
    assert [s.subject for s in shares] == [log.members[p].key_id
                                           for p in ("shell-1", "shell-3", "shell-1")]
    assert all(s.case == log.case.case and s.basis == "policy" for s in shares)
    again = await log.caller.post(log.net.path("/members"), coordinator,
                                  {"membership": log.net.membership(log.members["core"])})
    assert again.status in (200, 409)          # same content: 200; a re-signed copy: 409
    assert (await monitor.update()).size == head.size
    network = assert_status(await log.caller.get(log.net.path(), log.members["core"]), 200)
    assert network["tree_head"] == (await monitor.get("/audit/head"))["tree_head"]


async def test_visibility(log: Log) -> None:
    """Auditors and the coordinator read every entry; another member only the entries
    whose actor or subject it is, and it can still verify those against the heads; a
    member of another network is refused."""
    total = (await log.monitor().update()).size
    for reader in ("auditor", "coordinator"):
        monitor = log.monitor(reader)
        await monitor.update()
        assert len(await monitor.audit(complete=True)) == total
    for label, expected in (("shell-1", 3), ("shell-3", 2), ("shell-2", 1), ("core", 1)):
        monitor = log.monitor(label)
        await monitor.update()
        seen = await monitor.audit(complete=False)
        key = log.members[label].key_id
        assert len(seen) == expected, label
        assert all(key in (e.actor.partner, e.subject) for e in seen)
    other = Network(await server_keys(log.caller), log.caller.clock)
    stranger = other.actor("stranger", ring="core")
    await register(log.caller, other, [stranger], accept=False, epoch=False)
    for suffix in ("/audit/head", "/audit/entries", "/audit/heads/1",
                   "/audit/proof/inclusion?index=0&size=1",
                   "/audit/proof/consistency?old=1&new=2"):
        assert_error(await log.caller.get(log.net.path(suffix), stranger), 403, "forbidden")


async def test_bad_proof_requests(log: Log) -> None:
    coordinator, size = log.net.coordinator, (await log.monitor().update()).size
    for suffix, status, code in (
            (f"/audit/proof/inclusion?index={size}&size={size}", 400, "malformed"),
            (f"/audit/proof/inclusion?index=0&size={size + 1}", 404, "not_found"),
            ("/audit/proof/inclusion?index=0", 400, "malformed"),
            ("/audit/proof/consistency?old=3&new=2", 400, "malformed"),
            (f"/audit/proof/consistency?old=1&new={size + 1}", 404, "not_found"),
            ("/audit/proof/consistency?new=2", 400, "malformed"),
            ("/audit/heads/0", 400, "malformed"),
            ("/audit/heads/x", 400, "malformed"),
            ("/audit/entries?after=-1", 400, "malformed")):
        assert_error(await log.caller.get(log.net.path(suffix), coordinator), status, code)
    empty = Network(await server_keys(log.caller), log.caller.clock)
    assert_status(await log.caller.post("/v1/networks", empty.coordinator,
                                        {"genesis": empty.genesis}), 201)
    assert_error(await log.caller.get(empty.path("/audit/head"), empty.coordinator), 404,
                 "not_found")


# =========================================================================== tests: tampering


def _alter_body(conn: sqlite3.Connection, network: str, size: int) -> None:
    """Rewrite who acted in one entry (a cover-up), keeping the body a valid entry."""
    body = conn.execute("SELECT body FROM audit_entries WHERE network = ? AND idx = 4",
                        (network,)).fetchone()[0]
    entry = AuditEntry.from_json(json.loads(body))
    altered = entry.to_json()
    altered["actor"]["acting_user"] = "somebody-else"
    conn.execute("UPDATE audit_entries SET body = ? WHERE network = ? AND idx = 4",
                 (canonical_json(altered).decode(), network))


def _remove_entry(conn: sqlite3.Connection, network: str, size: int) -> None:
    """Delete entry 4 and close the gap: later entries move up one place, their bodies and
    commitments rewritten to match (heads and nodes cannot be re-signed without the key)."""
    conn.execute("DELETE FROM audit_entries WHERE network = ? AND idx = 4", (network,))
    for idx in range(5, size):
        body = json.loads(conn.execute("SELECT body FROM audit_entries WHERE network = ? AND"
                                       " idx = ?", (network, idx)).fetchone()[0])
        body["index"] = idx - 1
        moved = AuditEntry.from_json(body)
        conn.execute("UPDATE audit_entries SET idx = ?, body = ?, commitment = ? WHERE"
                     " network = ? AND idx = ?", (idx - 1, canonical_json(body).decode(),
                                                  entry_commitment(moved), network, idx))


def _reorder(conn: sqlite3.Connection, network: str, size: int) -> None:
    """Swap two entries' places (bodies and commitments)."""
    rows = {idx: conn.execute("SELECT body, commitment FROM audit_entries WHERE network = ?"
                              " AND idx = ?", (network, idx)).fetchone() for idx in (3, 9)}
    for idx, other in ((3, 9), (9, 3)):
        conn.execute("UPDATE audit_entries SET body = ?, commitment = ? WHERE network = ? AND"
                     " idx = ?", (*rows[other], network, idx))


def _change_node(conn: sqlite3.Connection, network: str, size: int) -> None:
    """Overwrite one stored subtree hash (leaves 0 and 1)."""
    conn.execute("UPDATE audit_nodes SET hash = ? WHERE network = ? AND level = 1 AND idx = 0",
                 (bytes(32), network))


TAMPERING = {"alter-body": _alter_body, "remove-entry": _remove_entry, "reorder": _reorder,
             "change-node": _change_node}


@pytest.mark.parametrize("tamper", sorted(TAMPERING))
async def test_tampering_with_the_stored_log_is_detected(log: Log, tamper: str) -> None:
    monitor = log.monitor()
    head = await monitor.update()
    assert head.size == 14
    for size in range(1, head.size):
        await monitor.head_at(size)                # the client holds every head
    await monitor.audit(complete=True)             # before: everything verifies
    with database(log.db_path) as conn:
        TAMPERING[tamper](conn, log.net.id, head.size)
    await monitor.update()                         # the head is the one the client holds
    with pytest.raises(ProofError, match="inclusion proof does not lead to the given root"):
        await monitor.audit(complete=True)


def _truncate(conn: sqlite3.Connection, network: str, keep: int) -> None:
    """Forget every entry from ``keep`` on, with its nodes and heads."""
    conn.execute("DELETE FROM audit_entries WHERE network = ? AND idx >= ?", (network, keep))
    conn.execute("DELETE FROM tree_heads WHERE network = ? AND size > ?", (network, keep))
    conn.execute("DELETE FROM audit_nodes WHERE network = ? AND ((idx + 1) << level) > ?",
                 (network, keep))


def _rewrite_history(conn: sqlite3.Connection, network: str, log_key: Signer, drop: int,
                     extra: int) -> None:
    """What a server holding the log key could do: rebuild the log without entry ``drop``
    and sign new heads, then append ``extra`` entries so that it is not shorter."""
    bodies = [json.loads(r[0]) for r in conn.execute(
        "SELECT body FROM audit_entries WHERE network = ? ORDER BY idx", (network,))]
    for table in ("audit_entries", "audit_nodes", "tree_heads"):
        conn.execute(f"DELETE FROM {table} WHERE network = ?", (network,))
    kept = [b for b in bodies if b["index"] != drop] + bodies[-1:] * extra
    for body in kept:
        optional = {k: body[k] for k in ("case", "subject", "classes", "ref") if k in body}
        append_txn(conn, network=network, log_key=log_key, now=parse_timestamp(body["time"]),
                   actor=AuditActor.from_json(body["actor"]), action=body["action"],
                   basis=body["basis"], outcome=body["outcome"], reason=body["reason"],
                   review_required=body["review_required"], emergency=body["emergency"],
                   **optional)


@pytest.mark.parametrize(("how", "detected"), [
    pytest.param("truncated", "rollback", id="truncated"),
    pytest.param("rewritten-and-resigned", "consistency proof", id="rewritten-and-resigned")])
async def test_a_rolled_back_log_is_detected(log: Log, how: str, detected: str) -> None:
    """A client that holds a head catches a server that later shows a smaller log (size
    check) or another history of the same or greater size (consistency proof), even when
    the server re-signed every head with its log key."""
    monitor = log.monitor("shell-1")                  # any member keeps heads
    held = await monitor.update()
    with database(log.db_path) as conn:
        if how == "truncated":
            _truncate(conn, log.net.id, keep=held.size - 3)
        else:
            _rewrite_history(conn, log.net.id, log.server.keys.log_signer, drop=2, extra=2)
    fresh = log.monitor("shell-1")
    served = await fresh.update()                     # a newcomer sees a coherent log ...
    assert served.size == held.size + (-3 if how == "truncated" else 1)
    with pytest.raises(ProofError, match=detected):   # ... the client that held a head does not
        await monitor.update()


# =========================================================================== tests: append_txn


def _actor(key: Signer) -> AuditActor:
    return AuditActor(partner=key.key_id, acting_user="tester", role="coordinator",
                      organisation="Welzijn Amersfoort")


async def test_receipts_of_append_txn_verify(tmp_path: Path) -> None:
    """Appends through the Store writer (grouped into shared transactions, as the server
    does) each return a receipt whose proof verifies against its signed head; a write that
    fails after its append rolls the append back with it."""
    store = Store(tmp_path / "a.db", readers=2)
    await store.start()
    try:
        log_key, network = Signer.generate(), "A" * 21 + "w"
        actor = _actor(log_key)
        clock = FakeClock()

        def append(db: Db, i: int) -> Any:
            return append_txn(db, network=network, log_key=log_key, now=clock.now(), actor=actor,
                              action="deny" if i % 3 == 0 else "release",
                              basis="consent", outcome="deny" if i % 3 == 0 else "allow",
                              reason="policy-reason", case=network, subject=log_key.key_id,
                              classes=["name"], ref=network)

        def append_then_fail(db: Db) -> None:
            append(db, 1)
            raise Conflict("the change after the append failed")

        receipts = await asyncio.gather(*(store.write(append, i) for i in range(40)))
        with pytest.raises(Conflict):
            await store.write(append_then_fail)
        receipts.append(await store.write(append, 40))
        assert store.commits < 41                          # appends shared transactions
        assert [r.index for r in receipts] == list(range(41))
        for r in receipts:
            wire = r.to_json()
            head = TreeHead.from_envelope(wire["tree_head"], [log_key.verify_key])
            entry = AuditEntry.from_json(wire["entry"])
            assert (head.size, entry.index, wire["index"]) == (r.index + 1, r.index, r.index)
            merkle.verify_inclusion(entry_commitment(entry), wire["index"], head.size,
                                    [b64d(p, length=32) for p in wire["proof"]], _root(head))
            assert await store.read(head_at, network, head.size) == wire["tree_head"]
        assert await store.read(entry_count, network) == 41
        with pytest.raises(NotFound):
            await store.read(inclusion_proof, network, 0, 42)
    finally:
        await store.close()


def test_merkle_log_over_sqlite_matches_the_list_functions(tmp_path: Path) -> None:
    """MerkleLog over the SQLite node store gives the roots and proofs of protocol.merkle's
    list functions, for every size, and again after reopening the database."""
    rng = random.Random(6962)
    entries = [rng.randbytes(32) for _ in range(70)]
    path, network = tmp_path / "m.db", "B" * 21 + "Q"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.execute("BEGIN")
    log = merkle.MerkleLog(SqliteNodeStore(conn, network))
    for e in entries:
        log.append(merkle.leaf_hash(e))
    conn.execute("COMMIT")
    conn.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        nodes = conn.execute("SELECT count(*) FROM audit_nodes").fetchone()[0]
        assert nodes == 2 * 70 - bin(70).count("1")
        log = merkle.MerkleLog(SqliteNodeStore(conn, network), size=len(entries))
        for size in range(1, len(entries) + 1):
            assert log.root(size) == merkle.root_hash(entries[:size])
            for index in range(size):
                assert log.inclusion_proof(index, size) == merkle.inclusion_proof(
                    entries[:size], index)
            for old in range(size + 1):
                assert log.consistency_proof(old, size) == merkle.consistency_proof(
                    entries[:size], old)
    finally:
        conn.close()
