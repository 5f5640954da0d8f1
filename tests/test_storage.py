"""server/storage.py: one writer with group commit, savepoint isolation of failing
writes, reads on their own connections, idempotent writes (docs/protocol.md §14, "Storage and
durability"; ADR 0006)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from datetime import UTC, datetime

from schakel.protocol.crypto import Signer
from schakel.protocol.objects.audit import AuditActor
from schakel.server.audit import AuditNote, entry_count
from schakel.server.data import Written
from schakel.server.data.networks import Stored, add_membership_txn, register_network_txn
from schakel.server.errors import Conflict, Unavailable
from schakel.server.storage import MIGRATIONS, Db, Store, migrate
from schakel.server.trustlog import trust_size


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


def _stored(digest: bytes, kind: str = "network-genesis") -> Stored:
    """A stored chain object of ``kind`` (the store checks no signature; the trust log
    takes only chain objects, protocol.md §15.8)."""
    envelope = json.dumps({"signatures": [], "signed": {"type": kind}}, separators=(",", ":"))
    return Stored(network=NET, envelope=envelope, digest=digest,
                  received="2026-01-01T00:00:00Z", acting_user="u")


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
    member = _stored(b"m", "membership")
    m1 = await store.write(add_membership_txn, member, member="k", serial=1, audit=_audit())
    m2 = await store.write(add_membership_txn, member, member="k", serial=1, audit=_audit())
    assert (m1.created, m2.created) == (True, False)
    with pytest.raises(Conflict):
        await store.write(add_membership_txn, _stored(b"other", "membership"), member="k",
                          serial=1, audit=_audit())
    assert await store.read(entry_count, NET) == 1      # only the new membership is audited
    assert await store.read(trust_size, NET) == 2       # and logged, after the genesis


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


# --------------------------------------------------------------------------- faults
# docs/protocol.md §14.4: a fault of the storage refuses the read or write as 503
# ``unavailable``; the writer and the readers carry on with the next one.

WAIT = 10.0          # seconds: a write or read that takes longer hangs, and fails the test


def fill_database_txn(db: Db) -> None:
    """Cap the database at its current size (``PRAGMA max_page_count``: SQLite's own
    SQLITE_FULL, "database or disk is full"), then write more than fits."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    for i in range(64):
        put_txn(db, f"big{i}", "x" * 8192)


def uncap_database_txn(db: Db) -> None:
    db.execute("PRAGMA max_page_count = 1073741823")


def end_transaction_and_fail_txn(db: Db) -> None:
    """A write whose error ends the whole transaction (as SQLITE_FULL or an I/O error at
    commit does): the writer must roll back and fail the batch."""
    db.execute("ROLLBACK")
    raise Conflict("this write ended its transaction")


async def test_a_full_database_refuses_the_write_as_unavailable_and_the_next_one_succeeds(
        store: Store) -> None:
    await store.write(put_txn, "before", "1")
    with pytest.raises(Unavailable) as refused:
        await asyncio.wait_for(store.write(fill_database_txn), WAIT)
    assert refused.value.details == {"retry_after": 1}
    assert await store.read(get, "big0") is None          # nothing of it was kept
    await store.write(uncap_database_txn)
    assert await asyncio.wait_for(store.write(put_txn, "after", "2"), WAIT) == "after"
    assert await store.read(count) == 2


async def test_a_write_batch_whose_failure_cannot_be_logged_leaves_the_writer_running(
        store: Store) -> None:
    """The log's disk is full (``/dev/full``: every write fails with ENOSPC) when a write
    batch fails: the batch is refused, and later writes still commit (the writer thread
    used to die of the logging error, and every later write waited forever)."""
    import structlog

    full = open("/dev/full", "w")  # noqa: SIM115 -- closed below
    try:
        structlog.configure(logger_factory=structlog.WriteLoggerFactory(file=full))
        with pytest.raises(Conflict):
            await asyncio.wait_for(store.write(end_transaction_and_fail_txn), WAIT)
        assert await asyncio.wait_for(store.write(put_txn, "later", "1"), WAIT) == "later"
    finally:
        with contextlib.suppress(OSError):       # what it buffered cannot be flushed either
            full.close()
    assert await store.read(get, "later") == "1"


def close_and_fail(db: Db) -> None:
    """A read whose connection broke (closed under it, as an I/O fault can leave it)."""
    db.close()
    raise Conflict("the read's own error")


async def test_a_read_whose_rollback_fails_reports_its_own_error_and_the_next_read_works(
        tmp_path: Path) -> None:
    s = Store(tmp_path / "r.db", readers=1)
    await s.start()
    try:
        await s.write(put_txn, "a", "1")
        with pytest.raises(Conflict, match="the read's own error"):
            await asyncio.wait_for(s.read(close_and_fail), WAIT)
        assert await asyncio.wait_for(s.read(get, "a"), WAIT) == "1"   # the same reader thread
    finally:
        await s.close()
