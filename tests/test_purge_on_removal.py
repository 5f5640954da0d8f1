"""Purge on removal reaches the removed (protocol.md §N.5, §D.9, §D.10; docs/protocol.md
§14.3, §15.2, §15.4; server/routes/members.py, server/retention.py, server/auth.py).

Removing a member that holds released identity issues a ``membership-removed`` purge
instruction for every case it received identity of (signed by the log key, audited with the
removed member as subject).  The removed member fetches and acknowledges them with its old
key -- those two routes only: every other route refuses its key (one table, built from the
authorization matrix's own requests).  A revocation dated later than its arrival is caught
by the retention pass once it takes effect.  The removed member's side is the real
``Partner`` from client/.

The server tests share one server and world (module-scoped loop); each makes its own
members and grants, so they do not depend on each other.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from schakel.client import ServerRefused
from schakel.keys import revoke_membership
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.objects.disclosure import PurgeInstruction
from schakel.server import retention
from schakel.server.context import CTX
from tests import disclosure_harness as dh
from tests.client_harness import IDENTITY, INTAKE, running_server, standard_network
from tests.server_harness import (
    Actor, FakeClock, InProcessServer, Reply, World, assert_status, build_world, enrol,
    error_shape_problems,
)
from tests.test_server_matrix import BY_NAME, ROUTES, Expected

shared_loop = pytest.mark.asyncio(loop_scope="module")

OK, NEW = 200, 201
UK = (403, "untrusted_key")       # a key whose memberships all ended (docs/protocol.md §14.1)
F = (403, "forbidden")
PV = (403, "policy_violation")    # decided and audited as a denial (not-a-member, §15.2)

#: Every route of the authorization matrix, called by a removed member with its old key.
#: Only its own purge routes let it in; the release routes hear it out and refuse it as an
#: audited denial; an unsigned route reads no key at all.
REMOVED: dict[str, Expected] = {
    "GET healthz": OK, "GET metrics": OK, "GET openapi": OK, "GET server": OK,
    "GET signals/status": OK,
    # the resident's intake page and its files are public (ADR 0038)
    "GET intake": OK, "GET intake.css": OK, "GET intake.js": OK, "GET libsodium.js": OK,
    "GET libsodium-wrappers.js": OK,
    # registering a network takes the genesis's own coordinator key, whoever else signs
    "POST networks": F,
    "GET network": UK, "POST members": UK, "GET members": UK, "POST revocations": UK,
    "POST policies": UK, "POST rotations": UK,
    "POST covenant": UK, "POST epochs": UK, "GET epochs/mine": UK, "POST cases": UK,
    "POST events": UK, "GET case": UK, "GET sync": UK, "POST shares": UK, "POST rekeys": UK,
    "POST header": UK, "POST gated": UK, "POST purges": UK, "POST audience": UK, "GET holders": UK, "POST signals": UK,
    "GET signals": UK, "POST feedback": UK, "GET hints": UK, "POST card": UK, "GET card": OK,
    "GET audit/head": UK, "GET audit/checkpoint": UK,
    # the trust log: a former member reads it whole (protocol.md §15.8), as every member
    "GET trust": OK, "GET trust/checkpoint": OK, "GET trust/consistency": OK,
    "GET audit/heads": UK, "GET audit/entries": UK, "GET audit/inclusion": UK,
    "GET audit/consistency": UK, "POST consents": UK, "POST revocation": UK,
    "POST grants": UK, "POST lookups": UK, "POST bemoeizorg": UK, "GET bemoeizorg": UK, "POST cosign": UK,
    "GET notifications": UK,
    # a release attempt is a refused disclosure: decided, audited, refused
    "POST releases": PV, "POST bemoeizorg/release": PV,
    "POST reviews": UK, "GET access-report": UK, "POST referrals": UK, "GET referrals": UK,
    "GET purge/owned": UK,
    # its own instructions: read with its old key ...
    "GET purge/mine": OK,
    # ... and acknowledged (the matrix's request acknowledges another member's
    # instruction, which only that member may: the route let the removed key in)
    "POST purge-acks": F,
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("removal"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller), server.client.app[CTX]
    finally:
        await server.stop()


async def released_member(w: World, label: str, classes: list[str]) -> Actor:
    """A new core member that received ``classes`` of the main case under a consent."""
    a, c = w.a, w.caller
    member = await enrol(c, a, label)
    await dh.post_ok(c, a, f"/cases/{w.case.case}/gated", w.case.owner,
                     {"gated": a.gated(w.case, [member], classes)})
    _, grant = await dh.consent_and_grant(c, a, w.case, member, classes)
    assert_status(await dh.release(c, a, member, grant), 201)
    return member


async def remove(w: World, member: Actor, revocation: dict[str, Any] | None = None,
                 status: int = 201) -> dict[str, Any]:
    """The coordinator revokes ``member`` (now, or by ``revocation``); the harness stops
    counting it in the core (new cases seal nothing to it)."""
    revocation = revocation or w.a.revocation(member)
    assert_status(await w.caller.post(w.a.path("/revocations"), w.a.coordinator,
                                      {"revocation": revocation}), status)
    w.a.members.pop(member.label, None)
    return revocation


def revocation_id(envelope: dict[str, Any]) -> str:
    """The id a revocation goes by (it has no id field): 16 bytes of its digest."""
    return b64e(sha256(canonical_json(envelope))[:16])


async def instructions(w: World, member: Actor) -> list[dict[str, Any]]:
    feed = assert_status(await w.caller.get(w.a.path("/purge-instructions/mine?after=0"),
                                            member), 200)
    return [item["instruction"] for item in feed["items"]]


@shared_loop
async def test_removing_a_member_that_received_identity_issues_membership_removed_purge(
        setup: Any) -> None:
    """The revocation's own transaction issues, for the case the member received ``name``
    of, a ``membership-removed`` instruction signed by the log key (ref = the revocation),
    audited with the server as actor and the removed member as subject; the removed
    member reads it with its old key and acknowledges it (audited).  A retried revocation
    issues nothing more."""
    w, _ = setup
    a, c = w.a, w.caller
    leaver = await released_member(w, "leaver", ["name"])
    revocation = await remove(w, leaver)

    [envelope] = await instructions(w, leaver)
    instruction = PurgeInstruction.from_envelope(envelope, [w.server.log])
    assert (instruction.reason, instruction.recipient, instruction.case, instruction.classes,
            instruction.ref) == ("membership-removed", leaver.key_id, w.case.case, ("name",),
                                 revocation_id(revocation))
    entries = await dh.audit_log(c, a)
    [entry] = [e for e in entries if e["action"] == "purge-instruction"
               and e["ref"] == instruction.instruction]
    assert (entry["subject"], entry["case"], entry["reason"], entry["basis"]) == (
        leaver.key_id, w.case.case, "membership-removed", "policy")
    assert (entry["actor"]["role"], entry["actor"]["partner"]) == ("server", w.server.log.key_id)

    await remove(w, leaver, revocation, status=200)
    assert len(await instructions(w, leaver)) == 1

    ack = await dh.post_ok(c, a, "/purge-acks", leaver,
                           {"ack": dh.purge_ack(a, envelope, leaver)})
    acked = (await dh.audit_log(c, a))[ack["audit_index"]]
    assert (acked["action"], acked["ref"], acked["actor"]["partner"]) == (
        "purge-ack", instruction.instruction, leaver.key_id)


@shared_loop
async def test_removing_a_member_without_released_identity_issues_no_purge(setup: Any) -> None:
    w, _ = setup
    a, c = w.a, w.caller
    bystander = await enrol(c, a, "bystander")
    await remove(w, bystander)
    assert await instructions(w, bystander) == []


@shared_loop
async def test_revocation_dated_later_purges_once_it_takes_effect(setup: Any) -> None:
    """A revocation whose ``at`` lies ahead removes nobody yet: no instruction, and the
    member keeps receiving releases.  The first retention pass after ``at`` issues the
    instruction -- covering what was released in between -- and a second pass nothing."""
    w, ctx = setup
    a, c = w.a, w.caller
    member = await released_member(w, "leaving-later", ["name"])
    revocation = revoke_membership(a.coordinator.keys, network=a.id, member=member.key_id,
                                   serial=member.serial, at=a.now() + timedelta(hours=1),
                                   reason="vertrekt volgende maand")
    assert_status(await c.post(a.path("/revocations"), a.coordinator, {"revocation": revocation}),
                  201)
    assert await instructions(w, member) == []
    await dh.post_ok(c, a, f"/cases/{w.case.case}/gated", w.case.owner,
                     {"gated": a.gated(w.case, [member], ["address"])})
    _, grant = await dh.consent_and_grant(c, a, w.case, member, ["address"])
    assert_status(await dh.release(c, a, member, grant), 201)

    assert isinstance(w.clock, FakeClock)
    w.clock.advance(2 * 3600)
    a.members.pop(member.label)
    done = [d for d in await retention.run_pass(ctx) if d.get("member") == member.key_id]
    assert [(d["step"], d["case"], d["revocation"]) for d in done] == [
        ("membership-removed", w.case.case, revocation_id(revocation))]
    [envelope] = await instructions(w, member)
    instruction = PurgeInstruction.from_envelope(envelope, [w.server.log])
    assert (instruction.reason, instruction.classes) == ("membership-removed",
                                                         ("address", "name"))
    assert not [d for d in await retention.run_pass(ctx) if d.get("member") == member.key_id]


@shared_loop
async def test_removed_member_key_is_refused_on_every_route_but_its_purge_routes(
        setup: Any) -> None:
    """One table (:data:`REMOVED`) over every route of the authorization matrix, each sent
    as the matrix sends it, signed by a removed member that holds a purge instruction."""
    w, _ = setup
    removed = await released_member(w, "removed", ["name"])
    await remove(w, removed)
    assert set(REMOVED) == set(BY_NAME), "every route of the matrix has a row here"
    failures = []
    for route in ROUTES:
        req = await route.build(w, "removed", removed)
        reply: Reply = await w.caller(route.method, req.path, req.signer, json=req.json,
                                      headers=req.headers)
        expected = REMOVED[route.name]
        status, code = (expected, None) if isinstance(expected, int) else expected
        if reply.status != status or (code is not None and (
                reply.code != code or error_shape_problems(reply))):
            failures.append(f"{route.name}: want {expected}, got {reply!r}")
    assert not failures, "\n".join(failures)


async def test_removed_member_client_purges_and_acknowledges_with_its_old_key(
        tmp_path: Path) -> None:
    """The real client of a removed member: ``sync`` is refused (it is no member), but
    ``duties`` -- with the genesis it verified before -- executes the
    ``membership-removed`` instruction and acknowledges it with its old key, audited."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            network, leaver = cast.network, cast.informal
            case = await cast.formal.cases.create(network, INTAKE, identity=IDENTITY)
            await cast.coordinator.sync(network)
            consent = await cast.coordinator.disclosure.record_consent(
                network, case, classes=["name"], partners=[leaver.key_id],
                purpose="Afstemming van hulp rond de woning.", evidence=b"formulier")
            grant = await cast.coordinator.disclosure.grant(network, case, consent=consent,
                                                 grantee=leaver.key_id, classes=["name"],
                                                 reason="huisbezoek plannen")
            await leaver.sync(network)
            await leaver.disclosure.release(network, grant)
            assert leaver.identity.get(network, case) == {"name": IDENTITY["name"]}

            await cast.coordinator.networks.remove(network, leaver.key_id, reason="verlaat het netwerk")
            with pytest.raises(ServerRefused) as refused:
                await leaver.sync(network)
            assert (refused.value.status, refused.value.code) == (403, "untrusted_key")

            report = await leaver.duties(network)
            assert report.removed and len(report.purged) == 1
            assert leaver.identity.get(network, case) == {}
            assert leaver.session.state.secret_refs("class-key", (network, case)) == []
            entries = {e["index"]: e["entry"] for e in
                       await cast.coordinator.audit.entries(network)}
            [issued] = [e for e in entries.values() if e["action"] == "purge-instruction"
                        and e["ref"] == report.purged[0]]
            assert (issued["reason"], issued["subject"]) == ("membership-removed", leaver.key_id)
            [ack] = [e for e in entries.values() if e["action"] == "purge-ack"]
            assert (ack["ref"], ack["actor"]["partner"], ack["case"]) == (
                report.purged[0], leaver.key_id, case)
            assert (await leaver.duties(network)).purged == []       # done once
        finally:
            await cast.close()

