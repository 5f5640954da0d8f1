"""Disclosures per second, end to end.

One ``schakel serve`` subprocess on loopback.  A network with an owner and a grantee
(professional secrecy), one case with sealed identity, a consent and a grant.  Then the
grantee releases `name` and `address` again and again, each with a fresh release id, at 1
and 16 in flight.  One disclosure is the whole path: the signed request, the server's policy
decision, the audit append and gate-seal removal in one transaction with its signed tree
head, and on the client the receipt verified against that head and both identity records
decrypted with the released class keys.  Client and server share the machine's 2 cores.

    python bench/bench_disclosure.py        (make bench runs it)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import free_port, server_process, write_result  # noqa: E402
from tests.disclosure_harness import consent_and_grant, open_release, release  # noqa: E402
from tests.server_harness import (  # noqa: E402
    IDENTITY, Caller, Network, RealClock, SessionTransport, create_case, enrol, register,
    server_keys,
)

RELEASES = {1: 300, 16: 800}
MAX_SECONDS = 90.0


async def run(port: int) -> dict[str, object]:
    base = f"http://127.0.0.1:{port}"
    clock = RealClock()
    results: dict[str, object] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        caller = Caller(SessionTransport(session, base), base, clock, timeout=30)
        server = await server_keys(caller)
        net = Network(server, clock)
        owner = net.actor("owner", ring="core", party="formal")
        await register(caller, net, [owner])
        grantee = await enrol(caller, net, "grantee", roles=("professional-secrecy",))
        state = await create_case(caller, net, owner)
        _, grant_id = await consent_and_grant(caller, net, state, grantee, ["address", "name"],
                                              recorder=owner)
        for concurrency, total in RELEASES.items():
            latencies: list[float] = []
            budget = iter(range(total))
            deadline = time.monotonic() + MAX_SECONDS

            async def worker() -> None:
                for _ in budget:
                    if time.monotonic() > deadline:
                        return
                    start = time.perf_counter()
                    reply = await release(caller, net, grantee, grant_id)
                    if reply.status != 201:
                        raise RuntimeError(f"release refused: {reply!r}")
                    opened = open_release(reply.json, grantee, net, state, server)
                    if opened["name"] != IDENTITY["name"]:
                        raise RuntimeError("released identity did not decrypt to the owner's record")
                    latencies.append(time.perf_counter() - start)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - began
            latencies.sort()
            results[f"concurrency_{concurrency}"] = {
                "disclosures": len(latencies), "seconds": round(elapsed, 2),
                "per_second": round(len(latencies) / elapsed, 1),
                "p50_ms": round(statistics.median(latencies) * 1000, 2),
                "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2)}
    return results


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        with server_process(["-m", "schakel.cli", "serve", "--data", data, "--port", str(port)], port,
                            env={"SCHAKEL_SERVER_PASSPHRASE": "bench-only passphrase"}):
            results = asyncio.run(run(port))
    path = write_result("disclosure", {"what": "consent-based releases of name+address, end to end "
                                               "(request, decision, audit append, gate removal, "
                                               "receipt verification and decryption on the client)",
                                       "results": results})
    for name, figures in results.items():
        print(name, figures)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
