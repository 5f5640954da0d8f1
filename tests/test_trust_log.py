"""The server's trust log (docs/protocol.md §15.8; ADR 0048): every chain object it accepts
is appended, in the accepting transaction, to a second RFC 6962 log per network whose
checkpoint the log key signs; every current or former member reads it whole; a database
from before the trust log gets one built from its stored objects (migration 14).

The real application on a real SQLite file (``tests/server_harness.py``), real keys.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from schakel.keys import issue_policy
from schakel.protocol import merkle
from schakel.protocol.encoding import b64d
from schakel.protocol.errors import MalformedError, SignatureError
from schakel.protocol.trustlog import entry_data
from schakel.protocol.witnessing import TRUST, origin, verify_network_checkpoint
from schakel.server.config import DATABASE_FILE
from schakel.server.storage import MIGRATIONS
from tests.server_harness import (
    Caller, FakeClock, InProcessServer, Network, assert_error, assert_status, enrol,
    network_policy, register, server_keys,
)

#: The migration that made the trust log (server/storage.py).
TRUST_LOG_MIGRATION = 14
assert len(MIGRATIONS) >= TRUST_LOG_MIGRATION


def _stored_trust_log(data_dir: Path, network: str) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{data_dir / DATABASE_FILE}?mode=ro", uri=True) as db:
        return [json.loads(r[0]) for r in db.execute(
            "SELECT envelope FROM trust_entries WHERE network = ? ORDER BY idx", (network,))]


async def _served(caller: Caller, net: Network, who: Any) -> list[dict[str, Any]]:
    """The whole trust log as ``who`` reads it, in pages of two (the cursor is followed)."""
    out: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = assert_status(await caller.get(net.path(f"/trust?after={after}&limit=2"), who), 200)
        if not page["items"]:
            return out
        assert [item["index"] for item in page["items"]] == list(
            range(len(out), len(out) + len(page["items"])))
        out += [item["envelope"] for item in page["items"]]
        after = page["cursor"]


async def _checkpoint(caller: Caller, net: Network, who: Any) -> tuple[int, bytes]:
    """The trust checkpoint as ``who`` is served it, verified with the genesis's log key."""
    note = assert_status(await caller.get(net.path("/trust/checkpoint"), who), 200)["checkpoint"]
    checked = verify_network_checkpoint(note, log=TRUST, network=net.id, log_key=net.server.log,
                                        witnesses=None, now=caller.clock.unix())
    return checked.size, checked.root


async def _assert_log_is(caller: Caller, net: Network, expected: list[dict[str, Any]],
                         data_dir: Path) -> None:
    """The trust log, as stored, served and checkpointed, is ``expected``."""
    assert _stored_trust_log(data_dir, net.id) == expected
    assert await _served(caller, net, net.coordinator) == expected
    size, root = await _checkpoint(caller, net, net.coordinator)
    assert size == len(expected)
    assert root == merkle.root_hash(entry_data(env) for env in expected)


@pytest.fixture
async def server(tmp_path: Path) -> Any:
    srv = InProcessServer(tmp_path / "srv", FakeClock())
    try:
        yield srv
    finally:
        await srv.stop()


async def test_the_trust_log_equals_the_stored_chain_after_each_kind_of_write(
        server: InProcessServer) -> None:
    """Genesis, membership, covenant acceptance, revocation and policy each append exactly
    their envelope, in acceptance order; an identical retry appends nothing; an epoch
    distribution (not a chain object) appends nothing."""
    caller = await server.start()
    net = Network(await server_keys(caller), caller.clock)
    expected: list[dict[str, Any]] = []

    assert_status(await caller.post("/v1/networks", net.coordinator, {"genesis": net.genesis}), 201)
    expected.append(net.genesis)
    await _assert_log_is(caller, net, expected, server.data_dir)

    own = net.membership(net.coordinator)
    assert_status(await caller.post(net.path("/members"), net.coordinator, {"membership": own}), 201)
    expected.append(own)
    member = net.actor("core", ring="core")
    net.members["core"] = member
    membership = net.membership(member)
    assert_status(await caller.post(net.path("/members"), net.coordinator,
                                    {"membership": membership}), 201)
    expected.append(membership)
    await _assert_log_is(caller, net, expected, server.data_dir)

    assert_status(await caller.post(net.path("/members"), net.coordinator,
                                    {"membership": membership}), 200)      # a retry
    acceptance = net.acceptance(member)
    assert_status(await caller.post(net.path("/covenant"), member, {"acceptance": acceptance}), 201)
    expected.append(acceptance)
    assert_status(await caller.post(net.path("/epochs"), net.coordinator,
                                    {"distribution": net.distribution()}), 201)
    await _assert_log_is(caller, net, expected, server.data_dir)

    caller.clock.advance(60)
    policy = issue_policy(net.coordinator.keys, network=net.id, version=2, issued=net.now(),
                          policy=network_policy("neighbourhood"))
    assert_status(await caller.post(net.path("/policies"), net.coordinator, {"policy": policy}), 201)
    expected.append(policy)
    await _assert_log_is(caller, net, expected, server.data_dir)

    revocation = net.revocation(member)
    assert_status(await caller.post(net.path("/revocations"), net.coordinator,
                                    {"revocation": revocation}), 201)
    assert_status(await caller.post(net.path("/revocations"), net.coordinator,
                                    {"revocation": revocation}), 200)      # a retry
    expected.append(revocation)
    await _assert_log_is(caller, net, expected, server.data_dir)


async def test_a_refused_write_appends_nothing_to_the_trust_log(server: InProcessServer) -> None:
    """A membership the server refuses (another object under a held (member, serial): 409)
    is neither stored nor logged: the append shares the write's transaction."""
    caller = await server.start()
    net = Network(await server_keys(caller), caller.clock)
    member = net.actor("core", ring="core")
    await register(caller, net, [member], epoch=False)
    before = _stored_trust_log(server.data_dir, net.id)
    member.roles = ("auditor",)
    assert_error(await caller.post(net.path("/members"), net.coordinator,
                                   {"membership": net.membership(member)}), 409, "conflict")
    assert _stored_trust_log(server.data_dir, net.id) == before
    await _assert_log_is(caller, net, before, server.data_dir)


async def test_every_member_and_a_former_member_read_the_whole_trust_log(
        server: InProcessServer) -> None:
    """A shell partner reads every entry (it names other members); a removed member still
    reads it; a member of another network is refused (403)."""
    caller = await server.start()
    keys = await server_keys(caller)
    net = Network(keys, caller.clock)
    shell, core = net.actor("shell", ring="shell"), net.actor("core", ring="core")
    await register(caller, net, [shell, core], epoch=False)
    other = Network(keys, caller.clock, name="Ander netwerk")
    await register(caller, other, [], accept=False, epoch=False)
    whole = _stored_trust_log(server.data_dir, net.id)
    assert len(whole) == 1 + 3 + 3          # genesis, three memberships, three acceptances
    assert await _served(caller, net, shell) == whole
    caller.clock.advance(60)
    assert_status(await caller.post(net.path("/revocations"), net.coordinator,
                                     {"revocation": net.revocation(core)}), 201)
    whole = _stored_trust_log(server.data_dir, net.id)
    assert await _served(caller, net, core) == whole
    assert (await _checkpoint(caller, net, core))[0] == len(whole)
    for path in ("/trust", "/trust/checkpoint", "/trust/proof/consistency?old=1&new=2"):
        assert_error(await caller.get(net.path(path), other.coordinator), 403, "forbidden")


async def test_trust_consistency_proofs_verify_between_checkpoints(
        server: InProcessServer) -> None:
    """A proof from every earlier size to the latest verifies against the two roots; ``old``
    above ``new`` is 400; a ``new`` beyond the log is 404."""
    caller = await server.start()
    net = Network(await server_keys(caller), caller.clock)
    await register(caller, net, [], accept=False, epoch=False)
    roots = {1: merkle.root_hash([entry_data(net.genesis)])}
    for label in ("a", "b", "c", "d"):
        await enrol(caller, net, label)
        size, root = await _checkpoint(caller, net, net.coordinator)
        roots[size] = root
    new = max(roots)
    for old, old_root in roots.items():
        answer = assert_status(await caller.get(
            net.path(f"/trust/proof/consistency?old={old}&new={new}"), net.coordinator), 200)
        assert (answer["old"], answer["new"]) == (old, new)
        merkle.verify_consistency(old, new, old_root, roots[new],
                                  [b64d(p, length=32) for p in answer["proof"]])
    assert_error(await caller.get(net.path(f"/trust/proof/consistency?old={new}&new=1"),
                                  net.coordinator), 400, "malformed")
    assert_error(await caller.get(net.path(f"/trust/proof/consistency?old=1&new={new + 1}"),
                                  net.coordinator), 404, "not_found")


async def test_the_trust_checkpoint_is_signed_by_the_log_key_under_the_trust_origin(
        server: InProcessServer) -> None:
    """The checkpoint's origin is ``schakel/trust/<network>`` (no other log's, so an audit
    checkpoint cannot pass for it) and its one signature is the log key's."""
    caller = await server.start()
    net = Network(await server_keys(caller), caller.clock)
    await register(caller, net, [], accept=False, epoch=False)
    note = assert_status(await caller.get(net.path("/trust/checkpoint"), net.coordinator),
                         200)["checkpoint"]
    assert note.startswith(origin(TRUST, net.id) + "\n2\n")
    with pytest.raises((SignatureError, MalformedError)):
        verify_network_checkpoint(note, log="audit", network=net.id, log_key=net.server.log,
                                  witnesses=None, now=caller.clock.unix())


async def test_the_migration_builds_the_trust_log_of_an_existing_database(
        server: InProcessServer) -> None:
    """A database from before the trust log (its tables dropped, the schema one version
    back) gets, at the next start, each network's log built from the stored objects in the
    order they were received: the log the server had built as it accepted them."""
    caller = await server.start()
    keys = await server_keys(caller)
    nets = [Network(keys, caller.clock), Network(keys, caller.clock, name="Tweede netwerk")]
    for net in nets:
        await register(caller, net, [net.actor("core", ring="core")], epoch=False)
        caller.clock.advance(3)
        policy = issue_policy(net.coordinator.keys, network=net.id, version=2,
                              issued=net.now(), policy=network_policy("neighbourhood"))
        assert_status(await caller.post(net.path("/policies"), net.coordinator,
                                        {"policy": policy}), 201)
        caller.clock.advance(2)
        await enrol(caller, net, "late", ring="shell")
        caller.clock.advance(2)
    built = {net.id: _stored_trust_log(server.data_dir, net.id) for net in nets}
    await server.stop()

    with sqlite3.connect(server.data_dir / DATABASE_FILE) as db:
        # Back to the schema before migration 14 (the trust log); what later migrations
        # made goes too, and is made again.
        db.execute("DROP TABLE trust_entries")
        db.execute("DROP TABLE trust_nodes")
        db.execute("DROP TABLE witness_cosignatures")
        db.execute("DROP TABLE replay_nonces")
        db.execute("DROP TABLE intake_buckets")
        db.execute(f"PRAGMA user_version = {TRUST_LOG_MIGRATION - 1}")
    restarted = server.restarted()
    try:
        caller = await restarted.start()
        for net in nets:
            assert len(built[net.id]) == 1 + 2 + 2 + 1 + 1
            await _assert_log_is(caller, net, built[net.id], server.data_dir)
    finally:
        await restarted.stop()
