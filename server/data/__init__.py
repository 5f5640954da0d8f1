"""The server's queries: plain functions ``fn(db, ...)`` that :class:`schakel.server.storage.Store`
runs on its reader threads (reads) or its writer thread (``*_txn`` writes, each inside its
own savepoint of a group-commit transaction).  They raise the server's errors
(:mod:`schakel.server.errors`) for conflicts and missing rows; they never commit.

Idempotency (docs/protocol.md §14): every write is keyed by a client-chosen id (or, for
objects without one, by the digest of the object).  A retry with the same content gets
the first answer with ``created=False`` (HTTP 200); the same id with other content is a
:class:`~schakel.server.errors.Conflict` (HTTP 409).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schakel.server.errors import Conflict
from schakel.server.storage import WITHOUT_ROWID, Db, lock_network


@dataclass(frozen=True)
class Written:
    """The outcome of an idempotent write: whether it was new, and the answer to give."""

    created: bool
    answer: dict[str, Any]


def insert(db: Db, table: str, row: Mapping[str, Any]) -> int:
    """Insert ``row`` (column names are this package's constants, never input); returns
    the rowid (0 for a table without one: :data:`~schakel.server.storage.WITHOUT_ROWID`).
    ``RETURNING rowid`` asks both backends alike (ADR 0051).  A row of a network is
    inserted under the network's lock (:func:`~schakel.server.storage.lock_network`):
    row ids serve as cursors, and none may commit below one already read."""
    if "network" in row:
        lock_network(db, row["network"], table)
    columns = ", ".join(f"[{c}]" for c in row)
    marks = ", ".join("?" for _ in row)
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
    if table in WITHOUT_ROWID:
        db.execute(sql, tuple(row.values()))
        return 0
    return int(db.execute(f"{sql} RETURNING rowid", tuple(row.values())).fetchall()[0][0])


def insert_once(db: Db, table: str, key: Mapping[str, Any], row: Mapping[str, Any], *,
                what: str) -> tuple[bool, int]:
    """Insert ``row`` unless a row matching ``key`` exists.  An existing row with the same
    ``digest`` is the same write again: ``(False, its rowid)``; another digest is a
    :class:`Conflict`.  A new row: ``(True, rowid)``.  The network's lock is taken before
    the look-up, so two processes never both find the key free."""
    network = key.get("network", row.get("network"))
    if network is not None:
        lock_network(db, network, table)
    where = " AND ".join(f"[{k}] = ?" for k in key)
    found = db.execute(f"SELECT rowid, digest FROM {table} WHERE {where}",
                       tuple(key.values())).fetchone()
    if found is not None:
        if found["digest"] != row["digest"]:
            raise Conflict(f"{what} already exists with other content")
        return False, int(found[0])
    return True, insert(db, table, {**key, **row})


def cursor_text(value: int) -> str:
    """Cursors are the server's row ids as decimal strings (docs/protocol.md §14)."""
    return str(value)




def ping(db: Db) -> bool:
    """A read that touches the database (``/healthz``)."""
    return db.execute("SELECT 1").fetchone()[0] == 1


__all__ = ["Written", "insert", "insert_once", "cursor_text", "ping"]
