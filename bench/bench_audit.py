"""Audit log benchmark: append rate, and inclusion and consistency proof
times at 10^3, 10^5 and 10^6 entries over the server's SQLite node store, against pymerkle
in the same run.

* **Append rate**: ``schakel.server.audit.append_txn`` through ``schakel.server.storage.Store.write`` on a
  real database file (WAL, ``synchronous=FULL``), one at a time (every append pays its own
  fsync) and with 64 appends in flight (the writer groups them into shared transactions, as
  the server does under load).  Also the CPU cost of one append inside a transaction (no
  commit) on a log of 10^3 and of 10^6 entries: it should not grow with the log.
* **Proofs**: each log is built fast -- leaf hashes of random 32-byte commitments appended
  through ``schakel.protocol.merkle.MerkleLog`` over an in-memory dict node store, then the nodes
  bulk-inserted into ``audit_nodes`` in key order in one transaction, with one signed tree
  head for the size.  A proof is the server's read function (``schakel.server.audit.inclusion_proof``
  / ``consistency_proof``: the signed size, then O(log n) node reads), each in its own read
  transaction as ``Store.read`` runs it.  Median and p99 over random indexes (consistency:
  random old size to the full size).
* **pymerkle** (``pymerkle.InmemoryTree`` and ``pymerkle.SqliteTree``) over the same
  commitments, proving the same indexes; its roots are checked equal to ours first (both
  are RFC 6962 trees), so the comparison is like with like.  pymerkle's SQLite tree stores
  leaves only and caches subtree roots in memory as proofs warm it up.

Writes ``bench/results/audit.json`` and the audit section of ``bench/README.md``.
Run: ``.venv/bin/python bench/bench_audit.py`` (``make bench``); ``--quick`` stops at 10^5.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import write_result  # noqa: E402
from schakel.protocol import merkle  # noqa: E402
from schakel.protocol.canonical import canonical_json  # noqa: E402
from schakel.protocol.crypto import Signer  # noqa: E402
from schakel.protocol.encoding import b64e  # noqa: E402
from schakel.protocol.objects.audit import AuditActor, TreeHead  # noqa: E402
from schakel.protocol.objects.base import format_timestamp  # noqa: E402
from schakel.server.audit import append_txn, consistency_proof, inclusion_proof  # noqa: E402
from schakel.server.storage import Store, migrate  # noqa: E402

README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- bench_audit:begin -->", "<!-- bench_audit:end -->"
SIZES = (1_000, 100_000, 1_000_000)


class DictStore(dict[tuple[int, int], bytes]):
    """A NodeStore in a dict, to build a big log fast before bulk-inserting it."""

    def get(self, level: int, index: int) -> bytes:  # type: ignore[override]
        return self[(level, index)]

    def put(self, level: int, index: int, node: bytes) -> None:
        self[(level, index)] = node


def _stats(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"n": len(ordered), "median_us": round(statistics.median(ordered) * 1e6, 1),
            "p99_us": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e6, 1)}


def _timed(fn: Callable[[], Any], samples: int, budget: float) -> list[float]:
    out: list[float] = []
    deadline = time.monotonic() + budget
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
        if time.monotonic() > deadline and len(out) >= 20:
            break
    return out


# --------------------------------------------------------------------------- appends


def _actor(key: Signer) -> AuditActor:
    return AuditActor(partner=key.key_id, acting_user="bench-user", role="coordinator",
                      organisation="Welzijn Amersfoort")


def _append_args(key: Signer, network: str) -> dict[str, Any]:
    return dict(network=network, log_key=key, now=datetime.now(UTC), actor=_actor(key),
                action="release", basis="consent", outcome="allow", reason="allowed",
                case="CaseCaseCaseCaseCase0A", subject=key.key_id, classes=["name", "address"],
                ref="GrantGrantGrantGrant0A")


async def _append_rate(path: Path, *, in_flight: int, count: int) -> dict[str, Any]:
    key = Signer.generate()
    store = Store(path, readers=1, batch=64)
    await store.start()
    network = f"Net{in_flight:04d}" + "x" * 14 + "A"
    args = _append_args(key, network)
    try:
        commits0, start, done = store.commits, time.perf_counter(), 0

        async def worker(n: int) -> None:
            nonlocal done
            for _ in range(n):
                await store.write(append_txn, **args)
                done += 1
        share, rest = divmod(count, in_flight)
        await asyncio.gather(*(worker(share + (i < rest)) for i in range(in_flight)))
        elapsed = time.perf_counter() - start
        commits = store.commits - commits0
    finally:
        await store.close()
    return {"in_flight": in_flight, "appends": done, "seconds": round(elapsed, 3),
            "per_second": round(done / elapsed, 1), "commits": commits,
            "appends_per_commit": round(done / max(commits, 1), 1)}


def _append_cpu(conn: sqlite3.Connection, network: str, key: Signer, count: int) -> dict[str, Any]:
    """append_txn inside one transaction (no commit): the writer's CPU cost per append."""
    args = _append_args(key, network)
    conn.execute("BEGIN IMMEDIATE")
    try:
        seconds = _timed(lambda: append_txn(conn, **args), count, budget=30)
    finally:
        conn.execute("ROLLBACK")
    return _stats(seconds)


# --------------------------------------------------------------------------- building logs


def _build(conn: sqlite3.Connection, network: str, key: Signer, commitments: list[bytes]
           ) -> tuple[float, merkle.MerkleLog]:
    """Fill ``audit_nodes`` for ``commitments`` and sign the head of the full size; also
    one marker entry row at the last index, so that ``entry_count`` (max index + 1) is the
    size for the append measurement (the other entries' bodies do not enter the tree)."""
    start = time.perf_counter()
    store = DictStore()
    log = merkle.MerkleLog(store)
    for c in commitments:
        log.append(merkle.leaf_hash(c))
    n = len(commitments)
    head = TreeHead(network=network, size=n, root=b64e(log.root()),
                    time=format_timestamp(datetime.now(UTC))).sign(key)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO audit_nodes (network, level, idx, hash) VALUES (?, ?, ?, ?)",
                     ((network, level, idx, node) for (level, idx), node in sorted(store.items())))
    conn.execute("INSERT INTO tree_heads (network, size, root, time, envelope) VALUES (?, ?, ?, ?, ?)",
                 (network, n, log.root(), head["signed"]["time"], canonical_json(head).decode()))
    conn.execute("INSERT INTO audit_entries (network, idx, body, commitment, partner) VALUES"
                 " (?, ?, NULL, ?, ?)", (network, n - 1, commitments[-1], key.key_id))
    conn.execute("COMMIT")
    return time.perf_counter() - start, log


def _read(conn: sqlite3.Connection, fn: Callable[..., Any], *args: Any) -> Any:
    conn.execute("BEGIN")                       # as Store.read: one read transaction per call
    try:
        return fn(conn, *args)
    finally:
        conn.execute("ROLLBACK")


def _ours(conn: sqlite3.Connection, network: str, n: int, indexes: list[int],
          olds: list[int]) -> dict[str, Any]:
    inc = iter(indexes)
    con = iter(olds)
    return {"inclusion": _stats(_timed(lambda: _read(conn, inclusion_proof, network, next(inc), n),
                                       len(indexes), budget=20)),
            "consistency": _stats(_timed(lambda: _read(conn, consistency_proof, network,
                                                       next(con), n), len(olds), budget=20))}


def _pymerkle(tree: Any, n: int, indexes: list[int], olds: list[int], budget: float
              ) -> dict[str, Any]:
    inc = iter(indexes)
    con = iter(olds)
    return {"inclusion": _stats(_timed(lambda: tree.prove_inclusion(next(inc) + 1, n),
                                       len(indexes), budget=budget)),
            "consistency": _stats(_timed(lambda: tree.prove_consistency(next(con), n),
                                         len(olds), budget=budget))}


def _ratio(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, float]:
    return {kind: round(theirs[kind]["median_us"] / ours[kind]["median_us"], 1)
            for kind in ("inclusion", "consistency")}


def bench_proofs(workdir: Path, sizes: tuple[int, ...], samples: int) -> list[dict[str, Any]]:
    from pymerkle import InmemoryTree, SqliteTree

    rng = random.Random(9162)
    key = Signer.generate()
    out = []
    for n in sizes:
        network = f"Size{n:08d}" + "x" * 9 + "A"
        commitments = [rng.randbytes(32) for _ in range(n)]
        path = workdir / f"audit-{n}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
        build_s, memory_log = _build(conn, network, key, commitments)
        indexes = [rng.randrange(n) for _ in range(samples)]
        olds = [rng.randrange(1, n) for _ in range(samples)]
        ours = _ours(conn, network, n, indexes, olds)
        row: dict[str, Any] = {"entries": n, "build_seconds": round(build_s, 1), "ours_sqlite": ours}
        inc, con = iter(indexes), iter(olds)
        row["ours_inmemory"] = {
            "inclusion": _stats(_timed(lambda: memory_log.inclusion_proof(next(inc), n),
                                       len(indexes), budget=20)),
            "consistency": _stats(_timed(lambda: memory_log.consistency_proof(next(con), n),
                                         len(olds), budget=20))}
        row["append_cpu_at_this_size"] = _append_cpu(conn, network, key, 2000)
        conn.close()
        for name in ("ours_sqlite", "ours_inmemory"):
            r = row[name]
            print(f"  {n:>9,}: {name:<17} incl {r['inclusion']['median_us']:>8} us, "
                  f"cons {r['consistency']['median_us']:>8} us", flush=True)

        start = time.perf_counter()
        mem = InmemoryTree(algorithm="sha256")
        for c in commitments:
            mem.append_entry(c)
        mem_build = time.perf_counter() - start
        assert mem.get_root() == merkle.root_hash(commitments), "pymerkle builds another tree"
        row["pymerkle_inmemory"] = _pymerkle(mem, n, indexes, olds, budget=20)
        row["pymerkle_inmemory"]["build_seconds"] = round(mem_build, 1)
        del mem

        start = time.perf_counter()
        sql = SqliteTree(str(workdir / f"pymerkle-{n}.db"), algorithm="sha256")
        sql.append_entries(commitments)
        sql_build = time.perf_counter() - start
        assert sql.get_root() == merkle.root_hash(commitments), "pymerkle builds another tree"
        row["pymerkle_sqlite"] = _pymerkle(sql, n, indexes, olds, budget=30)
        row["pymerkle_sqlite"]["build_seconds"] = round(sql_build, 1)
        sql.close()
        row["ratio_pymerkle_inmemory_to_ours_inmemory"] = _ratio(row["pymerkle_inmemory"],
                                                                 row["ours_inmemory"])
        row["ratio_pymerkle_inmemory_to_ours"] = _ratio(row["pymerkle_inmemory"], ours)
        row["ratio_pymerkle_sqlite_to_ours"] = _ratio(row["pymerkle_sqlite"], ours)
        for name in ("pymerkle_inmemory", "pymerkle_sqlite"):
            r = row[name]
            print(f"  {n:>9,}: {name:<17} incl {r['inclusion']['median_us']:>8} us "
                  f"(n={r['inclusion']['n']}), cons {r['consistency']['median_us']:>8} us "
                  f"(build {r['build_seconds']} s)", flush=True)
        out.append(row)
    return out


# --------------------------------------------------------------------------- report


def _readme_section(result: dict[str, Any]) -> str:
    a, t = result["append"], result["targets"]
    lines = [BEGIN, "## Audit log (`bench/bench_audit.py`)", "",
             "Written by the benchmark from the run in `results/audit.json` (2 cores, shared "
             f"with whatever else ran: load average {result['load_average']} at the start). "
             "Proofs: median (p99) in µs over random indexes (consistency: a random old size "
             "to the full size); ours are the server's read functions over the SQLite node "
             "store, one read transaction each, and `MerkleLog` over a dict; pymerkle "
             f"{result['pymerkle_version']} proves the same indexes over the same commitments "
             "and builds the same roots. Logs are built through `MerkleLog` over an in-memory "
             "dict store, then bulk-inserted into `audit_nodes`. ×N: pymerkle's median over "
             "ours (above 1: ours is faster).", "",
             "| `append_txn` through `Store.write` | appends/s | appends per commit |",
             "|---|---:|---:|"]
    for r in a["rate"]:
        lines.append(f"| {r['in_flight']} in flight | {r['per_second']:,.0f} | "
                     f"{r['appends_per_commit']} |")

    def cell(r: dict[str, Any], kind: str, ratio: dict[str, float] | None = None) -> str:
        text = f"{r[kind]['median_us']:,.0f} ({r[kind]['p99_us']:,.0f})"
        return f"{text} ×{ratio[kind]}" if ratio else text
    lines += ["", "| entries | SQLite: inclusion, ours | pymerkle `SqliteTree` | SQLite: "
              "consistency, ours | pymerkle `SqliteTree` | in memory: inclusion, ours | "
              "pymerkle `InmemoryTree` | in memory: consistency, ours | pymerkle `InmemoryTree` "
              "| `append_txn` CPU at this size |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result["proofs"]:
        rs, rm = p["ratio_pymerkle_sqlite_to_ours"], p["ratio_pymerkle_inmemory_to_ours_inmemory"]
        lines.append(
            f"| {p['entries']:,} | {cell(p['ours_sqlite'], 'inclusion')} | "
            f"{cell(p['pymerkle_sqlite'], 'inclusion', rs)} | "
            f"{cell(p['ours_sqlite'], 'consistency')} | "
            f"{cell(p['pymerkle_sqlite'], 'consistency', rs)} | "
            f"{cell(p['ours_inmemory'], 'inclusion')} | "
            f"{cell(p['pymerkle_inmemory'], 'inclusion', rm)} | "
            f"{cell(p['ours_inmemory'], 'consistency')} | "
            f"{cell(p['pymerkle_inmemory'], 'consistency', rm)} | "
            f"{p['append_cpu_at_this_size']['median_us']:,.0f} |")
    cross = ", ".join(f"{p['entries']:,}: ×{p['ratio_pymerkle_inmemory_to_ours']['inclusion']}"
                      f"/×{p['ratio_pymerkle_inmemory_to_ours']['consistency']}"
                      for p in result["proofs"])
    lines += ["", "`append_txn` CPU: the writer's time for one append inside a transaction "
              "(median, µs; no commit): it does not grow with the log. Most of it is the "
              "entry's JSON Schema validation, canonical JSON and the head's Ed25519 signature, "
              "so with many appends in flight the rate is bound by it rather than by fsync. "
              "Proof times grow with the node reads (about 13 per inclusion proof at 10^3, 24 at "
              "10^6) and with the "
              "B-tree's depth and page-cache misses.",
              "", "Targets: proofs at the largest size under 1 ms over SQLite: "
              f"**{t['under_1ms_at_largest']}**; faster than pymerkle like for like (SQLite "
              f"against `SqliteTree`, in memory against `InmemoryTree`): "
              f"**{t['faster_like_for_like']}**. Across kinds, pymerkle's `InmemoryTree` "
              f"against our SQLite store (inclusion/consistency): {cross}.", END]
    return "\n".join(lines)


def write_readme(section: str) -> None:
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    README.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="stop at 10^5 entries")
    parser.add_argument("--samples", type=int, default=2000, help="proofs per measurement")
    options = parser.parse_args()
    sizes = SIZES[:2] if options.quick else SIZES
    load_before = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    with tempfile.TemporaryDirectory(prefix="schakel-bench-audit-") as tmp:
        workdir = Path(tmp)
        print("audit append rate through Store.write", flush=True)
        rate = [asyncio.run(_append_rate(workdir / "append.db", in_flight=k, count=c))
                for k, c in ((1, 300), (64, 5000))]
        for r in rate:
            print(f"  {r['in_flight']:>3} in flight: {r['per_second']:,.0f} appends/s "
                  f"({r['appends_per_commit']} per commit)", flush=True)
        print("proofs over the SQLite node store and pymerkle", flush=True)
        proofs = bench_proofs(workdir, sizes, options.samples)
    largest = proofs[-1]["ours_sqlite"]
    targets = {
        "under_1ms_at_largest": all(largest[k]["median_us"] < 1000
                                    for k in ("inclusion", "consistency")),
        "faster_like_for_like": all(r[k] > 1 for p in proofs
                                    for r in (p["ratio_pymerkle_sqlite_to_ours"],
                                              p["ratio_pymerkle_inmemory_to_ours_inmemory"])
                                    for k in r)}
    result = {"pymerkle_version": version("pymerkle"), "load_average": load_before,
              "append": {"rate": rate}, "proofs": proofs, "targets": targets,
              "quick": options.quick}
    path = write_result("audit", result)
    write_readme(_readme_section(result))
    print(f"wrote {path.relative_to(ROOT)} and the audit section of bench/README.md; "
          f"targets: {targets}")


if __name__ == "__main__":
    main()
