"""The witness's state in one SQLite file (docs/protocol.md §17.4): the logs it witnesses,
per origin the latest checkpoint it cosigned, and the submissions it refused as
inconsistent.

One connection, used by one thread at a time (the app runs every call on a single-thread
executor); each write is one ``BEGIN IMMEDIATE`` transaction, so that the check of ``old``
against the stored size and the store of the new checkpoint are atomic even when two
processes share the file (c2sp.org/tlog-witness: two concurrent requests must not roll the
state back).  Sizes are kept as decimal text: a checkpoint size may exceed SQLite's
64-bit signed integers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils
from schakel.protocol.note import NoteVerifier, b64_std, parse_vkey
from schakel.server.witness.rules import (
    AddCheckpoint,
    Latest,
    Refusal,
    check_consistency,
)

DB_FILE = "witness.db"


@dataclass(frozen=True, slots=True)
class Cosigned:
    """The latest checkpoint cosigned for an origin."""

    origin: str
    size: int
    root: bytes
    note: str
    cosigned_at: int


def _migration_1(db: sqlite_utils.Database) -> None:
    db.table("logs").create({"origin": str, "vkey": str, "added": int}, pk="origin")
    db.table("checkpoints").create({"origin": str, "size": str, "root": bytes, "note": str,
                              "cosigned_at": int}, pk="origin")
    db.table("refused").create({"id": int, "time": int, "origin": str, "reason": str,
                          "message": str, "old_size": str, "size": str, "checkpoint": str,
                          "proof": str}, pk="id")
    db.table("refused").create_index(["origin", "time"])


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_migration_1,)


class KeyReplaced(Exception):
    """``add_log`` of an origin the witness knows under another key, without ``replace``."""

    def __init__(self, origin: str) -> None:
        super().__init__(f"the log {origin} is witnessed under another key")
        self.origin = origin


class WitnessStore:
    """The witness database at ``DIR/witness.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=30.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._db = sqlite_utils.Database(self._conn, execute_plugins=False)
        self._lock = threading.RLock()
        self._migrate()

    @classmethod
    def open(cls, data_dir: Path) -> WitnessStore:
        return cls(data_dir / DB_FILE)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _txn(self) -> Iterator[sqlite_utils.Database]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._txn() as db:
                step(db)
                self._conn.execute(f"PRAGMA user_version = {number}")

    # -- logs -------------------------------------------------------------------------

    def add_log(self, vkey: str, now: int, *, replace: bool = False) -> NoteVerifier:
        """Witness the log of ``vkey`` (an Ed25519 note key; its name is the origin).  A
        log already known under that origin with another key is refused
        (:class:`KeyReplaced`) unless ``replace``: a witness that took any key for an
        origin it witnesses would cosign whatever a new key signs."""
        log = parse_vkey(vkey)
        if log.sig_type != 0x01:
            raise ValueError("a log's key is an Ed25519 note key (type 0x01)")
        with self._txn() as db:
            held = self._conn.execute("SELECT vkey FROM logs WHERE origin = ?",
                                      (log.name,)).fetchone()
            if held is not None and held[0] != log.vkey() and not replace:
                raise KeyReplaced(log.name)
            db.table("logs").upsert({"origin": log.name, "vkey": log.vkey(), "added": now},
                              pk="origin")
        return log

    def log(self, origin: str) -> NoteVerifier | None:
        with self._lock:
            row = self._conn.execute("SELECT vkey FROM logs WHERE origin = ?",
                                     (origin,)).fetchone()
        return parse_vkey(row["vkey"]) if row else None

    def logs(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT origin, vkey, added FROM logs ORDER BY origin")
            return [dict(row) for row in rows]

    # -- checkpoints ------------------------------------------------------------------

    def latest(self, origin: str) -> Cosigned | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM checkpoints WHERE origin = ?",
                                     (origin,)).fetchone()
        if row is None:
            return None
        return Cosigned(row["origin"], int(row["size"]), bytes(row["root"]), row["note"],
                        row["cosigned_at"])

    def all_latest(self) -> list[Cosigned]:
        with self._lock:
            rows = self._conn.execute("SELECT origin FROM checkpoints ORDER BY origin").fetchall()
        return [c for c in (self.latest(row["origin"]) for row in rows) if c is not None]

    def add_checkpoint(self, request: AddCheckpoint, now: int,
                       cosign: Callable[[], tuple[str, str]]) -> str:
        """In one transaction: check ``request`` against the latest cosigned checkpoint
        (:func:`~schakel.server.witness.rules.check_consistency`) and either store it with
        the cosignature ``cosign()`` makes (returns ``(cosignature line, monitoring
        note)``) and return the line, or record a refusal that is evidence and raise it."""
        origin = request.checkpoint.origin
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                current = self.latest(origin)
                latest = Latest(current.size, current.root) if current else None
                try:
                    check_consistency(request, latest)
                except Refusal as refusal:
                    if refusal.evidence:
                        self._record(request, refusal, now)
                    self._conn.execute("COMMIT")
                    raise
                line, note = cosign()
                self._db.table("checkpoints").upsert(
                    {"origin": origin, "size": str(request.checkpoint.size),
                     "root": request.checkpoint.root, "note": note, "cosigned_at": now},
                    pk="origin")
            except Refusal:
                raise
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return line

    # -- refusals ---------------------------------------------------------------------

    def _record(self, request: AddCheckpoint, refusal: Refusal, now: int) -> None:
        self._db.table("refused").insert({
            "time": now, "origin": request.checkpoint.origin, "reason": refusal.reason,
            "message": refusal.message, "old_size": str(request.old),
            "size": str(request.checkpoint.size), "checkpoint": request.note.format(),
            "proof": "".join(b64_std(h) + "\n" for h in request.proof)})

    def refused(self, origin: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM refused"
        args: tuple[str, ...] = ()
        if origin is not None:
            sql, args = sql + " WHERE origin = ?", (origin,)
        with self._lock:
            return [dict(row) for row in self._conn.execute(sql + " ORDER BY id", args)]


__all__ = ["DB_FILE", "Cosigned", "WitnessStore"]
