"""The scale run: 1,000,000 events in 100,000 cases across 50 networks
and 500 partners (10 per network); then the sync rate from cursor 0 and the server's peak
memory.

1. **Bootstrap over HTTP.**  A real ``schakel serve --data DIR`` subprocess; the 50
   networks (genesis, 10 core memberships each, covenant acceptances, epoch 1) are
   registered with ``tests/server_harness.py`` exactly as partners would.  The server is
   stopped (SIGTERM).
2. **Load, bypassing HTTP.**  The cases and events are real protocol objects (encrypted
   event payloads, headers and events signed by their authors, ``prev`` chains), made with
   the harness's ``Network.new_case``/``Network.event`` in a pool of 2 worker processes.
   They are written with the server's own storage functions -- ``create_case_txn`` (header
   and first event) and ``append_event_txn`` (events 2..10, from various members) --
   through ``schakel.server.storage.Store``, i.e. the server's single writer with group commit
   (up to 64 writes a transaction, ``synchronous=FULL``).  What this skips is HTTP, request
   signatures and the object checks (``server/checks``): ``bench_server.py`` measures
   those.  Appends are written in rounds across a chunk's cases, so the feed interleaves
   cases as it would in use.  Cases carry no identity records, gated envelopes or tokens
   (those are not part of the sync feed).
3. **Measure.**  ``schakel serve`` again on the loaded directory: the sync of one core
   member of one network from cursor 0 to the end in pages of 500 (about 22,000 items:
   2,000 headers and 20,000 events), repeated on 3 networks; then 4 networks synced in
   parallel (one member each).  The client parses each page (it needs the cursor).  Peak
   memory is the server's VmHWM: over its whole life (including the start-up, where the
   keystore is opened with Argon2id -- the server runs with the passphrase it generated
   itself, as by default, so at INTERACTIVE cost) and over the serving phase alone
   (VmHWM reset through ``/proc/PID/clear_refs`` once the server answered).

The load is first timed on a sample (1 % of the chunks but at least one chunk per network:
5 % at full size); if the whole load would take more than ``--budget`` seconds (default
900), every count is scaled down by the factor that fits, and the result says so.

    .venv/bin/python bench/bench_scale.py                # writes bench/results/scale.json
    .venv/bin/python bench/bench_scale.py --scale 0.01   # a 1 % smoke run (not written)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.common import cpu_seconds, free_port, wait_until_up, write_result  # noqa: E402

NETWORKS = 50
PARTNERS_PER_NETWORK = 10
CASES = 100_000
EVENTS_PER_CASE = 10
CHUNK = 100                  # cases generated per worker task
PAGE = 500
WORKERS = 2


# =========================================================================== the server process


@contextmanager
def schakel_serve(data: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    # As an operator runs it by default: no SCHAKEL_SERVER_PASSPHRASE, so the server generates
    # its passphrase (and keystore KDF) on first start and reads it from DIR after.
    env = {**{k: v for k, v in os.environ.items() if k != "SCHAKEL_SERVER_PASSPHRASE"},
           "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "schakel.cli", "serve", "--data", str(data),
                                 "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
    try:
        wait_until_up(port, timeout=120)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def vm_status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


# =========================================================================== bootstrap (HTTP)


@dataclass
class NetworkSpec:
    """What a worker process needs to make a network's cases: ids and secrets (benchmark
    keys, generated here and thrown away with the run)."""

    network: str
    server: dict[str, Any]
    policy: dict[str, Any]
    epoch_key: bytes
    match_key: bytes
    coordinator: tuple[str, bytes, bytes]
    members: list[tuple[str, bytes, bytes]]     # (label, sign seed, box secret)


def _secrets(actor: Any) -> tuple[str, bytes, bytes]:
    return actor.label, actor.keys.signer.export_seed(), actor.keys.box_secret.export_secret()


async def bootstrap(base: str, networks: int) -> list[NetworkSpec]:
    from tests.server_harness import Caller, Network, RealClock, SessionTransport, register, server_keys
    clock = RealClock()
    specs: list[NetworkSpec] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        caller = Caller(SessionTransport(session, base), base, clock, timeout=60)
        keys = await server_keys(caller)
        sem = asyncio.Semaphore(4)

        async def one(i: int) -> NetworkSpec:
            net = Network(keys, clock, name=f"Schaalnetwerk {i:02d}")
            members = [net.actor(f"n{i:02d}-p{j}", ring="core")
                       for j in range(PARTNERS_PER_NETWORK - 1)]
            async with sem:
                await register(caller, net, members)
            epoch_key, match_key = net.epoch_keys[net.epoch]
            return NetworkSpec(network=net.id, server=dict(keys.raw), policy=net.policy,
                               epoch_key=epoch_key.export(), match_key=match_key.export(),
                               coordinator=_secrets(net.coordinator),
                               members=[_secrets(m) for m in members])
        specs = list(await asyncio.gather(*(one(i) for i in range(networks))))
    return specs


# =========================================================================== generation (workers)

_worker_networks: dict[str, Any] = {}
_worker_specs: dict[str, NetworkSpec] = {}


def _worker_init(specs: list[NetworkSpec]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for spec in specs:
        _worker_specs[spec.network] = spec
    import importlib
    for module in ("schakel.server.checks.cases", "tests.server_harness"):
        importlib.import_module(module)             # loaded before the clock runs
    from schakel.protocol import schema
    for kind in ("envelope", "event", "case-header"):
        schema.schema_of(kind)                      # builds (and caches) the validators


def _ready(_: int) -> int:
    time.sleep(0.2)
    return os.getpid()


def _network(spec: NetworkSpec) -> tuple[Any, list[Any]]:
    """The harness's Network for ``spec`` in this worker (its own genesis object is never
    sent anywhere: the registered one is the main process's)."""
    found = _worker_networks.get(spec.network)
    if found is None:
        from schakel.keys import PartnerKeys
        from schakel.protocol.crypto import EpochKey, MatchKey
        from tests.server_harness import Actor, Network, RealClock, ServerKeys

        def actor(label: str, seed: bytes, box: bytes, roles: tuple[str, ...] = ()) -> Any:
            return Actor(label=label, keys=PartnerKeys.from_secrets(seed, box),
                         name=f"Partner {label}", acting_user=f"{label}-user-1", ring="core",
                         roles=roles)
        coordinator = actor(*spec.coordinator, roles=("coordinator",))
        net = Network(ServerKeys.from_json(spec.server), RealClock(), coordinator=coordinator,
                      network=spec.network, policy=spec.policy)
        members = [actor(*m) for m in spec.members]
        for m in members:
            net.members[m.label] = m
        net.epoch = 1
        net.epoch_keys[1] = (EpochKey(spec.epoch_key), MatchKey(spec.match_key))
        found = _worker_networks[spec.network] = (net, [coordinator, *members])
    return found


def _make_chunk(task: tuple[str, int, int], out: str) -> float:
    """``count`` cases of a network, each with its header and first event (a NewCase) and
    the events 2..EVENTS_PER_CASE (NewEvents) by members in turn, pickled into the file
    ``out`` (a pipe would block the worker while the busy main process reads it); returns
    the CPU seconds it took."""
    from schakel.protocol.objects.base import format_timestamp
    from schakel.protocol.objects.cases import Event
    from schakel.server.checks import canonical
    from schakel.server.checks.cases import new_event
    from schakel.server.data.cases import NewCase

    started = time.process_time()
    network, first, count = task
    net, people = _network(_worker_specs[network])
    received = format_timestamp(net.now())
    cases: list[Any] = []
    appends: list[list[Any]] = []
    for k in range(count):
        owner = people[(first + k) % len(people)]
        body, state = net.new_case(owner, identity={}, tokens=[], events=1)
        first_event = body["events"][0]
        events = [new_event(first_event, Event.from_json(first_event["signed"]), received=received,
                            acting_user=owner.acting_user)]
        chain = [first_event]
        later = []
        for seq in range(2, EVENTS_PER_CASE + 1):
            author = people[(first + k + seq) % len(people)]
            envelope = net.event(state, author, _pending=chain)
            chain.append(envelope)
            later.append(new_event(envelope, Event.from_json(envelope["signed"]),
                                   received=received, acting_user=author.acting_user))
        header = body["header"]
        cases.append(NewCase(
            network=network, case=state.case, owner=owner.key_id, kind="case",
            case_key_version=1, header=canonical(header)[0], digest=canonical(body)[1],
            events=tuple(events), identity=(), gated=(), tokens=(), received=received,
            acting_user=owner.acting_user))
        appends.append(later)
    with open(out + ".tmp", "wb") as f:
        pickle.dump((cases, appends), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(out + ".tmp", out)
    return time.process_time() - started


def _read_chunk(path: str) -> tuple[list[Any], list[list[Any]]]:
    with open(path, "rb") as f:
        value = pickle.load(f)
    os.unlink(path)
    return value  # type: ignore[no-any-return]


# =========================================================================== load (Store)


async def load(db: Path, specs: list[NetworkSpec], tasks: list[tuple[str, int, int]],
               pool: Any, *, progress: str = "") -> dict[str, Any]:
    """Generate ``tasks`` in the pool and write them through the server's Store."""
    from schakel.server.data.cases import append_event_txn, create_case_txn
    from schakel.server.storage import Store

    store = Store(db)
    await store.start()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    main0 = time.process_time()
    worker_cpu = 0.0
    writes = 0
    results = iter(enumerate(tasks))
    pending: list[tuple[Any, str]] = []
    spool = tempfile.mkdtemp(prefix="schakel-scale-chunks-", dir=db.parent)

    def submit() -> None:
        item = next(results, None)
        if item is not None:
            path = os.path.join(spool, f"{item[0]}.pickle")
            pending.append((pool.apply_async(_make_chunk, (item[1], path)), path))

    for _ in range(3 * WORKERS):
        submit()
    done = 0
    try:
        while pending:
            result, path = pending.pop(0)
            cpu = await loop.run_in_executor(None, result.get, 600)
            submit()
            cases, appends = await loop.run_in_executor(None, _read_chunk, path)
            worker_cpu += cpu
            window = [store.write(create_case_txn, c, hint_limit=20, notify=c.network)
                      for c in cases]
            for round_ in range(EVENTS_PER_CASE - 1):
                window += [store.write(append_event_txn, later[round_], notify=later[round_].network)
                           for later in appends]
            answers = await asyncio.gather(*window)
            if not all(a.created for a in answers):
                raise RuntimeError("a load write was not new (ids collided?)")
            writes += len(window)
            done += 1
            if progress and done % 50 == 0:
                print(f"{progress} {done}/{len(tasks)} chunks, {writes} writes, "
                      f"{time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await store.close()
        shutil.rmtree(spool, ignore_errors=True)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "writes": writes, "commits": store.commits,
            "worker_cpu_seconds": round(worker_cpu, 1),
            "main_process_cpu_seconds": round(time.process_time() - main0, 1)}


# =========================================================================== measure (sync)


async def sync_whole_feed(session: aiohttp.ClientSession, caller: Any, spec: NetworkSpec,
                          member: Any) -> dict[str, Any]:
    from tests.server_harness import assert_status
    after, items, pages = "0", 0, 0
    start = time.perf_counter()
    while True:
        reply = await caller.get(f"/v1/networks/{spec.network}/sync?after={after}&limit={PAGE}"
                                 f"&wait=0", member)
        page = assert_status(reply, 200)
        pages += 1
        if not page["items"]:
            break
        items += len(page["items"])
        after = page["cursor"]
    seconds = time.perf_counter() - start
    return {"network": spec.network, "items": items, "pages": pages,
            "seconds": round(seconds, 3), "items_per_second": round(items / seconds)}


def _member(spec: NetworkSpec, index: int) -> Any:
    from schakel.keys import PartnerKeys
    from tests.server_harness import Actor
    label, seed, box = spec.members[index]
    return Actor(label=label, keys=PartnerKeys.from_secrets(seed, box), name=label,
                 acting_user=f"{label}-user-1", ring="core")


async def measure(base: str, pid: int, specs: list[NetworkSpec]) -> dict[str, Any]:
    from tests.server_harness import Caller, RealClock, SessionTransport
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
        caller = Caller(SessionTransport(session, base), base, RealClock(), timeout=120)
        # Requests signed before the server started are refused (stale_request): wait for
        # the clock to pass its start second.
        await asyncio.sleep(1.1)
        singles = []
        for spec in specs[:3]:
            cpu0 = cpu_seconds(pid)
            r = await sync_whole_feed(session, caller, spec, _member(spec, 0))
            r["server_cpu_seconds"] = round(cpu_seconds(pid) - cpu0, 2)
            singles.append(r)
            print(f"sync one member from 0: {r['items']} items in {r['pages']} pages, "
                  f"{r['seconds']} s = {r['items_per_second']} items/s", flush=True)
        out["one_member"] = {"runs": singles, "median_items_per_second":
                             statistics.median(r["items_per_second"] for r in singles)}
        chosen = specs[3:7] if len(specs) >= 7 else specs[:4]
        start = time.perf_counter()
        cpu0 = cpu_seconds(pid)
        runs = await asyncio.gather(*(sync_whole_feed(session, caller, s, _member(s, 1))
                                      for s in chosen))
        seconds = time.perf_counter() - start
        total = sum(r["items"] for r in runs)
        out["parallel"] = {"networks": len(chosen), "runs": runs, "seconds": round(seconds, 3),
                           "items": total, "aggregate_items_per_second": round(total / seconds),
                           "server_cpu_seconds": round(cpu_seconds(pid) - cpu0, 2)}
        print(f"sync {len(chosen)} networks in parallel: {total} items in {seconds:.2f} s = "
              f"{total / seconds:.0f} items/s", flush=True)
    return out


# =========================================================================== main


def plan(scale: float) -> tuple[int, int]:
    """(networks, cases) at ``scale``: the 50 networks and 10 partners stay; cases shrink."""
    return NETWORKS, max(NETWORKS, int(CASES * scale))


def tasks_for(specs: list[NetworkSpec], cases: int, skip: int = 0) -> list[tuple[str, int, int]]:
    """Chunks of CHUNK cases, round-robin over the networks so that the feed of each
    network fills evenly; ``skip`` chunks already done."""
    per_network = cases // len(specs)
    out = []
    for first in range(0, per_network, CHUNK):
        for spec in specs:
            out.append((spec.network, first, min(CHUNK, per_network - first)))
    return out[skip:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full counts")
    parser.add_argument("--budget", type=float, default=900.0,
                        help="seconds the load may take; more and the counts are scaled down")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the data directory here (default: a temporary one)")
    args = parser.parse_args()
    started = time.perf_counter()
    result: dict[str, Any] = {
        "what": "sync rate from cursor 0 and peak memory of `schakel serve` on a database "
                "loaded with 50 networks x 10 partners, cases of 10 events each",
        "requested": {"networks": NETWORKS, "partners": NETWORKS * PARTNERS_PER_NETWORK,
                      "cases": int(CASES * args.scale),
                      "events": int(CASES * args.scale) * EVENTS_PER_CASE},
        "loading": "bootstrap (networks, memberships, acceptances, epochs) over HTTP; cases "
                   "and events generated as real signed protocol objects in 2 worker "
                   "processes and written with the server's create_case_txn / "
                   "append_event_txn through schakel.server.storage.Store (its single writer, group "
                   "commit, synchronous=FULL) -- bypassing HTTP, request signatures and "
                   "server/checks",
    }
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="schakel-scale-") as tmp_name:
        data = args.data or Path(tmp_name) / "data"
        log = Path(tmp_name) / "server.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with schakel_serve(data, port, log):
            t0 = time.perf_counter()
            specs = asyncio.run(bootstrap(base, NETWORKS))
            result["bootstrap_seconds"] = round(time.perf_counter() - t0, 1)
        print(f"bootstrapped {len(specs)} networks over HTTP in {result['bootstrap_seconds']} s",
              flush=True)
        _, cases = plan(args.scale)
        all_tasks = tasks_for(specs, cases)
        with ctx.Pool(WORKERS, initializer=_worker_init, initargs=(specs,)) as pool:
            pool.map(_ready, range(2 * WORKERS))          # both workers up and warm
            # A 1 % sample first (at least one chunk per network), timed, to decide the size.
            sample_n = max(len(specs), len(all_tasks) // 100)
            sample = asyncio.run(load(data / "schakel.db", specs, all_tasks[:sample_n], pool))
            per_chunk = sample["seconds"] / sample_n
            estimate = per_chunk * len(all_tasks)
            result["sample"] = {**sample, "chunks": sample_n,
                                "cases": sum(t[2] for t in all_tasks[:sample_n]),
                                "estimated_full_load_seconds": round(estimate)}
            factor = 1.0
            if estimate > args.budget:
                factor = args.budget / estimate
                keep = max(sample_n, int(len(all_tasks) * factor))
                print(f"estimated load {estimate:.0f} s > budget {args.budget:.0f} s: scaling "
                      f"the counts by {factor:.3f}", flush=True)
                all_tasks = all_tasks[:keep]
            print(f"sample: {result['sample']['cases']} cases in {sample['seconds']} s (worker CPU "
                  f"{sample['worker_cpu_seconds']} s, main {sample['main_process_cpu_seconds']} s); "
                  f"whole load ~{per_chunk * len(all_tasks):.0f} s", flush=True)
            rest = asyncio.run(load(data / "schakel.db", specs, all_tasks[sample_n:], pool,
                                    progress="load"))
        loaded_cases = sum(t[2] for t in all_tasks)
        result["scaled_by"] = round(factor, 4)
        result["loaded"] = {"networks": len(specs), "partners": len(specs) * PARTNERS_PER_NETWORK,
                            "cases": loaded_cases, "events": loaded_cases * EVENTS_PER_CASE,
                            "feed_items": loaded_cases * (EVENTS_PER_CASE + 1),
                            "seconds": round(sample["seconds"] + rest["seconds"], 1),
                            "writes": sample["writes"] + rest["writes"],
                            "commits": sample["commits"] + rest["commits"],
                            "worker_cpu_seconds": round(sample["worker_cpu_seconds"]
                                                        + rest["worker_cpu_seconds"], 1)}
        result["loaded"]["events_per_second"] = round(result["loaded"]["events"]
                                                      / result["loaded"]["seconds"])
        sizes = {p.name: p.stat().st_size for p in data.iterdir() if p.name.startswith("schakel.db")}
        result["database_mib"] = round(sum(sizes.values()) / 2**20, 1)
        print(f"loaded {loaded_cases} cases / {loaded_cases * EVENTS_PER_CASE} events in "
              f"{result['loaded']['seconds']} s; database {result['database_mib']} MiB", flush=True)

        gc.collect()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        with schakel_serve(data, port, log) as proc:
            result["server_start_seconds"] = round(time.perf_counter() - t0, 1)
            at_start = vm_status(proc.pid)
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")   # VmHWM := VmRSS from here
            result["sync"] = asyncio.run(measure(base, proc.pid, specs))
            after = vm_status(proc.pid)
            result["memory_mib"] = {
                "lifetime_peak_VmHWM_at_start": at_start["VmHWM"],
                "rss_after_start": at_start["VmRSS"],
                "serving_peak_VmHWM": after["VmHWM"],
                "rss_after_sync": after["VmRSS"],
                "note": "the lifetime peak is reached at start-up, when the server's keystore "
                        "is opened (Argon2id; with the passphrase the server generated, as "
                        "here, at INTERACTIVE cost, 64 MiB; with SCHAKEL_SERVER_PASSPHRASE at "
                        "MODERATE, 256 MiB); VmHWM was then reset (/proc/PID/clear_refs) and "
                        "serving_peak is the peak over the sync runs",
            }
            print(f"server memory: lifetime peak {at_start['VmHWM']} MiB (start-up), serving "
                  f"peak {after['VmHWM']} MiB, RSS after sync {after['VmRSS']} MiB", flush=True)
            result["server_peak_rss_mib_lifetime"] = max(at_start["VmHWM"], after["VmHWM"])
    mem = result["memory_mib"]
    result["targets"] = {"peak_memory_mib": {
        "target": "< 300 MiB at the scale run",
        "serving_peak": mem["serving_peak_VmHWM"],
        "lifetime_peak_including_keystore_kdf": result["server_peak_rss_mib_lifetime"],
        "met_while_serving": mem["serving_peak_VmHWM"] < 300,
        "met_over_lifetime": result["server_peak_rss_mib_lifetime"] < 300}}
    result["run_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: result[k] for k in ("loaded", "scaled_by", "targets")}, indent=2))
    if args.scale == 1.0:
        print("written to", write_result("scale", result))


if __name__ == "__main__":
    main()
