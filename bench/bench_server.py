"""The server benchmark: signed appends, sync pages and long-poll
delivery, each next to the same run's ceiling.

One run, one machine state.  Two servers run side by side:

* **the ceiling** -- ``bench/ceiling_server.py``, a bare aiohttp handler: one Ed25519 verify
  and one SQLite insert (WAL, ``synchronous=FULL``, a commit per request).  Each request
  body is a fresh 16-byte nonce plus the bytes of a real event envelope, signed freshly;
* **Schakel** -- a real ``schakel serve --data TMP --port P`` subprocess
  (``python -m schakel.cli serve``).  A network with 128 core members (distinct keys) is
  bootstrapped over HTTP with ``tests/server_harness.py`` and each member creates one case.

Then, at 1, 16 and 128 concurrent clients, three alternating rounds (ceiling, Schakel,
ceiling, Schakel, ceiling, Schakel), so that each ratio compares figures taken moments apart
on this shared machine:

* **signed append**: each partner appends to its own case (``POST .../cases/{case}/events``;
  chains never conflict).  The event envelopes are real (encrypted, signed by the author,
  linked by ``prev``) and built before the clock starts; every request's RFC 9421 signature
  (nonce, ``created``, ``Content-Digest``) is made while the clock runs.

After that, on Schakel alone:

* **sync**: 1, 16 and 128 concurrent readers (distinct member keys) read the feed from
  cursor 0 in pages of 500 (``GET .../sync?after=C&limit=500``), each request signed
  freshly; the page cursors are found in one pass before the clock starts, so a reader
  does not parse the pages it reads;
* **long-poll delivery**: 100 members wait (``GET .../sync?after=END&wait=30``); once the
  server's ``schakel_sync_waiters`` gauge shows all 100 waiting, one member appends one
  event; the latency of each waiter is the time from the append's send (and from its
  acknowledgement) to that waiter's answer.  Repeated 20 times.

Throughputs are reported as ratios to the ceiling at the same concurrency.  The client
(this process: request signing, aiohttp) runs on the same cores as the server; the CPU
time each side spent per request is recorded next to every figure.

    .venv/bin/python bench/bench_server.py            # writes bench/results/server.json
    .venv/bin/python bench/bench_server.py --quick    # a smaller smoke run (not written)

Everything talks to 127.0.0.1 only and every load is bounded in count and time.
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
from yarl import URL  # noqa: E402

from bench.common import (  # noqa: E402
    CpuLoadResult, closed_loop_workers, commit_latency_ms, cpu_seconds, free_port,
    machine_busy_seconds,
    peak_rss_mib, percentiles, server_process, write_result,
)
from schakel.protocol.crypto import Signer, random_bytes  # noqa: E402
from tests.server_harness import (  # noqa: E402
    Actor, Caller, CaseState, Network, Prepared, RealClock, SessionTransport, create_case,
    register, server_keys,
)

LEVELS = (1, 16, 128)
PARTNERS = 128                   # core members with their own key and case
WAITERS = 100                    # long-poll waiters
PAGE = 500                       # sync page size


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def _send(session: aiohttp.ClientSession, base: str, p: Prepared,
                timeout: float = 60.0) -> tuple[int, bytes]:
    async with session.request(p.method, URL(base + p.path, encoded=True), data=p.body or None,
                               headers=list(p.headers), allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        return resp.status, await resp.read()


# =========================================================================== the ceiling


class Ceiling:
    """The ceiling server's client: each request a fresh nonce and a fresh signature."""

    def __init__(self, port: int, payload_template: bytes) -> None:
        self.signer = Signer.generate()
        self.url = f"http://127.0.0.1:{port}/append"
        self.payload_template = payload_template

    def args(self, data: Path, port: int) -> list[str]:
        return [str(ROOT / "bench" / "ceiling_server.py"), "--data", str(data),
                "--port", str(port), "--key", self.signer.verify_key.raw.hex()]

    async def append(self, session: aiohttp.ClientSession, worker: int, j: int) -> int:
        payload = random_bytes(16) + self.payload_template
        body = self.signer.sign(payload) + payload
        async with session.post(self.url, data=body) as resp:
            await resp.read()
            return resp.status


def _line(what: str, c: int, r: CpuLoadResult, unit: str = "req/s", extra: str = "") -> None:
    print(f"{what:<14}c={c:<3} {r.per_second:8.1f} {unit}{extra}  p50 {r.p50_ms} ms  p99 "
          f"{r.p99_ms} ms  errors {r.errors}  cpu/req client {r.client_cpu_ms_per_request} "
          f"server {r.server_cpu_ms_per_request} (main thread "
          f"{r.server_main_thread_cpu_ms_per_request}) ms  others {r.other_processes_cores} cores",
          flush=True)


# =========================================================================== Schakel


class Bench:
    """The Schakel server under test and the network on it."""

    def __init__(self, session: aiohttp.ClientSession, base: str, pid: int) -> None:
        self.session, self.base, self.pid = session, base, pid
        self.clock = RealClock()
        self.caller = Caller(SessionTransport(session, base), base, self.clock, timeout=60.0)
        self.net: Network | None = None
        self.partners: list[Actor] = []
        self.cases: list[CaseState] = []
        #: Per case: pre-built, pre-serialised request bodies of the next events, in order.
        self.bodies: list[list[bytes]] = []
        self.next: list[int] = []

    async def bootstrap(self) -> None:
        keys = await server_keys(self.caller)
        net = self.net = Network(keys, self.clock, name="Benchmarknetwerk")
        self.partners = [net.actor(f"bench-{i:03d}", ring="core") for i in range(PARTNERS)]
        await register(self.caller, net, self.partners)
        sem = asyncio.Semaphore(16)

        async def one(actor: Actor) -> CaseState:
            async with sem:
                # Gated envelopes for the owner only (the body allows at most 64).
                return await create_case(self.caller, net, actor, recipients=[actor])
        self.cases = list(await asyncio.gather(*(one(a) for a in self.partners)))

    def prebuild(self, counts: list[int]) -> float:
        """Build ``counts[i]`` more chained events of case ``i`` (signed by its owner) and
        serialise their request bodies; returns the seconds it took."""
        assert self.net is not None
        start = time.perf_counter()
        self.bodies, self.next = [], []
        for state, actor, n in zip(self.cases, self.partners, counts):
            chain = list(state.events)
            bodies = []
            for _ in range(n):
                envelope = self.net.event(state, actor, _pending=chain)
                chain.append(envelope)
                bodies.append(_dumps({"event": envelope}))
            self.bodies.append(bodies)
            self.next.append(0)
        return time.perf_counter() - start

    def append_request(self, worker: int) -> Prepared:
        assert self.net is not None
        body = self.bodies[worker][self.next[worker]]
        return self.caller.prepare("POST", self.net.path(f"/cases/{self.cases[worker].case}/events"),
                                   self.partners[worker], body=body)

    async def append(self, session: aiohttp.ClientSession, worker: int, j: int) -> int:
        status, _ = await _send(session, self.base, self.append_request(worker))
        if status in (200, 201):
            self.next[worker] += 1
        return status

    async def feed_cursors(self) -> tuple[list[str], int]:
        """The ``after`` of every page of the whole feed (one pass, not timed) and the
        number of items in it."""
        assert self.net is not None
        after, afters, items = "0", [], 0
        while True:
            p = self.caller.prepare("GET", self.net.path(f"/sync?after={after}&limit={PAGE}&wait=0"),
                                    self.partners[0])
            status, raw = await _send(self.session, self.base, p)
            assert status == 200, raw[:300]
            page = json.loads(raw)
            if not page["items"]:
                return afters, items
            afters.append(after)
            items += len(page["items"])
            after = page["cursor"]

    async def waiters_now(self) -> int:
        async with self.session.get(self.base + "/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith("schakel_sync_waiters "):
                return int(float(line.split()[1]))
        return 0


async def run(tmp: Path, plan: dict[int, int], sync_plan: dict[int, int], rounds: int,
              reps: int, max_seconds: float, payload: bytes,
              profile: Path | None = None) -> dict[str, Any]:
    """Both servers run side by side (an idle server costs nothing); at each concurrency
    the ceiling and Schakel are measured in alternating rounds, so that every ratio compares
    figures taken moments apart on this shared machine."""
    ceiling_port, port = free_port(), free_port()
    ceiling = Ceiling(ceiling_port, payload)
    base = f"http://127.0.0.1:{port}"
    serve = ["serve", "--data", str(tmp / "schakel"), "--port", str(port)]
    args = ([str(ROOT / "bench" / "profile_serve.py"), str(profile.resolve()), *serve]
            if profile is not None else ["-m", "schakel.cli", *serve])
    out: dict[str, Any] = {"ceiling": {}, "append": {}, "sync": {}}
    # No operator passphrase (empty): the server generates its own, as it does by default.
    with server_process(ceiling.args(tmp / "ceiling", ceiling_port), ceiling_port,
                        log=tmp / "ceiling.log") as ceiling_proc, \
            server_process(args, port, env={"SCHAKEL_SERVER_PASSPHRASE": ""},
                           log=tmp / "schakel.log") as proc:
        connector = aiohttp.TCPConnector(limit=WAITERS + 16)
        async with aiohttp.ClientSession(connector=connector) as session:
            b = Bench(session, base, proc.pid)
            t0 = time.perf_counter()
            await b.bootstrap()
            out["bootstrap_seconds"] = round(time.perf_counter() - t0, 1)
            # Events each case needs: a warm-up of 10 per case for the first 16, each
            # level's quota per round for the cases of its workers, one per long-poll
            # repetition for the last case.
            counts = [0] * PARTNERS
            for w in range(16):
                counts[w] += 10
            for c in LEVELS:
                for w in range(c):
                    counts[w] += plan[c] * rounds
            counts[PARTNERS - 1] += reps + 2
            out["prebuild_seconds"] = round(b.prebuild(counts), 1)
            out["prebuilt_events"] = sum(counts)
            gc.collect()
            gc.freeze()      # the prebuilt objects never die: keep the client's GC off them
            print(f"bootstrap {out['bootstrap_seconds']} s; {sum(counts)} events prebuilt in "
                  f"{out['prebuild_seconds']} s", flush=True)

            # ------------------------------------------------------- appends vs the ceiling
            await closed_loop_workers(ceiling.append, concurrency=16, per_worker=20,
                                      server_pid=ceiling_proc.pid)                 # warm-up
            await closed_loop_workers(b.append, concurrency=16, per_worker=10, server_pid=proc.pid)
            for c in LEVELS:
                ceil_runs, app_runs = [], []
                for _ in range(rounds):
                    r = await closed_loop_workers(ceiling.append, concurrency=c,
                                                  per_worker=plan[c], max_seconds=max_seconds,
                                                  server_pid=ceiling_proc.pid)
                    _line("ceiling", c, r)
                    ceil_runs.append(r)
                    r = await closed_loop_workers(b.append, concurrency=c, per_worker=plan[c],
                                                  max_seconds=max_seconds, server_pid=proc.pid)
                    _line("signed append", c, r)
                    app_runs.append(r)
                out["ceiling"][str(c)] = _rounds(ceil_runs)
                out["append"][str(c)] = _rounds(app_runs)
            out["ceiling_peak_rss_mib"] = round(peak_rss_mib(ceiling_proc.pid), 1)

            # ---------------------------------------------------------------- sync
            afters, items = await b.feed_cursors()
            out["sync_feed_items"], out["sync_feed_pages"] = items, len(afters)
            items_per_page = items / len(afters)
            assert b.net is not None
            net = b.net

            async def page(session: aiohttp.ClientSession, worker: int, j: int) -> int:
                after = afters[(worker + j) % len(afters)]
                p = b.caller.prepare("GET", net.path(f"/sync?after={after}&limit={PAGE}&wait=0"),
                                     b.partners[worker])
                status, _ = await _send(session, base, p)
                return status

            for c in LEVELS:
                runs = []
                for _ in range(rounds):
                    r = await closed_loop_workers(page, concurrency=c, per_worker=sync_plan[c],
                                                  max_seconds=max_seconds, server_pid=proc.pid)
                    _line("sync", c, r, "pages/s",
                          f" ({r.per_second * items_per_page:7.0f} items/s)")
                    runs.append(r)
                summary = _rounds(runs)
                summary["median_items_per_second"] = round(summary["median_per_second"]
                                                           * items_per_page)
                out["sync"][str(c)] = summary

            # ---------------------------------------------------------------- long-poll
            out["long_poll"] = await long_poll(b, reps)
            out["server_peak_rss_mib"] = round(peak_rss_mib(proc.pid), 1)
            out["server_cpu_seconds_total"] = round(cpu_seconds(proc.pid), 1)
    return out


def _rounds(runs: list[CpuLoadResult]) -> dict[str, Any]:
    """The rounds of one measurement and their medians."""
    def med(name: str) -> float:
        return round(statistics.median(getattr(r, name) for r in runs), 3)
    return {"median_per_second": med("per_second"), "median_p50_ms": med("p50_ms"),
            "median_p99_ms": med("p99_ms"),
            "median_client_cpu_ms_per_request": med("client_cpu_ms_per_request"),
            "median_server_cpu_ms_per_request": med("server_cpu_ms_per_request"),
            "median_server_main_thread_cpu_ms_per_request":
                med("server_main_thread_cpu_ms_per_request"),
            "max_other_processes_cores": max(r.other_processes_cores for r in runs),
            "errors": sum(r.errors for r in runs), "rounds": runs}


async def long_poll(b: Bench, reps: int) -> dict[str, Any]:
    assert b.net is not None
    net = b.net
    author = PARTNERS - 1
    # The end of the feed, from the last page.
    after = "0"
    while True:
        p = b.caller.prepare("GET", net.path(f"/sync?after={after}&limit={PAGE}&wait=0"),
                             b.partners[0])
        status, raw = await _send(b.session, b.base, p)
        page = json.loads(raw)
        if not page["items"]:
            break
        after = page["cursor"]

    from_send: list[float] = []
    from_ack: list[float] = []
    per_rep: list[dict[str, Any]] = []
    failures = 0
    busy0, client0, server0 = machine_busy_seconds(), time.process_time(), cpu_seconds(b.pid)
    started = time.perf_counter()
    for rep in range(reps):
        answers: list[float] = []
        cursors: set[str] = set()

        async def wait(member: int) -> None:
            nonlocal failures
            p = b.caller.prepare("GET", net.path(f"/sync?after={after}&limit={PAGE}&wait=30"),
                                 b.partners[member])
            status, raw = await _send(b.session, b.base, p, timeout=40)
            answers.append(time.perf_counter())
            page = json.loads(raw) if status == 200 else {"items": []}
            if status != 200 or len(page["items"]) != 1:
                failures += 1
            else:
                cursors.add(page["cursor"])

        tasks = [asyncio.create_task(wait(m)) for m in range(WAITERS)]
        deadline = time.monotonic() + 15
        while await b.waiters_now() < WAITERS:
            if time.monotonic() > deadline:
                raise RuntimeError("the 100 waiters did not all start waiting within 15 s")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        prepared = b.append_request(author)
        sent = time.perf_counter()
        status, raw = await _send(b.session, b.base, prepared)
        acked = time.perf_counter()
        if status != 201:
            raise RuntimeError(f"long-poll append failed: {status} {raw[:200]!r}")
        b.next[author] += 1
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        s = [t - sent for t in answers]
        a = [t - acked for t in answers]
        from_send += s
        from_ack += a
        per_rep.append({"append_ms": round((acked - sent) * 1000, 2),
                        "p99_from_send_ms": percentiles(s)["p99_ms"],
                        "max_from_send_ms": percentiles(s)["max_ms"]})
        (after,) = cursors or {after}
    elapsed = time.perf_counter() - started
    others = (machine_busy_seconds() - busy0 - (time.process_time() - client0)
              - (cpu_seconds(b.pid) - server0))
    result = {"waiters": WAITERS, "repetitions": reps, "failed_answers": failures,
              "other_processes_cores": round(max(others, 0.0) / elapsed, 2),
              "median_of_repetition_p99_from_send_ms": round(statistics.median(
                  r["p99_from_send_ms"] for r in per_rep), 2),
              "from_send": percentiles(from_send), "from_ack": percentiles(from_ack),
              "append_ms_median": round(statistics.median(r["append_ms"] for r in per_rep), 2),
              "per_repetition": per_rep}
    print(f"long-poll     100 waiters x {reps}: from send p50 {result['from_send']['p50_ms']} "
          f"p99 {result['from_send']['p99_ms']} max {result['from_send']['max_ms']} ms; from ack "
          f"p50 {result['from_ack']['p50_ms']} p99 {result['from_ack']['p99_ms']} ms; "
          f"failures {failures}", flush=True)
    return result


# =========================================================================== main


def _event_payload() -> bytes:
    """The bytes of one real event envelope (the ceiling's payload)."""
    from schakel.server.serverkeys import ServerKeys as ServerKeyPair
    from tests.server_harness import ServerKeys
    net = Network(ServerKeys.from_json(ServerKeyPair.generate().fingerprints()), RealClock())
    actor = net.actor("ceiling", ring="core")
    net.members[actor.label] = actor
    net.commit_epoch(net.distribution())
    _, state = net.new_case(actor, recipients=[actor])
    return _dumps({"event": net.event(state, actor)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run; nothing written")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run the Schakel server under cProfile (bench/profile_serve.py) and "
                             "write its profile here; the figures are then not written")
    args = parser.parse_args()
    # Requests per worker in one round at each concurrency; each round is also cut at
    # max_seconds.  Three rounds: ceiling, Schakel, ceiling, Schakel, ceiling, Schakel.
    if args.quick:
        plan, sync_plan, rounds, reps, max_seconds = ({1: 100, 16: 10, 128: 3},
                                                      {1: 10, 16: 3, 128: 1}, 1, 3, 10.0)
    else:
        plan, sync_plan, rounds, reps, max_seconds = ({1: 500, 16: 60, 128: 10},
                                                      {1: 60, 16: 8, 128: 2}, 3, 20, 20.0)
    started = time.perf_counter()
    payload = _event_payload()
    with tempfile.TemporaryDirectory(prefix="schakel-bench-") as tmp_name:
        commit = commit_latency_ms(Path(tmp_name) / "probe")
        print(f"one durable SQLite commit on this disk (WAL, synchronous=FULL): median "
              f"{commit['p50_ms']} ms, p99 {commit['p99_ms']} ms", flush=True)
        real = asyncio.run(run(Path(tmp_name), plan, sync_plan, rounds, reps, max_seconds,
                               payload, args.profile))
    ceil = real.pop("ceiling")
    ratios: dict[str, Any] = {"append": {}, "sync_pages": {}, "append_per_round": {}}
    for c in map(str, LEVELS):
        base = ceil[c]["median_per_second"]
        ratios["append"][c] = round(real["append"][c]["median_per_second"] / base, 2)
        ratios["sync_pages"][c] = round(real["sync"][c]["median_per_second"] / base, 2)
        ratios["append_per_round"][c] = [
            round(a.per_second / x.per_second, 2)
            for a, x in zip(real["append"][c]["rounds"], ceil[c]["rounds"])]
    lp = real["long_poll"]
    targets = {
        "signed_append_ratio": {"target": ">= 0.5 of the ceiling",
                                "measured": ratios["append"],
                                "met": {c: v >= 0.5 for c, v in ratios["append"].items()}},
        "long_poll_p99_ms": {"target": "< 100 ms (100 waiters)",
                             "measured_from_send": lp["from_send"]["p99_ms"],
                             "measured_from_ack": lp["from_ack"]["p99_ms"],
                             "met": lp["from_send"]["p99_ms"] < 100 and lp["failed_answers"] == 0},
    }
    result = {
        "what": "signed append, sync and long-poll delivery of a real `schakel serve`, next to "
                "the ceiling (bench/ceiling_server.py) measured in alternating rounds of the "
                "same run; loopback; client and servers share the machine's cores",
        "payload_bytes": len(payload), "sqlite_commit_latency": commit, "rounds": rounds, "requests_per_worker_per_round": plan,
        "ceiling": ceil, "schakel": real, "ratio_to_ceiling": ratios, "targets": targets,
        "run_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps({"ratio_to_ceiling": ratios, "targets": targets}, indent=2, default=str))
    if not args.quick and args.profile is None:
        print("written to", write_result("server", result))


if __name__ == "__main__":
    main()
