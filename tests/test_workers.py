"""``schakel serve --workers 2`` on PostgreSQL (ADR 0052; server/workers.py): real
processes on one port and one database of the throw-away cluster (tests/pg_harness.py).

The crash test: a burst of appends (16 writers, each on its own case) and identity releases
(8 grantee clients) through the shared port; after KILL_AFTER acknowledgements one worker
is killed with SIGKILL while requests are in flight.  A request whose connection the dead
worker took fails and is sent again (signed afresh: the same event, the same release id).
Then: every acknowledged event is stored unchanged in an intact chain, every acknowledged
release has its audit entry exactly as its receipt showed, every ``release`` entry belongs to
a release that was acknowledged or answers a retry of its id, the other worker served
requests after the kill and is the same process at the end, and the supervisor started a
worker in the dead one's place.  Every step is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from schakel.cli.serverprocess import ServerProcess
from tests import pg_harness
from tests.cli_harness import schakel
from tests.disclosure_harness import audit_log, consent_and_grant, open_release, release
from tests.server_harness import (
    IDENTITY, Caller, CaseState, Network, RealClock, Reply, SessionTransport, create_case,
    enrol, new_id, register, server_keys,
)
from tests.test_server_crash import check_survivors, sync_all, until_fresh

WRITERS = 16               # appending clients, one case each
RELEASERS = 8              # releasing clients
OPERATIONS = 320           # appends and releases tried in the burst
KILL_AFTER = 80            # acknowledged operations before the SIGKILL
STEP_TIMEOUT = 30.0        # seconds for any one step
RETRY_FOR = 20.0           # seconds one operation is sent again after connection errors
REDELIVERY = "allowed; re-delivery of entry "


async def resent(send: Callable[[], Awaitable[Reply]]) -> Reply | None:
    """``send()`` until it gets an answer; None when none came within :data:`RETRY_FOR`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_FOR
    while loop.time() < deadline:
        try:
            reply = await send()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            await asyncio.sleep(0.05)
            continue
        if reply.code != "stale_request":
            return reply
    return None


async def test_sigkill_of_one_worker_mid_burst_loses_nothing_and_the_other_keeps_serving(
        tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", database_url=pg_harness.new_database_url(),
                           workers=2)
    clock = RealClock()
    try:
        server.start(timeout=STEP_TIMEOUT)
        assert len(server.worker_pids()) == 2, server.tail()
        connector = aiohttp.TCPConnector(limit=WRITERS + RELEASERS + 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            caller = Caller(SessionTransport(session, server.url), server.url, clock,
                            timeout=STEP_TIMEOUT)
            world = await asyncio.wait_for(bootstrap(caller, clock), 4 * STEP_TIMEOUT)
            outcome = await asyncio.wait_for(burst(caller, world, server), 6 * STEP_TIMEOUT)
            killed, survivor, after_kill = outcome["killed"], outcome["survivor"], \
                outcome["after_kill"]
            assert after_kill > 0, "no request was answered after the kill"
            assert survivor in server.worker_pids(), "the other worker did not keep serving"
            assert killed not in server.worker_pids()
            assert len(server.worker_pids()) == 2, "no worker was started in the dead one's place"
            assert f"(pid {killed}) ended with status -9" in server.output()
            await asyncio.wait_for(until_fresh(
                lambda: caller.get(world["net"].path("/members"), world["author"])), STEP_TIMEOUT)
            items = await asyncio.wait_for(sync_all(caller, world["net"], world["author"]),
                                           STEP_TIMEOUT)
            check_survivors(items, world["cases"], outcome["events"], world["author"])
            await asyncio.wait_for(check_releases(caller, world, outcome["releases"],
                                                  outcome["tried"]), 4 * STEP_TIMEOUT)
        assert server.stop() == 0, server.tail()
    finally:
        server.stop()


async def bootstrap(caller: Caller, clock: RealClock) -> dict[str, Any]:
    net = Network(await server_keys(caller), clock)
    author = net.actor("writer", ring="core", party="formal")
    owner = net.actor("owner", ring="core", party="formal")
    await register(caller, net, [author, owner])
    grantee = await enrol(caller, net, "grantee", roles=("professional-secrecy",))
    cases = list(await asyncio.gather(*(create_case(caller, net, author) for _ in range(WRITERS))))
    state = await create_case(caller, net, owner)
    _, grant_id = await consent_and_grant(caller, net, state, grantee, ["address", "name"],
                                          recorder=owner)
    return {"net": net, "author": author, "grantee": grantee, "cases": cases, "state": state,
            "grant": grant_id}


async def burst(caller: Caller, world: dict[str, Any], server: ServerProcess) -> dict[str, Any]:
    net, author, grantee = world["net"], world["author"], world["grantee"]
    events: dict[str, dict[str, Any]] = {}
    releases: dict[str, dict[str, Any]] = {}
    tried: list[str] = []
    budget = iter(range(OPERATIONS))
    problems: list[str] = []
    kill: dict[str, int] = {"killed": 0, "survivor": 0, "after_kill": 0}

    def acknowledged() -> None:
        if kill["killed"]:
            kill["after_kill"] += 1
        elif len(events) + len(releases) >= KILL_AFTER:
            workers = server.worker_pids()
            assert len(workers) == 2
            kill["killed"], kill["survivor"] = workers
            os.kill(kill["killed"], signal.SIGKILL)      # mid-burst: requests in flight

    async def writer(state: CaseState) -> None:
        for _ in budget:
            event = net.event(state, author)
            reply = await resent(lambda: caller.post(net.path(f"/cases/{state.case}/events"),
                                                     author, {"event": event}))
            if reply is None or not reply.ok:
                problems.append(f"append not acknowledged: {reply!r}")
                return
            events[event["signed"]["event"]] = event
            state.commit(event)
            acknowledged()

    async def releaser() -> None:
        for _ in budget:
            release_id = new_id()
            tried.append(release_id)
            reply = await resent(lambda: release(caller, net, grantee, world["grant"],
                                                 release_id=release_id))
            if reply is None or reply.status not in (200, 201):
                problems.append(f"release not acknowledged: {reply!r}")
                return
            releases[release_id] = reply.json
            acknowledged()

    await asyncio.gather(*(writer(s) for s in world["cases"]),
                         *(releaser() for _ in range(RELEASERS)))
    assert not problems, problems[:3]
    assert kill["killed"], "the burst ended before the kill"
    return {**kill, "events": events, "releases": releases, "tried": tried}


async def check_releases(caller: Caller, world: dict[str, Any],
                         acked: dict[str, dict[str, Any]], tried: list[str]) -> None:
    net, grantee, state = world["net"], world["grantee"], world["state"]
    log = await audit_log(caller, net)
    released = {e["index"] for e in log if e["action"] == "release"}
    answered: set[int] = set()
    for answer in acked.values():
        index, entry = answer["receipt"]["index"], answer["receipt"]["entry"]
        assert log[index] == entry, "an acknowledged release lost its entry"
        answered.add(index)
        # A release whose answer the dead worker took with it: its retry is answered 200,
        # re-delivered under an entry of its own that names the first.
        if entry.get("reason", "").startswith(REDELIVERY):
            answered.add(int(entry["reason"].removeprefix(REDELIVERY)))
    assert released <= answered, \
        f"release entries without an acknowledged release: {sorted(released - answered)}"
    assert set(tried) == set(acked)          # each was sent again until it was answered
    sample = next(iter(acked.values()))
    assert open_release(sample, grantee, net, state, net.server)["name"] == IDENTITY["name"]


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    result = schakel("serve", "--data", str(tmp_path / "data"), "--workers", "2", cwd=tmp_path)
    assert result.returncode == 2 and "--database" in result.stderr


def test_workers_on_an_address_in_use_are_refused_before_any_starts(tmp_path: Path) -> None:
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = schakel("serve", "--data", str(tmp_path / "data"), "--port", str(port),
                         "--database", "postgresql://schakel@127.0.0.1:9/unused",
                         "--workers", "2", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "started (pid" not in result.stdout
