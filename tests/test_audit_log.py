"""The audit log (server/audit.py, client/audit.py; docs/protocol.md §9, §15.1, §16.5, §A.1,
§A.2): the server writes it and proves it, and the shipped client catches every edit of it.

**The server's log.**  The application in-process on a real SQLite file
(tests/server_harness.py); entries come from real routes (memberships, revocations,
shares).  The reader is the shipped :class:`schakel.client.audit.AuditMonitor`, with the
network verified by the shipped :func:`schakel.client.trust.load_trust`, sending its signed
requests through the harness (:class:`CallerConnection`).

**The tampering table.**  Real partners (tests/client_harness.py) against the real server
on a loopback socket.  The server's SQLite file is edited directly, as someone with the
disk would (one row also holds the server's log key).  :data:`TABLE` says, for each edit,
which readers are entitled to see the edited data and what each must raise: the
coordinator and the auditor read the whole log; the grantee of a release holds its
receipt; the shell partner a case was shared with verified the entries naming it before;
a bystander member reads only the heads and its own entries, so it is entitled to every
edit of the heads.  Every entitled reader must catch every edit, with both
``verify_audit`` and ``audit_entries``: 100 %.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from schakel.client import Partner, ServerMisbehaviour
from schakel.client.audit import AuditMonitor
from schakel.client.errors import ServerRefused
from schakel.client.state import LocalState
from schakel.client.trust import load_trust
from schakel.keys.fingerprint import Fingerprint
from schakel.protocol import merkle
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import Signer
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.objects.audit import AuditActor, AuditEntry, TreeHead, entry_commitment
from schakel.protocol.objects.base import parse_timestamp
from schakel.server import retention
from schakel.server.audit import SqliteNodeStore, append_txn, entry_count, head_at, inclusion_proof
from schakel.server.config import ServerConfig
from schakel.server.context import AppContext
from schakel.server.errors import Conflict, NotFound
from schakel.server.serverkeys import ServerKeys as ServerKeyPair
from schakel.server.storage import Db, Store, migrate
from tests import pg_harness
from tests.client_harness import (
    IDENTITY, INTAKE, PASSPHRASE, Cast, network_policy, running_server, standard_network,
)
from tests.server_harness import (
    Actor, Caller, CaseState, FakeClock, InProcessServer, Network, assert_error, assert_status,
    create_case, enrol, register, server_keys,
)

MISSING, REWRITTEN = "audit-entry-missing", "audit-entry-rewritten"
FORK, ROLLBACK = "audit-fork", "audit-rollback"

# =========================================================================== the shipped client


class CallerConnection:
    """What :class:`AuditMonitor` and :func:`load_trust` use of
    ``schakel.client.transport.Connection`` -- ``get`` -- sent through the harness's
    :class:`Caller` as ``actor``: the same signed request to the in-process server, and a
    non-2xx answer raised as ``ServerRefused`` as the real connection does."""

    def __init__(self, caller: Caller, actor: Actor) -> None:
        self.caller, self.actor = caller, actor

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        if params:
            path = f"{path}?{urlencode(params)}"
        reply = await self.caller.get(path, self.actor)
        if reply.status != 200:
            error = reply.json["error"]
            raise ServerRefused(error["code"], reply.status, error["message"], error["details"])
        return reply.json


def shipped_monitor(caller: Caller, net: Network, reader: Actor, state_file: Path) -> AuditMonitor:
    """The client's monitor of ``net``'s log as ``reader``, keeping what it verified in
    a new local state at ``state_file``; the network (log key, memberships, policy) is
    verified from the coordinator's fingerprint at the server's clock."""
    conn = CallerConnection(caller, reader)
    state = LocalState.open(state_file, reader.keys.box_secret, create=True)
    anchor = str(Fingerprint.of(net.coordinator.keys.public.sign))

    def misbehaving(network: str, what: str, message: str, **details: Any) -> ServerMisbehaviour:
        return ServerMisbehaviour(what, message, details=details)

    async def trusted() -> Any:
        return await load_trust(network=net.id, anchor=anchor, get=conn.get, state=state,
                                now=caller.clock.now(), misbehaving=misbehaving)

    return AuditMonitor(network=net.id, me=reader.key_id, conn=conn,  # type: ignore[arg-type]
                        state=state, trusted=trusted, misbehaving=misbehaving)


def _root(head: TreeHead) -> bytes:
    return b64d(head.root, length=32, what="root")


# =========================================================================== a populated log


@dataclass
class Log:
    server: InProcessServer
    caller: Caller
    net: Network
    members: dict[str, Actor]
    case: CaseState
    home: Path
    opened: itertools.count = field(default_factory=itertools.count)

    def monitor(self, reader: str = "auditor") -> AuditMonitor:
        actor = self.net.coordinator if reader == "coordinator" else self.members[reader]
        return shipped_monitor(self.caller, self.net, actor,
                               self.home / f"{reader}-{next(self.opened)}.db")

    @property
    def db_path(self) -> Path:
        return self.server.data_dir / "schakel.db"


async def populate(server: InProcessServer, home: Path, *, shares: int) -> Log:
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
    home.mkdir()
    return Log(server, caller, net, members, case, home)


@pytest.fixture
async def log(tmp_path: Path) -> Any:
    server = InProcessServer(tmp_path / "srv", FakeClock())
    try:
        yield await populate(server, tmp_path / "readers", shares=3)
    finally:
        await server.stop()


@contextmanager
def database(path: Path) -> Iterator[sqlite3.Connection]:
    """A direct connection to the server's SQLite file, as an intruder on the disk has."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


async def entries_of(monitor: AuditMonitor) -> list[AuditEntry]:
    return [AuditEntry.from_json(item["entry"]) for item in await monitor.entries()]


# =========================================================================== tests: the whole log


async def test_every_entry_is_included_and_every_pair_of_signed_heads_is_consistent(
        tmp_path: Path) -> None:
    server = InProcessServer(tmp_path / "srv", FakeClock())
    try:
        log = await populate(server, tmp_path / "readers", shares=19)
        monitor = log.monitor()
        latest = await monitor.refresh()
        assert latest is not None and latest.size == 30
        heads = [await monitor.head_at(size) for size in range(1, latest.size + 1)]
        assert heads[-1] == latest
        verified = await monitor.verify_all()
        assert (verified.size, verified.checked, verified.erased) == (30, 30, 0)
        # every entry against its own head (size index + 1)
        for entry in await entries_of(monitor):
            answer = assert_status(await log.caller.get(log.net.path(
                f"/audit/proof/inclusion?index={entry.index}&size={entry.index + 1}"),
                log.members["auditor"]), 200)
            merkle.verify_inclusion(entry_commitment(entry), entry.index, entry.index + 1,
                                    [b64d(p, length=32) for p in answer["proof"]],
                                    _root(heads[entry.index]))
        # a consistency proof between ANY two heads the server signed verifies
        pairs = 0
        for old, new in itertools.combinations_with_replacement(heads, 2):
            await monitor.consistency(old, new)
            pairs += 1
        assert pairs == 30 * 31 // 2
        # ... and from the empty tree; the empty log itself has no signed head
        await monitor.consistency(TreeHead(network=log.net.id, size=0,
                                           root=b64e(merkle.EMPTY_ROOT), time=latest.time), latest)
        assert_error(await log.caller.get(log.net.path("/audit/heads/31"), log.net.coordinator),
                     404, "not_found")
    finally:
        await server.stop()


async def test_routes_write_their_entries(log: Log) -> None:
    """Memberships, revocations and shares are audited by the coordinator (role
    coordinator, its acting user), naming the partner concerned; an identical retry of a
    membership adds nothing."""
    monitor = log.monitor("coordinator")
    head = await monitor.refresh()
    assert head is not None
    entries = await entries_of(monitor)
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
    after = await monitor.refresh()
    assert after is not None and after.size == head.size
    network = assert_status(await log.caller.get(log.net.path(), log.members["core"]), 200)
    served = assert_status(await log.caller.get(log.net.path("/audit/head"), coordinator), 200)
    assert network["tree_head"] == served["tree_head"]


async def test_visibility(log: Log) -> None:
    """Auditors and the coordinator read every entry; another member only the entries
    whose actor or subject it is, and it can still verify those against the heads; a
    member of another network is refused."""
    head = await log.monitor().refresh()
    assert head is not None
    for reader in ("auditor", "coordinator"):
        assert len(await entries_of(log.monitor(reader))) == head.size
    for label, expected in (("shell-1", 3), ("shell-3", 2), ("shell-2", 1), ("core", 1)):
        seen = await entries_of(log.monitor(label))
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


async def test_a_page_for_a_signed_size_carries_every_entrys_inclusion_proof(
        log: Log) -> None:
    """``GET .../audit/entries?size=`` (protocol.md §15.1): for every size the server
    signed, a whole-log reader's and a partner's pages stop below that size, and every
    item carries the proof ``.../proof/inclusion`` gives for it, which verifies under the
    head of that size; across pages too (``limit`` smaller than the log).  Without
    ``size`` no item carries a proof."""
    auditor, partner = log.members["auditor"], log.members["shell-1"]
    head = await log.monitor().refresh()
    assert head is not None
    for size in range(1, head.size + 1):
        root = _root(await log.monitor().head_at(size))
        for reader in (auditor, partner):
            items, after = [], 0
            while True:
                page = assert_status(await log.caller.get(log.net.path(
                    f"/audit/entries?after={after}&limit=7&size={size}"), reader), 200)
                if not page["items"]:
                    break
                items += page["items"]
                after = int(page["cursor"])
            plain = assert_status(await log.caller.get(log.net.path(
                "/audit/entries?limit=500"), reader), 200)["items"]
            assert [i["index"] for i in items] == [i["index"] for i in plain
                                                   if i["index"] < size]
            if reader is auditor:
                assert [i["index"] for i in items] == list(range(size))
            assert all("proof" not in i for i in plain)
            for item in items:
                served = assert_status(await log.caller.get(log.net.path(
                    f"/audit/proof/inclusion?index={item['index']}&size={size}"), reader), 200)
                assert item["proof"] == served["proof"]
                merkle.verify_inclusion(b64d(item["commitment"], length=32), item["index"],
                                        size, [b64d(p, length=32) for p in item["proof"]], root)


async def test_bad_proof_requests(log: Log) -> None:
    coordinator = log.net.coordinator
    head = await log.monitor().refresh()
    assert head is not None
    size = head.size
    for suffix, status, code in (
            (f"/audit/proof/inclusion?index={size}&size={size}", 400, "malformed"),
            (f"/audit/proof/inclusion?index=0&size={size + 1}", 404, "not_found"),
            ("/audit/proof/inclusion?index=0", 400, "malformed"),
            ("/audit/proof/consistency?old=3&new=2", 400, "malformed"),
            (f"/audit/proof/consistency?old=1&new={size + 1}", 404, "not_found"),
            ("/audit/proof/consistency?new=2", 400, "malformed"),
            ("/audit/heads/0", 400, "malformed"),
            ("/audit/heads/x", 400, "malformed"),
            ("/audit/entries?after=-1", 400, "malformed"),
            ("/audit/entries?size=0", 400, "malformed"),
            ("/audit/entries?size=x", 400, "malformed"),
            ("/audit/entries?size=1&size=2", 400, "malformed"),
            (f"/audit/entries?after={size}&size={size + 1}", 404, "not_found")):
        assert_error(await log.caller.get(log.net.path(suffix), coordinator), status, code)
    empty = Network(await server_keys(log.caller), log.caller.clock)
    assert_status(await log.caller.post("/v1/networks", empty.coordinator,
                                        {"genesis": empty.genesis}), 201)
    assert_error(await log.caller.get(empty.path("/audit/head"), empty.coordinator), 404,
                 "not_found")


# =========================================================================== edits of the database


def _body(conn: sqlite3.Connection, network: str, index: int) -> dict[str, Any]:
    row = conn.execute("SELECT body FROM audit_entries WHERE network = ? AND idx = ?",
                       (network, index)).fetchone()
    return dict(json.loads(row[0]))


def _size(conn: sqlite3.Connection, network: str) -> int:
    return int(conn.execute("SELECT count(*) FROM audit_entries WHERE network = ?",
                            (network,)).fetchone()[0])


def _close_gap(conn: sqlite3.Connection, network: str, index: int) -> None:
    """Delete entry ``index`` and move every later one up a place, bodies and commitments
    rewritten to match (heads and nodes cannot be re-signed without the key)."""
    size = _size(conn, network)
    conn.execute("DELETE FROM audit_entries WHERE network = ? AND idx = ?", (network, index))
    for idx in range(index + 1, size):
        body = _body(conn, network, idx)
        body["index"] = idx - 1
        moved = AuditEntry.from_json(body)
        conn.execute("UPDATE audit_entries SET idx = ?, body = ?, commitment = ? WHERE"
                     " network = ? AND idx = ?", (idx - 1, canonical_json(body).decode(),
                                                  entry_commitment(moved), network, idx))


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
    for table in ("audit_entries", "audit_cases", "audit_nodes", "tree_heads"):
        conn.execute(f"DELETE FROM {table} WHERE network = ?", (network,))
    kept = [b for b in bodies if b["index"] != drop] + bodies[-1:] * extra
    for body in kept:
        optional = {k: body[k] for k in ("case", "cases", "subject", "classes", "ref")
                    if k in body}
        append_txn(conn, network=network, log_key=log_key, now=parse_timestamp(body["time"]),
                   actor=AuditActor.from_json(body["actor"]), action=body["action"],
                   basis=body["basis"], outcome=body["outcome"], reason=body["reason"],
                   review_required=body["review_required"], emergency=body["emergency"],
                   **optional)


@pytest.mark.parametrize(("how", "detected"), [
    pytest.param("truncated", ROLLBACK, id="truncated"),
    pytest.param("rewritten-and-resigned", FORK, id="rewritten-and-resigned")])
async def test_a_rolled_back_log_is_detected(log: Log, how: str, detected: str) -> None:
    """A member that holds a head catches a server that later shows a smaller log (size
    check) or another history of the same or greater size (consistency proof), even when
    the server re-signed every head with its log key; a newcomer cannot tell."""
    monitor = log.monitor("shell-1")                  # any member keeps heads
    held = await monitor.refresh()
    assert held is not None
    with database(log.db_path) as conn:
        if how == "truncated":
            _truncate(conn, log.net.id, keep=held.size - 3)
        else:
            _rewrite_history(conn, log.net.id, log.server.keys.log_signer, drop=2, extra=2)
    served = await log.monitor("shell-1").refresh()   # a newcomer sees a coherent log ...
    assert served is not None
    assert served.size == held.size + (-3 if how == "truncated" else 1)
    with pytest.raises(ServerMisbehaviour) as caught:  # ... the one that held a head does not
        await monitor.refresh()
    assert caught.value.what == detected


# =========================================================================== the tampering table


READERS = ("coordinator", "auditor", "grantee", "shell", "bystander")


@dataclass
class Scene:
    """One network on the real server with a reader of every kind, after a day's work:
    a case shared with the shell partner (entry ``share``), a release to the grantee
    (entry ``release``, whose receipt the grantee holds), two more members admitted.
    Every partner synced (so each holds the latest head); the coordinator and the
    auditor verified the whole log and the shell partner its own entries; the grantee
    never looked at the log.  ``snapshot`` is the database as it was before the
    release.  The server can be stopped and started again at the same URL."""

    tmp_path: Path
    keys: ServerKeyPair
    url: str
    cast: Cast
    case: str
    release: int
    share: int
    snapshot: Path
    server: Any = None

    @property
    def network(self) -> str:
        return self.cast.network

    @property
    def db_path(self) -> Path:
        return self.tmp_path / "server" / "schakel.db"

    @property
    def targets(self) -> tuple[int, int]:
        return (self.release, self.share)

    @property
    def readers(self) -> dict[str, Partner]:
        c = self.cast
        return {"coordinator": c.coordinator, "auditor": c.auditor, "grantee": c.formal,
                "shell": c.shell, "bystander": c.informal}

    async def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1]) if self.url else 0
        self.server = running_server(self.tmp_path, keys=self.keys, port=port)
        self.url = await self.server.__aenter__()

    async def stop(self) -> None:
        await self.server.__aexit__(None, None, None)

    async def restart(self, offline: Callable[[], Awaitable[None]]) -> None:
        """Stop the server, run ``offline`` on its data directory, start it again."""
        await self.stop()
        await offline()
        await self.start()

    async def release_to_grantee(self, *, backup: Path | None = None) -> int:
        """A consent, a grant and a release of the name class to the grantee: the
        index of the release entry (the grantee verified its receipt).  ``backup``: a
        copy of the database just before the release."""
        c, grantee = self.cast.coordinator, self.cast.formal
        consent = await c.disclosure.record_consent(self.network, self.case, classes=["name"],
                                         partners=[grantee.key_id], purpose="huisbezoek",
                                         evidence=b"getekend toestemmingsformulier")
        grant = await c.disclosure.grant(self.network, self.case, consent=consent, grantee=grantee.key_id,
                              classes=["name"], reason="huisbezoek voorbereiden")
        await grantee.sync(self.network)
        if backup is not None:
            _copy_database(self.db_path, backup)
        return int((await grantee.disclosure.release(self.network, grant)).receipt_index)


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (a restore, or taking a backup)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


async def build(s: Scene, **policy: Any) -> None:
    """The day's work of :class:`Scene` on its running server."""
    s.cast = cast = await standard_network(s.tmp_path, s.url, **policy)
    net, c = cast.network, cast.coordinator
    s.case = await c.cases.create(net, INTAKE, identity=IDENTITY)
    await c.cases.share(net, s.case, cast.shell.key_id, reason="hulp bij de boodschappen")
    s.release = await s.release_to_grantee(backup=s.snapshot)
    for label in LATE:
        await cast.join(s.tmp_path, s.url, label, ring="shell")
    for p in cast.partners:
        await p.sync(net)
    await c.audit.verify(net)
    await cast.auditor.audit.verify(net)
    shell_entries = await cast.shell.audit.entries(net)
    [s.share] = [e["index"] for e in shell_entries if e["entry"]["action"] == "share"]
    assert all(p.misbehaviours() == [] for p in cast.partners)


LATE = ("late-1", "late-2")
#: The cast's home directories (tests/client_harness.py standard_network) and its roles.
HOMES = {"coordinator": "coordinator", "formal": "core-formal", "informal": "core-informal",
         "shell": "shell", "auditor": "auditor"}


def _new_scene(tmp_path: Path, keys: ServerKeyPair) -> Scene:
    return Scene(tmp_path=tmp_path, keys=keys, url="", cast=None,  # type: ignore[arg-type]
                 case="", release=-1, share=-1, snapshot=tmp_path / "before-release.db")


@asynccontextmanager
async def scene(tmp_path: Path, **policy: Any) -> AsyncIterator[Scene]:
    """A :class:`Scene` built from nothing (for a policy of its own)."""
    s = _new_scene(tmp_path, ServerKeyPair.generate())
    await s.start()
    try:
        await build(s, **policy)
        yield s
    finally:
        if s.cast is not None:
            await s.cast.close()
        await s.stop()


@dataclass(frozen=True)
class Template:
    """A :class:`Scene` built once and stopped: the server's data directory and every
    partner's home under ``path``, and what a scene needs to know about them."""

    path: Path
    keys: ServerKeyPair
    network: str
    case: str
    release: int
    share: int


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """One scene for the whole table, built on its own event loop and stopped (only files
    are left), so that each tampering starts from a copy instead of a day's work again."""
    async def make(path: Path) -> Template:
        s = _new_scene(path, ServerKeyPair.generate())
        await s.start()
        try:
            await build(s)
        finally:
            if s.cast is not None:
                await s.cast.close()
            await s.stop()
        return Template(path=path, keys=s.keys, network=s.network, case=s.case,
                        release=s.release, share=s.share)
    return asyncio.run(make(tmp_path_factory.mktemp("audit-scene")))


@asynccontextmanager
async def copy_of(template: Template, tmp_path: Path) -> AsyncIterator[Scene]:
    """The template's scene, copied to ``tmp_path`` and running on a server of its own
    (the partners reopened with the new URL)."""
    root = tmp_path / "scene"
    shutil.copytree(template.path, root)
    s = _new_scene(root, template.keys)
    s.case, s.release, s.share = template.case, template.release, template.share
    await s.start()
    opened: list[Partner] = []
    try:
        for home in [*HOMES.values(), *LATE]:
            opened.append(await Partner.open(root / home, PASSPHRASE, server=s.url))
        by_home = dict(zip([*HOMES.values(), *LATE], opened))
        s.cast = Cast(network=template.network,
                      **{role: by_home[home] for role, home in HOMES.items()},
                      extra={label: by_home[label] for label in LATE})
        yield s
    finally:
        for p in opened:
            await p.close()
        await s.stop()


Tampering = Callable[[Scene], Awaitable[None]]


def on_disk(edit: Callable[[sqlite3.Connection, Scene], None]) -> Tampering:
    """An edit of the running server's SQLite file in one transaction."""
    async def tamper(s: Scene) -> None:
        with database(s.db_path) as conn:
            edit(conn, s)
    return tamper


@on_disk
def _delete_rows(conn: sqlite3.Connection, s: Scene) -> None:
    for index in s.targets:
        conn.execute("DELETE FROM audit_entries WHERE network = ? AND idx = ?",
                     (s.network, index))


@on_disk
def _null_bodies(conn: sqlite3.Connection, s: Scene) -> None:
    for index in s.targets:
        conn.execute("UPDATE audit_entries SET body = NULL WHERE network = ? AND idx = ?",
                     (s.network, index))


@on_disk
def _alter_bodies(conn: sqlite3.Connection, s: Scene) -> None:
    """Say somebody else acted (a cover-up), keeping each body a valid entry."""
    for index in s.targets:
        body = _body(conn, s.network, index)
        body["actor"]["acting_user"] = "somebody-else"
        conn.execute("UPDATE audit_entries SET body = ? WHERE network = ? AND idx = ?",
                     (canonical_json(body).decode(), s.network, index))


@on_disk
def _remove_entry(conn: sqlite3.Connection, s: Scene) -> None:
    _close_gap(conn, s.network, min(s.targets))


@on_disk
def _reorder(conn: sqlite3.Connection, s: Scene) -> None:
    """Swap the two entries' places (bodies and commitments)."""
    rows = {idx: conn.execute("SELECT body, commitment FROM audit_entries WHERE network = ?"
                              " AND idx = ?", (s.network, idx)).fetchone() for idx in s.targets}
    for idx, other in zip(s.targets, reversed(s.targets)):
        conn.execute("UPDATE audit_entries SET body = ?, commitment = ? WHERE network = ? AND"
                     " idx = ?", (*rows[other], s.network, idx))


@on_disk
def _change_node(conn: sqlite3.Connection, s: Scene) -> None:
    """Overwrite the stored leaf next to each edited entry (its proof's first hash)."""
    for index in s.targets:
        conn.execute("UPDATE audit_nodes SET hash = ? WHERE network = ? AND level = 0"
                     " AND idx = ?", (bytes(32), s.network, index ^ 1))


@on_disk
def _swap_node(conn: sqlite3.Connection, s: Scene) -> None:
    """Swap each edited entry's stored leaf with its neighbour's."""
    for pair in sorted({tuple(sorted((i, i ^ 1))) for i in s.targets}):
        hashes = [conn.execute("SELECT hash FROM audit_nodes WHERE network = ? AND level = 0"
                               " AND idx = ?", (s.network, i)).fetchone()[0] for i in pair]
        for i, node in zip(pair, reversed(hashes)):
            conn.execute("UPDATE audit_nodes SET hash = ? WHERE network = ? AND level = 0"
                         " AND idx = ?", (node, s.network, i))


@on_disk
def _change_head(conn: sqlite3.Connection, s: Scene) -> None:
    """Give the latest signed head another root."""
    size, envelope = conn.execute("SELECT size, envelope FROM tree_heads WHERE network = ?"
                                  " ORDER BY size DESC LIMIT 1", (s.network,)).fetchone()
    head = json.loads(envelope)
    head["signed"]["root"] = b64e(bytes(32))
    conn.execute("UPDATE tree_heads SET root = ?, envelope = ? WHERE network = ? AND size = ?",
                 (bytes(32), json.dumps(head), s.network, size))


@on_disk
def _truncate_to_targets(conn: sqlite3.Connection, s: Scene) -> None:
    _truncate(conn, s.network, keep=min(s.targets))


@on_disk
def _rewrite_and_resign(conn: sqlite3.Connection, s: Scene) -> None:
    _rewrite_history(conn, s.network, s.keys.log_signer, drop=s.release, extra=2)


async def _roll_back(s: Scene) -> None:
    """Restore the backup taken before the release (the server stopped meanwhile)."""
    async def restore() -> None:
        _copy_database(s.snapshot, s.db_path)
    await s.restart(restore)


async def _roll_back_and_regrow(s: Scene) -> None:
    """Roll back, then let the log grow past the size the readers hold: the coordinator
    reads the case until the server's signed size is beyond every held head (each answer
    is logged as a ``read`` entry, §15.6).  The reads go straight through the coordinator's
    connection: its client would refuse the rolled-back trust log (protocol.md §16.3)
    before it admitted anyone, so the log is not regrown by joins."""
    held = max(head.size for p in s.readers.values()
               if (head := p.audit.monitor(s.network).latest) is not None)
    await _roll_back(s)
    conn = s.cast.coordinator.session.conn
    while _signed_size(s) <= held:
        await conn.get(f"/v1/networks/{s.network}/cases/{s.case}")


def _signed_size(s: Scene) -> int:
    with database(s.db_path) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(size), 0) FROM tree_heads WHERE network = ?",
                                (s.network,)).fetchone()[0])


#: The readers entitled to the grantee's release entry and the shell partner's share
#: entry; every member (the bystander too) is entitled to the heads.
ENTRY_READERS = ("coordinator", "auditor", "grantee", "shell")


def _row(whats: str | set[str], readers: tuple[str, ...] = ENTRY_READERS) -> dict[str, set[str]]:
    return {r: {whats} if isinstance(whats, str) else whats for r in readers}


#: tampering -> (the edit, {entitled reader: what it may raise}).  The edits of entries
#: change the release and the share entry; the others change the heads.
TABLE: dict[str, tuple[Tampering, dict[str, set[str]]]] = {
    "delete-row": (_delete_rows, _row(MISSING)),
    "null-body": (_null_bodies, _row(MISSING)),
    "alter-body": (_alter_bodies, _row(REWRITTEN)),
    "remove-entry": (_remove_entry, {**_row(MISSING), **_row({MISSING, REWRITTEN},
                                                               ("grantee", "shell"))}),
    "reorder": (_reorder, _row(REWRITTEN)),
    "change-node": (_change_node, _row(REWRITTEN)),
    "swap-node": (_swap_node, _row(REWRITTEN)),
    "change-head": (_change_head, _row(FORK, READERS)),
    "truncate": (_truncate_to_targets, _row(ROLLBACK, READERS)),
    # A restored backup rolls the trust log back too (a member was admitted after it), which
    # the client's trust view catches before its audit read (protocol.md §15.8, §16.3).
    "roll-back": (_roll_back, _row({ROLLBACK, "trust-log-rollback"}, READERS)),
    # (The audit log regrows; the trust log stays rolled back.)
    "roll-back-and-regrow": (_roll_back_and_regrow,
                             _row({FORK, "trust-log-rollback"}, READERS)),
    "rewrite-and-resign": (_rewrite_and_resign, _row(FORK, READERS)),
}


async def detection(p: Partner, network: str) -> set[str | None]:
    """What ``p``'s two audit reads raise (None for a read that returned normally)."""
    found: set[str | None] = set()
    for read in (p.audit.verify, p.audit.entries):
        try:
            await read(network)
        except ServerMisbehaviour as exc:
            found.add(exc.what)
            assert exc.what in [m["what"] for m in p.misbehaviours()], "not recorded"
        else:
            found.add(None)
    return found


@pytest.mark.parametrize("tampering", list(TABLE))
async def test_tampering_with_the_stored_log_is_detected(template: Template, tmp_path: Path,
                                                         tampering: str) -> None:
    """Every reader entitled to see the edited data catches the edit, with both reads."""
    edit, expected = TABLE[tampering]
    async with copy_of(template, tmp_path) as s:
        await edit(s)
        row = {reader: await detection(s.readers[reader], s.network) for reader in expected}
    missed = {r: sorted(map(str, found)) for r, found in row.items()
              if not found or not found <= expected[r]}
    assert not missed, f"{tampering}: not caught as the table says by {missed}"
# =========================================================================== erasure after retention


async def _retention_pass_in(s: Scene, days: int) -> list[dict[str, Any]]:
    """One retention pass run ``days`` from now on the stopped server's data directory
    (what ``schakel server retention`` does), then the server started again."""
    done: list[dict[str, Any]] = []

    async def retain() -> None:
        config = ServerConfig(data_dir=s.tmp_path / "server", public_url=s.url,
                              database_url=pg_harness.database_url_for(s.tmp_path / "server"))
        later = FakeClock(datetime.now(UTC) + timedelta(days=days))
        done.extend(await retention.run_once(AppContext.create(config, s.keys, clock=later)))
    await s.restart(retain)
    return done


async def test_bodies_erased_by_retention_are_accepted_and_a_body_erased_above_them_is_not(
        tmp_path: Path) -> None:
    """``retention.audit_days`` after the entries were written, the server erases their
    bodies under an ``erase`` entry that every member reads: every reader still verifies
    the log (the grantee's receipt entry included) and sees no body but the erase
    entry's.  A later entry whose body is then erased without a record is caught by
    every reader entitled to it."""
    policy = {"identity_days": 30, "anonymous_days": 60, "audit_days": 1}
    async with scene(tmp_path, retention=policy) as s:
        size = (await s.cast.coordinator.audit.verify(s.network)).size
        [step] = [d for d in await _retention_pass_in(s, days=2) if d["step"] == "erase"]
        assert (step["erased_below"], step["erased"], step["audit_index"]) == (size, size, size)
        for name, reader in s.readers.items():
            verified = await reader.audit.verify(s.network)
            assert (verified.size, verified.checked) == (size + 1, 1), name
            if name in ("coordinator", "auditor"):
                assert verified.erased == size
            [erase] = [e["entry"] for e in await reader.audit.entries(s.network)]
            assert (erase["action"], erase["erased_below"]) == ("erase", size), name
        assert all(p.misbehaviours() == [] for p in s.cast.partners)

        later = await s.release_to_grantee()
        with database(s.db_path) as conn:
            conn.execute("UPDATE audit_entries SET body = NULL WHERE network = ? AND idx = ?",
                         (s.network, later))
        for name in ("coordinator", "auditor", "grantee"):
            assert await detection(s.readers[name], s.network) == {MISSING}, name


@pytest.mark.parametrize("how", ["too-early", "not-the-log-key"])
async def test_an_erase_entry_the_policy_does_not_allow_is_caught(tmp_path: Path,
                                                                  how: str) -> None:
    """A server that holds its log key appends an ``erase`` entry and erases every body
    below it: before ``retention.audit_days`` have passed since the last erased entry was
    written (its signed head's time), or in the name of another key than the log key.
    Every member reads erase entries, so every reader catches it."""
    days = network_policy()["retention"]["audit_days"]
    async with scene(tmp_path) as s:
        with database(s.db_path) as conn:
            size = _size(conn, s.network)
            early = how == "too-early"
            actor = AuditActor(partner=s.keys.log_signer.key_id if early else
                               s.cast.coordinator.key_id, acting_user="schakel-server",
                               role="server", organisation="Schakel server")
            now = datetime.now(UTC) + timedelta(days=0 if early else days + 2)
            append_txn(conn, network=s.network, log_key=s.keys.log_signer, now=now, actor=actor,
                       action="erase", basis="policy", outcome="allow", reason="retention",
                       erased_below=size)
            conn.execute("UPDATE audit_entries SET body = NULL WHERE network = ? AND idx < ?",
                         (s.network, size))
        row = {name: await detection(reader, s.network) for name, reader in s.readers.items()}
    assert row == {name: {MISSING} for name in READERS}


def test_the_client_raises_only_misbehaviour_names_the_specification_lists() -> None:
    """The ``what`` of ``ServerMisbehaviour`` is a stable name (ADR 0007, ADR 0010):
    docs/protocol.md §16.8 lists exactly the names the client may raise."""
    import re

    from schakel.client.errors import MISBEHAVIOURS
    spec = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    listed = spec.split("### 16.8", 1)[1].split("`details.what`, one of", 1)[1].split(")", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", listed)) == MISBEHAVIOURS


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
    """MerkleLog over the SQLite node store gives the roots and proofs of schakel.protocol.merkle's
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
