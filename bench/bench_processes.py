"""Long-poll across server processes: 100 waiters on one ``schakel serve``, the append that
answers them sent to another process on the same PostgreSQL database (ADR 0008).

Two ``schakel serve --database URL`` processes, **A** and **B**, on two loopback ports, on one
database of a throw-away cluster started here by ``tests/pg_harness.py`` (127.0.0.1 only,
``fsync=on``, ``synchronous_commit=on``).  They share one data directory -- the same server
keys and config.json; on PostgreSQL a server does not take the data directory's lock -- and B
runs with ``--public-url`` A's origin, so one signed request is valid at either, as behind
one proxy.  A network of 101 core members is bootstrapped through A (each member one case); B
learns the members from the database (A's trust-log commits are announced with ``NOTIFY``).

Then, in 20 repetitions of each of three modes, the order rotating from repetition to
repetition so that the modes' figures are taken moments apart on this shared machine:

* **across** -- 100 members long-poll A (``GET .../sync?after=END&wait=25``, each signed
  freshly); once A's ``schakel_sync_waiters`` gauge shows all 100 waiting, a 101st member
  appends one event **through B**.  B commits, its ``NOTIFY`` reaches A's listener, A wakes its
  waiters and each reads the new page from the database;
* **same** -- the same, with the append sent to A itself: the single-process path on
  PostgreSQL, the control for what the hop through B adds;
* **sqlite** -- the same on a third server, ``schakel serve`` on SQLite with a network of its
  own (``bench/bench_server.py``'s long-poll): the control for what PostgreSQL adds.

For each repetition the CPU of A, B, the SQLite server and the cluster is taken from
``/proc`` while the waiters arrive (``cpu_admit``) and from then to the last answer
(``cpu_wake``: the append, its commit, the wake-up, 100 page reads and 100 answers), with the
cores the rest of the machine used meanwhile.

The latency of each waiter is the time from the append's send (and from its acknowledgement)
to that waiter's answer, which must hold exactly the appended event.  Target (the long-poll
target of ``bench/bench_server.py``, for several processes): **p99 from the send < 100 ms**,
across processes.

    .venv/bin/python bench/bench_processes.py           # writes bench/results/processes.json
    .venv/bin/python bench/bench_processes.py --quick   # 3 repetitions each; writes nothing

Skipped where PostgreSQL's binaries are not installed (a failure under CI), as
``bench/bench_backends.py``.  Everything talks to 127.0.0.1 only; every request is bounded in
time, and a mode whose waiters are not woken twice in a row is stopped and reported (one to three
minutes in all on this busy machine when nothing is wrong).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import bench_server  # noqa: E402
from bench.bench_backends import (  # noqa: E402
    _pg_facts,
    log_problems,
    postmaster_pid,
    tree_cpu_seconds,
)
from bench.bench_server import PAGE, Bench, _send  # noqa: E402
from bench.common import (  # noqa: E402
    free_port,
    machine_busy_seconds,
    percentiles,
    process_cpu_seconds,
    server_process,
    write_result,
)
from tests import pg_harness  # noqa: E402

WAITERS = 100
PARTNERS = WAITERS + 1          # members 0..99 wait, the last one appends
WAIT = 25                       # the long-poll's wait (seconds), as a partner asks it
TARGET_P99_MS = 100.0
REPS = 20
MODES = ("same", "across", "sqlite")


class NotWoken(RuntimeError):
    """A repetition whose waiters were not all answered with the appended event."""


async def feed_end(b: Bench) -> str:
    """The cursor at the end of the network's feed (read from A)."""
    assert b.net is not None
    after = "0"
    while True:
        p = b.caller.prepare("GET", b.net.path(f"/sync?after={after}&limit={PAGE}&wait=0"),
                             b.partners[0])
        status, raw = await _send(b.session, b.base, p)
        if status != 200:
            raise RuntimeError(f"sync from A: {status} {raw[:200]!r}")
        page = json.loads(raw)
        if not page["items"]:
            return after
        after = page["cursor"]


async def until_known(b: Bench, base: str, member: int, seconds: float = 20.0) -> float:
    """Until the process at ``base`` accepts a request signed by ``member`` (it follows the
    network's members from the database); the seconds that took."""
    assert b.net is not None
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    while True:
        p = b.caller.prepare("GET", b.net.path("/sync?after=0&limit=1&wait=0"),
                             b.partners[member])
        status, raw = await _send(b.session, base, p)
        if status == 200:
            return round(time.perf_counter() - started, 2)
        if time.monotonic() > deadline:
            raise RuntimeError(f"B did not know member {member} within {seconds} s: {status} "
                               f"{raw[:200]!r}")
        await asyncio.sleep(0.1)


#: Cumulative CPU seconds of each process that matters (``A``, ``B``, ``S`` the SQLite
#: server, ``postgresql`` the cluster, ``client`` this process), the machine's busy CPU
#: seconds (``busy``) and the wall clock (``t``).
Snapshot = Callable[[], dict[str, float]]


def _minus(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a[k] - b[k] for k in a}


async def one_repetition(b: Bench, after: str, append_to: str, snap: Snapshot
                         ) -> dict[str, Any]:
    """100 waiters on ``b``'s server, one append through ``append_to``; each waiter's
    answer time, and the CPU of each process while the waiters arrived (``admit``) and from
    the moment all were waiting to the last answer (``wake``: the append, its commit, the
    wake-up, 100 reads and 100 answers)."""
    assert b.net is not None
    net = b.net
    author = PARTNERS - 1
    answers: list[float] = []
    cursors: set[str] = set()
    problems: list[str] = []

    async def wait(member: int) -> None:
        p = b.caller.prepare("GET", net.path(f"/sync?after={after}&limit={PAGE}&wait={WAIT}"),
                             b.partners[member])
        try:
            status, raw = await _send(b.session, b.base, p, timeout=WAIT + 15)
        except (TimeoutError, aiohttp.ClientError) as exc:
            answers.append(time.perf_counter())
            problems.append(f"waiter {member}: {type(exc).__name__}")
            return
        answers.append(time.perf_counter())
        page = json.loads(raw) if status == 200 else {"items": []}
        if status != 200 or len(page["items"]) != 1:
            problems.append(f"waiter {member}: {status}, {len(page['items'])} items")
        else:
            cursors.add(page["cursor"])

    s0 = snap()
    tasks = [asyncio.create_task(wait(m)) for m in range(WAITERS)]
    deadline = time.monotonic() + 15
    while await b.waiters_now() < WAITERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the 100 waiters did not all start waiting on {b.base} "
                               f"within 15 s")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    s1 = snap()
    prepared = b.append_request(author)
    sent = time.perf_counter()
    status, raw = await _send(b.session, append_to, prepared)
    acked = time.perf_counter()
    if status != 201:
        raise RuntimeError(f"the append through {append_to} failed: {status} {raw[:200]!r}")
    b.next[author] += 1
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT + 20)
    s2 = snap()
    from_send = [t - sent for t in answers]
    return {"from_send": from_send, "from_ack": [t - acked for t in answers],
            "append_ms": round((acked - sent) * 1000, 2), "problems": problems,
            "after": cursors.pop() if len(cursors) == 1 else after,
            "p99_from_send_ms": percentiles(from_send)["p99_ms"],
            "max_from_send_ms": percentiles(from_send)["max_ms"],
            "admit": _minus(s1, s0), "wake": _minus(s2, s1)}


async def run(tmp: Path, reps: int, cluster: pg_harness.Cluster) -> dict[str, Any]:
    url = cluster.url(cluster.create_database())
    data = tmp / "server"
    port_a, port_b, port_s = free_port(), free_port(), free_port()
    origin_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    origin_s = f"http://127.0.0.1:{port_s}"
    serve = ["-m", "schakel.cli", "serve", "--data", str(data), "--database", url]
    env = {"SCHAKEL_SERVER_PASSPHRASE": ""}
    logs = {"A": tmp / "a.log", "B": tmp / "b.log", "S": tmp / "s.log"}
    pg_pid = postmaster_pid(cluster)
    out: dict[str, Any] = {"postgresql": _pg_facts(cluster)}
    # A first: it creates the data directory's keys and config.json; B reads them.
    with server_process([*serve, "--port", str(port_a)], port_a, env=env, log=logs["A"],
                        stdout_to_log=True) as proc_a, \
            server_process([*serve, "--port", str(port_b), "--public-url", origin_a], port_b,
                           env=env, log=logs["B"], stdout_to_log=True) as proc_b, \
            server_process(["-m", "schakel.cli", "serve", "--data", str(tmp / "sqlite"),
                            "--port", str(port_s)], port_s, env=env, log=logs["S"],
                           stdout_to_log=True) as proc_s:
        pids = {"A": proc_a.pid, "B": proc_b.pid, "S": proc_s.pid}

        def snap() -> dict[str, float]:
            return {**{name: process_cpu_seconds(pid) for name, pid in pids.items()},
                    "postgresql": tree_cpu_seconds(pg_pid), "client": time.process_time(),
                    "busy": machine_busy_seconds(), "t": time.perf_counter()}

        connector = aiohttp.TCPConnector(limit=WAITERS + 16)
        async with aiohttp.ClientSession(connector=connector) as session:
            bench_server.PARTNERS = PARTNERS
            on_pg = Bench(session, origin_a, proc_a.pid)
            on_sqlite = Bench(session, origin_s, proc_s.pid)
            started = time.perf_counter()
            await on_pg.bootstrap()
            await on_sqlite.bootstrap()
            out["bootstrap_seconds"] = round(time.perf_counter() - started, 1)
            for bench in (on_pg, on_sqlite):
                bench.prebuild([0] * (PARTNERS - 1) + [2 * reps + 2])
            gc.collect()
            gc.freeze()
            out["b_knew_the_author_after_seconds"] = await until_known(on_pg, base_b,
                                                                       PARTNERS - 1)
            # mode -> (the network's bench, whose server the waiters wait on; the append's
            # destination)
            modes = {"same": (on_pg, origin_a), "across": (on_pg, base_b),
                     "sqlite": (on_sqlite, origin_s)}
            after = {id(on_pg): await feed_end(on_pg), id(on_sqlite): await feed_end(on_sqlite)}
            reps_of: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
            stopped: dict[str, str] = {}
            for i in range(reps):
                # The order rotates, so that no mode always follows the same one.
                for mode in MODES[i % len(MODES):] + MODES[:i % len(MODES)]:
                    if mode in stopped:
                        continue
                    bench, append_to = modes[mode]
                    rep = await one_repetition(bench, after[id(bench)], append_to, snap)
                    after[id(bench)] = rep["after"]
                    reps_of[mode].append(rep)
                    print(f"{mode:<7} rep {i + 1:>2}: append {rep['append_ms']:6.2f} ms; from "
                          f"send p99 {rep['p99_from_send_ms']:7.2f} max "
                          f"{rep['max_from_send_ms']:7.2f} ms; wake CPU ms "
                          + " ".join(f"{k} {v * 1000:.0f}" for k, v in rep["wake"].items()
                                     if k in ("A", "B", "S", "postgresql"))
                          + (f"; PROBLEMS {rep['problems'][:3]}" if rep["problems"] else ""),
                          flush=True)
                    failing = [r for r in reps_of[mode][-2:] if r["problems"]]
                    if len(failing) == 2:
                        stopped[mode] = "two repetitions in a row were not all answered"
            out["modes"] = {m: summary(reps_of[m]) for m in MODES}
            out["stopped"] = stopped
    out["server_logs"] = log_problems(logs)
    return out


def summary(reps: list[dict[str, Any]]) -> dict[str, Any]:
    from_send = [x for r in reps for x in r["from_send"]]
    from_ack = [x for r in reps for x in r["from_ack"]]

    def cpu(phase: str) -> dict[str, Any]:
        """Median CPU ms of each process in ``phase`` per repetition, and the cores
        other processes of the machine used meanwhile (summed over the repetitions)."""
        rows = [r[phase] for r in reps]
        if not rows:
            return {}
        ours = ("A", "B", "S", "postgresql", "client")
        total = {k: sum(row[k] for row in rows) for k in rows[0]}
        return {**{f"{k}_ms": round(statistics.median(row[k] for row in rows) * 1000, 1)
                   for k in ours},
                "wall_ms": round(statistics.median(row["t"] for row in rows) * 1000, 1),
                "other_processes_cores": round(max(
                    total["busy"] - sum(total[k] for k in ours), 0.0) / max(total["t"], 1e-9),
                    2),
                "machine_busy_cores": round(total["busy"] / max(total["t"], 1e-9), 2)}

    return {
        "repetitions": len(reps),
        "failed_answers": sum(len(r["problems"]) for r in reps),
        "problems": [p for r in reps for p in r["problems"]][:10],
        "from_send": percentiles(from_send) if from_send else None,
        "from_ack": percentiles(from_ack) if from_ack else None,
        "median_of_repetition_p99_from_send_ms":
            round(statistics.median(r["p99_from_send_ms"] for r in reps), 2) if reps else None,
        "append_ms_median": round(statistics.median(r["append_ms"] for r in reps), 2)
        if reps else None,
        "per_repetition": [{k: r[k] for k in ("append_ms", "p99_from_send_ms",
                                              "max_from_send_ms")} for r in reps],
        # Per repetition: while the 100 waiters arrived, and from then to the last answer.
        "cpu_admit": cpu("admit"), "cpu_wake": cpu("wake"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 repetitions of each mode; nothing written")
    args = parser.parse_args()
    bindir = pg_harness.find_bindir()
    if bindir is None:
        print(f"bench_processes: skipped: {pg_harness.MISSING}", flush=True)
        raise SystemExit(1 if pg_harness.IN_CI else 0)
    reps = 3 if args.quick else REPS
    started = time.perf_counter()
    cluster = pg_harness.Cluster(bindir)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="schakel-processes-") as tmp_name:
            real = asyncio.run(run(Path(tmp_name), reps, cluster))
    finally:
        cluster.stop()
    across = real["modes"]["across"]
    p99 = across["from_send"]["p99_ms"] if across["from_send"] else None
    targets = {"long_poll_across_processes_p99_ms": {
        "target": f"< {TARGET_P99_MS:g} ms from the append's send (100 waiters on A, the append "
                  f"through B), every waiter answered with the appended event",
        "measured_from_send": p99,
        "measured_from_ack": across["from_ack"]["p99_ms"] if across["from_ack"] else None,
        "met": p99 is not None and p99 < TARGET_P99_MS and across["failed_answers"] == 0
        and "across" not in real["stopped"]}}
    result = {
        "what": "long-poll delivery across two `schakel serve` processes on one PostgreSQL "
                "database (a throw-away local cluster): 100 waiters on process A, one append "
                "through process B ('across') or through A ('same', the control), and the same "
                "on a SQLite server ('sqlite', the other control), rotating repetitions; "
                "loopback; client, the servers and PostgreSQL share the machine's cores",
        "waiters": WAITERS, "wait_seconds": WAIT, "repetitions_per_mode": reps,
        **real, "targets": targets, "run_seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps({"targets": targets,
                      "modes": {m: {k: v for k, v in s.items() if k != "per_repetition"}
                                for m, s in real["modes"].items()},
                      "server_logs": real["server_logs"]}, indent=2))
    if not args.quick:
        print("written to", write_result("processes", result))


if __name__ == "__main__":
    main()
