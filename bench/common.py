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
def server_process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server as a child process for the duration of the block."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen([sys.executable, *args], env=full_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_until_up(port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "when": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, default=asdict) + "\n")
    return path
