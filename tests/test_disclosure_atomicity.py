"""The release path has no way around the log (docs/protocol.md §15 §15.3; issue 4,
"Done when"; protocol.md §7: "a release the audit log did not record does not exist").

A release is ONE write transaction: decide → ``append_txn`` (the ``release`` entry) →
``open_gate`` for each granted class → store the answer.  Fault injection, not mocking: the
real server on real SQLite, with one of the steps inside that transaction replaced by a
function that raises -- before the audit append, between the append and the gate removal,
and after the gates were opened (the other way round: the release happened, the record of
it must go too).  Each time, the client is told nothing was released (500), the log did not
grow, nothing was stored as released (a retry under the same release id is a *new* release,
201, whose entry takes the very index the failed one would have had), and the grantee can
still get and open its keys.

Then a real crash: a ``schakel serve`` subprocess, a burst of releases from several
workers, SIGKILL mid-burst, restart.  Every release acknowledged to a client has its entry
in the log (identical, at the index of its receipt), and every ``release`` entry in the log
was either acknowledged or is answerable: retrying its release id answers 200 with the
stored envelopes (re-delivered under an entry of its own that names the first), which the
grantee opens.  Every step is bounded in time.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from schakel.cli.serverprocess import ServerProcess
from schakel.protocol.envelopes import open_gate
from schakel.server.audit import append_txn
from schakel.server.data import insert
from schakel.server.disclosure import data as disclosure_data
from tests import pg_harness
from tests.disclosure_harness import audit_log, consent_and_grant, open_release, release
from tests.server_harness import (
    IDENTITY, Caller, FakeClock, InProcessServer, Network, RealClock, SessionTransport, World,
    assert_error, assert_status, build_world, create_case, enrol, new_id, register, server_keys,
)
from tests.test_server_crash import STEP_TIMEOUT, until_fresh

shared_loop = pytest.mark.asyncio(loop_scope="module")


class Injected(RuntimeError):
    """The failure a test injects inside the release transaction."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("atomicity"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


def fail_append(*args: Any, **kwargs: Any) -> Any:
    raise Injected("audit append fails")


def fail_gate(*args: Any, **kwargs: Any) -> Any:
    raise Injected("gate removal fails after the audit append")


def fail_store_after_gates(db: Any, table: str, row: Any) -> int:
    """The gate seals are already removed when the release row is stored: fail there."""
    if table == "releases":
        raise Injected("storing the release fails after the gates were opened")
    return insert(db, table, row)


FAULTS = {
    "before the audit append": ("append_txn", fail_append),
    "between the audit append and the gate removal": ("open_gate", fail_gate),
    "after the gate removal": ("insert", fail_store_after_gates),
}


@shared_loop
@pytest.mark.parametrize("where", list(FAULTS))
async def test_a_failure_inside_the_release_leaves_neither_entry_nor_release(
        world: World, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    w, c, net = world, world.caller, world.a
    grantee = w["core-informal"]
    _, grant_id = await consent_and_grant(c, net, w.case, grantee, ["address", "name"])
    size = len(await audit_log(c, net))
    attribute, fault = FAULTS[where]
    calls: list[str] = []
    real = {"append_txn": append_txn, "open_gate": open_gate, "insert": insert}[attribute]

    def injected(*args: Any, **kwargs: Any) -> Any:
        calls.append(attribute)
        return fault(*args, **kwargs)
    monkeypatch.setattr(disclosure_data, attribute, injected)
    release_id = new_id()
    reply = await release(c, net, grantee, grant_id, release_id=release_id)
    monkeypatch.setattr(disclosure_data, attribute, real)
    assert calls, f"the fault {where} was never reached"
    assert_error(reply, 500, "internal_error")
    assert b"inner" not in reply.raw

    assert len(await audit_log(c, net)) == size, "an audit entry survived a failed release"
    # Nothing was stored as released: the same release id is a new release (201, not the
    # 200 of a retry), and its entry takes the index the failed one would have had.
    answer = assert_status(await release(c, net, grantee, grant_id, release_id=release_id), 201)
    assert answer["receipt"]["index"] == size
    assert open_release(answer, grantee, net, w.case, w.server) == {
        k: IDENTITY[k] for k in ("address", "name")}


# =========================================================================== SIGKILL


RELEASES = 150             # releases tried in the burst
WORKERS = 8
KILL_AFTER = 40            # acknowledged releases before the SIGKILL


async def test_sigkill_during_a_burst_of_releases_leaves_every_release_with_its_entry(
        tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data",
                           database_url=pg_harness.database_url_for(tmp_path / "data"))
    clock = RealClock()
    try:
        server.start(timeout=STEP_TIMEOUT)
        async with aiohttp.ClientSession() as session:
            caller = Caller(SessionTransport(session, server.url), server.url, clock,
                            timeout=STEP_TIMEOUT)
            net, grantee, state, grant_id = await asyncio.wait_for(bootstrap(caller, clock),
                                                                   4 * STEP_TIMEOUT)
            acked, tried = await asyncio.wait_for(burst(caller, net, grantee, grant_id, server),
                                                  4 * STEP_TIMEOUT)
        assert server.proc is not None
        assert server.proc.wait(timeout=STEP_TIMEOUT) == -signal.SIGKILL, server.tail()
        assert len(acked) >= KILL_AFTER

        server.start(timeout=STEP_TIMEOUT)         # the same port: the same URL
        async with aiohttp.ClientSession() as session:
            caller = Caller(SessionTransport(session, server.url), server.url, clock,
                            timeout=STEP_TIMEOUT)
            await asyncio.wait_for(until_fresh(
                lambda: caller.get(net.path("/members"), grantee)), STEP_TIMEOUT)
            await asyncio.wait_for(check_after_restart(caller, net, grantee, state, grant_id,
                                                       acked, tried), 4 * STEP_TIMEOUT)
    finally:
        server.stop()


async def bootstrap(caller: Caller, clock: RealClock) -> tuple[Network, Any, Any, str]:
    net = Network(await server_keys(caller), clock)
    owner = net.actor("owner", ring="core", party="formal")
    await register(caller, net, [owner])
    grantee = await enrol(caller, net, "grantee", roles=("professional-secrecy",))
    state = await create_case(caller, net, owner)
    _, grant_id = await consent_and_grant(caller, net, state, grantee, ["address", "name"],
                                          recorder=owner)
    return net, grantee, state, grant_id


async def burst(caller: Caller, net: Network, grantee: Any, grant_id: str,
                server: ServerProcess) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """WORKERS workers release until RELEASES were tried; SIGKILL after KILL_AFTER acks.
    Returns the acknowledged answers by release id, and every release id tried."""
    acked: dict[str, dict[str, Any]] = {}
    tried: list[str] = []
    budget = iter(range(RELEASES))
    problems: list[str] = []

    async def worker() -> None:
        for _ in budget:
            release_id = new_id()
            tried.append(release_id)
            try:
                reply = await release(caller, net, grantee, grant_id, release_id=release_id)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                return                                   # the server is gone: not acknowledged
            if reply.status != 201:
                if reply.status < 500 and len(acked) < KILL_AFTER:
                    problems.append(f"release refused before the kill: {reply!r}")
                return
            acked[release_id] = reply.json
            if len(acked) == KILL_AFTER:
                assert server.proc is not None
                server.proc.kill()                       # mid-burst: other releases in flight

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    assert not problems, problems
    return acked, tried


async def check_after_restart(caller: Caller, net: Network, grantee: Any, state: Any,
                              grant_id: str, acked: dict[str, dict[str, Any]],
                              tried: list[str]) -> None:
    log = await audit_log(caller, net)
    released = {e["index"]: e for e in log if e["action"] == "release"}
    # 1. Every acknowledged release has its entry, exactly as its receipt showed it.
    for answer in acked.values():
        index = answer["receipt"]["index"]
        assert log[index] == answer["receipt"]["entry"], "an acknowledged release lost its entry"
    # 2. Every release entry was acknowledged, or is answerable: a retry of its release id
    #    answers 200 with the stored envelopes, re-delivered under an entry of its own that
    #    names the first (only the unacknowledged ids can be it).
    answered = {a["receipt"]["index"] for a in acked.values()}
    size = len(log)
    for release_id in [t for t in tried if t not in acked]:
        reply = await release(caller, net, grantee, grant_id, release_id=release_id)
        if reply.status == 200:                          # committed before the kill
            answer = reply.json
            redelivery = answer["receipt"]["entry"]
            assert answer["receipt"]["index"] >= size
            first = int(redelivery["reason"].removeprefix("allowed; re-delivery of entry "))
            assert first < size and log[first]["action"] == "release"
            assert open_release(answer, grantee, net, state, net.server)["name"] == IDENTITY["name"]
            answered.add(first)
        else:                                            # never committed: a new release now
            assert_status(reply, 201)
            assert reply.json["receipt"]["index"] >= size
    missing = sorted(set(released) - answered)
    assert not missing, f"release entries without a release that was or can be answered: {missing}"
    sample = next(iter(acked.values()))
    assert open_release(sample, grantee, net, state, net.server)["address"] == IDENTITY["address"]
