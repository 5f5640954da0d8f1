"""An upper bound for "more than one server process" (ADR 0008, option 2), measured, not built.

Two independent ``schakel serve`` processes, each with its own data directory, network and
128 core members, next to the ceiling (``bench/ceiling_server.py``).  At 16 and 128 concurrent
partners, three alternating rounds of:

* the ceiling at ``c`` clients;
* one Schakel server at ``c`` clients (as ``bench/bench_server.py`` measures it);
* both Schakel servers at once, ``c / 2`` clients each, from the same load generator; their
  appends are added up over the longer of the two runs.

Two servers that share nothing are what a multi-process design could at best become: a real one
would add a shared replay cache, a hand-off of every write to one writer and a notifier that
reaches every process, so it would do more work per append, never less.  One partner cannot be
split over two processes, so that level is not measured here.

    .venv/bin/python bench/probe_two_servers.py     # writes bench/results/two-servers.json

Not part of ``make bench``: it answers one question of ADR 0008.  Loopback only; every load is
bounded in count and time.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import bench_server  # noqa: E402
from bench.bench_server import Bench, Ceiling, _event_payload  # noqa: E402
from bench.common import (CpuLoadResult, closed_loop_workers, commit_latency_ms,  # noqa: E402
                          free_port, server_process, write_result)

LEVELS = (16, 128)
WARM = 10


def _line(what: str, c: int, per_second: float, cpu: str) -> None:
    print(f"{what:<22} c={c:<3} {per_second:8.1f} req/s  {cpu}", flush=True)


async def _pair(a: Bench, b: Bench, c: int, per_worker: int, max_seconds: float,
                pids: tuple[int, int]) -> tuple[float, list[CpuLoadResult]]:
    """Both servers at once, ``c // 2`` clients each; appends per second over the longer run."""
    runs = await asyncio.gather(
        closed_loop_workers(a.append, concurrency=c // 2, per_worker=per_worker,
                            max_seconds=max_seconds, server_pid=pids[0]),
        closed_loop_workers(b.append, concurrency=c // 2, per_worker=per_worker,
                            max_seconds=max_seconds, server_pid=pids[1]))
    return sum(r.requests for r in runs) / max(r.seconds for r in runs), list(runs)


async def run(tmp: Path, plan: dict[int, int], rounds: int, max_seconds: float,
              payload: bytes) -> dict[str, Any]:
    ceiling_port, port_a, port_b = free_port(), free_port(), free_port()
    ceiling = Ceiling(ceiling_port, payload)
    env = {"SCHAKEL_SERVER_PASSPHRASE": ""}

    def serve(name: str, port: int) -> list[str]:
        return ["-m", "schakel.cli", "serve", "--data", str(tmp / name), "--port", str(port)]

    out: dict[str, Any] = {"ceiling": {}, "one": {}, "two": {}}
    with server_process(ceiling.args(tmp / "ceiling", ceiling_port), ceiling_port,
                        log=tmp / "ceiling.log") as ceiling_proc, \
            server_process(serve("a", port_a), port_a, env=env, log=tmp / "a.log") as proc_a, \
            server_process(serve("b", port_b), port_b, env=env, log=tmp / "b.log") as proc_b:
        connector = aiohttp.TCPConnector(limit=2 * bench_server.PARTNERS + 8)
        async with aiohttp.ClientSession(connector=connector) as session:
            a = Bench(session, f"http://127.0.0.1:{port_a}", proc_a.pid)
            b = Bench(session, f"http://127.0.0.1:{port_b}", proc_b.pid)
            await a.bootstrap()
            await b.bootstrap()
            counts_a = [WARM] * bench_server.PARTNERS
            counts_b = [WARM] * bench_server.PARTNERS
            for c in LEVELS:
                for w in range(c):
                    counts_a[w] += plan[c] * rounds                 # one server at c
                for w in range(c // 2):
                    counts_a[w] += plan[c] * rounds                 # both at c / 2
                    counts_b[w] += plan[c] * rounds
            a.prebuild(counts_a)
            b.prebuild(counts_b)
            gc.collect()
            gc.freeze()
            await closed_loop_workers(ceiling.append, concurrency=16, per_worker=20,
                                      server_pid=ceiling_proc.pid)
            await _pair(a, b, 32, WARM, max_seconds, (proc_a.pid, proc_b.pid))
            for c in LEVELS:
                rows: dict[str, list[float]] = {"ceiling": [], "one": [], "two": []}
                cpu: dict[str, list[float]] = {"ceiling": [], "one": [], "two": []}
                for _ in range(rounds):
                    r = await closed_loop_workers(ceiling.append, concurrency=c,
                                                  per_worker=plan[c], max_seconds=max_seconds,
                                                  server_pid=ceiling_proc.pid)
                    rows["ceiling"].append(r.per_second)
                    cpu["ceiling"].append(r.server_cpu_ms_per_request)
                    _line("ceiling", c, r.per_second, f"server CPU {r.server_cpu_ms_per_request} ms/req")
                    r = await closed_loop_workers(a.append, concurrency=c, per_worker=plan[c],
                                                  max_seconds=max_seconds, server_pid=proc_a.pid)
                    rows["one"].append(r.per_second)
                    cpu["one"].append(r.server_cpu_ms_per_request)
                    _line("one server", c, r.per_second, f"server CPU {r.server_cpu_ms_per_request} ms/append")
                    rate, pair = await _pair(a, b, c, plan[c], max_seconds, (proc_a.pid, proc_b.pid))
                    rows["two"].append(round(rate, 1))
                    per_append = statistics.mean(p.server_cpu_ms_per_request for p in pair)
                    cpu["two"].append(round(per_append, 3))
                    _line("two servers together", c, rate,
                          f"server CPU {per_append:.3f} ms/append (mean of the two)")
                for kind in rows:
                    out[kind][str(c)] = {"per_second": rows[kind],
                                         "median_per_second": statistics.median(rows[kind]),
                                         "server_cpu_ms_per_request": cpu[kind]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run; nothing written")
    args = parser.parse_args()
    plan, rounds, max_seconds = (({16: 10, 128: 2}, 1, 10.0) if args.quick
                                 else ({16: 60, 128: 10}, 3, 20.0))
    started = time.perf_counter()
    payload = _event_payload()
    with tempfile.TemporaryDirectory(prefix="schakel-two-") as tmp_name:
        commit = commit_latency_ms(Path(tmp_name) / "probe")
        real = asyncio.run(run(Path(tmp_name), plan, rounds, max_seconds, payload))
    ratios: dict[str, Any] = {"one": {}, "two": {}, "two_per_round": {}}
    for c in map(str, LEVELS):
        base = real["ceiling"][c]["median_per_second"]
        ratios["one"][c] = round(real["one"][c]["median_per_second"] / base, 2)
        ratios["two"][c] = round(real["two"][c]["median_per_second"] / base, 2)
        ratios["two_per_round"][c] = [round(t / x, 2) for t, x in zip(
            real["two"][c]["per_second"], real["ceiling"][c]["per_second"])]
    result = {"what": "two independent schakel serve processes appended to at once, next to "
                      "one of them and the ceiling, alternating rounds; an upper bound for a "
                      "multi-process server (ADR 0008)",
              "rounds": rounds, "requests_per_worker_per_round": plan,
              "sqlite_commit_latency": commit, **real, "ratio_to_ceiling": ratios,
              "run_seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps({"ratio_to_ceiling": ratios}, indent=2))
    if not args.quick:
        print("written to", write_result("two-servers", result))


if __name__ == "__main__":
    main()
