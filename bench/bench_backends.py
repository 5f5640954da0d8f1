"""The storage backends side by side: signed appends on SQLite and on PostgreSQL, and the CPU
each costs, next to the same run's ceiling (ADR 0008).

One run, one machine state.  Three servers run side by side, each its own process:

* **the ceiling** -- ``bench/ceiling_server.py`` (one Ed25519 verify and one SQLite insert
  per request, WAL, ``synchronous=FULL``), as in ``bench/bench_server.py``;
* **SQLite** -- ``schakel serve --data TMP/sqlite``;
* **PostgreSQL** -- ``schakel serve --data TMP/postgresql --database postgresql://...`` on a
  throw-away cluster started here by ``tests/pg_harness.py`` (``initdb``; as ``nobody``
  when run as root; 127.0.0.1 only; ``fsync=on``, ``synchronous_commit=on``, the durability
  of SQLite's ``synchronous=FULL``).

Each Schakel server gets its own network of 16 core members (``tests/server_harness.py``),
each member one case; the event envelopes and request bodies are built before the clock starts,
every request's RFC 9421 signature while it runs (as in ``bench/bench_server.py``).  At 1 and
16 concurrent partners, ``ROUNDS`` rounds, each round every server once (the order rotates from
round to round), so that each ratio compares figures taken moments apart on this shared
machine.  For every round, from ``/proc`` before and after:

* **server CPU** -- utime + stime of the Schakel process (every thread; with ``--workers``,
  its whole process tree), or of the ceiling;
* **PostgreSQL CPU** -- utime + stime of the postmaster and every process below it (the
  backends serving the Schakel server's connections, the WAL writer, the checkpointer,
  autovacuum), plus the postmaster's ``cutime`` + ``cstime`` (children that ended and were
  reaped during the round).

The two targets of ADR 0008, each the ratio of medians over the rounds:

1. **total CPU per signed append on PostgreSQL** (server + PostgreSQL) over the SQLite
   server's CPU per signed append: at most 1.5;
2. **server CPU per signed append** (each backend) over the ceiling's CPU per request: at
   most 3.

And a projection of appends/s per added core from the CPU figures (``projection`` in the
result; the assumptions are written next to it).

**Several server processes.**  :func:`schakel_server` takes ``workers``; a server started
with ``workers=2`` runs ``schakel serve --workers 2`` (a supervisor and two workers sharing the
listening socket) and is measured like the others: its CPU is its whole process tree (the
supervisor, the live workers, and workers that ended and were reaped), and each worker's share
of it is recorded per round (``worker_cpu_share``: the kernel hands each new connection to
whichever worker accepts it first, and the load's 16 keep-alive connections stay where they
landed).  When ``schakel serve --help`` offers ``--workers``, this bench adds such a server on
PostgreSQL to the rotating rounds (:func:`targets_for`, the marked line), on a database of its
own on the same cluster, and reports 1 against 2 workers (``workers`` in the result): appends/s
(target: 2 workers at least as many as 1, at 16 partners), and server, PostgreSQL and total CPU
per append; otherwise it records that the option was not there.  Each round also records the
cores the whole machine was busy (``machine_busy_cores``): on 2 cores shared by the load
generator, the server processes and PostgreSQL, a second worker adds appends/s only while the
machine has a core to spare.

    .venv/bin/python bench/bench_backends.py           # writes bench/results/backends.json
    .venv/bin/python bench/bench_backends.py --quick   # a smaller smoke run (not written)

Everything talks to 127.0.0.1 only and every load is bounded in count and time (two to three
minutes in all with the 2-worker server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import bench_server  # noqa: E402
from bench.bench_server import Bench, Ceiling, _event_payload  # noqa: E402
from bench.common import (  # noqa: E402
    closed_loop_workers,
    commit_latency_ms,
    free_port,
    loop_cpu_seconds,
    machine_busy_seconds,
    percentiles,
    server_process,
    write_result,
)
from tests import pg_harness  # noqa: E402
from tests.server_harness import Caller, SessionTransport  # noqa: E402

LEVELS = (1, 16)
PARTNERS = 16                 # core members with their own key and case, per Schakel server
WARM = 10                     # warm-up appends per partner
TARGET_TOTAL_OVER_SQLITE = 1.5
TARGET_SERVER_OVER_CEILING = 3.0
#: appends/s of ``serve --workers 2`` over one worker's, on PostgreSQL at 16 partners.
TARGET_TWO_OVER_ONE_WORKER = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# =========================================================================== CPU from /proc


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None when
    the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_seconds(root: int, *, reaped: bool = True) -> float:
    """User + system CPU seconds of ``root`` and every live process below it, plus (with
    ``reaped``) the CPU of ``root``'s children that ended and were waited for (its
    ``cutime`` + ``cstime``).  For the postmaster: every PostgreSQL process of the
    cluster; for ``schakel serve --workers N``: the parent and its workers."""
    return sum(tree_cpu_by_process(root, reaped=reaped).values())


def tree_cpu_by_process(root: int, *, reaped: bool = True) -> dict[int, float]:
    """:func:`tree_cpu_seconds` per process: pid -> CPU seconds (``root``'s own entry
    includes its reaped children's with ``reaped``)."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None:
            parents[int(entry.name)] = int(fields[1])
            stats[int(entry.name)] = fields
    if root not in stats:
        raise RuntimeError(f"process {root} is gone")
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in members:
                members.add(pid)
                frontier.append(pid)
    ticks = {pid: int(stats[pid][11]) + int(stats[pid][12]) for pid in members}
    if reaped:
        ticks[root] += int(stats[root][13]) + int(stats[root][14])
    return {pid: n / CLK_TCK for pid, n in ticks.items()}


# =========================================================================== the servers


@dataclass
class Target:
    """One server under test: how to start it, and once started its process and client."""

    name: str
    args: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    #: The PostgreSQL cluster it stores in, or None (SQLite, the ceiling).
    cluster: pg_harness.Cluster | None = None
    workers: int = 1
    pid: int = 0
    #: ``append(session, worker, j) -> status``: the ceiling's or a :class:`Bench`'s.
    append: Callable[[aiohttp.ClientSession, int, int], Awaitable[int]] | None = None
    bench: Bench | None = None
    rounds: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def schakel_server(name: str, tmp: Path, cluster: pg_harness.Cluster | None = None,
                   workers: int = 1) -> Target:
    """A ``schakel serve`` on SQLite (``cluster`` None) or on a new database of
    ``cluster``; ``workers`` > 1 adds ``--workers N`` (pre-forked workers on one socket)."""
    port = free_port()
    args = ["-m", "schakel.cli", "serve", "--data", str(tmp / name), "--port", str(port)]
    if cluster is not None:
        args += ["--database", cluster.url(cluster.create_database())]
    if workers > 1:
        args += ["--workers", str(workers)]
    return Target(name, args, port, env={"SCHAKEL_SERVER_PASSPHRASE": ""}, cluster=cluster,
                  workers=workers)


def serve_offers_workers() -> bool:
    """Whether this tree's ``schakel serve`` has ``--workers`` (pre-forked workers)."""
    done = subprocess.run([sys.executable, "-m", "schakel.cli", "serve", "--help"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return "--workers" in done.stdout


def targets_for(tmp: Path, ceiling: Ceiling, ceiling_port: int, cluster: pg_harness.Cluster,
                with_workers: bool) -> list[Target]:
    targets = [Target("ceiling", ceiling.args(tmp / "ceiling", ceiling_port), ceiling_port),
               schakel_server("sqlite", tmp),
               schakel_server("postgresql", tmp, cluster)]
    if with_workers:
        # ---- The hook: two server processes on PostgreSQL (`serve --workers 2`), on a
        # database of its own on the same cluster, in the same rotating rounds.
        targets.append(schakel_server("postgresql-2-workers", tmp, cluster, workers=2))
    return targets


async def bootstrap_through_one_process(t: Target, b: Bench, session: aiohttp.ClientSession,
                                        tmp: Path) -> None:
    """Found ``t``'s network through a single ``schakel serve`` on ``t``'s data directory
    and database (its ``--public-url`` the workers' address, so the requests are signed as
    they will be), stopped before ``t`` starts.

    Through ``--workers 2`` itself the founding fails now and then: a member admitted
    through one worker sends its next request (accepting the covenant) to the other, which
    has not followed the trust log yet and answers 401 ``untrusted_key`` (the workers learn
    a new member from the other's ``NOTIFY``, a moment later).  Founding is not what this
    bench measures, and the workers read every member from the database when they start."""
    port = free_port()
    args = list(t.args)
    args[args.index("--port") + 1] = str(port)
    i = args.index("--workers")
    del args[i:i + 2]
    origin = f"http://127.0.0.1:{t.port}"
    with server_process([*args, "--public-url", origin], port, env=t.env,
                        log=tmp / f"{t.name}-founding.log"):
        b.caller = Caller(SessionTransport(session, f"http://127.0.0.1:{port}"), origin,
                          b.clock, timeout=60.0)
        await b.bootstrap()
    b.caller = Caller(SessionTransport(session, origin), origin, b.clock, timeout=60.0)


def postmaster_pid(cluster: pg_harness.Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().split("\n", 1)[0])


# =========================================================================== one round


async def measure(t: Target, c: int, per_worker: int, max_seconds: float,
                  pg_pid: int | None) -> dict[str, Any]:
    """One round of ``t`` at ``c`` concurrent partners; the CPU of every side per append."""
    assert t.append is not None
    by_process0 = tree_cpu_by_process(t.pid, reaped=t.workers > 1)
    server0 = sum(by_process0.values())
    loop0 = loop_cpu_seconds(t.pid)
    pg0 = tree_cpu_seconds(pg_pid) if pg_pid is not None else 0.0
    busy0, client0 = machine_busy_seconds(), time.process_time()
    r = await closed_loop_workers(t.append, concurrency=c, per_worker=per_worker,
                                  max_seconds=max_seconds)
    client = time.process_time() - client0
    by_process = tree_cpu_by_process(t.pid, reaped=t.workers > 1)
    server = sum(by_process.values()) - server0
    loop = loop_cpu_seconds(t.pid) - loop0
    pg = (tree_cpu_seconds(pg_pid) - pg0) if pg_pid is not None else 0.0
    busy = machine_busy_seconds() - busy0
    n = max(r.requests, 1)
    row: dict[str, Any] = {
           "per_second": r.per_second, "requests": r.requests, "seconds": r.seconds,
           "errors": r.errors, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
           "server_cpu_ms": round(server / n * 1000, 3),
           "server_main_thread_cpu_ms": round(loop / n * 1000, 3) if t.workers == 1 else None,
           "postgresql_cpu_ms": round(pg / n * 1000, 3) if pg_pid is not None else None,
           "total_cpu_ms": round((server + pg) / n * 1000, 3),
           "client_cpu_ms": round(client / n * 1000, 3),
           "other_processes_cores": round(max(busy - client - server - pg, 0.0) / r.seconds, 2),
           "machine_busy_cores": round(busy / r.seconds, 2)}
    if t.workers > 1:
        # Each worker's share of the tree's CPU this round (the supervisor's own is ~0); a
        # worker that was replaced during the round shows as a new pid.
        row["worker_cpu_share"] = sorted(
            (round((by_process[pid] - by_process0.get(pid, 0.0)) / server, 2) if server else None
             for pid in by_process if pid != t.pid), key=lambda x: -(x or 0))
        row["worker_pids"] = sorted(pid for pid in by_process if pid != t.pid)
    print(f"{t.name:<22} c={c:<3} {r.per_second:8.1f} req/s  p50 {r.p50_ms} ms  errors "
          f"{r.errors}  CPU ms/req: server {row['server_cpu_ms']}"
          + (f" + PostgreSQL {row['postgresql_cpu_ms']} = {row['total_cpu_ms']}"
             if pg_pid is not None else "")
          + f"  client {row['client_cpu_ms']}  others {row['other_processes_cores']} cores"
          + f"  busy {row['machine_busy_cores']} cores"
          + (f"  worker shares {row['worker_cpu_share']}" if t.workers > 1 else ""),
          flush=True)
    return row


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(statistics.median(values), 3) if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("per_second", "p50_ms", "p99_ms", "server_cpu_ms", "server_main_thread_cpu_ms",
            "postgresql_cpu_ms", "total_cpu_ms", "client_cpu_ms")
    return {**{f"median_{k}": _median(rows, k) for k in keys},
            "max_other_processes_cores": max(r["other_processes_cores"] for r in rows),
            "median_machine_busy_cores": _median(rows, "machine_busy_cores"),
            "errors": sum(r["errors"] for r in rows), "rounds": rows}


# =========================================================================== the run


async def run(tmp: Path, plan: dict[int, int], rounds: int, max_seconds: float,
              payload: bytes, with_workers: bool) -> dict[str, Any]:
    bench_server.PARTNERS = PARTNERS
    bindir = pg_harness.find_bindir()
    assert bindir is not None       # main() checked
    cluster = pg_harness.Cluster(bindir)
    cluster.start()
    try:
        ceiling_port = free_port()
        ceiling = Ceiling(ceiling_port, payload)
        targets = targets_for(tmp, ceiling, ceiling_port, cluster, with_workers)
        pg_pid = postmaster_pid(cluster)
        out: dict[str, Any] = {"postgresql": _pg_facts(cluster)}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=PARTNERS + 8)
                                         ) as session:
            with contextlib.ExitStack() as stack:
                counts = [WARM] * PARTNERS
                for c in LEVELS:
                    for w in range(c):
                        counts[w] += plan[c] * rounds
                started = time.perf_counter()
                for t in targets:
                    base = f"http://127.0.0.1:{t.port}"
                    b = Bench(session, base, 0) if t.name != "ceiling" else None
                    if b is not None and t.workers > 1:
                        await bootstrap_through_one_process(t, b, session, tmp)
                    proc = stack.enter_context(server_process(t.args, t.port, env=t.env,
                                                              log=tmp / f"{t.name}.log",
                                                              stdout_to_log=t.workers > 1))
                    t.pid = proc.pid
                    if b is None:
                        t.append = ceiling.append
                        continue
                    b.pid = proc.pid
                    if t.workers == 1:
                        await b.bootstrap()
                    b.prebuild(counts)
                    t.bench, t.append = b, b.append
                out["setup_seconds"] = round(time.perf_counter() - started, 1)
                out["prebuilt_events_per_server"] = sum(counts)
                gc.collect()
                gc.freeze()    # the prebuilt objects never die: keep the client's GC off them
                for t in targets:                                               # warm-up
                    assert t.append is not None
                    await closed_loop_workers(t.append, concurrency=PARTNERS,
                                              per_worker=WARM, max_seconds=max_seconds)
                for c in LEVELS:
                    for t in targets:
                        t.rounds[c] = []
                    for i in range(rounds):
                        # The order rotates, so that no server always follows the same one.
                        for t in targets[i % len(targets):] + targets[:i % len(targets)]:
                            uses_pg = t.cluster is not None
                            t.rounds[c].append(await measure(t, c, plan[c], max_seconds,
                                                             pg_pid if uses_pg else None))
        out["levels"] = {str(c): {t.name: summary(t.rounds[c]) for t in targets} for c in LEVELS}
        out["server_logs"] = log_problems({t.name: tmp / f"{t.name}.log" for t in targets})
        out["postgresql_commit_latency"] = pg_commit_latency_ms(cluster)
        return out
    finally:
        cluster.stop()


def _pg_facts(cluster: pg_harness.Cluster) -> dict[str, Any]:
    import psycopg
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        facts: dict[str, Any] = {}
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method",
                     "shared_buffers", "commit_delay", "max_connections"):
            row = conn.execute(f"SHOW {name}").fetchone()
            facts[name] = row[0] if row is not None else None
    return facts


def pg_commit_latency_ms(cluster: pg_harness.Cluster, commits: int = 200) -> dict[str, float]:
    """What one durable PostgreSQL commit costs here (one small insert per transaction,
    over the loopback connection), as ``commit_latency_ms`` measures SQLite's."""
    import psycopg
    name = cluster.create_database()
    with psycopg.connect(cluster.url(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, b bytea)")
        times = []
        for _ in range(commits):
            start = time.perf_counter()
            conn.execute("INSERT INTO t (b) VALUES (%s)", (b"x" * 700,))
            times.append(time.perf_counter() - start)
    return percentiles(times)


# =========================================================================== figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def targets_and_projection(levels: dict[str, dict[str, Any]],
                           pg_commit: dict[str, float]) -> dict[str, Any]:
    """The two targets of ADR 0008 per level (ratio of medians, and the same ratio per
    round), and the projection of appends/s per core."""
    total: dict[str, Any] = {"target": f"<= {TARGET_TOTAL_OVER_SQLITE}x", "measured": {},
                             "per_round": {}, "met": {}}
    server: dict[str, Any] = {"target": f"<= {TARGET_SERVER_OVER_CEILING}x", "measured": {},
                              "per_round": {}, "met": {}}
    for c, row in levels.items():
        pg, sq, ceil = row["postgresql"], row["sqlite"], row["ceiling"]
        ratio = _ratio(pg["median_total_cpu_ms"], sq["median_server_cpu_ms"])
        total["measured"][c] = ratio
        total["per_round"][c] = [_ratio(p["total_cpu_ms"], s["server_cpu_ms"])
                                 for p, s in zip(pg["rounds"], sq["rounds"])]
        total["met"][c] = ratio is not None and ratio <= TARGET_TOTAL_OVER_SQLITE
        server["measured"][c], server["per_round"][c], server["met"][c] = {}, {}, {}
        for name in [n for n in row if n != "ceiling"]:
            ratio = _ratio(row[name]["median_server_cpu_ms"], ceil["median_server_cpu_ms"])
            server["measured"][c][name] = ratio
            server["per_round"][c][name] = [_ratio(s["server_cpu_ms"], x["server_cpu_ms"])
                                            for s, x in zip(row[name]["rounds"], ceil["rounds"])]
            server["met"][c][name] = ratio is not None and ratio <= TARGET_SERVER_OVER_CEILING
    loaded = levels[str(max(LEVELS))]
    pg = loaded["postgresql"]
    per_append_ms = pg["median_server_cpu_ms"] + pg["median_postgresql_cpu_ms"]
    per_core = round(1000 / per_append_ms)
    projection = {
        "appends_per_second_per_core": per_core,
        "from": f"server {pg['median_server_cpu_ms']} + PostgreSQL "
                f"{pg['median_postgresql_cpu_ms']} ms CPU per append at {max(LEVELS)} partners",
        "cores": {str(n): per_core * n for n in (1, 2, 4, 8)},
        "postgresql_commit_p50_ms": pg_commit["p50_ms"],
        "assumptions": [
            ("appends/s = cores / (server CPU per append + PostgreSQL CPU per append): "
             "CPU-bound, one server process per core (serve --workers), every process as "
             "efficient as the one measured here, no CPU for the load generator (it runs "
             "elsewhere)"),
            ("appends to different networks never wait for each other; appends within one "
             "network are serialised wherever the server takes a per-network lock until the "
             "commit, so one network is capped at (appends per commit) / (the lock's hold "
             "time, at least one durable commit)"),
            ("fsync is grouped: each process commits a batch of appends per transaction, so "
             "the commit latency caps each process at batch / commit latency, not at "
             "1 / commit latency"),
        ],
    }
    two = loaded.get("postgresql-2-workers")
    if two is not None:
        # The projection's first assumption, checked: does a second process keep each
        # append's CPU where one process had it?  Then cores / CPU per append holds.
        per_append_two = two["median_server_cpu_ms"] + two["median_postgresql_cpu_ms"]
        projection["two_workers"] = {
            "appends_per_second_per_core": round(1000 / per_append_two),
            "from": f"server (supervisor + 2 workers) {two['median_server_cpu_ms']} + PostgreSQL "
                    f"{two['median_postgresql_cpu_ms']} ms CPU per append at {max(LEVELS)} "
                    f"partners",
            "cpu_per_append_over_one_worker": _ratio(per_append_two, per_append_ms),
            "cores": {str(n): round(1000 / per_append_two) * n for n in (1, 2, 4, 8)},
        }
    return {"total_cpu_postgresql_over_sqlite": total, "server_cpu_over_ceiling": server,
            "projection": projection}


def workers_figures(levels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """1 against 2 workers on PostgreSQL (when the second was measured): appends/s (the
    target at 16 partners: 2 at least as many as 1), CPU per append of the server processes,
    of the cluster and in total, the workers' shares of the CPU, and how busy the machine
    was.  Ratios are of medians, and per round (the rounds rotate, so round i of both was
    taken within seconds)."""
    out: dict[str, Any] = {}
    for c, row in levels.items():
        if "postgresql-2-workers" not in row:
            continue
        one, two = row["postgresql"], row["postgresql-2-workers"]
        ratio = _ratio(two["median_per_second"], one["median_per_second"])
        out[c] = {
            "one_worker_per_second": one["median_per_second"],
            "two_workers_per_second": two["median_per_second"],
            "ratio": ratio,
            "ratio_per_round": [_ratio(b["per_second"], a["per_second"])
                                for a, b in zip(one["rounds"], two["rounds"])],
            "cpu_ms_per_append": {
                name: {"server": r["median_server_cpu_ms"],
                       "postgresql": r["median_postgresql_cpu_ms"],
                       "total": r["median_total_cpu_ms"]}
                for name, r in (("one_worker", one), ("two_workers", two))},
            "total_cpu_two_over_one": _ratio(two["median_total_cpu_ms"],
                                             one["median_total_cpu_ms"]),
            "total_cpu_two_over_one_per_round": [
                _ratio(b["total_cpu_ms"], a["total_cpu_ms"])
                for a, b in zip(one["rounds"], two["rounds"])],
            "worker_cpu_share_per_round": [r.get("worker_cpu_share") for r in two["rounds"]],
            "worker_pids_seen": sorted({pid for r in two["rounds"]
                                        for pid in r.get("worker_pids", [])}),
            "machine_busy_cores": {"one_worker": one["median_machine_busy_cores"],
                                   "two_workers": two["median_machine_busy_cores"]},
            "errors": {"one_worker": one["errors"], "two_workers": two["errors"]},
        }
        if c == str(PARTNERS):
            out[c]["target"] = f"two workers >= {TARGET_TWO_OVER_ONE_WORKER}x one worker's " \
                               f"appends/s"
            out[c]["met"] = ratio is not None and ratio >= TARGET_TWO_OVER_ONE_WORKER
    return out


def log_problems(logs: dict[str, Path]) -> dict[str, Any]:
    """What each server wrote to its log (stderr) at warning level or above, and
    tracebacks: counts and the first few lines, as they were written."""
    out: dict[str, Any] = {}
    for name, path in logs.items():
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        bad: list[str] = []
        for line in lines:
            try:
                level = json.loads(line).get("level")
            except (ValueError, AttributeError):
                level = None
            if level in ("warning", "error", "critical") or line.startswith("Traceback") \
                    or " ended with status " in line:
                bad.append(line[:400])
        out[name] = {"lines": len(lines), "warnings_or_worse": len(bad), "first": bad[:5]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run; nothing written")
    args = parser.parse_args()
    if pg_harness.find_bindir() is None:
        # As the tests do: skipped where PostgreSQL is not installed, a failure under CI.
        print(f"bench_backends: skipped: {pg_harness.MISSING}", flush=True)
        raise SystemExit(1 if pg_harness.IN_CI else 0)
    plan, rounds, max_seconds = (({1: 30, 16: 5}, 1, 10.0) if args.quick
                                 else ({1: 300, 16: 40}, 5, 10.0))
    started = time.perf_counter()
    with_workers = serve_offers_workers()
    print(f"schakel serve --workers: {'offered, measured' if with_workers else 'not offered'}",
          flush=True)
    payload = _event_payload()
    with tempfile.TemporaryDirectory(prefix="schakel-backends-") as tmp_name:
        sqlite_commit = commit_latency_ms(Path(tmp_name) / "probe")
        real = asyncio.run(run(Path(tmp_name), plan, rounds, max_seconds, payload, with_workers))
    figures = targets_and_projection(real["levels"], real["postgresql_commit_latency"])
    result = {
        "what": "signed appends of a real `schakel serve` on SQLite and on PostgreSQL (a "
                "throw-away local cluster), next to the ceiling (bench/ceiling_server.py), in "
                "rotating rounds of the same run; CPU per append from /proc (server process; "
                "PostgreSQL: the postmaster and all its children); loopback; client, servers "
                "and PostgreSQL share the machine's cores",
        "payload_bytes": len(payload), "partners": PARTNERS, "rounds": rounds,
        "requests_per_worker_per_round": plan, "sqlite_commit_latency": sqlite_commit,
        **real, **figures,
        "workers": {"serve_offers_workers": with_workers,
                    "appends_per_second": workers_figures(real["levels"])
                    if with_workers else None},
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps({k: figures[k] for k in figures} | {"workers": result["workers"],
                                                          "server_logs": real["server_logs"]},
                     indent=2))
    if not args.quick:
        print("written to", write_result("backends", result))


if __name__ == "__main__":
    main()
