"""Several server processes on one PostgreSQL database (ADR 0052): what one process keeps
in memory is shared through the database or followed from it, so that a partner may reach
either process and get the same answers.

Each test runs two servers -- two complete applications with their own stores, member
directories, notifiers and caches, as two ``schakel serve`` processes have -- on one
database of the throw-away cluster (tests/pg_harness.py), with the same server keys.  The
crash of one worker of ``schakel serve --workers 2`` is tested with real processes in
tests/test_workers.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from schakel.server.data import insert
from schakel.server.pgstore import PgStore, connect
from tests import pg_harness
from tests.server_harness import (
    Actor, Caller, FakeClock, InProcessServer, Network, Reply, append, assert_error,
    assert_status, create_case, enrol, network_policy, register, server_keys,
)

#: Seconds a test waits for one process to hear what the other committed.
HEAR_WITHIN = 10.0


@pytest.fixture
def on_postgresql() -> Iterator[None]:
    pg_harness.cluster()
    active = pg_harness.ACTIVE
    pg_harness.ACTIVE = True
    try:
        yield
    finally:
        pg_harness.ACTIVE = active


@asynccontextmanager
async def two_servers(data_dir: Path) -> AsyncIterator[tuple[Caller, Caller]]:
    """Two servers on one database (the same data directory: the same keys and URL)."""
    first = InProcessServer(data_dir, FakeClock())
    second = InProcessServer(data_dir, first.clock, keys=first.keys)
    try:
        a = await first.start()
        b = await second.start()
        yield a, b
    finally:
        await second.stop()
        await first.stop()


def store_of(caller: Caller) -> PgStore:
    from schakel.server.context import CTX
    store = caller.transport.client.server.app[CTX].store    # type: ignore[attr-defined]
    assert isinstance(store, PgStore)
    return store


async def eventually(what: str, attempt: Callable[[], Awaitable[bool]]) -> None:
    """Until ``attempt()`` holds; at most :data:`HEAR_WITHIN` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEAR_WITHIN
    while not await attempt():
        if loop.time() > deadline:
            raise AssertionError(f"the other process never {what}")
        await asyncio.sleep(0.02)


async def answered(b: Caller, net: Network, actor: Actor) -> None:
    """Until ``b`` answers ``actor``'s request in ``net`` (it followed what ``a`` did)."""
    async def known() -> bool:
        return (await b.get(net.path("/members"), actor)).status == 200
    await eventually(f"answered {actor.label}", known)


def directory_of(caller: Caller) -> Any:
    from schakel.server.context import CTX
    return caller.transport.client.server.app[CTX].directory    # type: ignore[attr-defined]


async def founded(a: Caller, *members: Actor, policy: dict[str, Any] | None = None
                  ) -> Network:
    net = Network(await server_keys(a), a.clock, policy=policy)
    await register(a, net, list(members))
    return net


async def test_a_request_replayed_to_another_process_is_refused(
        on_postgresql: None, tmp_path: Path) -> None:
    async with two_servers(tmp_path / "server") as (a, b):
        net = await founded(a)
        await answered(b, net, net.coordinator)
        prepared = a.prepare("GET", net.path("/members"), net.coordinator)
        assert_status(await a.send(prepared), 200)
        assert_error(await b.send(prepared), 401, "replayed_request")
        assert_error(await a.send(prepared), 401, "replayed_request")


async def test_a_member_admitted_through_one_process_is_known_to_the_other(
        on_postgresql: None, tmp_path: Path) -> None:
    async with two_servers(tmp_path / "server") as (a, b):
        net = await founded(a)
        late = await enrol(a, net, "Buurtteam", ring="core")

        async def followed() -> bool:        # without a request to b: b heard it
            state = directory_of(b).known(net.id)
            return state is not None and state.knows(late.key_id)
        await eventually("followed the new member", followed)
        assert store_of(b).heard >= 1
        assert_status(await b.get(net.path("/members"), late), 200)



async def test_a_key_admitted_through_one_process_is_accepted_by_the_other_before_it_hears(
        on_postgresql: None, tmp_path: Path) -> None:
    """A partner admitted a moment ago whose first request reaches another process: that
    process follows the network when the key is unknown to it and the network's trust log
    has grown, instead of refusing ``untrusted_key`` until the notification arrives."""
    async with two_servers(tmp_path / "server") as (a, b):
        deaf = store_of(b)
        deaf._stop_listening.set()                   # b hears nothing from now on
        assert deaf._listener is not None
        await asyncio.get_running_loop().run_in_executor(None, deaf._listener.join, 5)
        assert not deaf._listener.is_alive()
        net = await founded(a)
        late = await enrol(a, net, "Buurtteam", ring="core")
        assert_status(await b.get(net.path("/members"), late), 200)
        assert_status(await b.get(net.path("/members"), net.coordinator), 200)
        stranger = Actor.fresh("Onbekend", ring="core")
        assert_error(await b.get(net.path("/members"), stranger), 401, "untrusted_key")
        other = await founded(a)                    # the same partner, admitted to another
        other.members[late.label] = late            # network through a: b knows its key
        assert_status(await a.post(other.path("/members"), other.coordinator,
                                   {"membership": other.membership(late)}), 201)
        assert_status(await b.get(other.path("/members"), late), 200)


async def test_a_revocation_through_one_process_is_enforced_by_the_other(
        on_postgresql: None, tmp_path: Path) -> None:
    async with two_servers(tmp_path / "server") as (a, b):
        net = await founded(a)
        member = await enrol(a, net, "Kerk", ring="core")
        await answered(b, net, member)
        assert_status(await a.post(net.path("/revocations"), net.coordinator,
                                   {"revocation": net.revocation(member)}), 201)

        async def refused() -> bool:
            reply = await b.get(net.path("/members"), member)
            return reply.status == 403 and reply.code == "untrusted_key"
        await eventually("enforced the revocation", refused)


async def test_a_long_poll_on_one_process_is_answered_by_an_append_through_the_other(
        on_postgresql: None, tmp_path: Path) -> None:
    async with two_servers(tmp_path / "server") as (a, b):
        net = await founded(a)
        owner = await enrol(a, net, "Wijkteam", ring="core")
        case = await create_case(a, net, owner)
        head = assert_status(await b.get(net.path("/sync?after=0&limit=500&wait=0"), owner), 200)
        waiting = asyncio.ensure_future(b.get(
            net.path(f"/sync?after={head['cursor']}&limit=500&wait=25"), owner, timeout=30))
        await asyncio.sleep(0.3)                       # the waiter holds its ticket
        assert not waiting.done()
        answer = await append(a, net, case, owner)
        page = assert_status(await waiting, 200)
        assert [item["cursor"] for item in page["items"]] == [answer["cursor"]]


async def test_anonymous_signals_through_two_processes_spend_one_bucket(
        on_postgresql: None, tmp_path: Path) -> None:
    rate = 4
    async with two_servers(tmp_path / "server") as (a, b):
        net = await founded(a, policy=network_policy("neighbourhood", intake_rate_per_hour=rate))
        await answered(b, net, net.coordinator)
        replies: list[Reply] = []
        for n in range(rate + 4):
            caller = (a, b)[n % 2]
            replies.append(await caller.post(net.path("/signals"), None, net.signal(None).body))
        assert [r.status for r in replies] == [201] * rate + [429] * 4
        assert all(r.json["error"]["details"]["retry_after"] > 0 for r in replies[rate:])


async def test_a_reader_paging_while_two_processes_append_to_one_network_misses_nothing(
        on_postgresql: None, tmp_path: Path) -> None:
    """Row ids are cursors: with both processes writing one network, an id committed later
    must never be smaller than one a reader was already given (the network's lock)."""
    async with two_servers(tmp_path / "server") as (a, b):
        net = await founded(a)
        owners = [await enrol(a, net, f"partner-{n}", ring="core") for n in range(6)]
        cases = [await create_case(a, net, o) for o in owners]
        await answered(b, net, owners[-1])
        reader, after = net.coordinator, "0"
        seen: list[str] = []
        stop = asyncio.Event()

        async def writes(n: int) -> None:
            for round_ in range(12):
                await append((a, b)[(n + round_) % 2], net, cases[n], owners[n])

        async def read() -> None:
            nonlocal after
            while True:
                last_pass = stop.is_set()
                page = assert_status(await (a, b)[len(seen) % 2].get(
                    net.path(f"/sync?after={after}&limit=500&wait=0"), reader), 200)
                seen.extend(item["cursor"] for item in page["items"])
                after = page["cursor"]
                if last_pass and not page["items"]:
                    return
                await asyncio.sleep(0)

        reading = asyncio.ensure_future(read())
        await asyncio.gather(*(writes(n) for n in range(len(cases))))
        stop.set()
        await reading
        everything = assert_status(await a.get(net.path("/sync?after=0&limit=500&wait=0"),
                                               reader), 200)
        assert seen == [item["cursor"] for item in everything["items"]]
        assert len(seen) == len(set(seen))



async def test_a_row_id_is_never_committed_below_one_a_reader_can_already_see(
        on_postgresql: None) -> None:
    """One process's transaction drew a feed row id and has not committed; another
    process's row of the same network must not become visible before it (a reader would
    move its cursor past the first row and never see it)."""
    url = pg_harness.new_database_url()
    first, second = PgStore(url), PgStore(url)
    await first.start()
    await second.start()
    entered, go_on = threading.Event(), threading.Event()
    row = {"network": "net", "case": "c", "kind": "event", "partner": None, "envelope": "{}"}

    def slow(db: Any) -> int:
        cursor = insert(db, "feed", row)
        entered.set()
        go_on.wait(HEAR_WITHIN)
        return cursor

    def feed(db: Any) -> list[int]:
        return [r[0] for r in db.execute("SELECT id FROM feed WHERE network = ? ORDER BY id",
                                         ("net",))]
    try:
        loop = asyncio.get_running_loop()
        held = asyncio.ensure_future(first.write(slow))
        assert await loop.run_in_executor(None, entered.wait, HEAR_WITHIN)
        later = asyncio.ensure_future(second.write(lambda db: insert(db, "feed", row)))
        await asyncio.sleep(0.3)
        visible = await second.read(feed)
        go_on.set()
        ids = [await held, await later]
        assert visible == [] and ids[0] < ids[1]
        assert await second.read(feed) == ids
    finally:
        go_on.set()
        await first.close()
        await second.close()

async def test_a_batched_write_that_meets_another_processs_lock_waits_in_the_next_transaction(
        on_postgresql: None) -> None:
    """The writer never waits for a network's lock while its transaction holds another:
    the writes before commit (and are answered), the contended one runs first next."""
    from schakel.server.storage import lock_network
    url = pg_harness.new_database_url()
    store = PgStore(url)
    await store.start()
    try:
        def locks(db: Any, network: str) -> str:
            lock_network(db, network, "feed")
            return network

        with connect(url) as other:
            other.execute("BEGIN")
            other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                          ("schakel:network:busy",))
            first = asyncio.ensure_future(store.write(locks, "free"))
            second = asyncio.ensure_future(store.write(locks, "busy"))   # same batch
            assert await asyncio.wait_for(first, HEAR_WITHIN) == "free"
            await asyncio.sleep(0.2)
            assert not second.done()                  # it waits, alone in its transaction
            other.execute("ROLLBACK")
            assert await asyncio.wait_for(second, HEAR_WITHIN) == "busy"
        assert store.commits == 2
    finally:
        await store.close()


async def test_one_process_leads_a_background_pass_and_another_takes_over_when_it_stops(
        on_postgresql: None) -> None:
    url = pg_harness.new_database_url()
    first, second = PgStore(url), PgStore(url)
    await first.start()
    await second.start()
    try:
        assert await first.leads("retention") is True
        assert await first.leads("retention") is True            # still
        assert await second.leads("retention") is False
        assert await second.leads("witnesses") is True           # another pass
        await first.close()     # its session ends (PostgreSQL releases the lock a moment later)

        async def took_over() -> bool:
            return await second.leads("retention")
        await eventually("took the pass over", took_over)
    finally:
        await first.close()
        await second.close()
