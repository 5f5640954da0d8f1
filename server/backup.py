"""Backups of the server's database and their restore (docs/roles/operator.md; ADR 0050).

A backup is **one file: a copy of the database** with one table added,
``schakel_backup``, that names what the copy belongs to: the format, the schema version,
when it was taken, and the server's log and gate keys (public halves) and fingerprint.
The server's keys themselves are *not* in it: they never change, the operator keeps
``server-keys.json`` and its passphrase apart from the database backups (ADR 0050), and a
restore refuses a backup whose keys are not the data directory's (``other-keys``): a
server that signs with another log key than the one in each network's genesis is a
server no client trusts any more.

**Backup** (SQLite) copies the live database with SQLite's online backup API in one step
(``Connection.backup`` with every page at once): one read transaction, so the copy is the
database as of one commit while the running server's writer goes on (WAL mode: readers do
not block the writer).  The copy is checked -- ``PRAGMA integrity_check`` and a schema
version no newer than this code's migrations -- and written atomically: a temporary file
beside the target, ``fsync``, ``rename``, ``fsync`` of the directory.  It is a plain
rollback-journal database (no ``-wal`` beside it), mode 0600.

**Restore** takes the data directory's lock (server/datalock.py: refused while a server
runs on it, and no server starts while the restore runs), copies the backup into the data
directory, checks the copy (a SQLite database, intact, a Schakel backup, a schema this
code knows, the keys of this data directory), removes the ``schakel_backup`` table,
retires the current database's write-ahead log (checkpointed when the database still
opens, then ``-wal`` and ``-shm`` removed: a stale log must never be replayed onto the
restored file) and renames the copy over ``schakel.db``.  The next ``schakel serve``
migrates the schema forward if the backup is older.

**Backends.**  :func:`backend` chooses the functions for a data location: a data
directory's SQLite file (here), or a PostgreSQL database by URL (server/pgbackup.py), which
writes and reads backup files of this same kind (ADR 0050, section "PostgreSQL").
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from schakel.protocol.objects.base import format_timestamp
from schakel.server import datalock
from schakel.server.config import DATABASE_FILE
from schakel.server.serverkeys import ServerKeys
from schakel.server.storage import MIGRATIONS

#: The table a backup carries its description in; removed again by a restore.
INFO_TABLE = "schakel_backup"
#: The format a backup names in it.
FORMAT = "schakel-backup/v1"

#: Why a backup or restore was refused (``BackupRefused.reason``); the command line
#: words each one (cli/commands/backup.py).
REASONS = frozenset({"no-database", "not-a-database", "corrupt", "not-a-backup",
                     "newer-schema", "other-keys", "server-running", "unreachable",
                     "database-error"})


class BackupRefused(RuntimeError):
    """A backup or restore that was not done, and why (``reason``, one of
    :data:`REASONS`; ``details`` for the message).  Nothing was changed."""

    def __init__(self, reason: str, message: str, **details: object) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.details = details


@dataclass(frozen=True, kw_only=True)
class BackupInfo:
    """What a backup holds, as its ``schakel_backup`` table names it, and what its
    database counts."""

    schema: int                  #: ``PRAGMA user_version`` of the copy
    taken: str                   #: when the copy was taken (RFC 3339, UTC)
    fingerprint: str             #: the server fingerprint of the keys it belongs to
    log: str                     #: the log key (public, base64url)
    gate: str                    #: the gate key (public, base64url)
    networks: int                #: networks in the copy
    audit_entries: int           #: audit entries in the copy, over every network
    feed_position: int           #: the newest sync feed position in the copy (0: none)

    def to_json(self) -> dict[str, object]:
        return {"format": FORMAT, "schema": self.schema, "taken": self.taken,
                "fingerprint": self.fingerprint, "log": self.log, "gate": self.gate,
                "networks": self.networks, "audit_entries": self.audit_entries,
                "feed_position": self.feed_position}


# --------------------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _remove(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


# --------------------------------------------------------------------------- checks


def _schema(conn: sqlite3.Connection) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise BackupRefused("newer-schema", f"schema version {version} is newer than this "
                            f"version of Schakel knows ({len(MIGRATIONS)})",
                            schema=version, known=len(MIGRATIONS))
    return version


def _intact(conn: sqlite3.Connection) -> None:
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise BackupRefused("corrupt", f"the database is damaged: {exc}") from None
    if rows != ["ok"]:
        raise BackupRefused("corrupt", f"the database is damaged: {'; '.join(rows)}")


def _counts(conn: sqlite3.Connection) -> tuple[int, int, int]:
    def one(sql: str) -> int:
        try:
            row = conn.execute(sql).fetchone()
        except sqlite3.OperationalError:          # an empty database: no such table
            return 0
        return int(row[0] or 0) if row is not None else 0
    return (one("SELECT count(*) FROM networks"),
            one("SELECT sum(size) FROM (SELECT max(size) AS size FROM tree_heads"
                " GROUP BY network)"),
            one("SELECT max(id) FROM feed"))


def _read_info(conn: sqlite3.Connection) -> BackupInfo:
    try:
        rows = dict(conn.execute(f"SELECT name, value FROM {INFO_TABLE}").fetchall())
    except sqlite3.OperationalError:
        raise BackupRefused("not-a-backup", "the file is a SQLite database but not a "
                            "Schakel backup (it has no schakel_backup table)") from None
    if rows.get("format") != FORMAT:
        raise BackupRefused("not-a-backup", f"unknown backup format {rows.get('format')!r}")
    schema = _schema(conn)
    networks, entries, position = _counts(conn)
    try:
        return BackupInfo(schema=schema, taken=str(rows["taken"]),
                          fingerprint=str(rows["fingerprint"]), log=str(rows["log"]),
                          gate=str(rows["gate"]), networks=networks, audit_entries=entries,
                          feed_position=position)
    except KeyError as exc:
        raise BackupRefused("not-a-backup", f"the backup does not name its {exc}") from None


def _copy_into(source: sqlite3.Connection, tmp: Path, what: str) -> None:
    """Every page of ``source`` into the new file ``tmp`` (mode 0600) in one step: one read
    transaction, so the copy is one commit's state; ``corrupt`` when ``what`` cannot be read."""
    copy = sqlite3.connect(tmp, isolation_level=None)
    try:
        os.chmod(tmp, 0o600)
        source.backup(copy, pages=-1)
    except sqlite3.DatabaseError as exc:
        raise BackupRefused("corrupt", f"{what} cannot be read: {exc}") from None
    finally:
        copy.close()


def _open_copy(path: Path) -> sqlite3.Connection:
    """A connection to a file that must be a SQLite database (``not-a-database``)."""
    if not path.is_file():
        raise BackupRefused("not-a-database", f"{path} is not a file")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BackupRefused("not-a-database", f"not a SQLite database: {exc}") from None
    return conn


# --------------------------------------------------------------------------- SQLite


def new_copy_file(target: Path) -> Path:
    """The temporary file beside ``target`` a backup is built in (nothing there yet)."""
    tmp = _temporary(target)
    _remove(tmp)
    return tmp


def remove_copy(tmp: Path) -> None:
    """Remove an unfinished copy (and any journal of it)."""
    _remove(tmp)


def describe_and_place(tmp: Path, target: Path, keys: ServerKeys, *,
                       now: datetime) -> BackupInfo:
    """Finish the copy ``tmp`` as a backup: check it (intact, a schema this code knows),
    add the ``schakel_backup`` table, and rename it atomically over ``target``; returns
    what it holds.  The copy is removed when any of it fails."""
    try:
        conn = _open_copy(tmp)
        try:
            _intact(conn)
            _schema(conn)
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute(f"CREATE TABLE {INFO_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            public = keys.fingerprints()
            conn.executemany(f"INSERT INTO {INFO_TABLE} (name, value) VALUES (?, ?)", [
                ("format", FORMAT), ("taken", format_timestamp(now)),
                ("fingerprint", public["fingerprint"]), ("log", public["log"]),
                ("gate", public["gate"])])
            info = _read_info(conn)
        finally:
            conn.close()
        os.chmod(tmp, 0o600)
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
        return info
    except BaseException:
        _remove(tmp)
        raise


def backup_sqlite(data_dir: Path, target: Path, keys: ServerKeys, *,
                  now: datetime) -> BackupInfo:
    """Copy ``data_dir``'s database to ``target`` (module docstring), safe while the
    server runs and writes; returns what the backup holds."""
    source_path = data_dir / DATABASE_FILE
    if not source_path.is_file():
        raise BackupRefused("no-database", f"{source_path} does not exist")
    tmp = new_copy_file(target)
    try:
        source = sqlite3.connect(source_path, isolation_level=None, timeout=30.0)
        try:
            source.execute("PRAGMA busy_timeout = 30000")
            _copy_into(source, tmp, "the database")
        finally:
            source.close()
    except BaseException:
        _remove(tmp)
        raise
    return describe_and_place(tmp, target, keys, now=now)


def inspect_backup(source: Path) -> BackupInfo:
    """What the backup file ``source`` holds, after the checks a restore makes of it
    (all but the keys): a SQLite database, intact, a Schakel backup, a known schema."""
    conn = _open_copy(source)
    try:
        _intact(conn)
        return _read_info(conn)
    finally:
        conn.close()


def _retire_wal(database: Path) -> None:
    """Fold the current database's write-ahead log into it when it still opens, then
    remove ``-wal`` and ``-shm``: neither may outlive the file they belong to."""
    if database.exists():
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(database, isolation_level=None, timeout=5.0)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{database}{suffix}")


def check_keys(info: BackupInfo, keys: ServerKeys, *, other_keys: bool) -> None:
    """``other-keys`` when the backup was taken under other server keys than ``keys``
    (unless ``other_keys``)."""
    mine = keys.fingerprints()
    if (info.log, info.gate) != (mine["log"], mine["gate"]) and not other_keys:
        raise BackupRefused("other-keys", "the backup was taken under other server "
                            "keys than this data directory's",
                            backup=info.fingerprint, here=mine["fingerprint"])


def restore_sqlite(data_dir: Path, source: Path, keys: ServerKeys, *,
                   other_keys: bool = False) -> BackupInfo:
    """Replace ``data_dir``'s database with the backup ``source`` (module docstring).
    ``other_keys``: restore a backup taken under other server keys all the same."""
    try:
        with datalock.hold(data_dir):
            return _restore_locked(data_dir, source, keys, other_keys=other_keys)
    except datalock.DataDirBusy as exc:
        raise BackupRefused("server-running", str(exc), pid=exc.pid) from None


def _restore_locked(data_dir: Path, source: Path, keys: ServerKeys, *,
                    other_keys: bool) -> BackupInfo:
    database = data_dir / DATABASE_FILE
    tmp = _temporary(database)
    _remove(tmp)
    try:
        conn = _open_copy(source)
        try:
            _copy_into(conn, tmp, "the backup")
        finally:
            conn.close()
        conn = _open_copy(tmp)
        try:
            _intact(conn)
            info = _read_info(conn)
            check_keys(info, keys, other_keys=other_keys)
            conn.execute(f"DROP TABLE {INFO_TABLE}")
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            conn.close()
        _fsync(tmp)
        _retire_wal(database)
        os.replace(tmp, database)
        _fsync_dir(data_dir)
        return info
    except BaseException:
        _remove(tmp)
        raise


@dataclass(frozen=True)
class Backend:
    """The backup and restore functions of one kind of data location."""

    name: str
    backup: Callable[..., BackupInfo]
    restore: Callable[..., BackupInfo]


SQLITE = Backend("sqlite", backup_sqlite, restore_sqlite)


def backend(database: str | None = None) -> Backend:
    """The backend of a data location: None for the data directory's SQLite file, a
    ``postgresql://`` URL for that database (server/pgbackup.py)."""
    if database is None:
        return SQLITE
    if database.startswith(("postgresql://", "postgres://")):
        from schakel.server import pgbackup     # psycopg only when PostgreSQL is used
        return Backend("postgresql",
                       functools.partial(pgbackup.backup_postgresql, database=database),
                       functools.partial(pgbackup.restore_postgresql, database=database))
    raise ValueError(f"no backup backend for {database.split(':', 1)[0]!r}")


__all__ = ["INFO_TABLE", "FORMAT", "REASONS", "BackupRefused", "BackupInfo", "Backend",
           "SQLITE", "backend", "backup_sqlite", "restore_sqlite", "inspect_backup",
           "check_keys", "describe_and_place", "new_copy_file", "remove_copy"]
