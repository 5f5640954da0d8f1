"""Audit append throughput with a witness quorum of 2, against the same server without
witnesses, in one run (docs/protocol.md §17.5).

A real ``schakel serve`` process (``witness_interval`` 1 s, so that its background task
submits checkpoints to the witnesses all through the load) and two real ``schakel witness
serve`` processes.  The coordinator founds two networks on the server: ``plain`` (no
witnesses in its policy) and ``witnessed`` (both witnesses, quorum 2; both witnesses add its
log).  Each audited append is a case read (``GET .../cases/{case}``: the server appends a
``read`` entry, §15.6, in the write transaction of the answer), 16 in flight, signed freshly
by the client library.  Rounds alternate plain, witnessed, plain, witnessed, plain,
witnessed so that each ratio compares figures taken moments apart on this shared machine.

Reported per round: appends per second, the server's CPU seconds per append (every thread of
the process), and the witnesses' CPU over the round; the headline is the median ratio
witnessed / plain of appends per second and of server CPU per append.  At the end, the
cosignatures the server collected for the witnessed network are checked against the log's
latest size.  Writes ``bench/results/witness.json``.

    .venv/bin/python bench/bench_witness.py           # make bench runs it
    .venv/bin/python bench/bench_witness.py --quick   # a smaller smoke run (not written)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import free_port, process_cpu_seconds, write_result  # noqa: E402
from schakel.cli.serverprocess import ServerProcess  # noqa: E402
from schakel.client.partner import Partner  # noqa: E402
from schakel.keys import KdfParams  # noqa: E402
from schakel.protocol.note import parse_note  # noqa: E402
from schakel.protocol.witnessing import AUDIT, log_verifier  # noqa: E402

IN_FLIGHT = 16
PASSPHRASE = "bench passphrase"
WITNESS_PASSPHRASE = "bench witness passphrase"


def _witness_cli(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "SCHAKEL_WITNESS_PASSPHRASE": WITNESS_PASSPHRASE,
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "schakel.cli", "witness", *args, "--dir",
                           str(data_dir)], env=env, text=True, capture_output=True, check=True,
                          timeout=120)
    return done.stdout


def start_witness(tmp: Path, n: int) -> tuple[subprocess.Popen[bytes], str, str]:
    data_dir = tmp / f"witness-{n}"
    vkey = json.loads(_witness_cli(data_dir, "init", "--name", f"w{n}.bench.example/getuige",
                                   "--json"))["vkey"]
    port = free_port()
    env = {**os.environ, "SCHAKEL_WITNESS_PASSPHRASE": WITNESS_PASSPHRASE,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "witness", "serve", "--dir",
                             str(data_dir), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, vkey, f"http://127.0.0.1:{port}"


async def _until_up(url: str) -> None:
    import aiohttp
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(url + "/" + "0" * 64 + "/checkpoint"):
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"witness at {url} did not start")


async def _round(p: Partner, network: str, case: str, count: int, server_pid: int,
                 witness_pids: list[int]) -> dict[str, Any]:
    path = f"/v1/networks/{network}/cases/{case}"
    left = count

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await p.session.conn.get(path)

    cpu0 = process_cpu_seconds(server_pid)
    wcpu0 = sum(process_cpu_seconds(pid) for pid in witness_pids)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    seconds = time.perf_counter() - t0
    cpu = process_cpu_seconds(server_pid) - cpu0
    wcpu = sum(process_cpu_seconds(pid) for pid in witness_pids) - wcpu0
    return {"appends": count, "seconds": round(seconds, 3),
            "per_second": round(count / seconds, 1),
            "server_cpu_ms_per_append": round(1000 * cpu / count, 3),
            "witness_cpu_seconds": round(wcpu, 3)}


async def run(tmp: Path, count: int, rounds: int) -> dict[str, Any]:
    server = ServerProcess(tmp / "server", log_file=tmp / "server.log",
                           limits={"witness_interval": 1.0})
    (tmp / "server").mkdir()
    server.init()
    url = server.start()
    witnesses = [start_witness(tmp, n) for n in (1, 2)]
    try:
        for _, _, wurl in witnesses:
            await _until_up(wurl)
        p = await Partner.create(tmp / "coordinator", PASSPHRASE, name="Welzijn (regie)",
                                 server=url, acting_user="bench-coordinator",
                                 kdf=KdfParams.INTERACTIVE)
        try:
            plain = await p.networks.create(name="Zonder getuigen", kind="neighbourhood",
                                            covenant="bench", server_fingerprint=server.fingerprint)
            log_key = p.networks.verified(plain).server_log
            policy = dict(p.networks.verified(plain).policy)
            policy["witnesses"] = {"quorum": 2, "max_age_hours": 24,
                                   "witnesses": [{"vkey": v, "url": u} for _, v, u in witnesses]}
            witnessed = await p.networks.create(name="Met getuigen", kind="neighbourhood",
                                                covenant="bench", policy=policy,
                                                server_fingerprint=server.fingerprint)
            for n in (1, 2):
                _witness_cli(tmp / f"witness-{n}", "add-log", "--vkey",
                             log_verifier(AUDIT, witnessed, log_key).vkey())
            intake = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
                      "domains": ["loneliness"], "severity": "medium",
                      "care_status": "avoids-care", "source": "partner", "complex": False,
                      "summary": "Woont alleen, komt de deur nauwelijks uit."}
            cases = {plain: await p.cases.create(plain, intake),
                     witnessed: await p.cases.create(witnessed, intake)}
            assert server.proc is not None
            pids = [proc.pid for proc, _, _ in witnesses]
            out: dict[str, list[dict[str, Any]]] = {"plain": [], "witnessed": []}
            for _ in range(rounds):
                for label, network in (("plain", plain), ("witnessed", witnessed)):
                    r = await _round(p, network, cases[network], count, server.proc.pid, pids)
                    out[label].append(r)
                    print(f"{label:>9}: {r['per_second']:8.1f} appends/s, server "
                          f"{r['server_cpu_ms_per_append']:.3f} ms CPU/append, witnesses "
                          f"{r['witness_cpu_seconds']:.2f} s CPU", flush=True)
            await asyncio.sleep(2.5)            # one more pass of the server's witness task
            answer = await p.session.conn.get(f"/v1/networks/{witnessed}/audit/checkpoint")
            note = parse_note(answer["checkpoint"])
            head = await p.session.conn.get(f"/v1/networks/{witnessed}/audit/head")
        finally:
            await p.close()
    finally:
        for proc, _, _ in witnesses:
            proc.terminate()
            proc.wait(timeout=15)
        server.stop()
    rate = [w["per_second"] / q["per_second"] for q, w in zip(out["plain"], out["witnessed"])]
    cpu = [w["server_cpu_ms_per_append"] / q["server_cpu_ms_per_append"]
           for q, w in zip(out["plain"], out["witnessed"])]
    size = int(note.text.split("\n")[1])
    return {
        "in_flight": IN_FLIGHT, "appends_per_round": count, "rounds": out,
        "ratio_witnessed_to_plain": {"appends_per_second": round(statistics.median(rate), 3),
                                     "server_cpu_per_append": round(statistics.median(cpu), 3),
                                     "each_round_rate": [round(r, 3) for r in rate]},
        "after": {"cosignatures": len(note.signatures) - 1, "cosigned_size": size,
                  "log_size": int(head["tree_head"]["signed"]["size"])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run, not written")
    args = parser.parse_args()
    count, rounds = (200, 1) if args.quick else (2000, 3)
    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        result = asyncio.run(run(Path(tmp), count, rounds))
    ratio = result["ratio_witnessed_to_plain"]
    print(f"witness quorum 2 / none: {ratio['appends_per_second']:.3f}x appends per second, "
          f"{ratio['server_cpu_per_append']:.3f}x server CPU per append; "
          f"{result['after']['cosignatures']} cosignatures on size "
          f"{result['after']['cosigned_size']} of {result['after']['log_size']}")
    if not args.quick:
        print(f"wrote {write_result('witness', result)}")


if __name__ == "__main__":
    main()
