"""Retention and bemoeizorg expiry (issue 4 items 4 and 5; protocol.md §11 flow 9, §D.9;
docs/protocol.md §15 §15.4; server/retention.py).

The real application on a real SQLite file with the server's fake clock, moved forward
past the policy's periods; each pass is :func:`schakel.server.retention.run_pass` on the running
app's context (what the background task runs), and one test runs the background task
itself.  The grantee's side is real: it fetches its purge instructions and verifies them
against the server's log key; the coordinator's monitor verifies the log after shredding.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol.objects.disclosure import PurgeInstruction
from schakel.server import retention
from schakel.server.context import CTX, AppContext
from tests.disclosure_harness import (
    audit_log, consent_and_grant, cosign, invocation, oggz_network, open_release, post_ok,
    release,
)
from tests.server_harness import (
    Actor, Caller, FakeClock, InProcessServer, Network, World, append, assert_error, assert_status,
    build_world, create_case, network_policy, register,
)
from tests.test_audit_log import shipped_monitor

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop

IDENTITY_DAYS, ANONYMOUS_DAYS = 2, 5
DAY = 24 * 3600


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("retention"), FakeClock())
    caller = await server.start()
    policy = network_policy(retention={"identity_days": IDENTITY_DAYS,
                                       "anonymous_days": ANONYMOUS_DAYS, "audit_days": 3650})
    try:
        world = await build_world(caller, a_policy=policy)
        yield world, server.client.app[CTX]
    finally:
        await server.stop()


def advance(world: World, seconds: float) -> None:
    clock = world.clock
    assert isinstance(clock, FakeClock)
    clock.advance(seconds)


async def count(ctx: AppContext, table: str, network: str, case: str) -> int:
    def read(db: Any) -> int:
        return int(db.execute(f"SELECT COUNT(*) FROM {table} WHERE network = ? AND [case] = ?",
                              (network, case)).fetchone()[0])
    return await ctx.store.read(read)


async def purges(caller: Caller, net: Network, actor: Actor, server: Any,
                 ids: list[str]) -> list[PurgeInstruction]:
    feed = assert_status(await caller.get(net.path("/purge-instructions/mine?after=0"), actor), 200)
    return [PurgeInstruction.from_envelope(i["instruction"], [server.log])
            for i in feed["items"] if i["instruction"]["signed"]["instruction"] in ids]


def steps_for(done: list[dict[str, Any]], case: str) -> list[str]:
    return [d["step"] for d in done if d["case"] == case]


async def test_identity_then_anonymous_layer_are_shredded_when_due(setup: Any,
                                                                  tmp_path: Path) -> None:
    world, ctx = setup
    c, net = world.caller, world.a
    owner, grantee = world["core-formal"], world["core-informal"]
    state = await create_case(c, net, owner)
    _, grant_id = await consent_and_grant(c, net, state, grantee, ["name"],
                                          recorder=owner)
    released = assert_status(await release(c, net, grantee, grant_id), 201)
    assert "name" in open_release(released, grantee, net, state, world.server)
    still_open = await create_case(c, net, owner)

    monitor = shipped_monitor(c, net, net.coordinator, tmp_path / "coordinator.db")
    await monitor.refresh()
    await append(c, net, state, owner, status="closed")
    assert await count(ctx, "identity", net.id, state.case) > 0

    # one second before identity_days: nothing happens to the case
    advance(world, IDENTITY_DAYS * DAY - 1)
    assert steps_for(await retention.run_pass(ctx), state.case) == []
    assert await count(ctx, "identity", net.id, state.case) > 0
    assert await count(ctx, "gated", net.id, state.case) > 0

    advance(world, 1)
    done = await retention.run_pass(ctx)
    [step] = [d for d in done if d["case"] == state.case]
    assert step["step"] == "shred-identity"
    assert await count(ctx, "identity", net.id, state.case) == 0
    assert await count(ctx, "gated", net.id, state.case) == 0
    assert await count(ctx, "events", net.id, state.case) == 2       # anonymous layer stays
    # the release recipient gets a purge instruction signed by the server's log key
    [purge] = await purges(c, net, grantee, world.server, step["purge_instructions"])
    assert (purge.recipient, purge.case, purge.reason, purge.ref) == (
        grantee.key_id, state.case, "retention", None)
    assert list(purge.classes) == ["name"]
    log = await audit_log(c, net)
    [shred] = [e for e in log if e["action"] == "shred-identity" and e.get("case") == state.case]
    assert shred["index"] == step["audit_index"]
    assert (shred["basis"], shred["actor"]["role"], shred["actor"]["partner"]) == (
        "policy", "server", world.server.log.key_id)
    issued = [e for e in log if e["action"] == "purge-instruction" and e.get("case") == state.case]
    assert [(e["subject"], e["reason"], e["ref"]) for e in issued] == [
        (grantee.key_id, "retention", purge.instruction)]
    # a retry of the release has nothing left to deliver: 409, and nothing is audited
    size = len(await audit_log(c, net))
    assert_error(await release(c, net, grantee, grant_id, release_id=released["release"]),
                 409, "conflict")
    assert len(await audit_log(c, net)) == size

    # a second pass does nothing more for this case
    assert steps_for(await retention.run_pass(ctx), state.case) == []

    advance(world, (ANONYMOUS_DAYS - IDENTITY_DAYS) * DAY - 1)
    assert steps_for(await retention.run_pass(ctx), state.case) == []
    advance(world, 1)
    done = await retention.run_pass(ctx)
    assert steps_for(done, state.case) == ["shred-anonymous"]
    for table in ("cases", "events", "feed", "shares"):
        assert await count(ctx, table, net.id, state.case) == 0, table
    assert_status(await c.get(net.path(f"/cases/{state.case}"), owner), 404)
    # the server remembers case owners for appends: a shredded case is not one of them
    reopen = net.event(state, owner, status="open",
                       plaintext={"kind": "status", "status": "open", "reason": "heropend"})
    assert_error(await c.post(net.path(f"/cases/{state.case}/events"), owner,
                              {"event": reopen}), 404, "not_found")
    log = await audit_log(c, net)
    assert [e["action"] for e in log if e.get("case") == state.case][-1] == "shred-anonymous"
    assert steps_for(await retention.run_pass(ctx), state.case) == []

    # cases that were never closed are never shredded
    for open_case in (still_open, world.case, world.consult):
        assert await count(ctx, "cases", net.id, open_case.case) == 1
    assert await count(ctx, "identity", net.id, still_open.case) > 0
    assert await count(ctx, "identity", net.id, world.case.case) > 0

    # the log still verifies: consistent with the head held before, every entry included
    verified = await monitor.verify_all()
    assert verified.checked == verified.size and verified.erased == 0
    entries = await monitor.entries()
    assert {"shred-identity", "shred-anonymous"} <= {e["entry"]["action"] for e in entries}


async def test_bemoeizorg_expiry_purge_is_issued_once(setup: Any) -> None:
    world, ctx = setup
    c = world.caller
    oggz = await oggz_network(c, world.server, world.clock)
    net = oggz.net
    inv = invocation(net, oggz.case, oggz.invoker, auditors=[oggz.auditor])
    inv_id = inv["signed"]["invocation"]
    await post_ok(c, net, "/bemoeizorg", oggz.invoker, {"invocation": inv})
    await post_ok(c, net, f"/bemoeizorg/{inv_id}/cosign", oggz.second,
                  {"cosign": cosign(net, inv, oggz.second)})
    await post_ok(c, net, f"/bemoeizorg/{inv_id}/release", oggz.invoker, {"release": inv_id})
    hours = net.policy["bemoeizorg"]["access_hours"]

    advance(world, hours * 3600 - 1)
    assert [d for d in await retention.run_pass(ctx) if d.get("invocation") == inv_id] == []
    advance(world, 1)
    [step] = [d for d in await retention.run_pass(ctx) if d.get("invocation") == inv_id]
    assert step["step"] == "bemoeizorg-expired"
    [purge] = await purges(c, net, oggz.invoker, world.server, step["purge_instructions"])
    assert (purge.recipient, purge.case, purge.reason, purge.ref) == (
        oggz.invoker.key_id, oggz.case.case, "bemoeizorg-expired", inv_id)
    assert sorted(purge.classes) == ["address", "name"]
    log = await audit_log(c, net)
    [entry] = [e for e in log if e["action"] == "purge-instruction"
               and e["ref"] == purge.instruction]
    assert (entry["basis"], entry["subject"], entry["emergency"]) == (
        "bemoeizorg", oggz.invoker.key_id, True)
    # once: later passes issue nothing more for this invocation
    advance(world, 3600)
    assert [d for d in await retention.run_pass(ctx) if d.get("invocation") == inv_id] == []
    feed = assert_status(await c.get(net.path("/purge-instructions/mine?after=0"),
                                     oggz.invoker), 200)
    assert [i["instruction"]["signed"]["ref"] for i in feed["items"]].count(inv_id) == 1


async def test_audit_bodies_are_erased_after_audit_days_under_an_erase_entry(
        setup: Any, tmp_path: Path) -> None:
    """``retention.audit_days`` (1 here) after the start of the day an entry was written,
    its body is erased: one second earlier nothing is.  The ``erase`` entry comes first
    and names the erased prefix; rows and commitments stay; a second pass does nothing;
    every member reads the erase entry, and the shipped monitors of the coordinator and
    of a member still verify the log."""
    world, ctx = setup
    c = world.caller
    net = Network(world.server, world.clock, policy=network_policy(
        retention={"identity_days": 30, "anonymous_days": 60, "audit_days": 1}))
    member = net.actor("member", ring="shell")
    await register(c, net, [member])
    coordinator = shipped_monitor(c, net, net.coordinator, tmp_path / "coordinator.db")
    reader = shipped_monitor(c, net, member, tmp_path / "member.db")
    size = (await coordinator.verify_all()).size
    await reader.verify_all()

    def stored(db: Any) -> list[tuple[int, bool, bytes]]:
        return [(r[0], r[1] is not None, r[2]) for r in db.execute(
            "SELECT idx, body, commitment FROM audit_entries WHERE network = ? ORDER BY idx",
            (net.id,))]

    def erased(done: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [d for d in done if d["network"] == net.id and d["step"] == "erase"]

    before = await ctx.store.read(stored)
    written = world.clock.now()
    start_of_day = written.replace(hour=0, minute=0, second=0)
    advance(world, (start_of_day + timedelta(days=2) - written).total_seconds() - 1)
    assert erased(await retention.run_pass(ctx)) == []
    advance(world, 1)
    [step] = erased(await retention.run_pass(ctx))
    assert (step["erased_below"], step["erased"], step["audit_index"]) == (size, size, size)
    after = await ctx.store.read(stored)
    assert [(i, c) for i, _, c in after[:size]] == [(i, c) for i, _, c in before]
    assert [kept for _, kept, _ in after] == [False] * size + [True]
    assert erased(await retention.run_pass(ctx)) == []

    [entry] = [e["entry"] for e in await reader.entries()]
    assert (entry["action"], entry["erased_below"], entry["basis"], entry["actor"]["partner"],
            entry["actor"]["role"]) == ("erase", size, "policy", world.server.log.key_id, "server")
    whole = await coordinator.verify_all()
    assert (whole.size, whole.checked, whole.erased) == (size + 1, 1, size)
    assert (await reader.verify_all()).size == size + 1


async def test_background_task_runs_passes_and_survives_a_failure(
        setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world, ctx = setup
    c, net, owner = world.caller, world.a, world["core-formal"]
    state = await create_case(c, net, owner)
    await append(c, net, state, owner, status="closed")
    advance(world, IDENTITY_DAYS * DAY)
    real_pass, calls = retention.run_pass, []

    async def flaky(ctx: AppContext) -> list[dict[str, Any]]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return await real_pass(ctx)
    monkeypatch.setattr(retention, "run_pass", flaky)
    task = asyncio.create_task(retention.retention_task(ctx, 0.01))
    try:
        for _ in range(500):
            if await count(ctx, "identity", net.id, state.case) == 0:
                break
            await asyncio.sleep(0.01)
        assert await count(ctx, "identity", net.id, state.case) == 0
        assert len(calls) >= 2 and not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_plan_is_pure_and_exact() -> None:
    from datetime import UTC, datetime
    now = datetime(2026, 1, 10, tzinfo=UTC)
    periods = retention.Periods(identity_days=2, anonymous_days=5, audit_days=30,
                                access_hours=72)
    closed = retention.CaseFacts(case="c", closed_at=now - timedelta(days=2),
                                 identity_held=True)
    assert [s.kind for s in retention.plan("n", periods, [closed], [], now)] == [
        "shred-identity"]
    assert retention.plan("n", periods, [closed], [], now - timedelta(seconds=1)) == []
    assert [s.kind for s in retention.plan("n", periods, [closed], [],
                                           now + timedelta(days=3))] == [
        "shred-identity", "shred-anonymous"]
    never = retention.CaseFacts(case="o", closed_at=None, identity_held=True)
    assert retention.plan("n", periods, [never], [], now + timedelta(days=999)) == []
    inv = retention.InvocationFacts(invocation="i", case="c", invoker="p", classes=("name",),
                                    accepted_at=now - timedelta(hours=72), purged=False)
    assert [s.kind for s in retention.plan("n", periods, [], [inv], now)] == [
        "bemoeizorg-expired"]
    assert retention.plan("n", periods, [], [inv], now - timedelta(seconds=1)) == []
    import dataclasses
    assert retention.plan("n", periods, [], [dataclasses.replace(inv, purged=True)], now) == []
    held = retention.AuditFacts(below=7, held=True)
    assert [(s.kind, s.case) for s in retention.plan("n", periods, [], [], now, audit=held)] == [
        ("erase", None)]
    assert retention.plan("n", periods, [], [], now,
                          audit=dataclasses.replace(held, held=False)) == []


async def test_cli_runs_one_pass(tmp_path: Any) -> None:
    """`schakel server retention --data DIR`: one pass on the data directory, printed."""
    from schakel.keys.keystore import KdfParams
    from schakel.server import serverkeys
    from tests.test_cli_serve import schakel

    data = tmp_path / "server"
    missing = schakel("server", "retention", "--data", str(tmp_path))
    assert missing.returncode != 0 and "no server keys" in missing.stderr
    serverkeys.load_or_create(data, environ={serverkeys.PASSPHRASE_ENV: "geheim-wachtwoord"},
                              kdf=KdfParams.INTERACTIVE)      # fast, as `server init` does
    ran = schakel("server", "retention", "--data", str(data), "--json", passphrase="geheim-wachtwoord")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"steps": []}
