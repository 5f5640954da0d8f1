"""Backups and restores of a server whose data is in PostgreSQL (``--database``; ADR 0050,
section "PostgreSQL"; ADR 0051).

**One backup format for both backends.**  A PostgreSQL backup is the same file a SQLite
backup is (server/backup.py): a SQLite database of the Schakel schema at the copied
version, with the ``schakel_backup`` table that names the format, the schema version,
when it was taken and the server's public keys.  So the checks a restore makes of a file
(``not-a-database``, ``corrupt``, ``not-a-backup``, ``newer-schema``, ``other-keys``) are
the same code on both backends, ``inspect_backup`` reads either, and no ``pg_dump`` of a
matching major version is needed on the machine that runs the backup.

**Backup** reads every table of the Schakel schema in one ``REPEATABLE READ READ ONLY``
transaction -- one snapshot: the database as of one commit while the servers go on
writing (a read-only transaction never blocks a writer nor fails to serialise) -- into a
new SQLite file on which SQLite's own migrations built the schema of the same version
(the PostgreSQL schema is SQLite's twin, step for step, column for column: ADR 0051).  The
``rowid`` of a table whose SQLite twin has an implicit one is copied into it (insertion
order is what some queries order by); an identity sequence's value is carried into
``sqlite_sequence``, so a restored server never hands out a cursor again that it handed out
before the backup.  The file is then finished as a SQLite backup is: checked, described,
fsynced and renamed into place, mode 0600.

**Restore** checks the file as a SQLite restore does, then, in **one transaction** on
PostgreSQL: takes the migrations' advisory lock (a server that starts meanwhile waits in
its migration, then finds the restored database); refuses ``server-running`` when another
session with ``application_name`` ``schakel`` (every server process's, see
``pgstore.connect``) is connected to the database; builds the schema of the backup's
version in a fresh schema of its own, copies every row in (``COPY``), sets every identity
sequence past the copied values, migrates the fresh schema to this code's version, and
swaps it in: the old Schakel tables (and ``json_extract``) of the database's schema are
dropped and the fresh ones moved into it.  Nothing is committed before the end, so a
restore that fails leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import sqlite_utils
from psycopg import pq, sql

from schakel.server import datalock, pgstore, storage
from schakel.server.backup import (
    BackupInfo, BackupRefused, check_keys, describe_and_place, inspect_backup,
    new_copy_file, remove_copy,
)
from schakel.server.serverkeys import ServerKeys

#: The ``application_name`` of a server process's sessions (``pgstore.connect``): a restore
#: is refused while one is connected.
SERVER_APPLICATION = "schakel"
#: The ``application_name`` of the backup's and the restore's own sessions.
BACKUP_APPLICATION = "schakel-backup"
RESTORE_APPLICATION = "schakel-restore"
#: Where a restore builds the restored tables before it swaps them in.
FRESH_SCHEMA = "schakel_restore"
#: Rows read or written per round trip.
BATCH = 1000


def _connect(url: str, application: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10,
                               application_name=application)
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        raise BackupRefused("unreachable", lines[0] if lines else type(exc).__name__) from None


def _refusal(exc: psycopg.Error, doing: str) -> BackupRefused:
    """What a fault of PostgreSQL while ``doing`` is refused as: ``unreachable`` when the
    connection failed, ``corrupt`` when it refused a value of the backup, else
    ``database-error`` (a missing privilege, the disk full, ...)."""
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else type(exc).__name__
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return BackupRefused("unreachable", detail)
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return BackupRefused("corrupt", f"{doing}: {detail}")
    return BackupRefused("database-error", detail, backend="postgresql")


def _roll_back(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        if conn.info.transaction_status in (pq.TransactionStatus.INTRANS,
                                            pq.TransactionStatus.INERROR):
            conn.execute("ROLLBACK")


# --------------------------------------------------------------------------- the tables


@dataclass(frozen=True)
class _Column:
    name: str
    type: str            # PostgreSQL's data_type: text, bigint, bytea
    identity: bool       # an identity column (its sequence is set after a restore)
    generated: bool      # GENERATED ALWAYS AS (...) STORED: never written


def _pg_columns(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[_Column]]:
    """The columns of every table in ``schema``, in their order."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, is_identity, is_generated"
        " FROM information_schema.columns WHERE table_schema = %s"
        " ORDER BY table_name, ordinal_position", (schema,)).fetchall()
    tables: dict[str, list[_Column]] = {}
    for table, column, kind, identity, generated in rows:
        tables.setdefault(table, []).append(
            _Column(column, kind, identity == "YES", generated == "ALWAYS"))
    return tables


def _sqlite_tables(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The Schakel tables of a SQLite database and their columns (``rowid`` not among
    them), without SQLite's own and the backup's description."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name <> 'schakel_backup' ORDER BY name")]
    return {name: [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
            for name in names}


def _implicit_rowid(columns: list[_Column]) -> bool:
    """Whether the PostgreSQL table's ``rowid`` stands for an implicit SQLite rowid (an
    identity column of its own) rather than for ``id`` (a generated column) or nothing."""
    return any(c.name == "rowid" and c.identity for c in columns)


def _matching(table: str, sqlite_columns: list[str], pg: dict[str, list[_Column]]
              ) -> list[_Column]:
    """The PostgreSQL columns of ``table`` that hold the SQLite columns, in SQLite's order;
    ``corrupt`` when the two schemas do not match (they are twins by construction)."""
    if table not in pg:
        raise BackupRefused("corrupt", f"the table {table} of the backup has no twin in the "
                            "PostgreSQL schema of its version")
    by_name = {c.name: c for c in pg[table]}
    missing = [c for c in sqlite_columns if c not in by_name]
    if missing:
        raise BackupRefused("corrupt", f"the columns {', '.join(missing)} of {table} have no "
                            "twin in the PostgreSQL schema of its version")
    return [by_name[c] for c in sqlite_columns]


# --------------------------------------------------------------------------- backup


def _schema_version(conn: psycopg.Connection[Any]) -> int | None:
    """The database's ``schakel_schema`` version, or None without one."""
    exists = conn.execute("SELECT to_regclass('schakel_schema') IS NOT NULL").fetchone()
    if exists is None or not exists[0]:
        return None
    row = conn.execute("SELECT version FROM schakel_schema").fetchone()
    return 0 if row is None else int(row[0])


def _too_new(version: int, what: str) -> BackupRefused:
    known = len(storage.MIGRATIONS)
    return BackupRefused("newer-schema", f"{what} has schema version {version}, newer than "
                         f"this version of Schakel knows ({known})", schema=version, known=known)


def _rows(conn: psycopg.Connection[Any], table: str, columns: list[str]
          ) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``table`` (``columns``) in batches, through a server-side cursor of the
    open transaction."""
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(table))
    with conn.cursor(name=f"backup_{table}") as cursor:
        cursor.execute(query)
        while batch := cursor.fetchmany(BATCH):
            yield batch


def _sequences(conn: psycopg.Connection[Any], schema: str) -> dict[str, int]:
    """Per table, the last value handed out by the identity sequence of its ``id``."""
    rows = conn.execute(
        "SELECT table_name, pg_sequence_last_value(pg_get_serial_sequence("
        " format('%%I.%%I', table_schema, table_name), column_name)::regclass)"
        " FROM information_schema.columns WHERE table_schema = %s AND column_name = 'id'"
        " AND is_identity = 'YES'", (schema,)).fetchall()
    return {str(table): int(last) for table, last in rows if last is not None}


def _copy_out(conn: psycopg.Connection[Any], copy: sqlite3.Connection, version: int) -> None:
    """Every row of the PostgreSQL schema (one open snapshot) into ``copy``, whose schema
    is built here: SQLite's migrations up to ``version``."""
    db = sqlite_utils.Database(copy, execute_plugins=False)
    copy.execute("BEGIN")
    for step in storage.MIGRATIONS[:version]:
        step(db)
    copy.execute(f"PRAGMA user_version = {version}")
    schema = str(conn.execute("SELECT current_schema()").fetchone()[0])   # type: ignore[index]
    pg = _pg_columns(conn, schema)
    for table, names in _sqlite_tables(copy).items():
        columns = _matching(table, names, pg)
        extra = ["rowid"] if _implicit_rowid(pg[table]) else []
        targets = ", ".join(f'"{n}"' for n in [*extra, *names])
        marks = ", ".join("?" for _ in [*extra, *names])
        copy.execute(f'DELETE FROM "{table}"')      # what a migration step may have put in
        for batch in _rows(conn, table, [*extra, *(c.name for c in columns)]):
            copy.executemany(f'INSERT INTO "{table}" ({targets}) VALUES ({marks})', batch)
    has_sequence = copy.execute("SELECT count(*) FROM sqlite_schema WHERE name ="
                                " 'sqlite_sequence'").fetchone()[0]
    if has_sequence:
        for table, last in _sequences(conn, schema).items():
            copy.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                         (last, table))
            copy.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS"
                         " (SELECT 1 FROM sqlite_sequence WHERE name = ?)", (table, last, table))
    copy.execute("COMMIT")


def backup_postgresql(data_dir: Path, target: Path, keys: ServerKeys, *, now: datetime,
                      database: str) -> BackupInfo:
    """Copy the Schakel schema of the PostgreSQL ``database`` to the backup file ``target``
    (module docstring), safe while servers run and write; returns what it holds.
    ``data_dir`` only names the keys (``keys``) the backup belongs to."""
    conn = _connect(database, BACKUP_APPLICATION)
    try:
        tmp = new_copy_file(target)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            version = _schema_version(conn)
            if version is None or version == 0:
                raise BackupRefused("no-database", "the database holds no Schakel schema",
                                    backend="postgresql")
            if version > len(storage.MIGRATIONS):
                raise _too_new(version, "the database")
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            copy = sqlite3.connect(tmp, isolation_level=None)
            try:
                _copy_out(conn, copy, version)
            finally:
                copy.close()
            conn.execute("COMMIT")
            return describe_and_place(tmp, target, keys, now=now)
        except psycopg.Error as exc:
            remove_copy(tmp)
            raise _refusal(exc, "the database cannot be read") from None
        except BaseException:
            remove_copy(tmp)
            raise
    finally:
        _roll_back(conn)
        conn.close()


# --------------------------------------------------------------------------- restore


def _others(conn: psycopg.Connection[Any]) -> list[tuple[int, str]]:
    """The server sessions connected to this database, but this one: (backend pid,
    client address)."""
    rows = conn.execute(
        "SELECT pid, coalesce(host(client_addr), 'local') FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s"
        " AND pid <> pg_backend_pid() ORDER BY pid", (SERVER_APPLICATION,)).fetchall()
    return [(int(pid), str(addr)) for pid, addr in rows]


def _check_value(table: str, column: _Column, value: Any) -> None:
    kind = {"bigint": int, "integer": int, "text": str, "bytea": bytes}.get(column.type)
    if value is None or kind is None or isinstance(value, kind) and not isinstance(value, bool):
        return
    raise BackupRefused("corrupt", f"{table}.{column.name} holds a {type(value).__name__} "
                        f"where the schema has {column.type}")


def _copy_in(conn: psycopg.Connection[Any], backup: sqlite3.Connection) -> None:
    """Every row of the backup into the tables of the current (fresh) schema, then every
    identity sequence past the values copied and ``sqlite_sequence``'s."""
    pg = _pg_columns(conn, FRESH_SCHEMA)
    for table, names in _sqlite_tables(backup).items():
        columns = _matching(table, names, pg)
        if _implicit_rowid(pg[table]):
            columns = [next(c for c in pg[table] if c.name == "rowid"), *columns]
        wanted = [c for c in columns if not c.generated]
        read = ", ".join(f'"{c.name}"' for c in wanted)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c.name) for c in wanted))
        cursor = backup.execute(f'SELECT {read} FROM "{table}"')
        with conn.cursor().copy(statement) as copy:
            while rows := cursor.fetchmany(BATCH):
                for row in rows:
                    for column, value in zip(wanted, row, strict=True):
                        _check_value(table, column, value)
                    copy.write_row(row)
    handed_out: dict[str, int] = {}
    with contextlib.suppress(sqlite3.OperationalError):         # no AUTOINCREMENT table
        handed_out = {str(n): int(s) for n, s in
                      backup.execute("SELECT name, seq FROM sqlite_sequence")}
    for table, columns in pg.items():
        for column in columns:
            if not column.identity:
                continue
            top = conn.execute(sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
                sql.Identifier(column.name), sql.Identifier(table))).fetchone()
            last = max(int(top[0]) if top else 0,
                       handed_out.get(table, 0) if column.name == "id" else 0)
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, %s), %s, %s)",
                         (f'{FRESH_SCHEMA}."{table}"', column.name, max(last, 1), last >= 1))


def _swap_in(conn: psycopg.Connection[Any], target: str) -> None:
    """Replace the Schakel tables and functions of ``target`` by those of the fresh
    schema, and drop it."""
    tables = [str(r[0]) for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (FRESH_SCHEMA,))]
    functions = [(str(r[0]), str(r[1])) for r in conn.execute(
        "SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
        (FRESH_SCHEMA,))]
    for table in tables:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{} CASCADE").format(
            sql.Identifier(target), sql.Identifier(table)))
    for name, arguments in functions:
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.{}({})").format(
            sql.Identifier(target), sql.Identifier(name), sql.SQL(arguments)))
    for table in tables:
        conn.execute(sql.SQL("ALTER TABLE {}.{} SET SCHEMA {}").format(
            sql.Identifier(FRESH_SCHEMA), sql.Identifier(table), sql.Identifier(target)))
    for name, arguments in functions:
        conn.execute(sql.SQL("ALTER FUNCTION {}.{}({}) SET SCHEMA {}").format(
            sql.Identifier(FRESH_SCHEMA), sql.Identifier(name), sql.SQL(arguments),
            sql.Identifier(target)))
    conn.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(FRESH_SCHEMA)))


def _restore_into(conn: psycopg.Connection[Any], backup: sqlite3.Connection,
                  version: int) -> None:
    """The restore's one transaction (module docstring); commits only at its end."""
    conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
    # A server that starts now waits here, in its first migration step, until the commit.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgstore._MIGRATION_LOCK,))
    others = _others(conn)
    if others:
        raise BackupRefused("server-running", f"{len(others)} Schakel server session(s) are "
                            "connected to the database", backend="postgresql",
                            sessions=len(others),
                            clients=", ".join(sorted({addr for _, addr in others})))
    target = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
    current = _schema_version(conn)
    if current is not None and current > len(pgstore.MIGRATIONS):
        raise _too_new(current, "the database")
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
        sql.Identifier(FRESH_SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(FRESH_SCHEMA)))
    conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(FRESH_SCHEMA)))
    db = pgstore.PgDb(conn)
    for step in pgstore.MIGRATIONS[:version]:
        step(db)
    # Rows a migration step may have put in are the backup's to give.
    for table in _pg_columns(conn, FRESH_SCHEMA):
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    _copy_in(conn, backup)
    for step in pgstore.MIGRATIONS[version:]:
        step(db)
    conn.execute("CREATE TABLE schakel_schema (version BIGINT NOT NULL)")
    conn.execute("INSERT INTO schakel_schema (version) VALUES (%s)", (len(pgstore.MIGRATIONS),))
    _swap_in(conn, target)
    conn.execute("COMMIT")


def restore_postgresql(data_dir: Path, source: Path, keys: ServerKeys, *,
                       other_keys: bool = False, database: str) -> BackupInfo:
    """Replace the Schakel schema of the PostgreSQL ``database`` with the backup ``source``
    (module docstring).  ``other_keys``: restore a backup taken under other server keys
    all the same.  The data directory's lock is held meanwhile too."""
    info = inspect_backup(source)
    check_keys(info, keys, other_keys=other_keys)
    try:
        with datalock.hold(data_dir):
            backup = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
            try:
                conn = _connect(database, RESTORE_APPLICATION)
                try:
                    _restore_into(conn, backup, info.schema)
                except psycopg.Error as exc:
                    raise _refusal(exc, "PostgreSQL refused a value of the backup") from None
                finally:
                    _roll_back(conn)
                    conn.close()
            finally:
                backup.close()
    except datalock.DataDirBusy as exc:
        raise BackupRefused("server-running", str(exc), pid=exc.pid) from None
    return info


__all__ = ["backup_postgresql", "restore_postgresql", "SERVER_APPLICATION"]
