"""Does founding a network through ``schakel serve --workers 2`` meet a worker that does not
know a member yet?  (Seen once in ``bench/bench_backends.py``; not part of ``make bench``.)

``tests/server_harness.py``'s ``register`` admits the members (a trust-log append through
one worker) and at once has each accept the covenant, signed by its new key.  Those requests
reach whichever worker accepted their connection; a worker that has not yet followed the
other's trust-log append (it learns of it through ``NOTIFY``) answers 401 ``untrusted_key``.
This founds ``--tries`` networks of 16 members on one 2-worker server on a throw-away
cluster and prints, for each try, whether it failed, and the server's log lines of every
401 (method, path, status, worker; never content).

    .venv/bin/python bench/probe_workers_founding.py [--tries 10]

Loopback only; bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench import bench_server  # noqa: E402
from bench.bench_server import Bench  # noqa: E402
from bench.common import free_port, server_process  # noqa: E402
from tests import pg_harness  # noqa: E402


async def found(tmp: Path, url: str, tries: int) -> list[str]:
    port = free_port()
    log = tmp / "workers.log"
    outcomes = []
    with server_process(["-m", "schakel.cli", "serve", "--data", str(tmp / "data"), "--port",
                         str(port), "--database", url, "--workers", "2"], port,
                        env={"SCHAKEL_SERVER_PASSPHRASE": ""}, log=log, stdout_to_log=True):
        async with aiohttp.ClientSession() as session:
            bench_server.PARTNERS = 16
            for i in range(tries):
                b = Bench(session, f"http://127.0.0.1:{port}", 0)
                try:
                    await b.bootstrap()
                    outcomes.append("founded")
                except AssertionError as exc:
                    outcomes.append(f"failed: {str(exc)[:200]}")
                print(f"try {i + 1}: {outcomes[-1]}", flush=True)
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            print("log:", line[:300])
            continue
        if isinstance(entry, dict) and entry.get("status") == 401:
            print("log:", line[:400])
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=10)
    args = parser.parse_args()
    bindir = pg_harness.find_bindir()
    if bindir is None:
        raise SystemExit(f"probe_workers_founding: {pg_harness.MISSING}")
    cluster = pg_harness.Cluster(bindir)
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="schakel-founding-") as tmp:
            outcomes = asyncio.run(found(Path(tmp), cluster.url(cluster.create_database()),
                                         max(1, min(args.tries, 50))))
    finally:
        cluster.stop()
    failed = sum(o != "founded" for o in outcomes)
    print(f"{failed} of {len(outcomes)} foundings through --workers 2 failed")


if __name__ == "__main__":
    main()
