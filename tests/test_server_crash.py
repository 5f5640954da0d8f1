"""Durability: SIGKILL (and SIGTERM) in the middle of a burst of writes loses no
acknowledged write (issue 3, "Done when"; docs/protocol.md §14, "Storage and durability": a
write is acknowledged only after its transaction committed).

A real ``schakel serve --data DIR --port P`` subprocess on a free loopback port; a
network and 16 cases bootstrapped over real HTTP; 16 workers append events concurrently
(each to its own case, so every append extends a chain); the server is killed with
SIGKILL (or, in the second test, SIGTERM) as soon as 60 appends were acknowledged, with
other appends in flight; then it is restarted on the same directory and every
acknowledged event must be there, signed by its author, in an intact chain (at most one
unacknowledged in-flight event per case may have been committed too).  Every step has a
timeout; each test takes a few seconds.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp

from schakel.cli.serverprocess import ServerProcess
from schakel.protocol.objects.cases import Event, check_link
from tests import pg_harness
from tests.server_harness import (
    Caller, CaseState, Network, RealClock, Reply, SessionTransport, create_case,
    register, server_keys, sync_all,
)

CASES = 16                 # concurrent writers, one case each
EVENTS = 200               # appends in the burst
KILL_AFTER = 60            # acknowledged appends before the SIGKILL
STEP_TIMEOUT = 20.0        # seconds for any one step


async def until_fresh(call: Any) -> Reply:
    """After a restart the server refuses requests signed before it started
    (protocol.md §14, Authentication step 2); sign again until the clock has passed it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while True:
        reply: Reply = await call()
        if reply.code != "stale_request" or loop.time() > deadline:
            return reply
        await asyncio.sleep(0.2)


async def test_sigkill_during_a_burst_loses_no_acknowledged_event(tmp_path: Path) -> None:
    await crash_and_recover(tmp_path, signal.SIGKILL, exit_code=-signal.SIGKILL)


async def test_sigterm_during_a_burst_shuts_down_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    """Graceful shutdown (issue 3, Operations): in-flight writes finish, the process exits
    0, and the same durability holds."""
    await crash_and_recover(tmp_path, signal.SIGTERM, exit_code=0)


async def crash_and_recover(tmp_path: Path, how: signal.Signals, *, exit_code: int) -> None:
    server = ServerProcess(tmp_path / "data",
                           database_url=pg_harness.database_url_for(tmp_path / "data"))
    clock = RealClock()
    try:
        server.start(timeout=STEP_TIMEOUT)
        connector = aiohttp.TCPConnector(limit=CASES + 4, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            caller = Caller(SessionTransport(session, server.url), server.url, clock,
                            timeout=STEP_TIMEOUT)
            net, author, cases = await asyncio.wait_for(bootstrap(caller, clock), 4 * STEP_TIMEOUT)
            acked, killed_at = await asyncio.wait_for(
                burst(caller, net, author, cases, server, how), 4 * STEP_TIMEOUT)
        assert server.proc is not None
        assert server.proc.wait(timeout=STEP_TIMEOUT) == exit_code, server.tail()
        assert killed_at == KILL_AFTER and len(acked) >= KILL_AFTER

        server.start(timeout=STEP_TIMEOUT)         # the same port: the same URL
        async with aiohttp.ClientSession() as session:
            caller = Caller(SessionTransport(session, server.url), server.url, clock,
                            timeout=STEP_TIMEOUT)
            await asyncio.wait_for(until_fresh(
                lambda: caller.get(net.path("/members"), author)), STEP_TIMEOUT)
            items = await asyncio.wait_for(sync_all(caller, net, author), STEP_TIMEOUT)
        check_survivors(items, cases, acked, author)
    finally:
        server.stop()


async def bootstrap(caller: Caller, clock: RealClock) -> tuple[Network, Any, list[CaseState]]:
    net = Network(await server_keys(caller), clock)
    author = net.actor("writer", ring="core", party="formal")
    await register(caller, net, [author])
    cases = list(await asyncio.gather(*(create_case(caller, net, author) for _ in range(CASES))))
    return net, author, cases


async def burst(caller: Caller, net: Network, author: Any, cases: list[CaseState],
                server: ServerProcess, how: signal.Signals,
                ) -> tuple[dict[str, dict[str, Any]], int]:
    """16 workers append until EVENTS were tried; signal ``how`` after KILL_AFTER acks.
    Returns the acknowledged events by id and the ack count at the kill."""
    acked: dict[str, dict[str, Any]] = {}
    budget = iter(range(EVENTS))
    killed_at = 0
    problems: list[str] = []

    async def worker(state: CaseState) -> None:
        nonlocal killed_at
        for _ in budget:
            event = net.event(state, author)
            try:
                reply = await caller.post(net.path(f"/cases/{state.case}/events"), author,
                                          {"event": event})
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                return                                   # the server is gone: not acknowledged
            if not reply.ok:
                if reply.status < 500 and not killed_at:
                    problems.append(f"append refused before the kill: {reply!r}")
                return
            acked[event["signed"]["event"]] = event
            state.commit(event)
            if len(acked) == KILL_AFTER and not killed_at:
                killed_at = len(acked)
                assert server.proc is not None
                server.proc.send_signal(how)             # mid-burst: other appends are in flight

    await asyncio.gather(*(worker(s) for s in cases))
    assert not problems, problems
    return acked, killed_at


def check_survivors(items: list[dict[str, Any]], cases: list[CaseState],
                    acked: dict[str, dict[str, Any]], author: Any) -> None:
    by_case: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item["kind"] == "event":
            by_case.setdefault(item["case"], []).append(item["envelope"])
    stored = {e["signed"]["event"]: e for events in by_case.values() for e in events}
    lost = sorted(set(acked) - set(stored))
    assert not lost, f"{len(lost)} acknowledged events lost after SIGKILL"
    for event_id, envelope in acked.items():
        assert stored[event_id] == envelope, "an acknowledged event came back changed"
    for state in cases:
        events = sorted(by_case.get(state.case, []), key=lambda e: e["signed"]["seq"])
        previous = None
        for envelope in events:                          # intact chain, each signed by its author
            event = Event.from_envelope(envelope, [author.signer.verify_key])
            check_link(previous, event)
            previous = envelope
        # What the writer saw acknowledged is a prefix; at most the one append that was in
        # flight at the kill may have committed beyond it.
        assert events[: state.last_seq] == state.events
        assert len(events) <= state.last_seq + 1, state.case
