"""Shared pieces of the benchmarks: start a server process on loopback, run a
bounded closed-loop load, summarise latencies, write results.

Every load is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up within {timeout} s")


@contextmanager
def server_process(args: list[str], port: int, env: dict[str, str] | None = None,
                   log: Path | None = None, *, stdout_to_log: bool = False
                   ) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server as a child process for the duration of the block.

    Its stderr (the Schakel server logs one JSON line per request there) goes to ``log``,
    or is discarded: a pipe nobody reads would fill up and stall the server.  With
    ``stdout_to_log`` its stdout goes there too (``serve --workers`` announces a worker
    that ended and its replacement on stdout)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    err = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    out = err if stdout_to_log and log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([sys.executable, *args], env=full_env, stdout=out,
                                stderr=err)
    finally:
        if log is not None:
            err.close()  # type: ignore[union-attr]
    try:
        wait_until_up(port)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def loop_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's main thread (for the Schakel server: its event loop;
    the store's writer and reader threads are the other threads)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of a whole process, every thread (for the Schakel server: the event
    loop, the writer with SQLite, the readers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


async def closed_loop(make_request: Callable[[aiohttp.ClientSession, int], Awaitable[int]], *,
                      concurrency: int, requests: int, max_seconds: float = 120.0) -> LoadResult:
    """``concurrency`` workers issue ``requests`` requests in total, each waiting for
    its answer before sending the next.  ``make_request`` returns the HTTP status."""
    latencies: list[float] = []
    errors = 0
    next_index = 0
    deadline = time.monotonic() + max_seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, errors
        while next_index < requests and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            start = time.perf_counter()
            status = await make_request(session, index)
            latencies.append(time.perf_counter() - start)
            if status >= 300:
                errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return LoadResult(concurrency=concurrency, requests=len(latencies), seconds=round(elapsed, 3),
                      per_second=round(len(latencies) / elapsed, 1),
                      p50_ms=round(statistics.median(latencies) * 1000, 2),
                      p99_ms=round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
                      errors=errors)


@dataclass
class CpuLoadResult(LoadResult):
    """A load result with the CPU both sides spent on it (they share the machine's cores)."""

    client_cpu_ms_per_request: float
    server_cpu_ms_per_request: float
    server_main_thread_cpu_ms_per_request: float
    #: Cores busy with other processes than this client and the server under test, on
    #: average over the run (this machine is shared): a noisy round shows here.
    other_processes_cores: float


async def closed_loop_workers(make_request: Callable[[aiohttp.ClientSession, int, int], Awaitable[int]],
                              *, concurrency: int, per_worker: int, max_seconds: float = 60.0,
                              server_pid: int | None = None,
                              connector_limit: int | None = None) -> CpuLoadResult:
    """``concurrency`` workers each issue up to ``per_worker`` requests, each waiting for
    its answer before sending the next; ``make_request(session, worker, j)`` gets the
    worker's number and its own request count (so a worker can extend its own chain).
    Bounded by ``max_seconds``.  Also measures the CPU time this process (the client) and
    ``server_pid`` spent during the run."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + max_seconds

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        nonlocal errors
        for j in range(per_worker):
            if time.monotonic() >= deadline:
                return
            start = time.perf_counter()
            status = await make_request(session, w, j)
            latencies.append(time.perf_counter() - start)
            if status >= 300:
                errors += 1

    connector = aiohttp.TCPConnector(limit=connector_limit or concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        client0 = time.process_time()
        server0 = cpu_seconds(server_pid) if server_pid else 0.0
        loop0 = loop_cpu_seconds(server_pid) if server_pid else 0.0
        busy0 = machine_busy_seconds()
        start = time.perf_counter()
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - client0
        server_cpu = (cpu_seconds(server_pid) - server0) if server_pid else 0.0
        loop_cpu = (loop_cpu_seconds(server_pid) - loop0) if server_pid else 0.0
        others = machine_busy_seconds() - busy0 - client_cpu - server_cpu
    latencies.sort()
    n = max(len(latencies), 1)
    return CpuLoadResult(concurrency=concurrency, requests=len(latencies), seconds=round(elapsed, 3),
                         per_second=round(len(latencies) / elapsed, 1),
                         p50_ms=round(statistics.median(latencies) * 1000, 2),
                         p99_ms=round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
                         errors=errors,
                         client_cpu_ms_per_request=round(client_cpu / n * 1000, 3),
                         server_cpu_ms_per_request=round(server_cpu / n * 1000, 3),
                         server_main_thread_cpu_ms_per_request=round(loop_cpu / n * 1000, 3),
                         other_processes_cores=round(max(others, 0.0) / elapsed, 2))


def commit_latency_ms(directory: Path, commits: int = 200) -> dict[str, float]:
    """What one durable SQLite commit costs on this disk: WAL, ``synchronous=FULL`` (the
    servers' setting), one small insert per transaction; median and p99 in ms."""
    import sqlite3
    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(directory / "commit-probe.db", isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, b BLOB)")
        times = []
        for _ in range(commits):
            start = time.perf_counter()
            db.execute("INSERT INTO t (b) VALUES (?)", (b"x" * 700,))
            times.append(time.perf_counter() - start)
    finally:
        db.close()
    return percentiles(times)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``values`` (seconds) in milliseconds."""
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


def code_version() -> dict[str, Any]:
    """The commit the benchmark ran on and whether the tree had changes (read-only git)."""
    snapshot = ROOT / ".snapshot-of"
    if snapshot.exists():   # a copy of a commit plus changes, made for a quiet run
        return {"commit": snapshot.read_text().strip(), "uncommitted_changes": True}
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return {"commit": commit or None, "uncommitted_changes": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "platform": platform.platform(),
                            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "code": code_version()}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in
                                 Path("/proc/cpuinfo").read_text().splitlines()
                                 if line.startswith("model name"))
        info["load_average_at_write"] = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
        info["memory_mib"] = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text()
                                      .splitlines() if line.startswith("MemTotal"))) // 1024
    except (OSError, StopIteration, ValueError):
        pass
    return info


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=asdict) + "\n")
    return path
