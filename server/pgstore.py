"""The PostgreSQL backend of the storage seam (ADR 0051).

:class:`PgStore` is :class:`schakel.server.storage.BaseStore` -- the same reader pool, the
same one writer thread with group commit and a savepoint per write, the same wake-ups
after the commit and the same 503 for a fault of the storage -- on psycopg 3's
synchronous API in those threads:

* **Connections** are psycopg connections in autocommit mode that issue their own
  ``BEGIN``/``COMMIT`` like the SQLite ones.  A read runs in one ``REPEATABLE READ READ
  ONLY`` transaction (one snapshot, as SQLite's read transaction; a read-only transaction
  never fails to serialise); the writer's transactions are ``READ COMMITTED``, and every
  insert of a network's row first takes that network's transaction-scoped advisory
  lock (:func:`schakel.server.storage.lock_network`), which also holds between processes
  sharing the database.
* **Several processes** on one database (ADR 0052): commits are announced with ``NOTIFY``
  and heard by each process's listener; :meth:`PgStore.record` writes the state they share
  outside the group commit; :meth:`PgStore.leads` elects the process that runs a
  background pass.
* **The same SQL** as on SQLite.  The query functions are written in the SQL both engines
  accept (``ON CONFLICT``, ``RETURNING``, a ``rowid`` column in every PostgreSQL table
  whose SQLite twin has a rowid); :func:`pg_sql` makes the two lexical changes at the
  seam: ``?`` placeholders become psycopg's ``%s`` (a literal ``%`` becomes ``%%``), and
  SQLite's ``[name]`` identifier quoting becomes ``"name"``; string literals and quoted
  identifiers are left as they are.  :class:`PgDb` gives rows that are read by index and
  by (case-insensitive) column name, like ``sqlite3.Row``; a Python ``bool`` is stored as
  the integer 0 or 1, as SQLite stores it.
* **The schema** is :data:`MIGRATIONS`: the same numbered steps as SQLite's
  (:data:`schakel.server.storage.MIGRATIONS`), written as PostgreSQL DDL; the version
  applied is in the table ``schakel_schema``.  Migrations run under an advisory lock, so
  processes starting together migrate once.
* **Faults of the storage** (:func:`pg_fault`): the connection lost or refused, the
  server shutting down, the disk full, out of memory, an I/O error, a serialization
  failure or deadlock, a read-only server (a standby) -- refused with 503 and
  ``Retry-After`` as on SQLite; a dropped connection is opened again for the next batch.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import pq, sql
from psycopg.adapt import Dumper

from schakel.server.errors import Unavailable
from schakel.server.storage import BaseStore, Contended, OnCommit, _log_error, _Write

T = TypeVar("T")

__all__ = ["MIGRATIONS", "PgDb", "PgStore", "is_postgresql_url", "migrate", "pg_fault", "pg_sql"]

#: The schemes that choose PostgreSQL (``--database``, ``SCHAKEL_DATABASE``).
SCHEMES = ("postgresql://", "postgres://")


def is_postgresql_url(value: str) -> bool:
    return value.startswith(SCHEMES)


# --------------------------------------------------------------------------- the SQL


def pg_sql(sql: str) -> str:
    """``sql`` as psycopg takes it: ``?`` -> ``%s`` and ``[name]`` -> ``"name"``, except
    inside string literals ``'...'`` and quoted identifiers ``"..."``; ``%`` -> ``%%``
    everywhere (psycopg reads every ``%`` as a placeholder's, inside literals too, so a query
    is always run with parameters, if only an empty tuple).
    A ``[`` that does not close on the same identifier is an error (never guessed)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            end = i + 1
            while True:
                end = sql.find(c, end)
                if end < 0:
                    raise ValueError(f"unterminated {c} in SQL: {sql!r}")
                if end + 1 < n and sql[end + 1] == c:      # a doubled quote is the quote
                    end += 2
                    continue
                break
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif c == "?":
            out.append("%s")
            i += 1
        elif c == "%":
            out.append("%%")
            i += 1
        elif c == "[":
            end = sql.find("]", i)
            name = sql[i + 1:end] if end > 0 else ""
            if not name or not all(ch.isalnum() or ch == "_" for ch in name):
                raise ValueError(f"unexpected [ in SQL: {sql!r}")
            out.append(f'"{name}"')
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


@functools.lru_cache(maxsize=2048)
def _query(sql: str) -> bytes:
    return pg_sql(sql).encode()


class Row(tuple[Any, ...]):
    """A result row read by index or by column name (case-insensitive), like
    ``sqlite3.Row``; ``dict(row)`` maps the column names to the values."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key.lower()])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
    description = cursor.description
    if description is None:
        return tuple
    names: dict[str, int] = {}
    for index, column in enumerate(description):
        names.setdefault(column.name.lower(), index)
    return lambda values: Row(values, names)


class _BoolAsInteger(Dumper):
    """A Python ``bool`` parameter goes in as the integer SQLite would store."""

    oid = 20   # int8

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class PgCursor:
    """What :meth:`PgDb.execute` returns (:class:`schakel.server.storage.Cursor`)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None     # PostgreSQL has none; insert() asks with RETURNING rowid

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _Txn:
    """What the writer's transaction holds: the networks whose lock it took, and the
    networks whose trust log it appended to (announced at the commit)."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.trust: set[str] = set()
        self.may_wait = True
        self._mark: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())

    def start_write(self, *, first: bool) -> None:
        self.may_wait = first
        self._mark = (frozenset(self.held), frozenset(self.trust))

    def undo_write(self) -> None:
        """A write rolled back to its savepoint: the locks it took are released with it."""
        held, trust = self._mark
        self.held, self.trust = set(held), set(trust)


def _lock_key(network: str) -> str:
    return f"schakel:network:{network}"


class PgDb:
    """A psycopg connection as the query functions use it (:class:`~schakel.server.storage.Db`);
    ``txn`` is the writer's transaction state (None on a reader, or while migrating)."""

    def __init__(self, conn: psycopg.Connection[Any], txn: _Txn | None = None) -> None:
        self.conn = conn
        self.txn = txn

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        cursor = self.conn.cursor(row_factory=_row_factory)
        cursor.execute(_query(sql), parameters if parameters else ())
        return PgCursor(cursor)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> PgCursor:
        cursor = self.conn.cursor(row_factory=_row_factory)
        cursor.executemany(_query(sql), list(parameters))
        return PgCursor(cursor)

    def lock_network(self, network: str, what: str) -> None:
        """The transaction-scoped advisory lock of ``network``
        (:func:`~schakel.server.storage.lock_network`).  The first write of a transaction
        waits for it; a later one only tries, and raises :class:`Contended` when another
        process holds it (waiting while holding other locks could deadlock)."""
        txn = self.txn
        if txn is None:
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                              (_lock_key(network),))
            return
        if what == "trust":
            txn.trust.add(network)
        if network in txn.held:
            return
        if txn.may_wait:
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                              (_lock_key(network),))
        else:
            taken = self.conn.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                      (_lock_key(network),)).fetchone()
            if not (taken and taken[0]):
                raise Contended(f"network {network} is being written by another process")
        txn.held.add(network)


# --------------------------------------------------------------------------- faults


#: SQLSTATE classes of a fault of the storage rather than of the request or the code:
#: 08 connection exception, 40 transaction rollback (serialization failure, deadlock),
#: 53 insufficient resources (disk full, out of memory, too many connections),
#: 57 operator intervention (shutdown, query cancelled), 58 system error (I/O),
#: and 25006 read-only SQL transaction (a standby, or a server set read-only).
_FAULT_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def pg_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL (or the connection to it) reporting a fault of the
    storage (:data:`_FAULT_CLASSES`)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:      # no answer from the server: the connection is gone
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    return state[:2] in _FAULT_CLASSES or state == "25006"


# --------------------------------------------------------------------------- schema

_ID = "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
#: The rowid of a table whose SQLite twin has ``id INTEGER PRIMARY KEY`` (its rowid).
_ROWID_OF_ID = "rowid BIGINT GENERATED ALWAYS AS (id) STORED"
#: The rowid of a table whose SQLite twin has an implicit one: insertion order.
_ROWID = "rowid BIGINT GENERATED BY DEFAULT AS IDENTITY"


def _signed_tables(names: Iterable[str], extra: str) -> list[str]:
    return [f"CREATE TABLE {name} ({_ID}, network TEXT NOT NULL, {extra}, envelope TEXT NOT NULL,"
            f" digest BYTEA NOT NULL, received TEXT, acting_user TEXT, {_ROWID_OF_ID})"
            for name in names]


_MIGRATION_1 = [
    # SQLite's json_extract(text, path) for the few queries that read inside a stored
    # envelope: the same path syntax ('$.signed.at'), the value as text.
    "CREATE FUNCTION json_extract(doc TEXT, path TEXT) RETURNS TEXT LANGUAGE sql IMMUTABLE"
    " STRICT AS $$ SELECT jsonb_path_query_first(doc::jsonb, path::jsonpath) #>> '{}' $$",
    "CREATE TABLE networks (network TEXT PRIMARY KEY, genesis TEXT NOT NULL, digest BYTEA NOT NULL,"
    f" coordinator TEXT NOT NULL, kind TEXT, received TEXT, acting_user TEXT, {_ROWID})",
    *_signed_tables(["memberships", "revocations"], "member TEXT, serial BIGINT"),
    *_signed_tables(["acceptances"], "member TEXT, covenant TEXT"),
    *_signed_tables(["epochs"], "epoch BIGINT"),
    "CREATE UNIQUE INDEX idx_memberships_network_member_serial ON memberships (network, member, serial)",
    "CREATE UNIQUE INDEX idx_revocations_network_digest ON revocations (network, digest)",
    "CREATE UNIQUE INDEX idx_acceptances_network_digest ON acceptances (network, digest)",
    "CREATE UNIQUE INDEX idx_epochs_network_epoch ON epochs (network, epoch)",
    "CREATE TABLE epoch_keys (network TEXT, recipient TEXT, epoch BIGINT, sealed TEXT,"
    f" distribution BIGINT, {_ROWID}, PRIMARY KEY (network, recipient, epoch))",
    f"CREATE TABLE feed ({_ID}, network TEXT NOT NULL, \"case\" TEXT NOT NULL, kind TEXT NOT NULL,"
    f" partner TEXT, envelope TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE INDEX idx_feed_network_id ON feed (network, id)",
    "CREATE TABLE cases (network TEXT, \"case\" TEXT, owner TEXT, kind TEXT, status TEXT,"
    " last_seq BIGINT, last_hash BYTEA, case_key_version BIGINT, header BIGINT, digest BYTEA,"
    f" answer TEXT, received TEXT, acting_user TEXT, {_ROWID}, PRIMARY KEY (network, \"case\"))",
    "CREATE TABLE events (network TEXT, \"case\" TEXT, event TEXT, seq BIGINT, author TEXT,"
    " digest BYTEA, cursor BIGINT, received TEXT, acting_user TEXT,"
    f" {_ROWID}, PRIMARY KEY (network, \"case\", event))",
    "CREATE UNIQUE INDEX idx_events_network_case_seq ON events (network, \"case\", seq)",
    "CREATE TABLE identity (network TEXT, \"case\" TEXT, class TEXT, version BIGINT,"
    f" envelope TEXT, {_ROWID}, PRIMARY KEY (network, \"case\", class))",
    "CREATE TABLE gated (network TEXT, \"case\" TEXT, class TEXT, version BIGINT, recipient TEXT,"
    f" blob TEXT, {_ROWID}, PRIMARY KEY (network, \"case\", class, version, recipient))",
    f"CREATE TABLE shares ({_ID}, network TEXT, \"case\" TEXT, partner TEXT, digest BYTEA,"
    f" cursor BIGINT, received TEXT, acting_user TEXT, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_shares_network_digest ON shares (network, digest)",
    "CREATE INDEX idx_shares_network_partner_case ON shares (network, partner, \"case\")",
    f"CREATE TABLE tokens ({_ID}, network TEXT, kind TEXT, token BYTEA, subject_kind TEXT,"
    f" subject TEXT, at TEXT, {_ROWID_OF_ID})",
    "CREATE INDEX idx_tokens_network_kind_token ON tokens (network, kind, token)",
    f"CREATE TABLE hints ({_ID}, network TEXT NOT NULL, token_kind TEXT NOT NULL,"
    " subject_kind TEXT NOT NULL, subject TEXT NOT NULL, may_concern TEXT NOT NULL,"
    f" at TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE INDEX idx_hints_network_id ON hints (network, id)",
    f"CREATE TABLE signals ({_ID}, network TEXT NOT NULL, signal TEXT NOT NULL,"
    " source TEXT NOT NULL, sender TEXT, acting_user TEXT, submission TEXT NOT NULL,"
    " digest BYTEA NOT NULL, received TEXT NOT NULL, status TEXT NOT NULL, updated TEXT NOT NULL,"
    f" {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_signals_network_signal ON signals (network, signal)",
    "CREATE INDEX idx_signals_network_id ON signals (network, id)",
    f"CREATE TABLE receipts (hash BYTEA PRIMARY KEY, signal BIGINT NOT NULL, {_ROWID})",
    f"CREATE TABLE feedback ({_ID}, signal BIGINT, envelope TEXT, digest BYTEA, status TEXT,"
    f" at TEXT, received TEXT, acting_user TEXT, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_feedback_signal_digest ON feedback (signal, digest)",
]

_MIGRATION_2 = [
    "CREATE TABLE audit_entries (network TEXT NOT NULL, idx BIGINT NOT NULL, body TEXT,"
    " commitment BYTEA NOT NULL, partner TEXT NOT NULL, subject TEXT, \"case\" TEXT,"
    f" {_ROWID}, PRIMARY KEY (network, idx))",
    "CREATE INDEX audit_entries_partner ON audit_entries (network, partner, idx)",
    "CREATE INDEX audit_entries_subject ON audit_entries (network, subject, idx)",
    "CREATE INDEX audit_entries_case ON audit_entries (network, \"case\", idx)",
    "CREATE TABLE audit_nodes (network TEXT NOT NULL, level BIGINT NOT NULL, idx BIGINT NOT NULL,"
    " hash BYTEA NOT NULL, PRIMARY KEY (network, level, idx))",
    "CREATE TABLE tree_heads (network TEXT NOT NULL, size BIGINT NOT NULL, root BYTEA NOT NULL,"
    " time TEXT NOT NULL, envelope TEXT NOT NULL, PRIMARY KEY (network, size))",
]

_SIGNED = "envelope TEXT, digest BYTEA, audit_index BIGINT, answer TEXT, received TEXT"

_MIGRATION_3 = [
    "CREATE TABLE consents (network TEXT, consent TEXT, \"case\" TEXT, classes TEXT,"
    f" partners TEXT, parties TEXT, valid_from TEXT, valid_until TEXT, {_SIGNED},"
    " acting_user TEXT, revoked TEXT, revocation TEXT, revocation_digest BYTEA,"
    f" revocation_answer TEXT, {_ROWID}, PRIMARY KEY (network, consent))",
    "CREATE TABLE grants (network TEXT, \"grant\" TEXT, \"case\" TEXT, grantee TEXT, consent TEXT,"
    f" classes TEXT, {_SIGNED}, acting_user TEXT, {_ROWID}, PRIMARY KEY (network, \"grant\"))",
    f"CREATE TABLE releases ({_ID}, network TEXT NOT NULL, release TEXT NOT NULL,"
    " \"case\" TEXT NOT NULL, grantee TEXT NOT NULL, acting_user TEXT NOT NULL, basis TEXT NOT NULL,"
    " ref TEXT NOT NULL, consent TEXT, classes TEXT NOT NULL, audit_index BIGINT NOT NULL,"
    f" answer TEXT NOT NULL, received TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_releases_network_release ON releases (network, release)",
    "CREATE INDEX idx_releases_network_consent ON releases (network, consent)",
    "CREATE TABLE invocations (network TEXT, invocation TEXT, \"case\" TEXT, invoker TEXT,"
    " acting_user TEXT, classes TEXT, ground TEXT, justified BIGINT, at TEXT,"
    f" {_SIGNED}, {_ROWID}, PRIMARY KEY (network, invocation))",
    "CREATE INDEX idx_invocations_network_invoker_acting_user_received"
    " ON invocations (network, invoker, acting_user, received)",
    f"CREATE TABLE cosigns ({_ID}, network TEXT, invocation TEXT, partner TEXT, acting_user TEXT,"
    f" roles TEXT, {_SIGNED}, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_cosigns_network_digest ON cosigns (network, digest)",
    "CREATE INDEX idx_cosigns_network_invocation ON cosigns (network, invocation)",
    f"CREATE TABLE reviews ({_ID}, network TEXT, invocation TEXT, entry BIGINT, auditor TEXT,"
    f" outcome TEXT, {_SIGNED}, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_reviews_network_digest ON reviews (network, digest)",
    "CREATE INDEX idx_reviews_network_invocation ON reviews (network, invocation)",
    f"CREATE TABLE purge_instructions ({_ID}, network TEXT NOT NULL, instruction TEXT NOT NULL,"
    " \"case\" TEXT NOT NULL, recipient TEXT NOT NULL, classes TEXT NOT NULL,"
    " envelope TEXT NOT NULL, audit_index BIGINT NOT NULL, ack TEXT, ack_digest BYTEA,"
    f" ack_answer TEXT, acked TEXT, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_purge_instructions_network_instruction"
    " ON purge_instructions (network, instruction)",
    "CREATE INDEX idx_purge_instructions_network_recipient_id"
    " ON purge_instructions (network, recipient, id)",
    f"CREATE TABLE notifications ({_ID}, network TEXT NOT NULL, kind TEXT NOT NULL,"
    f" invocation TEXT NOT NULL, \"case\" TEXT NOT NULL, at TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE INDEX idx_notifications_network_id ON notifications (network, id)",
]

_MIGRATION_4 = [
    f"CREATE TABLE referrals ({_ID}, network TEXT NOT NULL, referral TEXT NOT NULL,"
    " \"case\" TEXT NOT NULL, to_network TEXT NOT NULL, new_case TEXT NOT NULL, basis TEXT NOT NULL,"
    " basis_ref TEXT NOT NULL, envelope TEXT NOT NULL, digest BYTEA NOT NULL,"
    " out_index BIGINT NOT NULL, in_index BIGINT NOT NULL, answer TEXT NOT NULL,"
    f" received TEXT NOT NULL, closed TEXT, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_referrals_network_referral ON referrals (network, referral)",
    "CREATE UNIQUE INDEX idx_referrals_to_network_new_case ON referrals (to_network, new_case)",
    "CREATE INDEX idx_referrals_to_network_id ON referrals (to_network, id)",
]

_MIGRATION_5 = [
    f"CREATE TABLE case_rekeys ({_ID}, network TEXT NOT NULL, \"case\" TEXT NOT NULL,"
    " version BIGINT NOT NULL, epoch BIGINT NOT NULL, digest BYTEA NOT NULL, cursor BIGINT NOT NULL,"
    f" received TEXT NOT NULL, acting_user TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_case_rekeys_network_case_version"
    " ON case_rekeys (network, \"case\", version)",
    "CREATE UNIQUE INDEX idx_case_rekeys_network_digest ON case_rekeys (network, digest)",
]

_MIGRATION_6 = [
    f"CREATE TABLE header_versions ({_ID}, network TEXT NOT NULL, \"case\" TEXT NOT NULL,"
    " identity_version BIGINT NOT NULL, digest BYTEA NOT NULL, cursor BIGINT NOT NULL,"
    f" answer TEXT NOT NULL, received TEXT NOT NULL, acting_user TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_header_versions_network_case_identity_version"
    " ON header_versions (network, \"case\", identity_version)",
    "CREATE UNIQUE INDEX idx_header_versions_network_digest ON header_versions (network, digest)",
]

_MIGRATION_7 = [
    f"CREATE TABLE cards ({_ID}, network TEXT NOT NULL, serial BIGINT NOT NULL,"
    " envelope TEXT NOT NULL, digest BYTEA NOT NULL, received TEXT NOT NULL,"
    f" acting_user TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_cards_network_serial ON cards (network, serial)",
]

_MIGRATION_8 = [
    "CREATE TABLE audit_cases (network TEXT NOT NULL, \"case\" TEXT NOT NULL, idx BIGINT NOT NULL,"
    " PRIMARY KEY (network, \"case\", idx))",
]

_MIGRATION_9 = [
    f"CREATE TABLE network_policies ({_ID}, network TEXT NOT NULL, version BIGINT NOT NULL,"
    " issued TEXT NOT NULL, envelope TEXT NOT NULL, digest BYTEA NOT NULL, received TEXT NOT NULL,"
    f" acting_user TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_network_policies_network_version ON network_policies (network, version)",
]

_MIGRATION_10 = [
    f"CREATE TABLE lookups ({_ID}, network TEXT NOT NULL, partner TEXT NOT NULL,"
    f" acting_user TEXT NOT NULL, at TEXT NOT NULL, idx BIGINT NOT NULL, {_ROWID_OF_ID})",
    "CREATE INDEX idx_lookups_network_partner_at ON lookups (network, partner, at)",
]

_MIGRATION_11 = [
    f"CREATE TABLE identity_purges ({_ID}, network TEXT NOT NULL, \"case\" TEXT NOT NULL,"
    " purge TEXT NOT NULL, kind TEXT NOT NULL, identity_version BIGINT NOT NULL,"
    " digest BYTEA NOT NULL, cursor BIGINT NOT NULL, answer TEXT NOT NULL, received TEXT NOT NULL,"
    f" acting_user TEXT NOT NULL, {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_identity_purges_network_purge ON identity_purges (network, purge)",
    "CREATE UNIQUE INDEX idx_identity_purges_network_case_identity_version"
    " ON identity_purges (network, \"case\", identity_version)",
]

_MIGRATION_12 = [
    "CREATE TABLE case_audience (network TEXT NOT NULL, \"case\" TEXT NOT NULL,"
    " member TEXT NOT NULL, since BIGINT NOT NULL, PRIMARY KEY (network, \"case\", member))",
]

_MIGRATION_13 = [
    f"CREATE TABLE coordinator_rotations ({_ID}, network TEXT NOT NULL, position BIGINT NOT NULL,"
    " old TEXT NOT NULL, new TEXT NOT NULL, at TEXT NOT NULL, envelope TEXT NOT NULL,"
    " digest BYTEA NOT NULL, received TEXT NOT NULL, acting_user TEXT NOT NULL,"
    f" {_ROWID_OF_ID})",
    "CREATE UNIQUE INDEX idx_coordinator_rotations_network_position"
    " ON coordinator_rotations (network, position)",
    "CREATE UNIQUE INDEX idx_coordinator_rotations_network_digest"
    " ON coordinator_rotations (network, digest)",
]

_MIGRATION_14 = [
    "CREATE TABLE trust_entries (network TEXT NOT NULL, idx BIGINT NOT NULL, type TEXT NOT NULL,"
    " envelope TEXT NOT NULL, PRIMARY KEY (network, idx))",
    "CREATE TABLE trust_nodes (network TEXT NOT NULL, level BIGINT NOT NULL, idx BIGINT NOT NULL,"
    " hash BYTEA NOT NULL, PRIMARY KEY (network, level, idx))",
]

_MIGRATION_15 = [
    "CREATE TABLE witness_cosignatures (network TEXT NOT NULL, log TEXT NOT NULL,"
    " witness TEXT NOT NULL, size BIGINT NOT NULL, time BIGINT NOT NULL, line TEXT NOT NULL,"
    " PRIMARY KEY (network, log, witness))",
]

_MIGRATION_16 = [
    "CREATE TABLE replay_nonces (keyid TEXT NOT NULL, nonce TEXT NOT NULL, until BIGINT NOT NULL,"
    " PRIMARY KEY (keyid, nonce))",
    "CREATE INDEX idx_replay_nonces_until ON replay_nonces (until)",
    "CREATE TABLE intake_buckets (network TEXT NOT NULL, source TEXT NOT NULL,"
    " tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL,"
    " PRIMARY KEY (network, source))",
]


def _c_collation(statement: str) -> str:
    """Every text column of a table compares and sorts by its bytes (UTF-8), as SQLite's
    BINARY collation does, whatever the database's locale: ``ORDER BY member`` and
    ``at <= ?`` give the same answers on both backends."""
    if not statement.startswith("CREATE TABLE"):
        return statement
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', statement)


def _steps(statements: list[str], after: Callable[[PgDb], None] | None = None
           ) -> Callable[[PgDb], None]:
    def step(db: PgDb) -> None:
        for statement in statements:
            # DDL as it is: without parameters, no placeholders
            db.conn.execute(_c_collation(statement).encode())
        if after is not None:
            after(db)
    return step


def _build_trust_logs(db: PgDb) -> None:
    from schakel.server.trustlog import build_trust_logs    # it imports the storage
    build_trust_logs(db)


#: Schema versions, applied in order: the PostgreSQL twin of
#: :data:`schakel.server.storage.MIGRATIONS`, step for step.
MIGRATIONS: tuple[Callable[[PgDb], None], ...] = (
    _steps(_MIGRATION_1), _steps(_MIGRATION_2), _steps(_MIGRATION_3), _steps(_MIGRATION_4),
    _steps(_MIGRATION_5), _steps(_MIGRATION_6), _steps(_MIGRATION_7), _steps(_MIGRATION_8),
    _steps(_MIGRATION_9), _steps(_MIGRATION_10), _steps(_MIGRATION_11), _steps(_MIGRATION_12),
    _steps(_MIGRATION_13), _steps(_MIGRATION_14, _build_trust_logs), _steps(_MIGRATION_15),
    _steps(_MIGRATION_16))

#: The advisory lock key under which migrations run (any fixed 64-bit number).
_MIGRATION_LOCK = 0x5C4A_6B65_6C00_0001


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Bring the schema up to date (one transaction per step); returns the version."""
    db = PgDb(conn)
    while True:
        conn.execute("BEGIN")
        try:
            # Under the lock even the version table's creation: two processes starting on a
            # new database would both create it otherwise (a unique violation of the catalog).
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schakel_schema (version BIGINT NOT NULL)")
            row = conn.execute("SELECT version FROM schakel_schema").fetchone()
            version = 0 if row is None else int(row[0])
            if version >= len(MIGRATIONS):
                conn.execute("COMMIT")
                return version
            MIGRATIONS[version](db)
            if row is None:
                conn.execute("INSERT INTO schakel_schema (version) VALUES (1)")
            else:
                conn.execute("UPDATE schakel_schema SET version = %s", (version + 1,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.info.transaction_status != pq.TransactionStatus.UNKNOWN:
                conn.execute("ROLLBACK")
            raise


# --------------------------------------------------------------------------- the store


def connect(url: str) -> psycopg.Connection[Any]:
    """A connection that issues its own ``BEGIN``/``COMMIT`` (autocommit mode)."""
    conn: psycopg.Connection[Any] = psycopg.connect(url, autocommit=True, connect_timeout=10,
                                                     application_name="schakel")
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    return conn


#: The channel on which server processes sharing a database announce their commits
#: (``NOTIFY``): the payload is ``f:NETWORK`` (the network's feed grew: wake its long-polls)
#: or ``t:NETWORK`` (its trust log grew: follow it in the member directory).
CHANNEL = "schakel"
#: Seconds the listener waits for notifications before it looks whether it must stop.
LISTEN_POLL = 0.5
#: Seconds between attempts to reconnect a listener whose connection was lost.
LISTEN_RETRY = 1.0

#: ``on_remote(feeds, trusts)``: networks whose feed or trust log another process changed.
OnRemote = Callable[[frozenset[str], frozenset[str]], None]


class PgStore(BaseStore):
    """:class:`~schakel.server.storage.BaseStore` on PostgreSQL at ``url``.

    Besides the writer and the readers, a store started with ``on_remote`` runs a
    **listener**: a connection that ``LISTEN``s on :data:`CHANNEL` and hands what other
    processes committed to the event loop (``on_remote``, coalesced); after it (re)connects
    it calls ``on_resync``, because notifications sent while it was away are lost.  Every
    write transaction announces, just before its ``COMMIT``, the networks whose feed
    (``notify``) or trust log it changed; PostgreSQL delivers the notifications only if it
    commits.  The process's own notifications are recognised by its writer's backend pid
    and skipped (it woke its own waiters already).
    """

    _Error = psycopg.Error

    def __init__(self, url: str, *, readers: int = 4, batch: int = 64,
                 on_commit: OnCommit | None = None, on_remote: OnRemote | None = None,
                 on_resync: Callable[[], None] | None = None) -> None:
        super().__init__(readers=readers, batch=batch, on_commit=on_commit)
        self.url = url
        self.on_remote = on_remote
        self.on_resync = on_resync
        self._txn = _Txn()
        self._writer_pid: int | None = None
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()
        self._heard: tuple[set[str], set[str]] | None = None
        self._heard_lock = threading.Lock()
        self._leader: psycopg.Connection[Any] | None = None
        self._leads: set[str] = set()
        #: Notifications of other processes handed to the event loop (for tests and metrics).
        self.heard = 0

    def _open(self, *, writer: bool) -> psycopg.Connection[Any]:
        conn = connect(self.url)
        if writer:
            self._writer_pid = conn.info.backend_pid
        else:
            # A reader's only writes are :meth:`record`'s, which may be lost in a crash of
            # the database (ADR 0052): no wait for the disk.
            conn.execute("SET synchronous_commit TO off")
        return conn

    def _migrate(self, conn: Any) -> None:
        migrate(conn)

    def _db(self, conn: Any) -> PgDb:
        if self._writer_pid == conn.info.backend_pid:
            return PgDb(conn, self._txn)
        return PgDb(conn)

    def _begin_read(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _begin_write(self, conn: Any) -> None:
        self._txn = _Txn()
        conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")

    def _start_write(self, *, first: bool) -> None:
        self._txn.start_write(first=first)

    def _undo_write(self) -> None:
        self._txn.undo_write()

    def _savepoint(self, conn: Any, *, first: bool) -> None:
        # The previous write's savepoint is released here, in the same round trip.
        conn.execute("SAVEPOINT write" if first else "RELEASE SAVEPOINT write; SAVEPOINT write")

    def _release(self, conn: Any) -> None:
        """Deferred to the next write's savepoint, or to the ``COMMIT``, which releases it."""

    def _commit(self, conn: Any, done: list[tuple[_Write, Any, BaseException | None]]) -> None:
        """Announce the networks whose feed (the writes' ``notify``) or trust log this
        transaction changed, and commit, in one round trip: PostgreSQL delivers the
        notifications only if the ``COMMIT`` succeeds."""
        feeds = {item.notify for item, _, error in done
                 if error is None and item.notify is not None}
        payloads = [f"f:{n}" for n in sorted(feeds)] + [f"t:{n}" for n in sorted(self._txn.trust)]
        statements = [sql.SQL("SELECT pg_notify({}, {})").format(sql.Literal(CHANNEL),
                                                                  sql.Literal(payload))
                      for payload in payloads]
        conn.execute(sql.SQL("; ").join([*statements, sql.SQL("COMMIT")]))

    def _in_transaction(self, conn: Any) -> bool:
        return conn.info.transaction_status in (pq.TransactionStatus.INTRANS,
                                                pq.TransactionStatus.INERROR)

    def _after_commit_batch(self, conn: Any, batch: list[_Write]) -> None:
        """Nothing: PostgreSQL has no ``secure_delete``; what a shredding write deleted
        stays in dead row versions until VACUUM reuses their space (ADR 0051)."""

    def _broken(self, conn: Any) -> bool:
        return bool(conn.closed) or \
            conn.info.transaction_status == pq.TransactionStatus.UNKNOWN

    def _roll_back(self, conn: Any) -> Any:
        if conn is None:
            return None
        try:
            if conn.closed or conn.info.transaction_status == pq.TransactionStatus.UNKNOWN:
                raise psycopg.OperationalError("connection lost")
            if self._in_transaction(conn):
                conn.execute("ROLLBACK")
            return conn
        except psycopg.Error:
            self._close_conn(conn)
            return None

    # several processes ------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        if self.on_remote is not None:
            loop = asyncio.get_running_loop()
            self._listener = threading.Thread(target=self._listen, args=(loop,),
                                              name="schakel-listener", daemon=True)
            self._listener.start()

    async def close(self) -> None:
        self._stop_listening.set()
        await super().close()
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            await loop.run_in_executor(None, self._listener.join)
        if self._leader is not None:
            leader, self._leader = self._leader, None
            await loop.run_in_executor(None, self._close_conn, leader)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """The listener thread: ``LISTEN``, hand over what is heard, reconnect when lost."""
        while not self._stop_listening.is_set():
            conn = None
            try:
                conn = connect(self.url)
                conn.execute(f"LISTEN {CHANNEL}")
                if self.on_resync is not None:
                    self._call(loop, self.on_resync)
                while not self._stop_listening.is_set():
                    for note in conn.notifies(timeout=LISTEN_POLL):
                        if note.pid != self._writer_pid:
                            self._hear(loop, note.payload)
            except psycopg.Error as exc:
                _log_error("listener lost", exc)
                self._stop_listening.wait(LISTEN_RETRY)
            finally:
                if conn is not None:
                    self._close_conn(conn)

    def _hear(self, loop: asyncio.AbstractEventLoop, payload: str) -> None:
        kind, _, network = payload.partition(":")
        with self._heard_lock:
            first = self._heard is None
            if first:
                self._heard = (set(), set())
            assert self._heard is not None
            (self._heard[0] if kind == "f" else self._heard[1]).add(network)
        if first:
            self._call(loop, self._deliver)

    def _deliver(self) -> None:
        """On the event loop: everything heard since the last delivery, at once."""
        with self._heard_lock:
            heard, self._heard = self._heard, None
        if heard is None or self.on_remote is None:
            return
        self.heard += 1
        self.on_remote(frozenset(heard[0]), frozenset(heard[1]))

    async def record(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(db, *args)`` on a reader's connection outside any transaction: each
        statement commits on its own, without waiting for the disk
        (``synchronous_commit`` off).  For state several processes share that a crash of
        the database may lose its last moments of without harm (the replay cache, the
        intake buckets: ADR 0052); never for protocol data."""
        if self._readers is None or self._closing:
            raise Unavailable("the server is shutting down")
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._run_record, fn, args)

    def _run_record(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = None
        try:
            conn = self._reader()
            return fn(PgDb(conn), *args)
        except psycopg.Error as exc:
            if conn is not None and self._broken(conn):
                self._drop_reader(conn)
            raise self._refusal(exc, "record failed") from exc

    async def leads(self, task: str) -> bool:
        """Whether this process runs ``task`` (a background pass) now: the one that holds
        its session-level advisory lock on a connection of its own.  A process that loses
        that connection loses the lock, and another one takes the task over."""
        return await asyncio.get_running_loop().run_in_executor(None, self._try_lead, task)

    def _try_lead(self, task: str) -> bool:
        key = f"schakel:lead:{task}"
        try:
            if self._leader is None or self._broken(self._leader):
                if self._leader is not None:
                    self._close_conn(self._leader)
                self._leader, self._leads = connect(self.url), set()
            if key in self._leads:
                self._leader.execute("SELECT 1")        # still connected: still the lock's
                return True
            taken = self._leader.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                                         (key,)).fetchone()
            if taken is not None and taken[0]:
                self._leads.add(key)
                return True
            return False
        except psycopg.Error as exc:
            _log_error("leader connection lost", exc)
            if self._leader is not None:
                self._close_conn(self._leader)
            self._leader, self._leads = None, set()
            return False

    def _fault(self, exc: BaseException) -> bool:
        return pg_fault(exc)
