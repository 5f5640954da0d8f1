"""A partner's local state: one SQLite file (``state.db``), through the standard library's
``sqlite3`` (ADR 0007; the schema below is the one sqlite-utils once made, so older files
open unchanged, and a command need not import sqlite-utils and what it imports).

Two kinds of rows:

* **Secrets** -- epoch and match keys, case keys, class keys, identity this partner
  owns or was released, signal reply keys.  Each value is encrypted with
  XChaCha20-Poly1305 under a random 32-byte **state key**, with associated data
  ``schakel/v1/local-state/<kind>/<ref...>``: a ciphertext copied to another row (another
  case, class or version) does not open.  The state key itself is stored sealed to the
  partner's own box key (``crypto_box_seal``), so ``state.db`` is useless without the
  keystore and its passphrase.
* **Documents** -- verified envelopes, headers, heads, tickets: canonical JSON, not
  secret (the server holds the same objects).  They are read back with the standard
  parser: this client wrote them, after verifying them, and nothing here authenticates
  them against whoever else can write the file (the secrets are what is protected).

Refs are tuples of strings (ids, class names, decimal versions).  A ref component may
not contain ``/`` (it would make the associated data ambiguous) or control characters.
``secret_refs``/``docs`` select by a ref prefix and answer in ref order; pad numbers that
must sort (``f"{seq:010d}"``).

Writes commit at once unless inside :meth:`LocalState.transaction` (one commit for a
whole sync page).  Inside a transaction, reads are answered from what the transaction
already read or wrote (documents as their stored text, secrets as their opened bytes),
and :meth:`LocalState.prefetch_docs` reads many rows of one kind in one query; the cache
ends with the transaction, whatever its outcome.  The file is opened by one process at a
time.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from schakel.protocol.canonical import canonical_json, parse_json
from schakel.protocol.crypto import (
    BoxPublicKey, BoxSecretKey, SymmetricKey, aead_decrypt, aead_encrypt,
)
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import DecryptionError, MalformedError
from schakel.protocol.objects.base import format_timestamp

#: Associated-data prefix of every local secret (ADR 0007).
AD_PREFIX = b"schakel/v1/local-state/"
#: Separator of ref components inside the ``ref`` column (sorts before every printable).
_SEP = "\x1f"
SCHEMA_VERSION = 1
#: The tables of a new state file.
SCHEMA = """
CREATE TABLE "meta" ("name" TEXT PRIMARY KEY, "value" TEXT);
CREATE TABLE "secrets" ("kind" TEXT, "ref" TEXT, "value" BLOB, PRIMARY KEY ("kind", "ref"));
CREATE TABLE "docs" ("kind" TEXT, "ref" TEXT, "value" TEXT, PRIMARY KEY ("kind", "ref"));
CREATE TABLE "cursors" ("network" TEXT, "feed" TEXT, "cursor" TEXT,
                        PRIMARY KEY ("network", "feed"));
CREATE TABLE "misbehaviours" ("id" INTEGER PRIMARY KEY, "network" TEXT, "what" TEXT,
                              "message" TEXT, "details" TEXT, "at" TEXT);
"""
#: Refs per query of :meth:`LocalState.prefetch_docs` (well under SQLite's bound on
#: the parameters of one statement).
_PREFETCH_CHUNK = 500


class StateKey(SymmetricKey):
    """The random key every local secret is encrypted under."""

    role = "local-state"


#: What a ref component or kind may not contain: ``/`` and the C0 controls and DEL.
_FORBIDDEN = re.compile("[/\x00-\x1f\x7f]")


def _check_part(value: object, what: str) -> str:
    # One scan in C (the regex), not a Python loop per character: every local read and
    # write passes here, several times per synced item.
    if not isinstance(value, str) or not value or len(value) > 256:
        raise MalformedError(f"local state {what} must be a non-empty string of at most 256 chars")
    if _FORBIDDEN.search(value) is not None:
        raise MalformedError(f"local state {what} contains '/' or a control character")
    return value


def _ref(ref: object) -> tuple[str, ...]:
    # Callers outside the type checker's sight (tests, a hand-written ref) get a clear
    # refusal, not a string split into characters.
    if isinstance(ref, str) or not isinstance(ref, (tuple, list)):
        raise MalformedError("local state ref must be a tuple of strings")
    return tuple(_check_part(part, "ref component") for part in ref)


#: What no component of a joined ref may contain (the separator itself is counted).
_FORBIDDEN_JOINED = re.compile("[/\x00-\x1e\x7f]")


def _key(kind: str, ref: tuple[str, ...]) -> tuple[str, str]:
    """(kind, the ref's components joined by the separator) of one row, checked as
    :func:`_check_part` and :func:`_row` check them: one scan of the joined text when
    every component is a plain string of the right length, the checks one by one
    otherwise (which then name what is wrong).  A sync reads and writes the same few
    refs many times: the answers for valid refs are kept (a bounded cache)."""
    if type(ref) is tuple:
        try:
            return _checked_key(kind, ref)
        except TypeError:                 # a component that cannot be hashed
            pass
    return _check_part(kind, "kind"), _SEP.join(_row(ref))


@lru_cache(maxsize=8192)
def _checked_key(kind: str, ref: tuple[str, ...]) -> tuple[str, str]:
    if type(kind) is str and type(ref) is tuple and ref and \
            all(type(part) is str and 0 < len(part) <= 256 for part in ref):
        joined = _SEP.join(ref)
        if 0 < len(kind) <= 256 and _FORBIDDEN.search(kind) is None and \
                _FORBIDDEN_JOINED.search(joined) is None and \
                joined.count(_SEP) == len(ref) - 1:
            return kind, joined
    return _check_part(kind, "kind"), _SEP.join(_row(ref))


def _row(ref: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The ref of one row: at least one component."""
    out = _ref(ref)
    if not out:
        raise MalformedError("local state ref must have at least one component")
    return out


def associated_data(kind: str, ref: tuple[str, ...]) -> bytes:
    """``schakel/v1/local-state/<kind>/<ref...>``: binds a secret to its row."""
    return AD_PREFIX + "/".join((_check_part(kind, "kind"), *_row(ref))).encode("utf-8")


class LocalState:
    """The state of one partner (module docstring).  Open with :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, key: StateKey) -> None:
        self.path, self._conn, self._key = path, conn, key
        self._depth = 0
        self._pending_misbehaviour: list[tuple[str, tuple[Any, ...]]] = []
        #: (kind, joined ref) -> stored text or None, while a transaction is open.
        self._doc_cache: dict[tuple[str, str], str | None] = {}
        #: (kind, joined ref) -> opened secret or None, while a transaction is open.
        self._secret_cache: dict[tuple[str, str], bytes | None] = {}
        #: Documents put (text) or deleted (None) in the open transaction, not yet written.
        self._unwritten: dict[tuple[str, str], str | None] = {}
        #: :meth:`shred` was asked in the open transaction.
        self._shred = False

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str], box_secret: BoxSecretKey, *,
             create: bool = False) -> "LocalState":
        """Open (``create``: make) the state file.  The state key is unsealed with
        ``box_secret``; a file sealed to another partner's key is refused."""
        path = Path(path)
        if not create and not path.exists():
            raise MalformedError(f"no local state at {path}")
        if create and path.exists():
            raise MalformedError(f"a local state already exists at {path}")
        if create:
            # The file holds only ciphertext and public objects, but it is this partner's
            # record of what it saw: owner-only, like the keystore.
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        # A deleted secret is overwritten, not left in a free page where the state key
        # would still open it (crypto-shredding, ADR 0034).
        conn.execute("PRAGMA secure_delete=ON")
        try:
            if create:
                conn.executescript(SCHEMA)
                key = StateKey.generate()
                sealed = box_secret.public_key.seal(key.export())
                conn.execute("INSERT INTO meta(name, value) VALUES (?, ?), (?, ?)",
                             ("state_key", b64e(sealed), "schema", str(SCHEMA_VERSION)))
            else:
                row = conn.execute("SELECT value FROM meta WHERE name = 'state_key'").fetchone()
                if row is None:
                    raise MalformedError(f"{path} is not a Schakel client state")
                try:
                    key = StateKey(box_secret.unseal(b64d(row[0], max_length=256)))
                except DecryptionError:
                    raise DecryptionError("the local state was made for another partner's "
                                          "keys") from None
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, key)

    def close(self) -> None:
        self._conn.close()

    def reseal(self, box_public: BoxPublicKey) -> None:
        """Seal the state key to ``box_public`` instead (the partner's keys were rotated,
        ADR 0046): from now on the file opens with the new keys' box secret only."""
        sealed = box_public.seal(self._key.export())
        self._conn.execute("UPDATE meta SET value = ? WHERE name = 'state_key'",
                              (b64e(sealed),))

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for everything inside (nested calls join the outer one); on an
        exception nothing inside is kept -- except misbehaviour records, which are
        written after the transaction ends, whatever its outcome."""
        conn = self._conn
        if self._depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        self._depth += 1
        ok = False
        try:
            yield
            if self._depth == 1:
                self._write_docs()
            ok = True
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._doc_cache.clear()
                self._secret_cache.clear()
                self._unwritten.clear()
                conn.execute("COMMIT" if ok else "ROLLBACK")
                self._flush_misbehaviours()
                shred, self._shred = self._shred and ok, False
                if shred:
                    self._checkpoint()

    def shred(self) -> None:
        """Secrets deleted now must leave no copy in the file: after the commit (at once
        outside a transaction) the write-ahead log, which still holds the pages as they
        were written, is checkpointed and truncated (deleted rows are overwritten in the
        database itself: ``secure_delete``)."""
        if self._depth:
            self._shred = True
        else:
            self._checkpoint()

    def _checkpoint(self) -> None:
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # ------------------------------------------------------------------ secrets

    def put_secret(self, kind: str, ref: tuple[str, ...], value: bytes) -> None:
        if not isinstance(value, bytes):
            raise MalformedError("a local secret is bytes")
        ref = _row(ref)
        blob = aead_encrypt(self._key, value, associated_data(kind, ref))
        joined = _SEP.join(ref)
        self._conn.execute("INSERT OR REPLACE INTO secrets(kind, ref, value) VALUES (?, ?, ?)",
                              (kind, joined, blob))
        if self._depth:
            self._secret_cache[(kind, joined)] = value

    def get_secret(self, kind: str, ref: tuple[str, ...]) -> bytes | None:
        """The secret, or None.  A row that does not open under its own kind and ref
        (moved, altered) raises :class:`DecryptionError`."""
        key = _key(kind, ref)
        if self._depth and key in self._secret_cache:
            return self._secret_cache[key]
        row = self._conn.execute("SELECT value FROM secrets WHERE kind = ? AND ref = ?",
                                    key).fetchone()
        value = None if row is None else \
            aead_decrypt(self._key, bytes(row[0]), associated_data(kind, _row(ref)))
        if self._depth:
            self._secret_cache[key] = value
        return value

    def delete_secret(self, kind: str, ref: tuple[str, ...]) -> None:
        key = _key(kind, ref)
        self._conn.execute("DELETE FROM secrets WHERE kind = ? AND ref = ?", key)
        if self._depth:
            self._secret_cache[key] = None

    def secret_refs(self, kind: str, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        return [tuple(r[0].split(_SEP)) for r in self._select("secrets", "ref", kind, prefix)]

    # ------------------------------------------------------------------ documents

    def put_doc(self, kind: str, ref: tuple[str, ...], value: Any) -> None:
        self.put_canonical(kind, ref, canonical_json(value))

    def put_canonical(self, kind: str, ref: tuple[str, ...], canonical: bytes) -> None:
        """:meth:`put_doc` of a document whose canonical JSON the caller already holds
        (``canonical_json(value)``: it hashed or checked those very bytes).  Inside a
        transaction the row is written when the transaction ends (or before a query
        that lists documents), as one statement for all the rows written."""
        key = _key(kind, ref)
        text = canonical.decode("utf-8")
        if self._depth:
            self._doc_cache[key] = text
            self._unwritten[key] = text
            return
        self._conn.execute("INSERT OR REPLACE INTO docs(kind, ref, value) VALUES (?, ?, ?)",
                              (*key, text))

    def get_doc(self, kind: str, ref: tuple[str, ...]) -> Any | None:
        text = self._doc_text(_key(kind, ref))
        return None if text is None else json.loads(text)

    def has_doc(self, kind: str, ref: tuple[str, ...]) -> bool:
        """Whether a document is stored at ``ref`` (:meth:`get_doc` without parsing it)."""
        return self._doc_text(_key(kind, ref)) is not None

    def _doc_text(self, key: tuple[str, str]) -> str | None:
        if self._depth and key in self._doc_cache:
            return self._doc_cache[key]
        row = self._conn.execute("SELECT value FROM docs WHERE kind = ? AND ref = ?",
                                    key).fetchone()
        text = None if row is None else str(row[0])
        if self._depth:
            self._doc_cache[key] = text
        return text

    def prefetch_docs(self, kind: str, refs: Sequence[tuple[str, ...]]) -> None:
        """Read the documents of ``kind`` at ``refs`` in one query, for the reads of the
        open transaction that follow (nothing outside one).  Refs that are not valid
        refs are skipped: the read that uses one refuses it."""
        if not self._depth:
            return
        kind = _check_part(kind, "kind")
        wanted: list[str] = []
        for ref in refs:
            try:
                key = _key(kind, ref)
            except MalformedError:
                continue
            if key not in self._doc_cache:
                wanted.append(key[1])
        for start in range(0, len(wanted), _PREFETCH_CHUNK):
            chunk = wanted[start:start + _PREFETCH_CHUNK]
            found = dict(self._conn.execute(
                f"SELECT ref, value FROM docs WHERE kind = ? AND ref IN "
                f"({', '.join('?' * len(chunk))})", (kind, *chunk)).fetchall())
            for joined in chunk:
                text = found.get(joined)
                self._doc_cache[(kind, joined)] = None if text is None else str(text)

    def docs(self, kind: str, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
        return [(tuple(r[0].split(_SEP)), json.loads(r[1]))
                for r in self._select("docs", "ref, value", kind, prefix)]

    def delete_doc(self, kind: str, ref: tuple[str, ...]) -> None:
        key = _key(kind, ref)
        if self._depth:
            self._doc_cache[key] = None
            self._unwritten[key] = None
            return
        self._conn.execute("DELETE FROM docs WHERE kind = ? AND ref = ?", key)

    def _write_docs(self) -> None:
        """Write the documents put and deleted in the open transaction since the last
        write, the last value of each row."""
        if not self._unwritten:
            return
        pending, self._unwritten = self._unwritten, {}
        conn = self._conn
        conn.executemany("INSERT OR REPLACE INTO docs(kind, ref, value) VALUES (?, ?, ?)",
                         [(*key, text) for key, text in pending.items() if text is not None])
        conn.executemany("DELETE FROM docs WHERE kind = ? AND ref = ?",
                         [key for key, text in pending.items() if text is None])

    def _select(self, table: str, columns: str, kind: str,
                prefix: tuple[str, ...]) -> list[tuple[Any, ...]]:
        if table == "docs":
            self._write_docs()
        kind = _check_part(kind, "kind")
        prefix = _ref(prefix)
        if not prefix:
            return self._conn.execute(
                f"SELECT {columns} FROM {table} WHERE kind = ? ORDER BY ref", (kind,)).fetchall()
        # Every ref that starts with the prefix components lies in [p + SEP, p + SEP + 1).
        low = _SEP.join(prefix) + _SEP
        high = low[:-1] + chr(ord(_SEP) + 1)
        exact = _SEP.join(prefix)
        return self._conn.execute(
            f"SELECT {columns} FROM {table} WHERE kind = ? AND (ref = ? OR (ref >= ? AND ref < ?)) "
            f"ORDER BY ref", (kind, exact, low, high)).fetchall()

    # ------------------------------------------------------------------ cursors

    def cursor(self, network: str, feed: str) -> str:
        row = self._conn.execute("SELECT cursor FROM cursors WHERE network = ? AND feed = ?",
                                    (network, feed)).fetchone()
        return "0" if row is None else str(row[0])

    def set_cursor(self, network: str, feed: str, cursor: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO cursors(network, feed, cursor) "
                              "VALUES (?, ?, ?)", (network, feed, str(cursor)))

    # ------------------------------------------------------------------ misbehaviour

    def record_misbehaviour(self, network: str, what: str, message: str,
                            details: dict[str, Any] | None = None) -> None:
        """Kept even when the surrounding transaction rolls back: the evidence must
        outlive the refusal (written on its own connection when inside one)."""
        row = (network, what, message, canonical_json(details or {}).decode("utf-8"),
               format_timestamp(datetime.now(UTC)))
        sql = ("INSERT INTO misbehaviours(network, what, message, details, at) "
               "VALUES (?, ?, ?, ?, ?)")
        if self._depth == 0:
            self._conn.execute(sql, row)
            return
        # Inside a transaction the write lock is ours: keep the row in memory and write
        # it once the transaction ends, whatever its outcome.
        self._pending_misbehaviour.append((sql, row))

    def _flush_misbehaviours(self) -> None:
        pending, self._pending_misbehaviour = self._pending_misbehaviour, []
        for sql, row in pending:
            self._conn.execute(sql, row)

    def misbehaviours(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT id, network, what, message, details, at FROM "
                                     "misbehaviours ORDER BY id").fetchall()
        return [{"id": r[0], "network": r[1], "what": r[2], "message": r[3],
                 "details": parse_json(r[4]), "at": r[5]} for r in rows]


__all__ = ["LocalState", "StateKey", "associated_data", "AD_PREFIX"]
