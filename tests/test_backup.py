"""Backups and restores of a server's database (issue 17, deliverable 4; server/backup.py,
cli/commands/backup.py, docs/roles/operator.md, ADR 0050).

Real ``schakel serve`` subprocesses (:class:`schakel.cli.serverprocess.ServerProcess`) on
real data directories with real keys; ``schakel server backup`` and ``schakel server
restore`` run as an operator types them, in Dutch; the partners are the real client
library (tests/client_harness.py) speaking HTTP to the server process.

The scenario of the first tests (module fixture :func:`restored`): a network with a
writer, two core members and an auditor; the writer sends a burst of events to four cases
while ``schakel server backup`` copies the database; after the burst one member (``ahead``)
syncs everything, then the server is stopped and the backup restored.  ``behind`` and the
auditor last looked before the burst.  The tests of the scenario run in file order: the
ones that only read come before those that let the restored log grow (an audit
verification writes no entry; a sync that finds items does).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.cli.serverprocess import ServerProcess
from schakel.client.errors import ServerMisbehaviour
from schakel.client.partner import Partner
from schakel.server.storage import MIGRATIONS
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, PASSPHRASE, admit, make_partner, network_policy,
    write_unchecked,
)

CASES = 4                  # cases the burst writes to, one writer task each
BACKUP_AFTER = 8           # events acknowledged before the backup starts
EVENTS_AFTER = 3           # events per case written after the backup is done
TIMEOUT = 120.0
DUTCH = {"SCHAKEL_LANG": "nl"}


def schakel_server(*args: str) -> subprocess.CompletedProcess[str]:
    """``schakel server ARGS`` as the operator runs it, in Dutch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")} | DUTCH
    return subprocess.run([sys.executable, "-m", "schakel.cli", "server", *args], env=env,
                          text=True, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=TIMEOUT)


async def schakel_server_async(*args: str) -> tuple[int, str, str]:
    """The same, without blocking the event loop (a backup while the burst goes on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")} | DUTCH
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schakel.cli", "server", *args, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def found_network(server: ServerProcess, tmp: Path, *labels: str
                        ) -> tuple[str, dict[str, Partner]]:
    """A neighbourhood network on ``server``: the coordinator, the core members
    ``labels`` and an auditor, everyone synced once."""
    coordinator = await make_partner(tmp, server.url, "coordinator")
    network = await coordinator.networks.create(
        name="Buurtnetwerk Soesterkwartier", kind="neighbourhood", covenant=COVENANT,
        server_fingerprint=server.fingerprint, policy=network_policy("neighbourhood"))
    partners = {"coordinator": coordinator}
    for label in labels:
        partners[label] = await make_partner(tmp, server.url, label)
        await admit(coordinator, network, partners[label], ring="core", party="formal")
    partners["auditor"] = await make_partner(tmp, server.url, "auditor")
    await admit(coordinator, network, partners["auditor"], ring="shell", party="formal",
                roles=("auditor",))
    for p in partners.values():
        await p.sync(network)
    return network, partners


# --------------------------------------------------------------------------- the scenario


@dataclass
class Restored:
    server: ServerProcess
    tmp: Path
    network: str
    cases: list[str]
    backup: dict[str, Any]          # what `schakel server backup --json` printed
    restore_output: str              # what the restore printed (Dutch)
    heads: dict[str, int]           # the audit head size each partner held before the restore
    cursors: dict[str, int]         # the feed cursor each partner held before the restore

    async def open(self, label: str) -> Partner:
        return await Partner.open(self.tmp / label, PASSPHRASE, sync_worker=False)


async def burst_until_backup(writer: Partner, network: str, cases: list[str],
                             server: ServerProcess, target: Path) -> dict[str, Any]:
    """The writer appends to every case at once, one task per case, until the backup of
    ``server`` (its data directory, or its PostgreSQL database) taken after
    :data:`BACKUP_AFTER` acknowledged appends is written, then :data:`EVENTS_AFTER` more per
    case; returns what the backup printed."""
    database = ("--database", server.database_url) if server.database_url else ()
    acked = 0
    started, done = asyncio.Event(), asyncio.Event()

    async def write(case: str) -> None:
        nonlocal acked
        n = after = 0
        while after < EVENTS_AFTER:
            await writer.cases.add_event(network, case, {"kind": "note",
                                                         "text": f"Bezoek {n} afgelegd."})
            n, acked = n + 1, acked + 1
            after += done.is_set()
            if acked >= BACKUP_AFTER:
                started.set()

    async def take_backup() -> dict[str, Any]:
        await started.wait()
        try:
            code, out, err = await schakel_server_async(
                "backup", "--data", str(server.data), *database, "--to", str(target), "--json")
        finally:
            done.set()
        assert code == 0, err
        return dict(json.loads(out))

    *_, taken = await asyncio.gather(*(write(c) for c in cases), take_backup())
    return taken


async def _scenario(tmp: Path) -> Restored:
    server = ServerProcess(tmp / "data")
    try:
        return await _play(server, tmp)
    except BaseException:
        server.stop()
        raise


async def _play(server: ServerProcess, tmp: Path) -> Restored:
    server.init()
    server.start()
    network, p = await found_network(server, tmp, "writer", "ahead", "behind", "ahead-later")
    try:
        cases = [await p["writer"].cases.create(network, INTAKE, identity=IDENTITY)
                 for _ in range(CASES)]
        for label in ("coordinator", "behind", "ahead", "ahead-later"):
            await p[label].sync(network)
        await p["auditor"].audit.verify(network)
        backup = await asyncio.wait_for(
            burst_until_backup(p["writer"], network, cases, server, tmp / "schakel.backup"),
            TIMEOUT)
        heads, cursors = {}, {}
        for label in ("ahead", "ahead-later", "behind", "auditor"):
            if label.startswith("ahead"):
                await p[label].sync(network)
            latest = p[label].audit.monitor(network).latest
            assert latest is not None
            heads[label] = latest.size
            cursors[label] = int(p[label].session.state.cursor(network, "sync"))
    finally:
        for partner in p.values():
            await partner.close()
    assert server.stop() == 0, server.tail()
    restore = schakel_server("restore", "--data", str(server.data), "--from",
                             str(tmp / "schakel.backup"))
    assert restore.returncode == 0, restore.stderr
    server.start()
    return Restored(server=server, tmp=tmp, network=network, cases=cases, backup=backup,
                    restore_output=restore.stdout, heads=heads,
                    cursors=cursors)


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    tmp = tmp_path_factory.mktemp("restored")
    scenario = asyncio.run(_scenario(tmp))
    try:
        yield scenario
    finally:
        scenario.server.stop()


def test_a_backup_taken_during_a_burst_holds_the_log_as_of_one_point_inside_it(
        restored: Restored) -> None:
    """The copy was taken while appends were in flight: it holds more than the network
    held before the burst and less than what `ahead` saw after it, and names the server's
    fingerprint and this code's schema."""
    b = restored.backup
    assert b["format"] == "schakel-backup/v1" and b["schema"] == len(MIGRATIONS)
    assert b["fingerprint"] == restored.server.fingerprint
    assert restored.cursors["behind"] < b["feed_position"] < restored.cursors["ahead"]
    assert restored.heads["behind"] <= b["audit_entries"] < restored.heads["ahead"]
    assert restored.heads["auditor"] <= b["audit_entries"]
    assert b["feed_position"] > 0


async def test_the_restored_server_starts_and_its_audit_log_verifies(restored: Restored) -> None:
    """The auditor (a reader of the whole log, last here before the burst) verifies the
    restored log from its held head: every entry, every proof, consistent with what it held."""
    auditor = await restored.open("auditor")
    try:
        verified = await auditor.audit.verify(restored.network)
        assert verified.size >= restored.backup["audit_entries"]     # and reads since
        assert verified.checked >= restored.backup["audit_entries"]
        assert auditor.misbehaviours() == []
    finally:
        await auditor.close()


async def test_a_client_that_saw_past_the_backup_detects_audit_rollback(
        restored: Restored) -> None:
    """`ahead` holds a head of more entries than the restored log: its next sync is
    ServerMisbehaviour `audit-rollback`, recorded in its local state, not a crash and not a
    feed that silently skips the positions written again."""
    ahead = await restored.open("ahead")
    try:
        with pytest.raises(ServerMisbehaviour) as caught:
            await ahead.sync(restored.network)
        assert caught.value.what == "audit-rollback"
        assert [m["what"] for m in ahead.misbehaviours()] == ["audit-rollback"]
    finally:
        await ahead.close()


async def test_a_client_that_had_not_seen_past_the_backup_keeps_working(
        restored: Restored) -> None:
    """`behind` last synced before the burst: it syncs the restored server (the events up
    to the backup point), writes an event, and reads it back; no misbehaviour."""
    behind = await restored.open("behind")
    try:
        await behind.sync(restored.network)
        seq = await behind.cases.add_event(restored.network, restored.cases[0],
                                           {"kind": "note", "text": "Na de terugzetting."})
        await behind.sync(restored.network)
        assert seq >= 2
        assert behind.misbehaviours() == []
    finally:
        await behind.close()


async def test_a_client_that_saw_past_the_backup_still_refuses_once_the_restored_log_grew_past_its_head(
        restored: Restored) -> None:
    """Once the restored log has more entries than the head `ahead-later` held (the other
    partners' reads and writes since the restore), the held head is not a prefix of it: the
    consistency proof fails, `audit-fork`.  Either way the partner stops trusting."""
    behind = await restored.open("behind")
    try:
        for n in range(500):
            head = await behind.audit.monitor(restored.network).refresh()
            assert head is not None
            if head.size > restored.heads["ahead-later"]:
                break
            await behind.cases.add_event(restored.network, restored.cases[1],
                                         {"kind": "note", "text": f"Gesprek {n}."})
            await behind.sync(restored.network)       # each page read is an audit entry
        else:
            raise AssertionError("the restored log did not grow past the held head")
    finally:
        await behind.close()
    later = await restored.open("ahead-later")
    try:
        with pytest.raises(ServerMisbehaviour) as caught:
            await later.sync(restored.network)
        assert caught.value.what == "audit-fork"
    finally:
        await later.close()


def test_restore_prints_what_it_restored_in_dutch(restored: Restored) -> None:
    """What the operator reads after a restore: the backup's time, and what to tell the
    coordinators (the rollback their partners' clients will report)."""
    out = restored.restore_output
    assert "teruggezet uit" in out and "gemaakt op" in out
    assert "audit-rollback" in out and "coördinator" in out


# --------------------------------------------------------------------------- one partner


async def test_a_client_that_only_read_feed_items_past_the_backup_detects_audit_rollback(
        tmp_path: Path) -> None:
    """Nothing but one event is written after the backup, and `reader` syncs it: the
    only audit entry past the backup is the `read` of that page.  The head the client
    takes after a sync that stored items covers it, so the restore is still
    `audit-rollback` (protocol.md §16.5), not a cursor past the server's feed."""
    server = ServerProcess(tmp_path / "data")
    server.init()
    server.start()
    try:
        network, p = await found_network(server, tmp_path, "writer", "reader")
        try:
            case = await p["writer"].cases.create(network, INTAKE, identity=IDENTITY)
            await p["writer"].sync(network)
            await p["reader"].sync(network)
            code, _out, err = await schakel_server_async(
                "backup", "--data", str(server.data), "--to", str(tmp_path / "b.db"))
            assert code == 0, err
            await write_unchecked(p["writer"], network, case, {"kind": "note", "text": "Later."})
            result = await p["reader"].sync(network)
            assert result.items == 1
        finally:
            for partner in p.values():
                await partner.close()
        server.stop()
        restore = schakel_server("restore", "--data", str(server.data), "--from",
                                 str(tmp_path / "b.db"))
        assert restore.returncode == 0, restore.stderr
        server.start()
        reader = await Partner.open(tmp_path / "reader", PASSPHRASE, sync_worker=False)
        try:
            with pytest.raises(ServerMisbehaviour) as caught:
                await reader.sync(network)
            assert caught.value.what == "audit-rollback"
        finally:
            await reader.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- refusals


@dataclass
class Made:
    data: Path                 # a stopped server's data directory
    backup: Path               # a backup of it


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    """A server's data directory with its database (the server started once) and a
    backup of it."""
    tmp = tmp_path_factory.mktemp("made")
    server = ServerProcess(tmp / "data")
    server.init()
    server.start()
    server.stop()
    result = schakel_server("backup", "--data", str(server.data), "--to", str(tmp / "b.db"))
    assert result.returncode == 0, result.stderr
    return Made(data=server.data, backup=tmp / "b.db")


def copy_of(made: Made, tmp: Path) -> tuple[Path, Path]:
    data, backup = tmp / "data", tmp / "b.db"
    shutil.copytree(made.data, data)
    shutil.copy(made.backup, backup)
    return data, backup


def test_backup_is_written_in_dutch_atomically_with_mode_0600(made: Made, tmp_path: Path) -> None:
    target = tmp_path / "copy.db"
    target.write_text("an older backup")
    result = schakel_server("backup", "--data", str(made.data), "--to", str(target))
    assert result.returncode == 0, result.stderr
    assert "back-up geschreven" in result.stdout and "schemaversie" in result.stdout
    assert (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["copy.db"]       # no temporary left
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_backup_of_a_directory_without_a_database_is_refused(made: Made, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(made.data, data)
    (data / "schakel.db").unlink()
    result = schakel_server("backup", "--data", str(data), "--to", str(tmp_path / "b.db"))
    assert result.returncode == 1
    assert "bevat geen database" in result.stderr
    assert not (tmp_path / "b.db").exists()


def test_restore_is_refused_while_a_server_runs_on_the_data_directory(
        made: Made, tmp_path: Path) -> None:
    data, backup = copy_of(made, tmp_path)
    server = ServerProcess(data)
    server.start()
    try:
        before = digest(data / "schakel.db")
        result = schakel_server("restore", "--data", str(data), "--from", str(backup))
        assert result.returncode == 1
        assert "er draait een Schakel-server op" in result.stderr
        assert f"proces {server.proc.pid if server.proc else 0}" in result.stderr
        assert digest(data / "schakel.db") == before
        assert server.healthy()
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_directory_is_refused(made: Made, tmp_path: Path) -> None:
    data, _ = copy_of(made, tmp_path)
    first = ServerProcess(data, log_file=tmp_path / "first.log")
    first.start()
    try:
        second = ServerProcess(data, log_file=tmp_path / "second.log")
        second.spawn()
        assert second.wait(timeout=TIMEOUT) == 1
        assert "gebruikt" in second.output() or "uses" in second.output()
        assert first.healthy()
    finally:
        first.stop()


def test_restore_refuses_a_damaged_backup(made: Made, tmp_path: Path) -> None:
    data, backup = copy_of(made, tmp_path)
    before = digest(data / "schakel.db")
    raw = bytearray(backup.read_bytes())
    page = 4096
    assert len(raw) > 3 * page
    raw[page + 100: 3 * page] = b"\xa5" * (2 * page - 100)      # pages 2 and 3 overwritten
    backup.write_bytes(bytes(raw))
    result = schakel_server("restore", "--data", str(data), "--from", str(backup))
    assert result.returncode == 1
    assert "is beschadigd" in result.stderr or "geen SQLite-database" in result.stderr
    assert digest(data / "schakel.db") == before
    assert [p.name for p in data.iterdir() if p.name.endswith(".tmp")] == []


def test_restore_refuses_a_file_that_is_not_a_database(made: Made, tmp_path: Path) -> None:
    data, backup = copy_of(made, tmp_path)
    backup.write_bytes(b"PK\x03\x04 not a database at all" * 100)
    result = schakel_server("restore", "--data", str(data), "--from", str(backup))
    assert result.returncode == 1
    assert "geen SQLite-database" in result.stderr


def test_restore_refuses_a_database_that_is_not_a_schakel_backup(made: Made, tmp_path: Path) -> None:
    data, _ = copy_of(made, tmp_path)
    other = tmp_path / "other.db"
    shutil.copy(data / "schakel.db", other)         # a database, but no backup's description
    result = schakel_server("restore", "--data", str(data), "--from", str(other))
    assert result.returncode == 1
    assert "is geen Schakel-back-up" in result.stderr


def test_restore_refuses_a_backup_of_a_newer_schema(made: Made, tmp_path: Path) -> None:
    data, backup = copy_of(made, tmp_path)
    conn = sqlite3.connect(backup)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    before = digest(data / "schakel.db")
    result = schakel_server("restore", "--data", str(data), "--from", str(backup))
    assert result.returncode == 1
    assert f"schemaversie {len(MIGRATIONS) + 1}" in result.stderr
    assert digest(data / "schakel.db") == before


def test_restore_refuses_a_backup_taken_under_other_server_keys(made: Made, tmp_path: Path) -> None:
    other = ServerProcess(tmp_path / "other")
    fingerprint = other.init()                     # another server: its own keys
    result = schakel_server("restore", "--data", str(other.data), "--from", str(made.backup))
    assert result.returncode == 1
    assert "andere serversleutels" in result.stderr and fingerprint in result.stderr
    assert not (other.data / "schakel.db").exists()
    forced = schakel_server("restore", "--data", str(other.data), "--from", str(made.backup),
                            "--other-keys")
    assert forced.returncode == 0, forced.stderr
    assert (other.data / "schakel.db").exists()


def test_restore_replaces_the_database_and_removes_its_stale_write_ahead_log(
        made: Made, tmp_path: Path) -> None:
    """A server killed with SIGKILL leaves ``-wal`` and ``-shm`` beside the database;
    the restore folds or drops them before the backup takes its place, so nothing of
    the old log is replayed onto the restored file, which starts and serves."""
    data, backup = copy_of(made, tmp_path)
    server = ServerProcess(data)
    server.start()
    assert server.proc is not None
    server.proc.kill()
    server.wait(timeout=TIMEOUT)
    assert (data / "schakel.db-wal").exists() and (data / "schakel.db-shm").exists()
    result = schakel_server("restore", "--data", str(data), "--from", str(backup), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema"] == len(MIGRATIONS)
    assert sorted(p.name for p in data.iterdir() if p.name.startswith("schakel.db")) == \
        ["schakel.db"]
    conn = sqlite3.connect(data / "schakel.db")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema")}
        assert "schakel_backup" not in tables and "feed" in tables
    finally:
        conn.close()
    server.start()
    try:
        assert server.healthy()
    finally:
        server.stop()


async def test_a_writer_whose_events_the_restore_lost_is_told_event_missing_when_it_writes(
        restored: Restored) -> None:
    """The writer's own events after the backup point are gone from the server, and it
    read no feed page past it, so its audit head is not ahead.  Its next event to such a
    case is refused `conflict` with the server's `last_seq`, below the events the writer
    holds verified: ServerMisbehaviour `event-missing` (the server dropped events it had
    acknowledged), not a `conflict` retried forever."""
    writer = await restored.open("writer")
    try:
        with pytest.raises(ServerMisbehaviour) as caught:
            await writer.cases.add_event(restored.network, restored.cases[2],
                                         {"kind": "note", "text": "Nog een bezoek."})
        assert caught.value.what == "event-missing"
        assert "event-missing" in [m["what"] for m in writer.misbehaviours()]
    finally:
        await writer.close()
