"""Backups and restores of a server whose data is in PostgreSQL (issue 17; server/pgbackup.py,
cli/commands/backup.py ``--database``, docs/roles/operator.md, ADR 0050 "PostgreSQL").

The SQLite scenario of tests/test_backup.py on a real PostgreSQL (tests/pg_harness.py): a
real ``schakel serve --database`` process, ``schakel server backup --database`` taken while
a writer appends to four cases at once, then ``schakel server restore --database`` into the
stopped server's database.  The refusals follow, each on a database of its own copied from
one a server made.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from schakel.cli.serverprocess import ServerProcess
from schakel.client.errors import ServerMisbehaviour
from schakel.server.storage import MIGRATIONS
from tests import pg_harness
from tests.client_harness import IDENTITY, INTAKE
from tests.test_backup import (
    CASES, TIMEOUT, Restored, burst_until_backup, found_network, schakel_server,
)


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


#: A row the copied databases hold and their backup does not (copy_of): a restore that
#: went through, even in part, would take it away.
MARKER = ("INSERT INTO witness_cosignatures (network, log, witness, size, time, line)"
          " VALUES ('merkteken', 'l', 'w', 1, 1, 'x')")


def contents(url: str) -> dict[str, Any]:
    """What a restore must leave alone when it is refused: every table (by its object id:
    a table dropped and made again has another) with its row count, and the database's
    schemas."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute("SELECT relname, oid FROM pg_class WHERE relkind = 'r' AND"
                              " relnamespace = 'public'::regnamespace ORDER BY relname").fetchall()
        counts = {(t, int(oid)): conn.execute(f'SELECT count(*) FROM "{t}"'.encode()).fetchone()
                  for t, oid in tables}
        schemas = sorted(r[0] for r in conn.execute("SELECT nspname FROM pg_namespace"))
    assert counts and schemas
    return {"counts": counts, "schemas": schemas}


# --------------------------------------------------------------------------- the scenario


async def _play(server: ServerProcess, tmp: Path) -> Restored:
    server.init()
    server.start()
    network, p = await found_network(server, tmp, "writer", "ahead", "behind")
    try:
        cases = [await p["writer"].cases.create(network, INTAKE, identity=IDENTITY)
                 for _ in range(CASES)]
        for label in ("coordinator", "behind", "ahead"):
            await p[label].sync(network)
        await p["auditor"].audit.verify(network)
        backup = await asyncio.wait_for(
            burst_until_backup(p["writer"], network, cases, server, tmp / "schakel.backup"),
            TIMEOUT)
        heads, cursors = {}, {}
        for label in ("ahead", "behind", "auditor"):
            if label == "ahead":
                await p[label].sync(network)
            latest = p[label].audit.monitor(network).latest
            assert latest is not None
            heads[label] = latest.size
            cursors[label] = int(p[label].session.state.cursor(network, "sync"))
    finally:
        for partner in p.values():
            await partner.close()
    assert server.stop() == 0, server.tail()
    assert server.database_url is not None
    restore = schakel_server("restore", "--data", str(server.data), "--database",
                             server.database_url, "--from", str(tmp / "schakel.backup"))
    assert restore.returncode == 0, restore.stderr
    server.start()
    return Restored(server=server, tmp=tmp, network=network, cases=cases, backup=backup,
                    restore_output=restore.stdout, heads=heads, cursors=cursors)


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    tmp = tmp_path_factory.mktemp("pgrestored")
    server = ServerProcess(tmp / "data", database_url=pg_harness.new_database_url())
    try:
        scenario = asyncio.run(_play(server, tmp))
        yield scenario
    finally:
        server.stop()


def test_a_postgresql_backup_taken_during_a_burst_holds_the_log_as_of_one_point_inside_it(
        restored: Restored) -> None:
    """One snapshot of a database being written: more than the network held before the
    burst, less than what `ahead` saw after it; the server's fingerprint, this schema."""
    b = restored.backup
    assert b["format"] == "schakel-backup/v1" and b["schema"] == len(MIGRATIONS)
    assert b["fingerprint"] == restored.server.fingerprint
    assert restored.cursors["behind"] < b["feed_position"] < restored.cursors["ahead"]
    assert restored.heads["behind"] <= b["audit_entries"] < restored.heads["ahead"]
    assert restored.heads["auditor"] <= b["audit_entries"]


async def test_the_restored_postgresql_server_starts_and_its_audit_log_verifies(
        restored: Restored) -> None:
    auditor = await restored.open("auditor")
    try:
        verified = await auditor.audit.verify(restored.network)
        assert verified.size >= restored.backup["audit_entries"]
        assert verified.checked >= restored.backup["audit_entries"]
        assert auditor.misbehaviours() == []
    finally:
        await auditor.close()


async def test_a_client_that_saw_past_the_postgresql_backup_detects_audit_rollback(
        restored: Restored) -> None:
    ahead = await restored.open("ahead")
    try:
        with pytest.raises(ServerMisbehaviour) as caught:
            await ahead.sync(restored.network)
        assert caught.value.what == "audit-rollback"
        assert [m["what"] for m in ahead.misbehaviours()] == ["audit-rollback"]
    finally:
        await ahead.close()


async def test_a_client_behind_the_postgresql_backup_keeps_working_and_cursors_are_not_reused(
        restored: Restored) -> None:
    """`behind` syncs the restored server, writes and reads back; the feed hands out new
    positions after the restored ones (the identity sequences were set past them)."""
    behind = await restored.open("behind")
    try:
        await behind.sync(restored.network)
        await behind.cases.add_event(restored.network, restored.cases[0],
                                     {"kind": "note", "text": "Na de terugzetting."})
        await behind.sync(restored.network)
        assert behind.misbehaviours() == []
        assert int(behind.session.state.cursor(restored.network, "sync")) > \
            restored.backup["feed_position"]
    finally:
        await behind.close()


def test_the_postgresql_restore_prints_what_it_restored_in_dutch(restored: Restored) -> None:
    out = restored.restore_output
    assert "teruggezet uit" in out and "audit-rollback" in out


# --------------------------------------------------------------------------- refusals


@dataclass
class Made:
    data: Path                 # a stopped server's data directory (its keys)
    template: str              # the database that server made (copied per test)
    backup: Path               # a backup of it


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    tmp = tmp_path_factory.mktemp("pgmade")
    url = pg_harness.new_database_url()
    server = ServerProcess(tmp / "data", database_url=url)
    server.init()
    server.start()
    server.stop()
    result = schakel_server("backup", "--data", str(server.data), "--database", url,
                            "--to", str(tmp / "b.db"))
    assert result.returncode == 0, result.stderr
    return Made(data=server.data, template=_database(url), backup=tmp / "b.db")


def copy_of(made: Made, tmp: Path) -> tuple[Path, str, Path]:
    """A data directory, a database and a backup of their own, copies of ``made``'s."""
    data, backup = tmp / "data", tmp / "b.db"
    shutil.copytree(made.data, data)
    shutil.copy(made.backup, backup)
    cluster = pg_harness.cluster()
    url = cluster.url(cluster.create_database(template=made.template))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(MARKER)
    return data, url, backup


def restore(data: Path, url: str, backup: Path, *extra: str) -> Any:
    return schakel_server("restore", "--data", str(data), "--database", url,
                          "--from", str(backup), *extra)


def test_a_postgresql_backup_is_a_sqlite_backup_file_with_mode_0600(made: Made) -> None:
    assert (made.backup.stat().st_mode & 0o777) == 0o600
    conn = sqlite3.connect(made.backup)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert dict(conn.execute("SELECT name, value FROM schakel_backup"))["format"] == \
            "schakel-backup/v1"
    finally:
        conn.close()


def test_a_postgresql_backup_restores_into_a_sqlite_data_directory(
        made: Made, tmp_path: Path) -> None:
    """One backup format: a backup of a PostgreSQL database restores into a data
    directory's SQLite file, and a server starts on it."""
    data = tmp_path / "data"
    shutil.copytree(made.data, data)
    result = schakel_server("restore", "--data", str(data), "--from", str(made.backup))
    assert result.returncode == 0, result.stderr
    server = ServerProcess(data)
    server.start()
    try:
        assert server.healthy()
    finally:
        server.stop()


def test_a_sqlite_backup_restores_into_an_empty_postgresql_database(tmp_path: Path) -> None:
    """The other way: a SQLite server's backup restores into a database that holds no
    Schakel tables yet, and a server starts on it with the same networks count."""
    server = ServerProcess(tmp_path / "data")
    server.init()
    server.start()
    server.stop()
    made = schakel_server("backup", "--data", str(server.data), "--to", str(tmp_path / "b.db"),
                          "--json")
    assert made.returncode == 0, made.stderr
    cluster = pg_harness.cluster()
    url = cluster.url(cluster.create_database())
    result = restore(server.data, url, tmp_path / "b.db", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["networks"] == json.loads(made.stdout)["networks"]
    on_postgresql = ServerProcess(server.data, database_url=url)
    on_postgresql.start()
    try:
        assert on_postgresql.healthy()
    finally:
        on_postgresql.stop()


def test_backup_of_a_postgresql_database_without_schakel_data_is_refused(
        made: Made, tmp_path: Path) -> None:
    cluster = pg_harness.cluster()
    empty = cluster.url(cluster.create_database())
    result = schakel_server("backup", "--data", str(made.data), "--database", empty,
                            "--to", str(tmp_path / "b.db"))
    assert result.returncode == 1
    assert "geen Schakel-gegevens" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_backup_and_restore_refuse_a_database_they_cannot_reach(made: Made, tmp_path: Path) -> None:
    nowhere = f"postgresql://schakel@127.0.0.1:{pg_harness.free_port()}/db"
    backup = schakel_server("backup", "--data", str(made.data), "--database", nowhere,
                            "--to", str(tmp_path / "b.db"))
    assert backup.returncode == 1 and "geen verbinding" in backup.stderr
    assert list(tmp_path.iterdir()) == []
    data, _url, copy = copy_of(made, tmp_path)
    restored = restore(data, nowhere, copy)
    assert restored.returncode == 1 and "geen verbinding" in restored.stderr


def test_postgresql_restore_is_refused_while_a_server_is_connected_to_the_database(
        made: Made, tmp_path: Path) -> None:
    """The running server's data directory is not the one the restore names (servers on
    PostgreSQL need not share one, nor its lock): its session in pg_stat_activity is what
    refuses the restore."""
    data, url, backup = copy_of(made, tmp_path)
    server = ServerProcess(data, database_url=url)
    server.start()
    try:
        other = tmp_path / "elsewhere"
        shutil.copytree(data, other, ignore=shutil.ignore_patterns("server.lock"))
        before = contents(url)
        result = restore(other, url, backup)
        assert result.returncode == 1
        assert "verbinding(en)" in result.stderr and "er is niets teruggezet" in result.stderr
        assert contents(url) == before
        assert server.healthy()
    finally:
        server.stop()


def test_postgresql_restore_refuses_a_database_that_is_not_a_schakel_backup(
        made: Made, tmp_path: Path) -> None:
    data, url, backup = copy_of(made, tmp_path)
    conn = sqlite3.connect(backup)
    conn.execute("DROP TABLE schakel_backup")
    conn.close()
    before = contents(url)
    result = restore(data, url, backup)
    assert result.returncode == 1
    assert "is geen Schakel-back-up" in result.stderr
    assert contents(url) == before


def test_postgresql_restore_refuses_a_damaged_backup(made: Made, tmp_path: Path) -> None:
    data, url, backup = copy_of(made, tmp_path)
    raw = bytearray(backup.read_bytes())
    page = 4096
    raw[page + 100: 3 * page] = b"\xa5" * (2 * page - 100)
    backup.write_bytes(bytes(raw))
    before = contents(url)
    result = restore(data, url, backup)
    assert result.returncode == 1
    assert "is beschadigd" in result.stderr or "geen SQLite-database" in result.stderr
    assert contents(url) == before


def test_a_postgresql_restore_that_fails_halfway_leaves_the_database_as_it_was(
        made: Made, tmp_path: Path) -> None:
    """A backup that SQLite finds intact but whose last table holds a value PostgreSQL's
    column cannot take: the restore fails after it copied the other tables into its fresh
    schema; one transaction, so the database is as it was and no fresh schema is left."""
    data, url, backup = copy_of(made, tmp_path)
    conn = sqlite3.connect(backup)
    conn.execute("INSERT INTO witness_cosignatures (network, log, witness, size, time, line)"
                 " VALUES ('n', 'l', 'w', 'groot', 1, 'x')")
    conn.commit()
    conn.close()
    before = contents(url)
    result = restore(data, url, backup)
    assert result.returncode == 1
    assert "is beschadigd" in result.stderr
    assert contents(url) == before and "schakel_restore" not in before["schemas"]


def test_postgresql_restore_refuses_a_backup_of_a_newer_schema(made: Made, tmp_path: Path) -> None:
    data, url, backup = copy_of(made, tmp_path)
    conn = sqlite3.connect(backup)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    before = contents(url)
    result = restore(data, url, backup)
    assert result.returncode == 1
    assert f"schemaversie {len(MIGRATIONS) + 1}" in result.stderr
    assert contents(url) == before


def test_postgresql_restore_refuses_a_backup_taken_under_other_server_keys(
        made: Made, tmp_path: Path) -> None:
    _data, url, backup = copy_of(made, tmp_path)
    other = ServerProcess(tmp_path / "other")
    fingerprint = other.init()
    before = contents(url)
    result = restore(other.data, url, backup)
    assert result.returncode == 1
    assert "andere serversleutels" in result.stderr and fingerprint in result.stderr
    assert contents(url) == before
    forced = restore(other.data, url, backup, "--other-keys", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["schema"] == len(MIGRATIONS)


def test_postgresql_restore_by_a_role_without_the_rights_is_refused_and_changes_nothing(
        made: Made, tmp_path: Path) -> None:
    """A role that may connect but owns nothing: the database refuses the work
    (`database-error`), the restore changes nothing."""
    data, url, backup = copy_of(made, tmp_path)
    database = _database(url)
    role = f"zonder_rechten_{database}"
    cluster = pg_harness.cluster()
    cluster.execute(f'CREATE ROLE "{role}" LOGIN', database)
    limited = url.replace(f"{pg_harness.SUPERUSER}@", f"{role}@", 1)
    before = contents(url)
    result = restore(data, limited, backup)
    assert result.returncode == 1
    assert "de database weigerde het" in result.stderr and "er is niets gedaan" in result.stderr
    assert contents(url) == before
