"""A new partner catching up: ``Partner.sync`` from cursor 0 on a fresh home of a core
member, against a real ``schakel serve``, next to the same run's crypto ceiling.

The network is built over HTTP on a ``schakel serve`` subprocess
(``schakel.cli.serverprocess.ServerProcess``) with ``tests/server_harness.py``: a
coordinator, eight core authors and the reader (a core member), epoch 1, then
:data:`CASES` cases (owners in turn; identity, gated envelopes for the core, a blind-index
token) and chained events of realistic size -- notes and analyses of 120 to 900
characters -- until the network holds N events (the cases' first events included).  The
events are built and signed before they are sent (as ``bench_server.py`` prebuilds
them), 32 requests in flight; the network grows from 2,000 to 20,000 events in place.

At each size, three alternating rounds:

* **the ceiling** (in this process): per event of the feed, one Ed25519 verify of the
  event's real signing input, one XChaCha20-Poly1305 decrypt of its real ciphertext under
  its case key and context, and one SQLite insert of the envelope's bytes (WAL,
  ``synchronous=FULL``, as the client's ``state.db``), all in one transaction
  (``schakel.protocol.crypto``, i.e. libsodium through PyNaCl).  The inputs are decoded
  before the clock starts.
* **the sync** (in a child process, so its memory and CPU are its own): a fresh copy of
  the reader's home (keystore, ``client.json`` with the coordinator's fingerprint as trust
  anchor, an empty ``state.db``) is opened, and ``Partner.sync(network)`` is called until
  it returns no new items.  Measured: wall time, the child's CPU, the server process's CPU
  over the same interval (``/proc``), the CPU of every other process on the machine, and
  the child's peak resident memory while syncing (``VmHWM`` after
  ``/proc/self/clear_refs`` was reset once the keystore was open, so the Argon2id unlock's
  64 MiB does not count), next to its resident memory before the sync.  The client checks
  the signatures of a long feed in a worker process (``schakel.client.pagecheck``): its
  CPU and peak memory (``/proc``, before the partner is closed) are reported beside the
  child's.

Items/s is the sync's feed items (events, case headers, identity records, memberships ...)
per second of wall time; the ceiling's is events per second.  The ratio is the sync's over
the ceiling's of the same round; ``cpu_ratio`` is the ceiling's CPU per event over the
client's CPU per item (its worker's included), the steadier figure when other processes
share the two cores.  At 2,000 events one more
sync runs under cProfile (not timed) and its top functions go into the result.

    .venv/bin/python bench/bench_client_sync.py           # writes bench/results/client_sync.json
    .venv/bin/python bench/bench_client_sync.py --quick   # 300 events, writes nothing
    .venv/bin/python bench/bench_client_sync.py --profile-out /tmp/sync.prof

Everything talks to 127.0.0.1 only and every load is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The measured side: one sync in a process of its own.
CHILD = ROOT / "bench" / "sync_child.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.sync_child import PASSPHRASE  # noqa: E402
from bench.common import (  # noqa: E402
    write_result,
)
from schakel.cli.serverprocess import ServerProcess  # noqa: E402
from schakel.client.home import ClientConfig, Home  # noqa: E402
from schakel.client.state import LocalState  # noqa: E402
from schakel.keys import KdfParams, save_keystore  # noqa: E402
from schakel.keys.fingerprint import Fingerprint  # noqa: E402
from schakel.protocol import envelopes  # noqa: E402
from schakel.protocol.canonical import canonical_json  # noqa: E402
from schakel.protocol.crypto import VerifyKey, aead_decrypt  # noqa: E402
from schakel.protocol.encoding import b64d  # noqa: E402
from schakel.protocol.signing import signing_input  # noqa: E402
from tests.server_harness import (  # noqa: E402
    Actor, Caller, CaseState, Network, RealClock, SessionTransport, assert_status, create_case,
    register, server_keys,
)

SIZES = (2_000, 20_000)
QUICK = (300,)
CASES = 150
QUICK_CASES = 20
AUTHORS = 8
ROUNDS = 3
IN_FLIGHT = 32
TOP = 20

_SENTENCES = (
    "Huisbezoek afgelegd samen met de wijkverpleegkundige.",
    "Mevrouw geeft aan dat zij zich de laatste weken eenzamer voelt.",
    "De administratie is op orde gebracht; twee rekeningen stonden nog open.",
    "Afgesproken dat de buurtvrijwilliger op dinsdag boodschappen doet.",
    "De dochter is gebeld en komt volgende week langs.",
    "Er is zorg over de hygiene in huis; overleg met de huisarts gepland.",
    "Hij wil geen thuiszorg, maar staat open voor een maaltijdservice.",
    "Het contact verliep goed, er is vertrouwen opgebouwd.",
    "Signaal van de woningcorporatie over geluidsoverlast besproken.",
    "Volgende stap: aanvraag Wmo-ondersteuning samen invullen.",
    "Medicatie wordt niet altijd op tijd ingenomen volgens de apotheek.",
    "In het netwerkoverleg is de verdeling van taken opnieuw vastgelegd.",
)


def _note(rng: random.Random) -> dict[str, Any]:
    """A note or an analysis of 120 to 900 characters (what a worker writes after a visit)."""
    target = rng.randint(120, 900)
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < target:
        parts.append(rng.choice(_SENTENCES))
    text = " ".join(parts)[:target].rstrip() or "Overleg."
    return {"kind": rng.choice(("note", "note", "analysis")), "text": text}


# =========================================================================== the network


class History:
    """The network on the server and what its owners know about it."""

    def __init__(self, caller: Caller, net: Network, authors: list[Actor], reader: Actor) -> None:
        self.caller, self.net, self.authors, self.reader = caller, net, authors, reader
        self.cases: list[CaseState] = []
        self.rng = random.Random(18)

    @property
    def events(self) -> int:
        return sum(len(s.events) for s in self.cases)

    @classmethod
    async def bootstrap(cls, caller: Caller, cases: int) -> History:
        net = Network(await server_keys(caller), caller.clock, name="Catch-up-netwerk")
        authors = [net.actor(f"author-{i}", ring="core") for i in range(AUTHORS)]
        reader = net.actor("reader", ring="core")
        await register(caller, net, [*authors, reader])
        history = cls(caller, net, authors, reader)
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one(i: int) -> CaseState:
            async with sem:
                return await create_case(caller, net, authors[i % AUTHORS])
        history.cases = list(await asyncio.gather(*(one(i) for i in range(cases))))
        return history

    async def grow(self, total: int) -> tuple[float, float]:
        """Append chained events until the network holds ``total`` events, spread evenly
        over the cases; returns (seconds to build them, seconds to send them)."""
        per_case = [total // len(self.cases) + (1 if i < total % len(self.cases) else 0)
                    for i in range(len(self.cases))]
        start = time.perf_counter()
        todo: list[list[dict[str, Any]]] = []
        for state, want in zip(self.cases, per_case):
            chain = list(state.events)
            built = []
            for _ in range(max(0, want - len(chain))):
                envelope = self.net.event(state, state.owner, plaintext=_note(self.rng),
                                          _pending=chain)
                chain.append(envelope)
                built.append(envelope)
            todo.append(built)
        built_s = time.perf_counter() - start
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def send(state: CaseState, envelopes_: list[dict[str, Any]]) -> None:
            for envelope in envelopes_:
                async with sem:
                    assert_status(await self.caller.post(
                        self.net.path(f"/cases/{state.case}/events"), state.owner,
                        {"event": envelope}), 201)
                state.commit(envelope)
        start = time.perf_counter()
        await asyncio.gather(*(send(s, t) for s, t in zip(self.cases, todo)))
        assert self.events == total, (self.events, total)
        return built_s, time.perf_counter() - start

    def fresh_home(self, path: Path, url: str) -> None:
        """The reader's home as it is after a reinstall: its keys restored, the trust
        anchor configured, an empty local state."""
        home = Home(path)
        home.prepare()
        keys = self.reader.keys
        save_keystore(home.keystore, keys, PASSPHRASE, name=self.reader.name,
                      kdf=KdfParams.INTERACTIVE)
        home.write_config(ClientConfig(
            name=self.reader.name, key_id=keys.key_id, server=url,
            acting_user=self.reader.acting_user,
            trusted={self.net.id: Fingerprint.of(self.net.coordinator.keys.public.sign).digits}))
        LocalState.open(home.state_file, keys.box_secret, create=True).close()


# =========================================================================== the ceiling


def ceiling_inputs(history: History) -> list[tuple[VerifyKey, bytes, bytes, Any, bytes, bytes,
                                                   str, bytes]]:
    """Per event of the feed, decoded before the clock starts: the author's key, the
    signing input, the signature, the case key, the ciphertext, its associated data, the
    event id and the envelope's bytes."""
    net = history.net
    keys = {a.key_id: a.keys.public.sign for a in [net.coordinator, *history.authors]}
    out = []
    for state in history.cases:
        for envelope in state.events:
            signed = envelope["signed"]
            version = signed["case_key_version"]
            out.append((keys[signed["author"]], signing_input("event", signed),
                        b64d(envelope["signatures"][0]["sig"]), state.case_keys[version],
                        b64d(signed["ciphertext"]),
                        envelopes.event_context(net.id, state.case, signed["event"],
                                                version=version).associated_data(),
                        signed["event"], canonical_json(envelope)))
    return out


def run_ceiling(inputs: list[Any], directory: Path) -> dict[str, Any]:
    """One round of the ceiling on a new database."""
    path = directory / f"ceiling-{time.monotonic_ns()}.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE events (event TEXT PRIMARY KEY, plaintext BLOB, envelope BLOB)")
        cpu0, start = time.process_time(), time.perf_counter()
        db.execute("BEGIN")
        for vk, message, signature, key, blob, ad, event, raw in inputs:
            vk.verify(message, signature)
            plaintext = aead_decrypt(key, blob, ad)
            db.execute("INSERT INTO events VALUES (?, ?, ?)", (event, plaintext, raw))
        db.execute("COMMIT")
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    finally:
        db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    n = len(inputs)
    return {"events": n, "wall_s": round(wall, 4), "items_per_s": round(n / wall, 1),
            "cpu_us_per_event": round(cpu / n * 1e6, 1)}


# =========================================================================== the sync (child)


def run_child(history: History, template: Path, work: Path, url: str, server_pid: int,
              profile: str | None = None) -> dict[str, Any]:
    home = work / f"home-{time.monotonic_ns()}"
    shutil.copytree(template, home)
    try:
        out = subprocess.run(
            [sys.executable, str(CHILD), str(home), history.net.id, str(server_pid),
             profile or ""],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            timeout=900, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"the sync child failed:\n{out.stderr[-4000:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(home, ignore_errors=True)


# =========================================================================== the profile


def profile_summary(path: str, top: int = TOP) -> dict[str, Any]:
    """The top functions of a cProfile dump by cumulative and by own time."""
    import pstats
    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_cc, calls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = file.replace(str(ROOT) + "/", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        rows.append({"function": f"{where}:{line}({name})", "calls": calls,
                     "own_s": round(tt, 4), "cumulative_s": round(ct, 4),
                     "own_share": round(tt / total, 3), "cumulative_share": round(ct / total, 3)})
    return {"total_s": round(total, 3),
            "by_cumulative": sorted(rows, key=lambda r: -r["cumulative_s"])[:top],
            "by_own": sorted(rows, key=lambda r: -r["own_s"])[:top]}


def _print_profile(summary: dict[str, Any]) -> None:
    print(f"  profile: {summary['total_s']} s under cProfile", flush=True)
    for key in ("by_own", "by_cumulative"):
        print(f"  -- {key}", flush=True)
        for r in summary[key]:
            print(f"    {r['own_share']:6.1%} own {r['cumulative_share']:6.1%} cum "
                  f"{r['calls']:>9,}  {r['function']}", flush=True)


# =========================================================================== main


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 4)


async def run(url: str, server_pid: int, sizes: tuple[int, ...], cases: int, rounds: int,
              work: Path, profile_out: str | None) -> list[dict[str, Any]]:
    clock = RealClock()
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
        caller = Caller(SessionTransport(session, url), url, clock, timeout=120)
        began = time.perf_counter()
        history = await History.bootstrap(caller, cases)
        print(f"  network with {AUTHORS + 2} core members and {cases} cases in "
              f"{time.perf_counter() - began:.1f} s", flush=True)
        template = work / "reader-home"
        history.fresh_home(template, url)
        for size in sizes:
            built, sent = await history.grow(size)
            print(f"  grown to {size:,} events: built in {built:.1f} s, sent in {sent:.1f} s",
                  flush=True)
            inputs = ceiling_inputs(history)
            ceiling, syncs = [], []
            for _ in range(rounds):
                ceiling.append(run_ceiling(inputs, work))
                syncs.append(await asyncio.to_thread(run_child, history, template, work, url,
                                                     server_pid))
                c, s = ceiling[-1], syncs[-1]
                print(f"  {size:>6,}: ceiling {c['items_per_s']:,.0f} events/s "
                      f"({c['cpu_us_per_event']} µs/event) | sync {s['items']:,} items "
                      f"{s['items_per_s']:,.0f} items/s, client {s['client_cpu_us_per_item']} "
                      f"+ worker {s['worker_cpu_us_per_item']} µs/item, server {s['server_cores']} cores, peak "
                      f"{s['peak_rss_during_sync_mib']} MiB (before {s['rss_before_sync_mib']}), "
                      f"others {s['other_processes_cores']} cores | ratio "
                      f"{s['items_per_s'] / c['items_per_s']:.3f}", flush=True)
            ratios = [s["items_per_s"] / c["items_per_s"] for c, s in zip(ceiling, syncs)]
            cpu_ratios = [c["cpu_us_per_event"] /
                          (s["client_cpu_us_per_item"] + s["worker_cpu_us_per_item"])
                          for c, s in zip(ceiling, syncs)]
            row: dict[str, Any] = {
                "events": size, "cases": cases, "items": syncs[0]["items"],
                "ceiling_items_per_s": _median(ceiling, "items_per_s"),
                "ceiling_cpu_us_per_event": _median(ceiling, "cpu_us_per_event"),
                "sync_items_per_s": _median(syncs, "items_per_s"),
                "ratio": round(statistics.median(ratios), 3),
                "ratio_per_round": [round(r, 3) for r in ratios],
                "cpu_ratio": round(statistics.median(cpu_ratios), 3),
                "cpu_ratio_per_round": [round(r, 3) for r in cpu_ratios],
                **{key: _median(syncs, key) for key in (
                    "wall_s", "client_cpu_us_per_item", "client_cores",
                    "worker_cpu_us_per_item", "worker_cores", "server_cpu_us_per_item",
                    "server_cores", "server_share_of_cpu", "other_processes_cores",
                    "rss_before_sync_mib")},
                "peak_rss_during_sync_mib": max(s["peak_rss_during_sync_mib"] for s in syncs),
                "worker_peak_rss_mib": max(s["worker_peak_rss_mib"] for s in syncs),
                "ceiling_rounds": ceiling, "sync_rounds": syncs}
            print(f"  {size:>6,} events: sync {row['sync_items_per_s']:,.0f} items/s, ceiling "
                  f"{row['ceiling_items_per_s']:,.0f} events/s, ratio {row['ratio']} "
                  f"(per round {row['ratio_per_round']}); CPU per item: ceiling/client "
                  f"{row['cpu_ratio']}; peak {row['peak_rss_during_sync_mib']} MiB "
                  f"+ worker {row['worker_peak_rss_mib']} MiB",
                  flush=True)
            if size == sizes[0]:
                prof = profile_out or str(work / "sync.prof")
                await asyncio.to_thread(run_child, history, template, work, url, server_pid, prof)
                row["profile"] = profile_summary(prof)
                _print_profile(row["profile"])
            out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 events, write nothing")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile-out", help="keep the cProfile dump of the first size here")
    parser.add_argument("--name", default="client_sync", help="bench/results/<name>.json")
    options = parser.parse_args()
    sizes, cases = (QUICK, QUICK_CASES) if options.quick else (SIZES, CASES)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="schakel-bench-sync-") as tmp:
        work = Path(tmp)
        server = ServerProcess(work / "server", log_file=work / "server.log")
        server.init()
        url = server.start()
        try:
            assert server.proc is not None
            results = asyncio.run(run(url, server.proc.pid, sizes, cases, options.rounds, work,
                                      options.profile_out))
        finally:
            server.stop()
    print(f"  whole run {time.perf_counter() - began:.0f} s", flush=True)
    if options.quick:
        return
    path = write_result(options.name, {
        "what": "Partner.sync from cursor 0 on a fresh home of a core member, against a "
                "schakel serve subprocess, until caught up; ceiling per event: Ed25519 verify "
                "+ XChaCha20-Poly1305 decrypt of the real event + one SQLite insert, one "
                "transaction (WAL, synchronous=FULL), same run, alternating rounds; medians",
        "memory": "the sync child's VmHWM (peak RSS) after /proc/self/clear_refs was reset "
                  "once the keystore was unlocked; rss_before_sync_mib is VmRSS at that moment",
        "results": results})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
