"""server/storage.py: one writer with group commit, savepoint isolation of failing
writes, reads on their own connections, idempotent writes (docs/protocol.md §14, "Storage and
durability"; ADR 0006)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from datetime import UTC, datetime

from protocol.crypto import Signer
from protocol.objects.audit import AuditActor
from server.audit import AuditNote, entry_count
from server.data import Written
from server.data.networks import Stored, add_membership_txn, register_network_txn
from server.errors import Conflict, Unavailable
from server.storage import MIGRATIONS, Db, Store, migrate


def put_txn(db: Db, key: str, value: str) -> str:
    db.execute("INSERT INTO networks (network, genesis, digest, coordinator) VALUES (?, ?, ?, ?)",
               (key, value, b"d", "c"))
    return key


def get(db: Db, key: str) -> str | None:
    row = db.execute("SELECT genesis FROM networks WHERE network = ?", (key,)).fetchone()
    return None if row is None else row["genesis"]


def count(db: Db) -> int:
    return int(db.execute("SELECT count(*) FROM networks").fetchone()[0])


def fail_after_insert_txn(db: Db, key: str) -> None:
    put_txn(db, key, "must be rolled back")
    raise Conflict("this write fails")


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    s = Store(tmp_path / "t.db", readers=2, batch=64)
    await s.start()
    yield s
    await s.close()


async def test_reads_see_committed_writes(store: Store) -> None:
    assert await store.read(get, "a") is None
    assert await store.write(put_txn, "a", "one") == "a"
    assert await store.read(get, "a") == "one"


async def test_writes_waiting_together_commit_in_one_transaction(store: Store) -> None:
    gate = threading.Event()

    def blocking_txn(db: Db) -> str:
        gate.wait(5)
        return put_txn(db, "first", "x")

    first = asyncio.ensure_future(store.write(blocking_txn))
    await asyncio.sleep(0.05)                     # the writer is now inside blocking_txn
    before = store.commits
    rest = [asyncio.ensure_future(store.write(put_txn, f"k{i}", str(i))) for i in range(20)]
    await asyncio.sleep(0.05)                     # all twenty are queued
    gate.set()
    assert await first == "first"
    assert await asyncio.gather(*rest) == [f"k{i}" for i in range(20)]
    assert store.commits - before == 2            # the blocked write, then one group of twenty
    assert await store.read(count) == 21


async def test_a_failing_write_fails_only_its_own_future(store: Store) -> None:
    gate = threading.Event()

    def blocking_txn(db: Db) -> None:
        gate.wait(5)

    blocker = asyncio.ensure_future(store.write(blocking_txn))
    await asyncio.sleep(0.05)
    before = store.commits
    good1 = asyncio.ensure_future(store.write(put_txn, "good1", "1"))
    bad = asyncio.ensure_future(store.write(fail_after_insert_txn, "bad"))
    good2 = asyncio.ensure_future(store.write(put_txn, "good2", "2"))
    await asyncio.sleep(0.05)
    gate.set()
    await blocker
    assert await good1 == "good1" and await good2 == "good2"
    with pytest.raises(Conflict):
        await bad
    assert store.commits - before == 2            # the blocker, then the three together
    assert await store.read(get, "bad") is None   # its insert was rolled back
    assert await store.read(count) == 2


async def test_on_commit_names_the_networks_after_the_commit(tmp_path: Path) -> None:
    seen: list[frozenset[str]] = []
    s = Store(tmp_path / "n.db", on_commit=seen.append)
    await s.start()
    try:
        await s.write(put_txn, "a", "1", notify="net-a")
        await asyncio.sleep(0)                    # on_commit was scheduled before the result
        assert seen == [frozenset({"net-a"})]
        with pytest.raises(Conflict):
            await s.write(fail_after_insert_txn, "b", notify="net-b")
        await asyncio.sleep(0)
        assert seen == [frozenset({"net-a"})]     # a failed write wakes nobody
    finally:
        await s.close()


NET = "N" * 21 + "A"


def _stored(digest: bytes) -> Stored:
    return Stored(network=NET, envelope="{}", digest=digest, received="2026-01-01T00:00:00Z",
                  acting_user="u")


def _audit() -> AuditNote:
    key = Signer.generate()
    return AuditNote(network=NET, log_key=key, now=datetime.now(UTC), action="membership",
                     basis="none", reason="test", actor=AuditActor(
                         partner=key.key_id, acting_user="u", role="coordinator",
                         organisation="test"))


async def test_identical_retry_is_the_same_write_and_other_content_conflicts(store: Store) -> None:
    first = await store.write(register_network_txn, _stored(b"1"), coordinator="c", kind="oggz")
    again = await store.write(register_network_txn, _stored(b"1"), coordinator="c", kind="oggz")
    assert first == Written(True, {"network": NET})
    assert again == Written(False, {"network": NET})
    with pytest.raises(Conflict):
        await store.write(register_network_txn, _stored(b"2"), coordinator="c", kind="oggz")
    m1 = await store.write(add_membership_txn, _stored(b"m"), member="k", serial=1, audit=_audit())
    m2 = await store.write(add_membership_txn, _stored(b"m"), member="k", serial=1, audit=_audit())
    assert (m1.created, m2.created) == (True, False)
    with pytest.raises(Conflict):
        await store.write(add_membership_txn, _stored(b"other"), member="k", serial=1,
                          audit=_audit())
    assert await store.read(entry_count, NET) == 1      # only the new membership is audited


async def test_close_commits_queued_writes_and_refuses_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    s = Store(path)
    await s.start()
    pending = [asyncio.ensure_future(s.write(put_txn, f"k{i}", "v")) for i in range(50)]
    await asyncio.sleep(0)                        # all fifty are queued before the close
    await s.close()
    assert all(p.done() and p.result() for p in pending)
    with pytest.raises(Unavailable):
        await s.write(put_txn, "late", "v")
    reopened = Store(path)
    await reopened.start()
    try:
        assert await reopened.read(count) == 50
    finally:
        await reopened.close()


async def test_schema_is_versioned_and_migration_is_idempotent(store: Store) -> None:
    import sqlite3

    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        assert migrate(conn) == len(MIGRATIONS) >= 4
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
