"""What ``schakel audit verify`` costs an auditor: the shipped client's
``AuditMonitor.verify_all`` (client/audit.py) against a real ``schakel serve`` subprocess,
on logs of 10^3 and 10^4 entries.

The log is grown over HTTP: a network with a coordinator, a case owner, a shell partner and
an auditor (a shell member with the ``auditor`` role), one case, and then shares of that
case with the shell partner (each new share is one audit entry), 16 in flight, until the log
holds exactly the size measured.  The auditor then verifies the whole log with a fresh local
state each round (no head held, as on a new machine): the trust view from the coordinator's
fingerprint, the latest head, every entry below it with every check of docs/protocol.md
§16.5, through the client's real signed transport (``schakel.client.transport.Connection``).

Per round: the wall time, this process's CPU (the client: signing, HTTP, parsing, checks) and
the server process's CPU, each per entry, and the number of requests the verification sent.
Client and server share the machine's 2 cores; the figures are medians of the rounds and
``other_processes_cores`` says how busy the rest of the machine was.

    .venv/bin/python bench/bench_audit_verify.py            (make bench runs it)
    .venv/bin/python bench/bench_audit_verify.py --quick    (10^3 only, writes nothing)

``--name`` names the result file (``bench/results/<name>.json``), so that the same script
run on an older tree can record the "before" figures next to these.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    free_port, machine_busy_seconds, process_cpu_seconds, server_process, write_result,
)
from schakel.client.audit import AuditMonitor  # noqa: E402
from schakel.client.errors import ServerMisbehaviour  # noqa: E402
from schakel.client.state import LocalState  # noqa: E402
from schakel.client.transport import Connection  # noqa: E402
from schakel.client.trust import load_trust  # noqa: E402
from schakel.keys.fingerprint import Fingerprint  # noqa: E402
from tests.server_harness import (  # noqa: E402
    Actor, Caller, Network, RealClock, SessionTransport, assert_status, create_case, register,
    server_keys,
)

SIZES = (1_000, 10_000)
ROUNDS = 3
IN_FLIGHT = 16


class CountingConnection(Connection):
    """The client's signed transport, counting the GET requests it sends."""

    requests = 0

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None) -> Any:
        self.requests += 1
        return await super().get(path, params, timeout=timeout)


async def grow(caller: Caller, net: Network, state: Any, shell: Actor, auditor: Actor,
               size: int) -> None:
    """Append shares until the log holds ``size`` entries."""
    head = assert_status(await caller.get(net.path("/audit/head"), auditor), 200)
    todo = iter(range(size - int(head["tree_head"]["signed"]["size"])))

    async def worker() -> None:
        for _ in todo:
            assert_status(await caller.post(net.path("/shares"), net.coordinator,
                                            {"share": net.share(state, shell)}), 201)
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    head = assert_status(await caller.get(net.path("/audit/head"), auditor), 200)
    assert head["tree_head"]["signed"]["size"] == size, "the log did not reach its size"


async def verify_once(base: str, net: Network, auditor: Actor, home: Path, server_pid: int,
                      clock: RealClock) -> dict[str, Any]:
    """One whole-log verification by the auditor with a fresh local state."""
    conn = CountingConnection(base, auditor.keys, auditor.acting_user, timeout=120)
    state = LocalState.open(home / f"auditor-{time.monotonic_ns()}.db", auditor.keys.box_secret,
                            create=True)
    anchor = str(Fingerprint.of(net.coordinator.keys.public.sign))

    def misbehaving(network: str, what: str, message: str, **details: Any) -> ServerMisbehaviour:
        return ServerMisbehaviour(what, message, details=details)

    async def trusted() -> Any:
        return await load_trust(network=net.id, anchor=anchor, get=conn.get, state=state,
                                now=clock.now(), misbehaving=misbehaving)

    monitor = AuditMonitor(network=net.id, me=auditor.key_id, conn=conn, state=state,
                           trusted=trusted, misbehaving=misbehaving)
    try:
        client0, server0, busy0 = (time.process_time(), process_cpu_seconds(server_pid),
                                   machine_busy_seconds())
        start = time.perf_counter()
        verified = await monitor.verify_all()
        wall = time.perf_counter() - start
        client = time.process_time() - client0
        server = process_cpu_seconds(server_pid) - server0
        others = machine_busy_seconds() - busy0 - client - server
    finally:
        await conn.close()
    n = verified.size
    assert verified.checked == n, "the auditor did not check every entry"
    return {"entries": n, "wall_s": round(wall, 3), "requests": conn.requests,
            "wall_ms_per_entry": round(wall / n * 1e3, 4),
            "client_cpu_us_per_entry": round(client / n * 1e6, 1),
            "server_cpu_us_per_entry": round(server / n * 1e6, 1),
            "other_processes_cores": round(max(others, 0.0) / wall, 2)}


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 4)


async def run(port: int, server_pid: int, sizes: tuple[int, ...], rounds: int,
              home: Path) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    clock = RealClock()
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
        caller = Caller(SessionTransport(session, base), base, clock, timeout=60)
        net = Network(await server_keys(caller), clock)
        owner = net.actor("owner", ring="core")
        shell = net.actor("shell", ring="shell")
        auditor = net.actor("auditor", ring="shell", roles=("auditor",))
        await register(caller, net, [owner, shell, auditor])
        state = await create_case(caller, net, owner)
        for size in sizes:
            began = time.perf_counter()
            await grow(caller, net, state, shell, auditor, size)
            print(f"  log grown to {size:,} entries in {time.perf_counter() - began:.1f} s",
                  flush=True)
            measured = [await verify_once(base, net, auditor, home, server_pid, clock)
                        for _ in range(rounds)]
            row = {"entries": size, "rounds": measured,
                   **{key: _median(measured, key) for key in (
                       "wall_s", "wall_ms_per_entry", "client_cpu_us_per_entry",
                       "server_cpu_us_per_entry", "other_processes_cores")},
                   "requests": measured[0]["requests"]}
            print(f"  {size:>6,} entries: {row['wall_s']} s wall, "
                  f"{row['wall_ms_per_entry']} ms/entry, client CPU "
                  f"{row['client_cpu_us_per_entry']} µs/entry, server CPU "
                  f"{row['server_cpu_us_per_entry']} µs/entry, {row['requests']} requests "
                  f"(others {row['other_processes_cores']} cores)", flush=True)
            out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 entries only, write nothing")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--name", default="audit-verify", help="bench/results/<name>.json")
    options = parser.parse_args()
    sizes = SIZES[:1] if options.quick else SIZES
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="schakel-bench-verify-") as tmp:
        data, home = Path(tmp) / "server", Path(tmp) / "client"
        home.mkdir()
        with server_process(["-m", "schakel.cli", "serve", "--data", str(data), "--port",
                             str(port)], port,
                            env={"SCHAKEL_SERVER_PASSPHRASE": "bench-only passphrase"}) as proc:
            results = asyncio.run(run(port, proc.pid, sizes, options.rounds, home))
    if options.quick:
        return
    path = write_result(options.name, {
        "what": "AuditMonitor.verify_all by an auditor (whole-log reader), fresh local state, "
                "against a schakel serve subprocess; medians of the rounds",
        "results": results})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
