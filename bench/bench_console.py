"""The console (``schakel console``, ADR 0040) on a big network: how long its pages take
with 10,000 cases in the home, and how fast it verifies a 10^5-entry audit log next to
``schakel audit verify`` on the same log.

**The fixture.** A ``schakel serve`` subprocess (``schakel.cli.serverprocess.ServerProcess``)
and a network built over HTTP with ``tests/server_harness.py``, as ``bench_client_sync.py``
builds its network: the coordinator, four core authors and a shell partner, epoch 1, then
:data:`CASES` cases (owners in turn, each with its intake as first event; the intake's
problem domains rotate, so a filter on one domain matches a share of them), built and sent
32 in flight, and :data:`SIGNALS` signals from the shell partner to the coordinator.  The
cases carry no sealed identity and no blind-index token: the console's pages show the
anonymous layer only, and the gated envelopes of identity for every core member made a
case about 7 times dearer to build (about 50 ms on this machine).  The coordinator's home is
then made as after a reinstall (keys restored, its own fingerprint as trust anchor, an
empty ``state.db``) and synced until nothing is new, so its local state holds every case
before anything is measured.  Creating the cases through ``Partner.cases.create`` one at
a time would take about 30 ms each (the PII guard, the client's checks and a round trip
per case); built by the harness and sent concurrently they take a fraction of that, and
the server checks every request as it always does.

The audit log is grown to :data:`ENTRIES` entries from one share of a case with the shell
partner sent over HTTP (one audit entry, as ``bench_audit_verify.py`` grows its logs): with
the server stopped, copies of that entry are appended by the server's own
``schakel.server.audit.append_txn`` with its own log key (:func:`grow`), each with its own
index, salt, time, sealed purpose and signed head, 1,000 to a transaction.  Sending 10^5
shares over HTTP would take longer than the rest of the benchmark together; the
verification reads the log through the running server either way.

**Pages.** ``schakel console --no-browser`` runs as a process over that home (the start
token exchanged for a session, the unlock form sent as a browser sends it); an aiohttp
client asks each page :data:`REQUESTS` times one after the other (after two warm-ups):
the case list unfiltered and filtered on one problem domain, the case list with "update
now" (``?sync=1``: a sync first, as every case page does once :data:`SYNC_EVERY
<schakel.cli.console.cases.SYNC_EVERY>` seconds have passed), one case, the signals inbox
and the networks page.  Each answer is read whole; ``first_ms`` is the first warm-up (for
the case list: the first one after the unlock, which builds every row once).  Per page:
p50, p95 and max, and the console's and the server's CPU per request (``/proc``).  The
signals inbox asks the server on every request; the other case pages within
``SYNC_EVERY`` of the last sync do not, so their figures are those of a user clicking
through the list, and ``cases_synced`` is the page a user gets once per ``SYNC_EVERY``.
Target: **p95 < 200 ms** on every page.

**Audit verification.** In alternating rounds on the same home and log: ``schakel audit
verify --json NETWORK`` as a process (wall time from start to exit, the unlock and the
interpreter's start included), and the console's verification: ``POST
/n/{network}/audit/verify``, then ``GET /n/{network}/audit`` every
:data:`POLL` seconds until the page no longer says it is running.  The figure is the
ratio of the command's wall time to the console's (target **≥ 0.5**: the console at least
half as fast as the command).

    .venv/bin/python bench/bench_console.py                 # writes bench/results/console.json
    .venv/bin/python bench/bench_console.py --quick         # 300 cases, 2,000 entries, writes nothing
    .venv/bin/python bench/bench_console.py --data DIR      # keep (or reuse) the fixture in DIR

``--name`` names the result file, so that the same script on an older tree can record
the "before" figures next to these.  Everything talks to 127.0.0.1 only, every load is
bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.common import cpu_seconds, machine_busy_seconds, write_result  # noqa: E402
from schakel.cli.serverprocess import ServerProcess  # noqa: E402
from schakel.client.home import ClientConfig, Home  # noqa: E402
from schakel.client.partner import Partner  # noqa: E402
from schakel.client.state import LocalState  # noqa: E402
from schakel.keys import KdfParams, save_keystore  # noqa: E402
from schakel.keys.fingerprint import Fingerprint  # noqa: E402
from tests.server_harness import (  # noqa: E402
    INTAKE, Actor, Caller, CaseState, Network, RealClock, SessionTransport, assert_status,
    register, send_signal, server_keys,
)

CASES = 10_000
ENTRIES = 100_000
SIGNALS = 40
QUICK = {"cases": 300, "entries": 2_000}
AUTHORS = 4
IN_FLIGHT = 32
REQUESTS = 40
WARM_UP = 2
ROUNDS = 3
POLL = 0.1
TARGET_P95_MS = 200.0
TARGET_RATIO = 0.5
#: The passphrase of the coordinator's home (the benchmark makes it).
PASSPHRASE = "bench-only console passphrase"
#: The problem domains the intakes rotate through (the filtered list asks for the first).
DOMAINS = (("financial",), ("loneliness", "self-care"), ("eviction", "financial"),
           ("psychosocial", "loneliness"), ("nuisance",))
#: What the console's address looks like on its standard output.
ADDRESS = re.compile(r"http://127\.0\.0\.1:(\d+)/\?token=[A-Za-z0-9_-]+")
#: The reason the shares of the audit log give (tests/server_harness.py ``Network.share``).
SHARE_REASON = "vraagt hulp bij de administratie"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def environment() -> dict[str, str]:
    """The parent's environment without any ``SCHAKEL_*`` variable, the repository on the
    path (as ``ServerProcess`` starts its child)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHAKEL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


# =========================================================================== the fixture


async def build(url: str, work: Path, cases: int) -> tuple[dict[str, Any], Actor]:
    """The network on the server and the coordinator's synced home in ``work/home``."""
    clock = RealClock()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT)) as session:
        caller = Caller(SessionTransport(session, url), url, clock, timeout=120)
        net = Network(await server_keys(caller), clock, name="Console-netwerk")
        authors = [net.actor(f"author-{i}", ring="core") for i in range(AUTHORS)]
        shell = net.actor("shell", ring="shell")
        await register(caller, net, [*authors, shell])
        sem = asyncio.Semaphore(IN_FLIGHT)
        began = time.perf_counter()

        async def one(i: int) -> CaseState:
            owner = authors[i % AUTHORS]
            async with sem:
                body, state = net.new_case(owner, events=0, identity={}, tokens=[])
                intake = {**INTAKE, "domains": list(DOMAINS[i % len(DOMAINS)])}
                state.events = [net.event(state, owner, plaintext=intake, _pending=[])]
                body["events"] = state.events
                answer = assert_status(await caller.post(net.path("/cases"), owner, body), 201)
            assert answer["case"] == state.case
            return state
        states = list(await asyncio.gather(*(one(i) for i in range(cases))))
        cases_s = time.perf_counter() - began
        print(f"  {cases:,} cases in {cases_s:.1f} s", flush=True)
        for _ in range(SIGNALS):
            await send_signal(caller, net.signal(shell), shell, net.path("/signals"))
        make_home(work / "home", net.coordinator, net, url)
        began = time.perf_counter()
        partner = await Partner.open(work / "home", PASSPHRASE)
        try:
            while (await partner.sync(net.id)).items:
                pass
            held = len(partner.cases.all(net.id))
        finally:
            await partner.close()
        sync_s = time.perf_counter() - began
        print(f"  the coordinator's home synced {held:,} cases in {sync_s:.1f} s", flush=True)
        assert_status(await caller.post(net.path("/shares"), net.coordinator,
                                        {"share": net.share(states[0], shell)}), 201)
    return {"network": net.id, "cases": cases, "held": held,
            "case": states[len(states) // 2].case, "domain": DOMAINS[0][0],
            "signals": SIGNALS, "build_s": {"cases": round(cases_s, 1),
                                            "first_sync": round(sync_s, 1)}}, net.coordinator


def make_home(path: Path, actor: Actor, net: Network, url: str) -> None:
    """``actor``'s home as after a reinstall: its keys restored, its own fingerprint as
    the network's trust anchor, an empty local state."""
    home = Home(path)
    home.prepare()
    save_keystore(home.keystore, actor.keys, PASSPHRASE, name=actor.name,
                  kdf=KdfParams.INTERACTIVE)
    home.write_config(ClientConfig(
        name=actor.name, key_id=actor.keys.key_id, server=url, acting_user=actor.acting_user,
        trusted={net.id: Fingerprint.of(net.coordinator.keys.public.sign).digits}))
    LocalState.open(home.state_file, actor.keys.box_secret, create=True).close()


async def grow(data: Path, network: str, coordinator: Actor, size: int) -> int:
    """Append copies of the log's last entry (the share :func:`build` sent) until the
    log holds ``size`` entries, with the server's own ``append_txn`` and log key, while
    the server is stopped: each copy gets its own index, salt, time and signed head,
    exactly as the server writes a share's entry (its purpose, the share's reason, sealed
    anew to the coordinator), 1,000 to a transaction.  Returns the log's size."""
    from schakel.protocol.objects.audit import AuditEntry
    from schakel.server.audit import Purpose, append_txn
    from schakel.server.config import DATABASE_FILE
    from schakel.server.serverkeys import load_or_create
    from schakel.server.storage import Store

    keys, _ = load_or_create(data, environ={})
    store = Store(data / DATABASE_FILE, readers=1, batch=1)
    await store.start()
    try:
        def last(db: Any) -> tuple[int, str]:
            row = db.execute("SELECT idx, body FROM audit_entries WHERE network = ? "
                             "ORDER BY idx DESC LIMIT 1", (network,)).fetchone()
            return int(row[0]) + 1, str(row[1])
        held, body = await store.read(last)
        entry = AuditEntry.from_json(json.loads(body))
        readers = {p.reader for p in entry.purpose or ()}
        assert readers == {coordinator.key_id}, "the share's purpose has other readers"
        fields = dict(network=network, log_key=keys.log_signer, actor=entry.actor,
                      action=entry.action, basis=entry.basis, outcome=entry.outcome,
                      reason=entry.reason, case=entry.case, subject=entry.subject,
                      classes=entry.classes, ref=entry.ref,
                      purpose=Purpose(text=SHARE_REASON,
                                      readers=((coordinator.key_id, coordinator.box),)))

        def thousand(db: Any, n: int) -> None:
            for _ in range(n):
                append_txn(db, now=datetime.now(UTC), **fields)
        while held < size:
            n = min(1_000, size - held)
            await store.write(thousand, n)
            held += n
    finally:
        await store.close()
    return held


# =========================================================================== the console


class Console:
    """``schakel console --no-browser`` as a process over ``home``, entered and unlocked
    as a browser does it."""

    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url
        self.proc: subprocess.Popen[str] | None = None
        self.session: aiohttp.ClientSession | None = None
        self.origin = ""
        self.csrf = ""

    async def __aenter__(self) -> Console:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "schakel.cli", "console", "--home", str(self.home),
             "--server", self.url, "--no-browser"], env=environment(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        found = ADDRESS.search(line)
        if found is None:
            self.stop()
            raise RuntimeError(f"schakel console printed no address: {line!r}")
        self.origin = f"http://127.0.0.1:{found.group(1)}"
        # The console's cookie is for 127.0.0.1: aiohttp keeps cookies of IP hosts only
        # in an "unsafe" jar.
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with self.session.get(found.group(0), allow_redirects=False) as answer:
            assert answer.status == 303, answer.status
        self.csrf = CSRF.search(await self.text("/")).group(1)     # type: ignore[union-attr]
        await self.post("/unlock", {"passphrase": PASSPHRASE})
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.session is not None:
            await self.session.close()
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def text(self, path: str) -> str:
        assert self.session is not None
        async with self.session.get(self.origin + path) as answer:
            body = await answer.text()
            if answer.status != 200:
                raise RuntimeError(f"GET {path}: {answer.status}")
            return body

    async def post(self, path: str, data: dict[str, str]) -> str:
        assert self.session is not None
        async with self.session.post(self.origin + path, data={"csrf": self.csrf, **data},
                                     headers={"Origin": self.origin}) as answer:
            body = await answer.text()
            if answer.status != 200:
                raise RuntimeError(f"POST {path}: {answer.status}")
            return body


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def time_page(console: Console, path: str, requests: int, warm_up: int, server_pid: int
                    ) -> dict[str, Any]:
    """``requests`` GETs of ``path`` one after the other (after ``warm_up`` more)."""
    assert console.proc is not None
    first = None
    for _ in range(warm_up):
        start = time.perf_counter()
        await console.text(path)
        first = first if first is not None else round((time.perf_counter() - start) * 1e3, 1)
    times: list[float] = []
    console0, server0 = cpu_seconds(console.proc.pid), cpu_seconds(server_pid)
    size = 0
    for _ in range(requests):
        start = time.perf_counter()
        size = len(await console.text(path))
        times.append(time.perf_counter() - start)
    console_cpu = cpu_seconds(console.proc.pid) - console0
    server_cpu = cpu_seconds(server_pid) - server0
    return {"path": path, "requests": requests, "bytes": size, "first_ms": first,
            "p50_ms": round(statistics.median(times) * 1e3, 1),
            "p95_ms": round(percentile(times, 0.95) * 1e3, 1),
            "max_ms": round(max(times) * 1e3, 1),
            "console_cpu_ms_per_request": round(console_cpu / requests * 1e3, 1),
            "server_cpu_ms_per_request": round(server_cpu / requests * 1e3, 1)}


def rows_shown(html: str) -> int:
    """How many cases a case-list page shows (links to one case)."""
    return len(re.findall(r'<tr><td><a href="/n/[^/]+/cases/', html))


async def pages(console: Console, fixture: dict[str, Any], requests: int, warm_up: int,
                server_pid: int) -> dict[str, Any]:
    n = fixture["network"]
    paths = {"cases": f"/n/{n}/cases",
             "cases_filtered": f"/n/{n}/cases?status=open&domain={fixture['domain']}",
             "cases_synced": f"/n/{n}/cases?sync=1",
             "case": f"/n/{n}/cases/{fixture['case']}",
             "signals": f"/n/{n}/signals",
             "networks": "/"}
    out: dict[str, Any] = {}
    for name, path in paths.items():
        out[name] = await time_page(console, path, requests, warm_up, server_pid)
        out[name]["rows_shown"] = rows_shown(await console.text(path)) if name.startswith(
            "cases") else None
        out[name]["p95_target_met"] = out[name]["p95_ms"] < TARGET_P95_MS
        row = out[name]
        print(f"  {name:<15} p50 {row['p50_ms']:>7.1f} ms  p95 {row['p95_ms']:>7.1f} ms  "
              f"max {row['max_ms']:>7.1f} ms  console CPU {row['console_cpu_ms_per_request']} "
              f"ms, server CPU {row['server_cpu_ms_per_request']} ms per request, "
              f"{row['bytes']:,} bytes", flush=True)
    return out


# =========================================================================== the audit log


def verify_by_command(home: Path, url: str, network: str) -> dict[str, Any]:
    """``schakel audit verify --json`` as a process: its wall time and answer."""
    env = {**environment(), "SCHAKEL_PASSPHRASE": PASSPHRASE}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "schakel.cli", "audit", "verify", "--home",
                           str(home), "--server", url, "--no-progress", "--json", network],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=1800)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"schakel audit verify exited {done.returncode}: {done.stdout[-500:]}")
    result = json.loads(done.stdout)
    return {"wall_s": round(wall, 3), "size": result["size"], "checked": result["checked"]}


async def verify_by_console(console: Console, network: str) -> dict[str, Any]:
    """POST .../audit/verify, then GET .../audit every :data:`POLL` s until it is done."""
    start = time.perf_counter()
    page = await console.post(f"/n/{network}/audit/verify", {})
    polls = 0
    while 'http-equiv="refresh"' in page:
        await asyncio.sleep(POLL)
        page = await console.text(f"/n/{network}/audit")
        polls += 1
    wall = time.perf_counter() - start
    if "<dt>" not in page:
        raise RuntimeError("the console's verification ended without a verified head")
    checked = re.search(r"<dd>(\d+)</dd>\s*<dt>[^<]*</dt><dd>\d+</dd>\s*</dl>", page)
    return {"wall_s": round(wall, 3), "polls": polls,
            "checked": int(checked.group(1)) if checked else None}


async def audit(console: Console, fixture: dict[str, Any], home: Path, url: str,
                rounds: int) -> dict[str, Any]:
    network = fixture["network"]
    command, by_console = [], []
    for _ in range(rounds):
        busy0 = machine_busy_seconds()
        command.append(await asyncio.to_thread(verify_by_command, home, url, network))
        by_console.append(await verify_by_console(console, network))
        spent = command[-1]["wall_s"] + by_console[-1]["wall_s"]
        cores = (machine_busy_seconds() - busy0) / spent
        print(f"  audit verify: command {command[-1]['wall_s']:.2f} s "
              f"({command[-1]['size']:,} entries), console {by_console[-1]['wall_s']:.2f} s; "
              f"ratio {command[-1]['wall_s'] / by_console[-1]['wall_s']:.2f} "
              f"(machine {cores:.2f} cores busy)", flush=True)
    ratios = [c["wall_s"] / k["wall_s"] for c, k in zip(command, by_console)]
    return {"entries": command[-1]["size"],
            "command_wall_s": round(statistics.median(c["wall_s"] for c in command), 3),
            "console_wall_s": round(statistics.median(k["wall_s"] for k in by_console), 3),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_per_round": [round(r, 3) for r in ratios],
            "command_rounds": command, "console_rounds": by_console}


# =========================================================================== main


async def measure(work: Path, server: ServerProcess, fixture: dict[str, Any], requests: int,
                  warm_up: int, rounds: int) -> dict[str, Any]:
    assert server.proc is not None
    async with Console(work / "home", server.url) as console:
        measured = await pages(console, fixture, requests, warm_up, server.proc.pid)
        verified = await audit(console, fixture, work / "home", server.url, rounds) \
            if rounds else None
    return {"pages": measured, "audit": verified}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['cases']} cases, {QUICK['entries']} entries, one round; "
                             "write nothing")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--warm-up", type=int, default=WARM_UP,
                        help="requests of each page before the measured ones")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of the audit verification (0: pages only)")
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the fixture in DIR, or reuse the one there")
    parser.add_argument("--name", default="console", help="bench/results/<name>.json")
    parser.add_argument("--result", type=Path, default=None,
                        help="write the result to this file instead of bench/results/")
    options = parser.parse_args(argv)
    cases = options.cases or (QUICK["cases"] if options.quick else CASES)
    entries = options.entries or (QUICK["entries"] if options.quick else ENTRIES)
    rounds = options.rounds if options.rounds is not None else (1 if options.quick else ROUNDS)
    with tempfile.TemporaryDirectory(prefix="schakel-bench-console-") as tmp:
        work = options.data or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        saved = work / "fixture.json"
        server = ServerProcess(work / "server", log_file=work / "server.log")
        if saved.exists():
            fixture = json.loads(saved.read_text())
            server.port = int(fixture["port"])       # the home knows the server at this URL
            server.start()
            print(f"  reusing the fixture in {work}: {fixture['cases']:,} cases, "
                  f"{fixture['entries']:,} entries", flush=True)
        else:
            if (work / "server").exists():
                shutil.rmtree(work / "server")
            server.init()
            server.start()
        try:
            if not saved.exists():
                fixture, coordinator = asyncio.run(build(server.url, work, cases))
                server.stop()
                began = time.perf_counter()
                fixture["entries"] = asyncio.run(grow(work / "server", fixture["network"],
                                                      coordinator, entries))
                fixture["build_s"]["audit_log"] = round(time.perf_counter() - began, 1)
                print(f"  audit log grown to {fixture['entries']:,} entries in "
                      f"{fixture['build_s']['audit_log']} s", flush=True)
                server.start()
                fixture["port"] = server.port
                saved.write_text(json.dumps(fixture))
            result = asyncio.run(measure(work, server, fixture, options.requests,
                                         options.warm_up, rounds))
        finally:
            server.stop()
    result = {"what": "schakel console pages and audit verification against a schakel serve "
                      "subprocess; pages: GETs one after the other, console as a process",
              "fixture": {k: v for k, v in fixture.items() if k != "port"},
              "targets": {"page_p95_ms": TARGET_P95_MS, "audit_ratio": TARGET_RATIO},
              **result}
    if options.result is not None:
        options.result.write_text(json.dumps(result, indent=2))
    elif not options.quick:
        path = write_result(options.name, result)
        print(f"wrote {path.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
