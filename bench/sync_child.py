"""One catch-up sync of a fresh home, in a process of its own: the measured side of
``bench_client_sync.py``, which starts it as

    python bench/sync_child.py HOME NETWORK SERVER_PID [PROFILE_OUT]

and reads the JSON line it prints.  It imports only what a partner's program needs (the
library).  The worker process the library starts for a long feed is this process's
child: its CPU and peak memory are read from ``/proc`` before the partner is closed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    machine_busy_seconds, peak_rss_mib, process_cpu_seconds,
)
from schakel.client.partner import Partner  # noqa: E402

#: The passphrase of the reader's keystore (the benchmark makes it).
PASSPHRASE = "bench-only passphrase"


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} in /proc/self/status")


async def child(home: Path, network: str, server_pid: int, profile: str | None) -> dict[str, Any]:
    """One catch-up sync of a fresh home (runs in its own process)."""
    partner = await Partner.open(home, PASSPHRASE)
    try:
        try:
            Path("/proc/self/clear_refs").write_text("5")   # VmHWM := VmRSS from here
            hwm_reset = True
        except OSError:
            hwm_reset = False
        rss_before = _status_mib("VmRSS")
        profiler = None
        if profile:
            import cProfile
            profiler = cProfile.Profile()
        client0, server0, busy0 = (time.process_time(), process_cpu_seconds(server_pid),
                                   machine_busy_seconds())
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        items, calls = 0, 0
        while True:
            result = await partner.sync(network)
            calls += 1
            items += result.items
            if result.items == 0:
                break
        if profiler is not None:
            profiler.disable()
        wall = time.perf_counter() - start
        client = time.process_time() - client0
        server = process_cpu_seconds(server_pid) - server0
        # The worker that checked signatures (a child of this process, alive until close):
        # its CPU and its peak memory since it started.
        workers = _children()
        worker = sum(process_cpu_seconds(pid) for pid in workers)
        others = machine_busy_seconds() - busy0 - client - server - worker
        if profiler is not None and profile:
            profiler.dump_stats(profile)
        return {"items": items, "sync_calls": calls, "wall_s": round(wall, 3),
                "items_per_s": round(items / wall, 1),
                "client_cpu_us_per_item": round(client / items * 1e6, 1),
                "client_cores": round(client / wall, 2),
                "worker_cpu_us_per_item": round(worker / items * 1e6, 1),
                "worker_cores": round(worker / wall, 2),
                "worker_peak_rss_mib": round(max((peak_rss_mib(pid) for pid in workers),
                                                 default=0.0), 1),
                "server_cpu_us_per_item": round(server / items * 1e6, 1),
                "server_cores": round(server / wall, 3),
                "server_share_of_cpu": round(server / (client + worker + server), 3),
                "other_processes_cores": round(max(others, 0.0) / wall, 2),
                "rss_before_sync_mib": rss_before,
                "peak_rss_during_sync_mib": _status_mib("VmHWM"),
                "peak_is_since_unlock": hwm_reset}
    finally:
        await partner.close()


def _children() -> list[int]:
    """The process ids of this process's children (``/proc/self/task/*/children``)."""
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids

def main() -> None:
    home, network, pid = sys.argv[1:4]
    profile = sys.argv[4] if len(sys.argv) > 4 else ""
    result = asyncio.run(child(Path(home), network, int(pid), profile or None))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
