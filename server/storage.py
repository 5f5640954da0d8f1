"""The storage seam, and the one module that owns SQLite (style.md, "Server and storage";
ADR 0006, ADR 0051).

:class:`BaseStore` is the seam: what follows holds for both backends, :class:`Store` on
SQLite (the default) and :class:`schakel.server.pgstore.PgStore` on PostgreSQL; only the
schema's DDL, the transaction commands and the faults differ between them.

* **Schema** through ``sqlite_utils``, versioned with ``PRAGMA user_version``
  (:data:`MIGRATIONS`).  The database runs in WAL mode.
* **Reads** (:meth:`Store.read`) run a plain function ``fn(db, *args)`` on a small thread
  pool; each reader thread has its own read-only connection, and each read runs in one
  transaction, so it sees one consistent snapshot.
* **Writes** (:meth:`Store.write`) go through **one writer thread**.  The writes queued
  during one pass of the event loop are handed to it together at the end of that pass.
  The writer takes what was handed off, drains more that is already waiting, up to
  ``batch`` writes, runs them all in one ``BEGIN IMMEDIATE`` transaction -- each inside
  its own ``SAVEPOINT``, so a function that raises rolls back only its own changes and
  fails only its own future -- and commits with ``synchronous=FULL``.  Only after the commit returned are the futures
  resolved and the long-poll waiters of the touched networks woken (``on_commit``): a
  write is acknowledged only once it is durable, and a group of concurrent writers pays
  for one fsync.
* **Faults of the storage** (the disk full, an I/O error, the file unreadable or read-only:
  :func:`storage_fault`) refuse the read or write that met them with 503 ``unavailable``
  and ``Retry-After`` (docs/protocol.md §14.4); nothing of a refused write is kept.  The
  writer thread outlives every failure -- a failed ``ROLLBACK`` drops its connection, which
  it opens again for the next batch, and its logging cannot raise -- so writes resume by
  themselves once the disk has room again.  A reader whose ``ROLLBACK`` fails does the same,
  and the read's own error is the one its caller sees.

Write functions are named ``*_txn`` (Synapse) and live in ``server/data/``; they receive
the writer's connection and must not commit or roll back themselves.  Nothing else in the
server imports ``sqlite3`` or ``sqlite_utils`` (or ``psycopg``, but ``server/pgstore.py``):
the data modules type their connection as :class:`Db` from here, and write SQL that both
engines accept (ADR 0051).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlite_utils
import structlog

from schakel.server.errors import Unavailable

class Cursor(Protocol):
    """What :meth:`Db.execute` returns: rows are read by index and by column name."""

    @property
    def rowcount(self) -> int: ...

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """What a query function receives: on SQLite the ``sqlite3.Connection`` itself (rows
    are ``sqlite3.Row``); on PostgreSQL :class:`schakel.server.pgstore.PgDb`, which takes
    the same SQL (``?`` placeholders; ADR 0051) and gives rows read the same ways."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...
T = TypeVar("T")
OnCommit = Callable[[frozenset[str]], None]

_log = structlog.get_logger("schakel.storage")

#: The tables declared ``WITHOUT ROWID`` on SQLite (their rows live in the primary key's
#: B-tree): no ``rowid`` to order by or return, on either backend.
WITHOUT_ROWID = frozenset({"audit_nodes", "tree_heads", "audit_cases", "case_audience",
                           "trust_entries", "trust_nodes", "witness_cosignatures",
                           "replay_nonces", "intake_buckets"})

#: SQLite's primary result codes for a fault of the storage rather than of the request or
#: of the code: busy or locked, out of memory, read-only, an I/O error, the disk full, the
#: file cannot be opened, a locking protocol error.  ``SQLITE_CORRUPT`` and the rest stay
#: server errors (500): retrying would not help.
_STORAGE_FAULTS = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM,
                             sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
                             sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL})


def storage_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite reporting a fault of the storage (:data:`_STORAGE_FAULTS`)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and isinstance(code, int) and \
        code & 0xFF in _STORAGE_FAULTS


def _refusal(exc: Exception, event: str | None,
             fault: Callable[[BaseException], bool] = storage_fault) -> Exception:
    """What the caller of a failed read or write gets: 503 ``unavailable`` (retry later)
    for a fault of the storage (``fault``), which is logged as ``event`` (None: the caller
    logged it); the error itself otherwise."""
    if not fault(exc):
        return exc
    if event is not None:
        _log_error(event, exc)
    refusal = Unavailable("the server cannot store or read data now; try again later")
    refusal.__cause__ = exc
    return refusal


def _log_error(event: str, exc: BaseException, **fields: Any) -> None:
    """Log a failure from the writer or a reader thread.  A log that cannot be written
    (its disk full) must not end the thread, so nothing is raised from here."""
    with contextlib.suppress(Exception):
        _log.error(event, error=getattr(exc, "sqlite_errorname", None) or type(exc).__name__,
                   **fields)


def lock_network(db: Db, network: str, what: str) -> None:
    """Serialise the writers of ``network`` until the transaction ends, before a write reads
    a size it appends at (the audit and trust logs) or draws a row id that serves as a
    cursor (``what`` names the table or log).  On PostgreSQL one transaction-scoped advisory
    lock per network, which also holds between server processes sharing the database: a
    cursor committed later is then never smaller than one a reader was already given, and
    a trust-log append is announced to the other processes (ADR 0052).  On SQLite nothing:
    the writer's ``BEGIN IMMEDIATE`` already holds the whole database's write lock."""
    lock = getattr(db, "lock_network", None)
    if lock is not None:
        lock(network, what)


class Contended(Exception):
    """A write of a group-commit batch needs a network's lock that another process holds.
    Waiting for it while this transaction holds other locks could deadlock, so the writer
    commits the writes before it and runs this one first in the next transaction, where it
    may wait (:meth:`BaseStore._run_batch`)."""


# --------------------------------------------------------------------------- schema


def _migration_1(db: sqlite_utils.Database) -> None:
    """Networks, members, cases, the sync feed, signals and hints (docs/protocol.md §14)."""
    text, integer, blob = str, int, bytes
    db["networks"].create({"network": text, "genesis": text, "digest": blob, "coordinator": text,
                           "kind": text, "received": text, "acting_user": text},
                          pk="network", not_null=["genesis", "digest", "coordinator"])
    for name, extra in (("memberships", {"member": text, "serial": integer}),
                        ("revocations", {"member": text, "serial": integer}),
                        ("acceptances", {"member": text, "covenant": text}),
                        ("epochs", {"epoch": integer})):
        db[name].create({"id": integer, "network": text, **extra, "envelope": text,
                         "digest": blob, "received": text, "acting_user": text},
                        pk="id", not_null=["network", "envelope", "digest"])
    db["memberships"].create_index(["network", "member", "serial"], unique=True)
    db["revocations"].create_index(["network", "digest"], unique=True)
    db["acceptances"].create_index(["network", "digest"], unique=True)
    db["epochs"].create_index(["network", "epoch"], unique=True)
    db["epoch_keys"].create({"network": text, "recipient": text, "epoch": integer,
                             "sealed": text, "distribution": integer},
                            pk=("network", "recipient", "epoch"))
    # Cursor tables: AUTOINCREMENT so a cursor is never handed out twice, even after
    # retention deletes the newest rows (sqlite_utils cannot declare it).
    db.execute("CREATE TABLE feed (id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL,"
               " [case] TEXT NOT NULL, kind TEXT NOT NULL, partner TEXT, envelope TEXT NOT NULL)")
    db["feed"].create_index(["network", "id"])
    db["cases"].create({"network": text, "case": text, "owner": text, "kind": text,
                        "status": text, "last_seq": integer, "last_hash": blob,
                        "case_key_version": integer, "header": integer, "digest": blob,
                        "answer": text, "received": text, "acting_user": text},
                       pk=("network", "case"))
    db["events"].create({"network": text, "case": text, "event": text, "seq": integer,
                         "author": text, "digest": blob, "cursor": integer, "received": text,
                         "acting_user": text}, pk=("network", "case", "event"))
    db["events"].create_index(["network", "case", "seq"], unique=True)
    db["identity"].create({"network": text, "case": text, "class": text, "version": integer,
                           "envelope": text}, pk=("network", "case", "class"))
    db["gated"].create({"network": text, "case": text, "class": text, "version": integer,
                        "recipient": text, "blob": text},
                       pk=("network", "case", "class", "version", "recipient"))
    db["shares"].create({"id": integer, "network": text, "case": text, "partner": text,
                         "digest": blob, "cursor": integer, "received": text,
                         "acting_user": text}, pk="id")
    db["shares"].create_index(["network", "digest"], unique=True)
    db["shares"].create_index(["network", "partner", "case"])
    db["tokens"].create({"id": integer, "network": text, "kind": text, "token": blob,
                         "subject_kind": text, "subject": text, "at": text}, pk="id")
    db["tokens"].create_index(["network", "kind", "token"])
    db.execute("CREATE TABLE hints (id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL,"
               " token_kind TEXT NOT NULL, subject_kind TEXT NOT NULL, subject TEXT NOT NULL,"
               " may_concern TEXT NOT NULL, at TEXT NOT NULL)")
    db["hints"].create_index(["network", "id"])
    db.execute("CREATE TABLE signals (id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL,"
               " signal TEXT NOT NULL, source TEXT NOT NULL, sender TEXT, acting_user TEXT,"
               " submission TEXT NOT NULL, digest BLOB NOT NULL, received TEXT NOT NULL,"
               " status TEXT NOT NULL, updated TEXT NOT NULL)")
    db["signals"].create_index(["network", "signal"], unique=True)
    db["signals"].create_index(["network", "id"])
    db["receipts"].create({"hash": blob, "signal": integer}, pk="hash", not_null=["signal"])
    db["feedback"].create({"id": integer, "signal": integer, "envelope": text, "digest": blob,
                           "status": text, "at": text, "received": text, "acting_user": text},
                          pk="id")
    db["feedback"].create_index(["signal", "digest"], unique=True)


def _migration_2(db: sqlite_utils.Database) -> None:
    """The audit log (docs/protocol.md §15 §15.1; server/audit.py): entries with their
    commitments, the Merkle nodes (``schakel.protocol.merkle.MerkleLog``'s node store: every perfect
    subtree, never updated) and every signed tree head.  Raw SQL: ``WITHOUT ROWID`` keeps
    node and head rows in their primary-key B-tree, so a read is one B-tree lookup."""
    db.execute("CREATE TABLE audit_entries (network TEXT NOT NULL, idx INTEGER NOT NULL,"
               " body TEXT, commitment BLOB NOT NULL, partner TEXT NOT NULL, subject TEXT,"
               " [case] TEXT, PRIMARY KEY (network, idx))")
    db.execute("CREATE INDEX audit_entries_partner ON audit_entries (network, partner, idx)")
    db.execute("CREATE INDEX audit_entries_subject ON audit_entries (network, subject, idx)")
    db.execute("CREATE INDEX audit_entries_case ON audit_entries (network, [case], idx)")
    db.execute("CREATE TABLE audit_nodes (network TEXT NOT NULL, level INTEGER NOT NULL,"
               " idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (network, level, idx))"
               " WITHOUT ROWID")
    db.execute("CREATE TABLE tree_heads (network TEXT NOT NULL, size INTEGER NOT NULL,"
               " root BLOB NOT NULL, time TEXT NOT NULL, envelope TEXT NOT NULL,"
               " PRIMARY KEY (network, size)) WITHOUT ROWID")


def _migration_3(db: sqlite_utils.Database) -> None:
    """Disclosure (docs/protocol.md §15 §15.2; server/disclosure/): consents with their
    revocation, grants, releases (with the answer, for a retry under the same release id),
    bemoeizorg invocations, co-signs, reviews, purge instructions with their
    acknowledgement, and the coordinator's notifications.  ``audit_index`` is the entry
    that recorded each row."""
    text, integer, blob = str, int, bytes
    signed = {"envelope": text, "digest": blob, "audit_index": integer, "answer": text,
              "received": text}
    db["consents"].create({"network": text, "consent": text, "case": text, "classes": text,
                           "partners": text, "parties": text, "valid_from": text,
                           "valid_until": text, **signed, "acting_user": text,
                           "revoked": text, "revocation": text, "revocation_digest": blob,
                           "revocation_answer": text}, pk=("network", "consent"))
    db["grants"].create({"network": text, "grant": text, "case": text, "grantee": text,
                         "consent": text, "classes": text, **signed, "acting_user": text},
                        pk=("network", "grant"))
    db.execute("CREATE TABLE releases (id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL,"
               " [release] TEXT NOT NULL, [case] TEXT NOT NULL, grantee TEXT NOT NULL,"
               " acting_user TEXT NOT NULL, basis TEXT NOT NULL, ref TEXT NOT NULL, consent TEXT,"
               " classes TEXT NOT NULL, audit_index INTEGER NOT NULL, answer TEXT NOT NULL,"
               " received TEXT NOT NULL)")
    db["releases"].create_index(["network", "release"], unique=True)
    db["releases"].create_index(["network", "consent"])
    db["invocations"].create({"network": text, "invocation": text, "case": text,
                              "invoker": text, "acting_user": text, "classes": text,
                              "ground": text, "justified": integer, "at": text, **signed},
                             pk=("network", "invocation"))
    db["invocations"].create_index(["network", "invoker", "acting_user", "received"])
    for table, extra in (("cosigns", {"invocation": text, "partner": text, "acting_user": text,
                                      "roles": text}),
                         ("reviews", {"invocation": text, "entry": integer, "auditor": text,
                                      "outcome": text})):
        db[table].create({"id": integer, "network": text, **extra, **signed}, pk="id")
        db[table].create_index(["network", "digest"], unique=True)
        db[table].create_index(["network", "invocation"])
    db.execute("CREATE TABLE purge_instructions (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, instruction TEXT NOT NULL, [case] TEXT NOT NULL,"
               " recipient TEXT NOT NULL, classes TEXT NOT NULL, envelope TEXT NOT NULL,"
               " audit_index INTEGER NOT NULL, ack TEXT, ack_digest BLOB, ack_answer TEXT,"
               " acked TEXT)")
    db["purge_instructions"].create_index(["network", "instruction"], unique=True)
    db["purge_instructions"].create_index(["network", "recipient", "id"])
    db.execute("CREATE TABLE notifications (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, kind TEXT NOT NULL, invocation TEXT NOT NULL,"
               " [case] TEXT NOT NULL, at TEXT NOT NULL)")
    db["notifications"].create_index(["network", "id"])


def _migration_4(db: sqlite_utils.Database) -> None:
    """Referrals between networks (docs/protocol.md §15 §15.5): one row per referral,
    keyed by the sending network and the referral id; ``to_network``/``new_case`` find
    it when the receiving side closes the case (a ``referral-closed`` notification)."""
    db.execute("CREATE TABLE referrals (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, referral TEXT NOT NULL, [case] TEXT NOT NULL,"
               " to_network TEXT NOT NULL, new_case TEXT NOT NULL, basis TEXT NOT NULL,"
               " basis_ref TEXT NOT NULL, envelope TEXT NOT NULL, digest BLOB NOT NULL,"
               " out_index INTEGER NOT NULL, in_index INTEGER NOT NULL, answer TEXT NOT NULL,"
               " received TEXT NOT NULL, closed TEXT)")
    db["referrals"].create_index(["network", "referral"], unique=True)
    db["referrals"].create_index(["to_network", "new_case"], unique=True)
    db["referrals"].create_index(["to_network", "id"])


def _migration_5(db: sqlite_utils.Database) -> None:
    """Case-key rotations (ADR 0007; docs/protocol.md §14.3, ``POST .../rekeys``): one row
    per accepted ``case-rekey``, keyed by (network, case, version); ``digest`` makes an
    identical retry the same write.  The case's current version stays in
    ``cases.case_key_version`` (migration 1), which a rekey raises; ``cursor`` is the
    rekey's feed row, whose envelope ``GET .../cases/{case}`` serves."""
    db.execute("CREATE TABLE case_rekeys (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, [case] TEXT NOT NULL, version INTEGER NOT NULL,"
               " epoch INTEGER NOT NULL, digest BLOB NOT NULL, cursor INTEGER NOT NULL,"
               " received TEXT NOT NULL, acting_user TEXT NOT NULL)")
    db["case_rekeys"].create_index(["network", "case", "version"], unique=True)
    db["case_rekeys"].create_index(["network", "digest"], unique=True)


def _migration_6(db: sqlite_utils.Database) -> None:
    """Header replacements (protocol.md §C.1 "Header versions"; docs/protocol.md §14.3,
    ``POST .../cases/{case}/header``): one row per accepted replacement, keyed by (network,
    case, identity_version); ``digest`` (of the whole request) makes an identical retry the
    same write.  ``cases.header`` (migration 1) points at the current header's feed row,
    which a replacement moves to its own ``cursor``."""
    db.execute("CREATE TABLE header_versions (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, [case] TEXT NOT NULL, identity_version INTEGER NOT NULL,"
               " digest BLOB NOT NULL, cursor INTEGER NOT NULL, answer TEXT NOT NULL,"
               " received TEXT NOT NULL, acting_user TEXT NOT NULL)")
    db["header_versions"].create_index(["network", "case", "identity_version"], unique=True)
    db["header_versions"].create_index(["network", "digest"], unique=True)


def _migration_7(db: sqlite_utils.Database) -> None:
    """Network cards (docs/protocol.md §N.11; §14.3, ``POST`` and ``GET .../card``): every
    card the coordinator published, keyed by (network, serial); the highest serial is
    served.  ``digest`` makes an identical retry the same write."""
    db.execute("CREATE TABLE cards (id INTEGER PRIMARY KEY AUTOINCREMENT, network TEXT NOT NULL,"
               " serial INTEGER NOT NULL, envelope TEXT NOT NULL, digest BLOB NOT NULL,"
               " received TEXT NOT NULL, acting_user TEXT NOT NULL)")
    db["cards"].create_index(["network", "serial"], unique=True)


def _migration_8(db: sqlite_utils.Database) -> None:
    """Logged reads (docs/protocol.md §15.6): which audit entries name which case
    in their ``cases`` list, so the subject access report finds a ``read`` entry by the
    case as it finds other entries by ``audit_entries.[case]``.  Rows are only inserted, in
    the transaction that appends their entry, and kept with it (as ``[case]`` is kept when
    retention erases a body)."""
    db.execute("CREATE TABLE audit_cases (network TEXT NOT NULL, [case] TEXT NOT NULL,"
               " idx INTEGER NOT NULL, PRIMARY KEY (network, [case], idx)) WITHOUT ROWID")


def _migration_9(db: sqlite_utils.Database) -> None:
    """Policy versions (protocol.md §N.3; docs/protocol.md §14.3, ``POST .../policies``): one
    row per accepted ``network-policy``, keyed by (network, version); ``digest`` makes an
    identical retry the same write.  The genesis (``networks.genesis``) is version 1."""
    db.execute("CREATE TABLE network_policies (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, version INTEGER NOT NULL, issued TEXT NOT NULL,"
               " envelope TEXT NOT NULL, digest BLOB NOT NULL, received TEXT NOT NULL,"
               " acting_user TEXT NOT NULL)")
    db["network_policies"].create_index(["network", "version"], unique=True)


def _migration_10(db: sqlite_utils.Database) -> None:
    """Lookups by blind index (docs/protocol.md §15.7, the person's right of access): one
    row per lookup a partner made, with the index of its ``lookup`` audit entry, so the
    per-day limit counts a partner's lookups of the last 24 hours by an index range scan.
    No token and no matched case is kept here: the log entry says what was found."""
    db.execute("CREATE TABLE lookups (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, partner TEXT NOT NULL, acting_user TEXT NOT NULL,"
               " at TEXT NOT NULL, idx INTEGER NOT NULL)")
    db["lookups"].create_index(["network", "partner", "at"])


def _migration_11(db: sqlite_utils.Database) -> None:
    """Erasure and rectification (protocol.md §C.12; docs/protocol.md §14.3, ``POST
    .../cases/{case}/purges``; ADR 0034): one row per accepted ``identity-purge``, keyed by
    (network, purge) and by (network, case, identity_version) -- a version is purged once;
    ``digest`` makes an identical retry the same write.  ``kind`` = ``erasure`` marks the
    case's identity as erased for good (release row R14); ``cursor`` is its feed row."""
    db.execute("CREATE TABLE identity_purges (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, [case] TEXT NOT NULL, purge TEXT NOT NULL,"
               " kind TEXT NOT NULL, identity_version INTEGER NOT NULL, digest BLOB NOT NULL,"
               " cursor INTEGER NOT NULL, answer TEXT NOT NULL, received TEXT NOT NULL,"
               " acting_user TEXT NOT NULL)")
    db["identity_purges"].create_index(["network", "purge"], unique=True)
    db["identity_purges"].create_index(["network", "case", "identity_version"], unique=True)


def _migration_12(db: sqlite_utils.Database) -> None:
    """Subset cases (audience; protocol.md §C.1 "Audience", ADR 0031): one row per member
    of a subset case's audience, with ``since`` = the feed id of the header that first
    named it.  A case with rows is read only by those members; a member sees the case's
    header rows from ``since`` on (an earlier header does not name it).  Rows are only
    inserted (audiences only widen), by the case's creation and by its widenings."""
    db.execute("CREATE TABLE case_audience (network TEXT NOT NULL, [case] TEXT NOT NULL,"
               " member TEXT NOT NULL, since INTEGER NOT NULL,"
               " PRIMARY KEY (network, [case], member)) WITHOUT ROWID")


def _migration_13(db: sqlite_utils.Database) -> None:
    """Coordinator key rotations (protocol.md §4.6.2, §N.6; docs/protocol.md §14.3, ``POST
    .../rotations``; ADR 0046): one row per accepted ``key-rotation`` of a network's
    coordinator key, ``position`` 1, 2, ... in chain order (the genesis key is position 0);
    ``old`` and ``new`` are the key ids it links, ``at`` its date.  ``digest`` makes an
    identical retry the same write.  Rows are only inserted: a rotation is never undone."""
    db.execute("CREATE TABLE coordinator_rotations (id INTEGER PRIMARY KEY AUTOINCREMENT,"
               " network TEXT NOT NULL, position INTEGER NOT NULL, old TEXT NOT NULL,"
               " new TEXT NOT NULL, at TEXT NOT NULL, envelope TEXT NOT NULL,"
               " digest BLOB NOT NULL, received TEXT NOT NULL, acting_user TEXT NOT NULL)")
    db["coordinator_rotations"].create_index(["network", "position"], unique=True)
    db["coordinator_rotations"].create_index(["network", "digest"], unique=True)


def _migration_14(db: sqlite_utils.Database) -> None:
    """The trust log (docs/protocol.md §15.8; server/trustlog.py): every chain object the
    server accepted, in acceptance order, leaf 0 the genesis (``trust_entries``), and the
    Merkle nodes of its RFC 6962 tree (``trust_nodes``, as ``audit_nodes``).  A database that
    holds networks already gets each one's log built from the stored objects
    (:func:`schakel.server.trustlog.build_trust_logs`)."""
    db.execute("CREATE TABLE trust_entries (network TEXT NOT NULL, idx INTEGER NOT NULL,"
               " type TEXT NOT NULL, envelope TEXT NOT NULL, PRIMARY KEY (network, idx))"
               " WITHOUT ROWID")
    db.execute("CREATE TABLE trust_nodes (network TEXT NOT NULL, level INTEGER NOT NULL,"
               " idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (network, level, idx))"
               " WITHOUT ROWID")
    from schakel.server.trustlog import build_trust_logs    # it imports this module
    build_trust_logs(db.conn)


def _migration_15(db: sqlite_utils.Database) -> None:
    """Witness cosignatures (docs/protocol.md §17.5, server/witnessing.py): per network, log
    and witness the newest checkpoint size that witness cosigned, its POSIX time and its
    signature line.  A row only moves to a larger size (or the same size, cosigned later)."""
    db.execute("CREATE TABLE witness_cosignatures (network TEXT NOT NULL, log TEXT NOT NULL,"
               " witness TEXT NOT NULL, size INTEGER NOT NULL, time INTEGER NOT NULL,"
               " line TEXT NOT NULL, PRIMARY KEY (network, log, witness)) WITHOUT ROWID")


def _migration_16(db: sqlite_utils.Database) -> None:
    """What several server processes on one PostgreSQL database share (ADR 0052): the
    ``(keyid, nonce)`` of every accepted request until it may be forgotten, and the token
    buckets of anonymous signal intake.  The same tables on both backends keep one schema;
    a SQLite database is served by one process, which keeps both in memory, so here they
    stay empty."""
    db.execute("CREATE TABLE replay_nonces (keyid TEXT NOT NULL, nonce TEXT NOT NULL,"
               " until INTEGER NOT NULL, PRIMARY KEY (keyid, nonce)) WITHOUT ROWID")
    db.execute("CREATE INDEX idx_replay_nonces_until ON replay_nonces (until)")
    db.execute("CREATE TABLE intake_buckets (network TEXT NOT NULL, source TEXT NOT NULL,"
               " tokens REAL NOT NULL, at REAL NOT NULL, PRIMARY KEY (network, source))"
               " WITHOUT ROWID")


#: Schema versions, applied in order; ``PRAGMA user_version`` is the number applied.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migration_1, _migration_2, _migration_3, _migration_4, _migration_5, _migration_6,
    _migration_7, _migration_8, _migration_9, _migration_10, _migration_11, _migration_12,
    _migration_13, _migration_14, _migration_15, _migration_16)


def _connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    # isolation_level=None: the connection never opens transactions behind our back;
    # the writer and readers issue BEGIN/COMMIT themselves.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    if writer:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        # Deleted rows are overwritten, not left in free pages: a shredded identity record
        # or gated envelope must not stay readable in the file (ADR 0034).
        conn.execute("PRAGMA secure_delete = ON")
    else:
        conn.execute("PRAGMA query_only = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the schema version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    db = sqlite_utils.Database(conn, execute_plugins=False)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _roll_back(conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
    """End a failed transaction: the connection to go on with, or None when it could not
    be rolled back (it is closed, which ends the transaction; a new one is opened)."""
    if conn is None:
        return None
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return conn
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        return None


# --------------------------------------------------------------------------- the store


@dataclass(eq=False)
class _Write:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    notify: str | None
    shred: bool = False


_STOP = object()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled; the write still happened
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BaseStore:
    """The server's database: async :meth:`read` and :meth:`write` of plain functions.

    This class holds what both backends share -- the reader pool, the writer thread with
    its group commit and a savepoint per write, the wake-ups after a commit, a storage
    fault refused with 503 -- and leaves to a backend the few hooks below (``_open`` ...
    ``_fault``): :class:`Store` runs it on SQLite, :class:`schakel.server.pgstore.PgStore`
    on PostgreSQL (ADR 0051)."""

    #: The database error type of the backend: what a read or write catches.
    _Error: type[Exception] = Exception

    def __init__(self, *, readers: int = 4, batch: int = 64,
                 on_commit: OnCommit | None = None) -> None:
        if readers < 1 or batch < 1:
            raise ValueError("readers and batch must be positive")
        self._batch = batch
        self._n_readers = readers
        self.on_commit = on_commit
        #: Lists of writes (one per event-loop pass, :meth:`_hand_off`), then ``_STOP``.
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        #: Writes queued during the current pass of an event loop, not yet handed off.
        self._pending: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        self._writer: threading.Thread | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[Any] = []
        self._lock = threading.Lock()
        self._closing = False
        #: Transactions committed by the writer (one per group of writes).
        self.commits = 0

    # the backend's hooks --------------------------------------------------------------

    def _open(self, *, writer: bool) -> Any:
        """A new connection: the writer's (read-write) or a reader's (read-only)."""
        raise NotImplementedError

    def _migrate(self, conn: Any) -> None:
        """Bring the schema up to date on the writer's new connection."""
        raise NotImplementedError

    def _db(self, conn: Any) -> Any:
        """What a query function receives for ``conn``."""
        return conn

    def _begin_read(self, conn: Any) -> None:
        raise NotImplementedError

    def _begin_write(self, conn: Any) -> None:
        raise NotImplementedError

    def _in_transaction(self, conn: Any) -> bool:
        raise NotImplementedError

    def _after_commit_batch(self, conn: Any, batch: list[_Write]) -> None:
        """After ``batch`` committed (``shred`` writes: see :meth:`write`)."""

    def _start_write(self, *, first: bool) -> None:
        """Before each write of a transaction; ``first``: no write ran before it in this
        transaction (only such a write may wait for a lock: :class:`Contended`)."""

    def _undo_write(self) -> None:
        """After a write was rolled back to its savepoint."""

    def _savepoint(self, conn: Any, *, first: bool) -> None:
        """Open the savepoint of the next write (``first``: the transaction's first)."""
        conn.execute("SAVEPOINT write")

    def _release(self, conn: Any) -> None:
        """Close the savepoint of the write that just ended."""
        conn.execute("RELEASE SAVEPOINT write")

    def _commit(self, conn: Any, done: list[tuple[_Write, Any, BaseException | None]]) -> None:
        """Commit the transaction of the writes ``done``."""
        conn.execute("COMMIT")

    def _roll_back(self, conn: Any) -> Any:
        """End a failed transaction: the connection to go on with, or None when it could
        not be rolled back (it is closed; the next batch opens a new one)."""
        raise NotImplementedError

    def _close_conn(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()

    def _broken(self, conn: Any) -> bool:
        """Whether ``conn`` can serve no more reads (a reader's is then opened anew)."""
        return False

    def _fault(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a fault of the storage (503, retry later)."""
        raise NotImplementedError

    def _refusal(self, exc: Exception, event: str | None) -> Exception:
        return _refusal(exc, event, self._fault)

    # lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database (creating or migrating its schema) and start the threads."""
        if self._writer is not None:
            raise RuntimeError("store already started")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer = threading.Thread(target=self._writer_main, args=(ready,),
                                        name="schakel-writer", daemon=True)
        self._writer.start()
        await asyncio.wrap_future(ready)
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._n_readers, thread_name_prefix="schakel-reader")

    async def close(self) -> None:
        """Refuse new writes, let queued writes commit, then close every connection."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            for pending in list(self._pending):
                self._hand_off(pending)
            self._queue.put(_STOP)
            await loop.run_in_executor(None, self._writer.join)
        if self._readers is not None:
            await loop.run_in_executor(None, self._readers.shutdown)
        with self._lock:
            for conn in self._reader_conns:
                self._close_conn(conn)
            self._reader_conns.clear()

    # reads --------------------------------------------------------------------------

    def _reader(self) -> Any:
        """This reader thread's connection, opened on its first read (and again after
        :meth:`_drop_reader`)."""
        conn: Any = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open(writer=False)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    def _drop_reader(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._reader_conns:
                self._reader_conns.remove(conn)
        self._close_conn(conn)

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        try:
            conn = self._reader()
        except self._Error as exc:
            raise self._refusal(exc, "read failed")
        try:
            self._begin_read(conn)
            return fn(self._db(conn), *args, **kwargs)
        except self._Error as exc:
            raise self._refusal(exc, "read failed")
        finally:
            try:
                if self._in_transaction(conn):
                    conn.execute("ROLLBACK")
                if self._broken(conn):
                    self._drop_reader(conn)
            except self._Error:
                # Never in place of the read's own outcome; the next read opens afresh.
                self._drop_reader(conn)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(db, *args, **kwargs)`` on a reader thread, in one read transaction."""
        if self._readers is None or self._closing:
            raise Unavailable("the server is shutting down")
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._run_read, fn, args, kwargs)

    async def leads(self, task: str) -> bool:
        """Whether this process runs the background ``task`` now.  One process serves a
        SQLite database, so it always does; on PostgreSQL one process of those sharing
        the database does (:meth:`schakel.server.pgstore.PgStore.leads`)."""
        return True

    # writes -------------------------------------------------------------------------

    async def write(self, fn: Callable[..., T], *args: Any, notify: str | None = None,
                    shred: bool = False, **kwargs: Any) -> T:
        """Run ``fn(db, *args, **kwargs)`` on the writer thread; returns its result once
        the transaction holding it has committed.  ``notify`` names a network whose
        long-poll waiters are woken after that commit.  ``shred``: the write deletes
        identity material, so after its commit the write-ahead log is checkpointed and
        truncated (best effort: a reader holding an older snapshot delays it to the next
        shredding write), and no earlier page image of the deleted rows stays in it."""
        if self._writer is None or self._closing:
            raise Unavailable("the server is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        item = _Write(fn, args, kwargs, future, loop, notify, shred)
        pending = self._pending.get(loop)
        if pending is None:
            # The writes of one pass of the loop go to the writer together, at the end of
            # the pass: one wake-up of the writer thread (and so, when it is idle, one
            # transaction) for all of them instead of one each.
            self._pending[loop] = [item]
            loop.call_soon(self._hand_off, loop)
        else:
            pending.append(item)
        return await future

    def _hand_off(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = self._pending.pop(loop, None)
        if pending:
            self._queue.put(pending)

    def _writer_main(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            opened = self._open(writer=True)
            try:
                self._migrate(opened)
            except BaseException:
                self._close_conn(opened)
                raise
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        conn: Any = opened
        try:
            stop = False
            waiting: list[_Write] = []          # handed off, beyond the last batch's size
            while not stop or waiting:
                if not waiting:
                    first = self._queue.get()
                    if first is _STOP:
                        break
                    waiting = first
                while len(waiting) < self._batch and not stop:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                    else:
                        waiting.extend(more)
                batch, waiting = waiting[:self._batch], waiting[self._batch:]
                conn = self._run_batch(conn, batch)
        finally:
            if conn is not None:
                self._close_conn(conn)

    def _run_batch(self, conn: Any, batch: list[_Write]) -> Any:
        """Run ``batch`` in one transaction and settle its futures.  Never raises: the
        writer thread must outlive any failure.  Returns the connection for the next batch,
        None when this one had to be dropped (the next batch opens a new one).

        A write that meets :class:`Contended` ends the transaction early: the writes before
        it commit (and are settled), and it runs first in the next transaction with the
        rest of the batch."""
        pending = list(batch)
        while pending:
            done: list[tuple[_Write, Any, BaseException | None]] = []
            try:
                if conn is None:
                    conn = self._open(writer=True)
                self._begin_write(conn)
                while pending:
                    try:
                        done.append(self._run_one(conn, pending[0], first=not done))
                    except Contended:
                        break           # rolled back to its savepoint; first in the next
                    pending.pop(0)
                self._commit(conn, done)
                self.commits += 1
                self._after_commit_batch(conn, [item for item, _, _ in done])
            except Exception as exc:  # the transaction itself failed: nothing of it is durable
                conn = self._roll_back(conn)
                _log_error("write batch failed", exc, size=len(done) + len(pending))
                refusal = self._refusal(exc, None)
                done = [(item, None, refusal) for item in [*(d[0] for d in done), *pending]]
                pending = []
            self._settle_all(done)
        return conn

    def _settle_all(self, outcomes: list[tuple[_Write, Any, BaseException | None]]) -> None:
        # One hand-off per event loop for the whole transaction (not one per write): each
        # call_soon_threadsafe writes to the loop's self-pipe and wakes it.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Write, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, settled in by_loop.items():
            self._call(loop, self._after_commit, settled)

    def _after_commit(self, settled: list[tuple[_Write, Any, BaseException | None]]) -> None:
        """On the event loop, after the commit: wake the long-poll waiters of the networks
        the batch's successful writes touched, then resolve each write's future."""
        try:
            if self.on_commit is not None:
                networks = frozenset(item.notify for item, _, error in settled
                                     if error is None and item.notify is not None)
                if networks:
                    self.on_commit(networks)
        finally:
            for item, result, error in settled:
                _settle(item.future, result, error)

    def _run_one(self, conn: Any, item: _Write, *, first: bool
                 ) -> tuple[_Write, Any, BaseException | None]:
        self._start_write(first=first)
        self._savepoint(conn, first=first)
        try:
            result = item.fn(self._db(conn), *item.args, **item.kwargs)
        except Exception as exc:
            if not self._in_transaction(conn):
                raise  # the error ended the whole transaction: fail the batch
            conn.execute("ROLLBACK TO SAVEPOINT write")
            self._release(conn)
            self._undo_write()
            if isinstance(exc, Contended):
                raise
            return item, None, self._refusal(exc, "write refused")
        self._release(conn)
        return item, result, None

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


class Store(BaseStore):
    """:class:`BaseStore` on one SQLite file in WAL mode (the default backend)."""

    _Error = sqlite3.Error

    def __init__(self, path: Path, *, readers: int = 4, batch: int = 64,
                 on_commit: OnCommit | None = None) -> None:
        super().__init__(readers=readers, batch=batch, on_commit=on_commit)
        self.path = path

    def _open(self, *, writer: bool) -> sqlite3.Connection:
        return _connect(self.path, writer=writer)

    def _migrate(self, conn: Any) -> None:
        migrate(conn)

    def _begin_read(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _in_transaction(self, conn: Any) -> bool:
        return bool(conn.in_transaction)

    def _after_commit_batch(self, conn: Any, batch: list[_Write]) -> None:
        if any(item.shred for item in batch):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _roll_back(self, conn: Any) -> Any:
        return _roll_back(conn)

    def _fault(self, exc: BaseException) -> bool:
        return storage_fault(exc)


__all__ = ["WITHOUT_ROWID", "BaseStore", "Contended", "Cursor", "Db", "MIGRATIONS", "Store", "lock_network", "migrate",
           "storage_fault"]
