"""What one statement round trip to PostgreSQL costs the client's thread in CPU (ADR 0008):
the writer of ``schakel serve --database`` pays it for every statement.

One process, one psycopg connection (autocommit, as :mod:`schakel.server.pgstore` opens
them) to a throw-away cluster (``tests/pg_harness.py``), and the shape of a signed append's
write transaction as the writer issues it: ``BEGIN``, then per append ``SAVEPOINT``, a
``SELECT``, two ``INSERT ... RETURNING``, an ``UPDATE``, ``RELEASE``, and ``COMMIT``.  Each
shape is timed with the thread's user and system CPU (``getrusage(RUSAGE_THREAD)``), best of
``--repeat`` runs of ``--appends`` appends, through psycopg directly and through
:class:`schakel.server.pgstore.PgDb` (the ``?`` -> ``%s`` translation and the row wrapper).

    .venv/bin/python bench/probe_pg_roundtrip.py       # prints; writes nothing

Not part of ``make bench``: it answers where the PostgreSQL writer's CPU goes.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from schakel.server.pgstore import PgDb  # noqa: E402
from tests import pg_harness  # noqa: E402

SCHEMA = (("CREATE TABLE cases (network text, \"case\" text, last_seq bigint, last_hash bytea,"
           " PRIMARY KEY (network, \"case\"))"),
          ("CREATE TABLE feed (rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
           " network text, \"case\" text, envelope text)"),
          ("CREATE TABLE events (rowid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
           " network text, \"case\" text, event text, seq bigint, cursor bigint)"))
ENVELOPE = "x" * 1400


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime, r.ru_stime


def _append(ex: Any, i: int, qmark: bool) -> None:
    p = "?" if qmark else "%s"
    ex("SAVEPOINT write")
    ex(f"SELECT last_seq, last_hash FROM cases WHERE network = {p} AND \"case\" = {p}",
       ("n", "c")).fetchone()
    cursor = ex(f"INSERT INTO feed (network, \"case\", envelope) VALUES ({p}, {p}, {p})"
                " RETURNING rowid", ("n", "c", ENVELOPE)).fetchall()[0][0]
    ex(f"INSERT INTO events (network, \"case\", event, seq, cursor) VALUES ({p}, {p}, {p}, {p}, {p})"
       " RETURNING rowid", ("n", "c", f"e{i}", i, cursor)).fetchall()
    ex(f"UPDATE cases SET last_seq = {p} WHERE network = {p} AND \"case\" = {p}", (i, "n", "c"))
    ex("RELEASE SAVEPOINT write")


def _batch(ex: Any, appends: int, qmark: bool, start: int) -> None:
    ex("BEGIN ISOLATION LEVEL READ COMMITTED")
    for i in range(appends):
        _append(ex, start + i, qmark)
    ex("COMMIT")


def measure(url: str, appends: int, batch: int, repeat: int) -> dict[str, Any]:
    conn = psycopg.connect(url, autocommit=True)
    for sql in SCHEMA:
        conn.execute(sql)
    conn.execute("INSERT INTO cases VALUES ('n', 'c', 0, NULL)")
    db = PgDb(conn)
    out: dict[str, Any] = {}
    statements_per_append = 6 + 2 / batch
    counter = 0
    for name, ex, qmark in (("psycopg", conn.execute, False), ("PgDb", db.execute, True)):
        best = None
        for _ in range(repeat):
            u0, s0 = _cpu()
            w0 = time.perf_counter()
            for _ in range(appends // batch):
                _batch(ex, batch, qmark, counter)
                counter += batch
            u1, s1 = _cpu()
            wall = time.perf_counter() - w0
            row = (round((u1 - u0) / appends * 1000, 3), round((s1 - s0) / appends * 1000, 3),
                   round(wall / appends * 1000, 3))
            if best is None or sum(row[:2]) < sum(best[:2]):
                best = row
        assert best is not None
        out[name] = {"user_ms_per_append": best[0], "system_ms_per_append": best[1],
                     "wall_ms_per_append": best[2],
                     "cpu_us_per_statement": round((best[0] + best[1]) * 1000
                                                   / statements_per_append)}
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=400)
    parser.add_argument("--batch", type=int, default=4, help="appends per transaction")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cluster = pg_harness.Cluster(pg_harness.require_bindir())
    cluster.start()
    try:
        result = measure(cluster.url(cluster.create_database()), args.appends, args.batch,
                         args.repeat)
    finally:
        cluster.stop()
    print(f"{args.appends} appends, {args.batch} per transaction "
          f"({6 + 2 / args.batch:.1f} statements per append), best of {args.repeat}:")
    for name, row in result.items():
        print(f"  {name:<8} user {row['user_ms_per_append']} + system "
              f"{row['system_ms_per_append']} ms CPU per append ({row['cpu_us_per_statement']} "
              f"µs per statement); wall {row['wall_ms_per_append']} ms")


if __name__ == "__main__":
    main()
