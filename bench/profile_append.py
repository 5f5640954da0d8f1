"""Profile the signed-append path of a real ``schakel serve`` (the append target of
bench/README.md).

A short, bounded run, not a benchmark: ``schakel serve`` under ``bench/profile_serve.py``
with profiling switched off (``SCHAKEL_PROFILE_ON_SIGNAL=1``), a network of ``--partners``
core members bootstrapped over HTTP (``tests/server_harness.py``, as in
``bench/bench_server.py``), a warm-up, then SIGUSR1, ``--appends`` signed appends per
partner at ``--partners`` concurrency, SIGUSR2, and the server stopped (SIGTERM writes the
profile).  It prints the profile's top functions and, per append:

* ``profile ms/append``: the profile's total time (its timer, see below) without the time
  the loop spent waiting in ``select``/``epoll``, divided by the appends;
* ``loop thread CPU ms/append``: the event loop thread's CPU time from ``/proc`` over the
  profiled phase (inflated by the profiler itself; ``--no-profile`` runs the server without
  it and prints only this figure, the whole process's, the rate and the cores each side
  used: a server process at about one core is bound by the GIL, see bench/README.md).

``SCHAKEL_PROFILE_TIMER=cpu`` (the default here) makes cProfile count the loop thread's CPU
time (``time.thread_time``) instead of wall time, so other processes on a shared machine do
not inflate the figures; shares are what to compare, between runs of the same settings.

    .venv/bin/python bench/profile_append.py --out /tmp/append.prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import bench_server  # noqa: E402
from bench.common import (closed_loop_workers, free_port, loop_cpu_seconds,  # noqa: E402
                          process_cpu_seconds, server_process)  # noqa: E402


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a live process, by thread id, from /proc."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, IndexError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


async def _run(tmp: Path, out: Path | None, partners: int, appends: int,
               spy: Path | None = None, gil: bool = False,
               idle: bool = False, database: str | None = None) -> tuple[int, float, float, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = ["serve", "--data", str(tmp / "schakel"), "--port", str(port),
             *(["--database", database] if database else [])]
    args = ([str(ROOT / "bench" / "profile_serve.py"), str(out.resolve()), *serve]
            if out is not None else ["-m", "schakel.cli", *serve])
    env = {"SCHAKEL_SERVER_PASSPHRASE": "", "SCHAKEL_PROFILE_ON_SIGNAL": "1",
           "SCHAKEL_PROFILE_TIMER": os.environ.get("SCHAKEL_PROFILE_TIMER", "cpu")}
    bench_server.PARTNERS = partners
    with server_process(args, port, env=env, log=tmp / "schakel.log") as proc:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=partners + 4)
                                         ) as session:
            b = bench_server.Bench(session, base, proc.pid)
            await b.bootstrap()
            warm = 5
            b.prebuild([warm + appends] * partners)
            r = await closed_loop_workers(b.append, concurrency=partners, per_worker=warm,
                                          server_pid=proc.pid)
            assert r.errors == 0, r
            if out is not None:
                proc.send_signal(signal.SIGUSR1)
                await asyncio.sleep(0.2)
            sampler = None
            if spy is not None:
                # A sampling profiler (py-spy, if installed): no per-call overhead.
                sampler = subprocess.Popen(
                    [os.environ.get("PY_SPY", "py-spy"), "record", "--pid", str(proc.pid),
                     "--rate", "500", "--format", "raw", "--threads", "--nonblocking",
                     *(["--gil"] if gil else []), *(["--idle"] if idle else []),
                     "--output", str(spy)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1.0)
            loop0, all0 = loop_cpu_seconds(proc.pid), process_cpu_seconds(proc.pid)
            threads0 = _thread_cpu(proc.pid)
            r = await closed_loop_workers(b.append, concurrency=partners, per_worker=appends,
                                          server_pid=proc.pid)
            loop_cpu = loop_cpu_seconds(proc.pid) - loop0
            all_cpu = process_cpu_seconds(proc.pid) - all0
            threads = {tid: cpu - threads0.get(tid, 0.0)
                       for tid, cpu in _thread_cpu(proc.pid).items()}
            print("CPU ms/append by thread (the loop first, then the busiest): " + ", ".join(
                f"{'loop' if tid == proc.pid else tid} {cpu / max(r.requests, 1) * 1000:.3f}"
                for tid, cpu in sorted(threads.items(), key=lambda x: (x[0] != proc.pid, -x[1]))
                if cpu > 0), flush=True)
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)
                sampler.wait(timeout=30)
            if out is not None:
                proc.send_signal(signal.SIGUSR2)
                await asyncio.sleep(0.2)
            assert r.errors == 0, r
        proc.terminate()
        proc.wait(timeout=30)
    rate = (f"{r.per_second:.0f} appends/s; server {all_cpu / r.seconds:.2f} cores, "
            f"client {r.client_cpu_ms_per_request * r.per_second / 1000:.2f} cores")
    return r.requests, loop_cpu, all_cpu, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/schakel-append.prof"))
    parser.add_argument("--partners", type=int, default=16)
    parser.add_argument("--appends", type=int, default=40, help="appends per partner")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--spy", type=Path, default=None,
                        help="with --no-profile: sample the server with py-spy (PY_SPY names the "
                             "binary) into this file (collapsed stacks, per thread)")
    parser.add_argument("--gil", action="store_true",
                        help="with --spy: only samples that hold the GIL (the server's Python "
                             "work on every thread, which is what bounds it)")
    parser.add_argument("--idle", action="store_true",
                        help="with --spy: keep the samples of threads that wait (the loop in "
                             "epoll, the writer on its queue), to see how much of the time each "
                             "thread is busy; they include about a second before the load "
                             "starts, while py-spy attaches")
    parser.add_argument("--postgresql", action="store_true",
                        help="store in PostgreSQL: a throw-away cluster (tests/pg_harness.py) "
                             "and schakel serve --database on it")
    parser.add_argument("--no-profile", action="store_true",
                        help="run the server without cProfile; print the loop thread's and the "
                             "whole process's CPU per append (/proc), the rate and the cores "
                             "each side used")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="schakel-profile-") as tmp, \
            contextlib.ExitStack() as stack:
        database = None
        if args.postgresql:
            from tests import pg_harness
            cluster = pg_harness.Cluster(pg_harness.require_bindir())
            cluster.start()
            stack.callback(cluster.stop)
            database = cluster.url(cluster.create_database())
        n, loop_cpu, all_cpu, rate = asyncio.run(_run(
            Path(tmp), None if args.no_profile else args.out, args.partners, args.appends,
            args.spy if args.no_profile else None, args.gil, args.idle, database))
    if args.no_profile:
        print(f"appends {n}; loop thread CPU ms/append {loop_cpu / n * 1000:.3f}; "
              f"server process CPU ms/append {all_cpu / n * 1000:.3f} (no profiler); {rate}")
        return
    for _ in range(50):
        if args.out.exists():
            break
        time.sleep(0.1)
    stats = pstats.Stats(str(args.out))
    waiting = sum(tt for (file, _, name), (_, _, tt, _, _) in stats.stats.items()  # type: ignore[attr-defined]
                  if "poll" in name and ("select" in name or "epoll" in name))
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"appends {n}; profile total {total:.3f} s, waiting in poll {waiting:.3f} s; "
          f"profile ms/append {(total - waiting) / n * 1000:.3f}; "
          f"loop thread CPU ms/append {loop_cpu / n * 1000:.3f}; "
          f"server process CPU ms/append {all_cpu / n * 1000:.3f}")


if __name__ == "__main__":
    main()
