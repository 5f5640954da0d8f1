"""No identity after its basis ends, and every attempt is in the log (docs/protocol.md
§15 §15.2; protocol.md §7, §11; ADR 0009).

A release retried under its client-chosen release id is decided again like a new one:
when the basis is gone (the consent revoked or expired, the grantee removed from the
network, bemoeizorg access past ``access_hours``) the retry is an audited ``deny``; when
it still holds, the retry re-delivers exactly the first answer's envelopes with a fresh
audit entry and receipt of its own.  A release under a grant or invocation the caller does
not hold, and a grant signed by anyone but the coordinator, are audited denials too, and
"unknown" and "someone else's" look the same from outside.

The real application on a real SQLite file with the server's fake clock (moved forward
only), real keys and real signed objects; the grantee's side verifies receipts and opens
what it was given (:mod:`tests.disclosure_harness`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol import envelopes
from schakel.protocol.crypto import ClassKey
from schakel.protocol.objects.cases import IdentityRecord
from schakel.protocol.objects.disclosure import Grant
from schakel.server.context import CTX, AppContext
from tests.disclosure_harness import (
    Oggz, assert_denial_logged, audit_log, consent_and_grant, cosign, grant, invocation,
    oggz_network, open_release, person, post_ok, release, revocation, verify_receipt,
)
from tests.server_harness import (
    IDENTITY, Actor, Caller, FakeClock, InProcessServer, Network, Reply, World, assert_status,
    build_world, create_case, enrol, new_id,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("basis"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller), server.client.app[CTX]
    finally:
        await server.stop()


@pytest.fixture
def world(setup: Any) -> World:
    return setup[0]


@pytest.fixture
def ctx(setup: Any) -> AppContext:
    return setup[1]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oggz(setup: Any) -> Oggz:
    world = setup[0]
    return await oggz_network(world.caller, world.server, world.clock)


def refusal(reply: Reply) -> tuple[int, str, str, str]:
    """What a refused caller learns, apart from the index of its own entry."""
    error = reply.json["error"]
    return reply.status, error["code"], error["message"], error["details"]["reason"]


async def own_entries(c: Caller, net: Network, reader: Actor,
                      replies: list[Reply]) -> list[dict[str, Any]]:
    """The entries of refused ``replies`` as ``reader`` reads them, without what differs
    between any two entries (index, salt, time) and the id it sent (``ref``)."""
    readable = {e["index"]: e for e in await audit_log(c, net, reader)}
    return [{k: v for k, v in readable[r.json["error"]["details"]["audit_index"]].items()
             if k not in ("index", "salt", "time", "ref")} for r in replies]


async def released_once(c: Caller, net: Network, state: Any, grantee: Actor,
                        classes: list[str], **consent_options: Any
                        ) -> tuple[str, str, dict[str, Any]]:
    """Consent, grant and a first release to ``grantee``: (consent, grant, answer)."""
    consent_id, grant_id = await consent_and_grant(c, net, state, grantee, classes,
                                                   **consent_options)
    first = assert_status(await release(c, net, grantee, grant_id), 201)
    return consent_id, grant_id, first


async def bemoeizorg_released(c: Caller, oggz: Oggz, invoker: Actor) -> tuple[str, Any]:
    """An invocation by ``invoker``, co-signed, and a first release: (invocation, answer)."""
    net = oggz.net
    inv = invocation(net, oggz.case, invoker, auditors=[oggz.auditor])
    inv_id = inv["signed"]["invocation"]
    await post_ok(c, net, "/bemoeizorg", invoker, {"invocation": inv})
    await post_ok(c, net, f"/bemoeizorg/{inv_id}/cosign", oggz.second,
                  {"cosign": cosign(net, inv, oggz.second)})
    return inv_id, await post_ok(c, net, f"/bemoeizorg/{inv_id}/release", invoker,
                                 {"release": new_id()})


async def assert_retry_denied(c: Caller, net: Network, reply: Reply, reason: str, *,
                              actor: Actor, ref: str, case: str) -> None:
    """The retry is an audited denial that hands out nothing."""
    assert b"inner" not in reply.raw
    entry = await assert_denial_logged(c, net, reply, reason, case=case)
    assert (entry["actor"]["partner"], entry["ref"]) == (actor.key_id, ref)


# =========================================================== no identity after its basis ends


async def test_release_retry_after_consent_revoked_is_denied_and_audited(world: World) -> None:
    w, c, net = world, world.caller, world.a
    grantee = w["core-informal"]
    consent_id, grant_id, first = await released_once(c, net, w.case, grantee, ["name"])
    await post_ok(c, net, f"/consents/{consent_id}/revocation", w["core-formal"],
                  {"revocation": revocation(net, w.case, consent_id, w["core-formal"])})
    reply = await release(c, net, grantee, grant_id, release_id=first["release"])
    await assert_retry_denied(c, net, reply, "consent-revoked", actor=grantee, ref=grant_id,
                              case=w.case.case)


async def test_release_retry_after_consent_expired_is_denied_and_audited(world: World) -> None:
    w, c, net = world, world.caller, world.a
    grantee = w["core-informal"]
    _, grant_id, first = await released_once(c, net, w.case, grantee, ["address"],
                                             valid_for=timedelta(hours=1))
    w.clock.advance(2 * 3600)
    reply = await release(c, net, grantee, grant_id, release_id=first["release"])
    await assert_retry_denied(c, net, reply, "consent-expired", actor=grantee, ref=grant_id,
                              case=w.case.case)


async def test_release_retry_after_grantee_removed_is_denied_and_audited(world: World) -> None:
    """R2 holds for a former member too: its retry reaches the policy (not a bare 403
    ``untrusted_key``) and is audited with it as the actor."""
    w, c, net = world, world.caller, world.a
    leaver = await enrol(c, net, "vertrekker")
    state = await create_case(c, net, w["core-formal"], recipients=[leaver])
    _, grant_id, first = await released_once(c, net, state, leaver, ["name"])
    assert_status(await c.post(net.path("/revocations"), net.coordinator,
                               {"revocation": net.revocation(leaver)}), 201)
    del net.members[leaver.label]
    reply = await release(c, net, leaver, grant_id, release_id=first["release"])
    await assert_retry_denied(c, net, reply, "not-a-member", actor=leaver, ref=grant_id,
                              case=state.case)


async def test_bemoeizorg_release_retry_after_access_hours_is_denied_and_audited(
        world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-herhaling")
    inv_id, first = await bemoeizorg_released(c, oggz, invoker)
    world.clock.advance((net.policy["bemoeizorg"]["access_hours"] + 1) * 3600)
    reply = await c.post(net.path(f"/bemoeizorg/{inv_id}/release"), invoker,
                         {"release": first["release"]})
    await assert_retry_denied(c, net, reply, "bemoeizorg-expired", actor=invoker, ref=inv_id,
                              case=oggz.case.case)


# =========================================================================== a retry still allowed


async def test_release_retry_is_a_redelivery_with_its_own_audit_entry(world: World) -> None:
    """The basis still holds: the retry answers 200 with the first answer's envelopes and
    a fresh receipt, whose entry names the first release's entry."""
    w, c, net = world, world.caller, world.a
    grantee = w["core-informal"]
    _, grant_id, first = await released_once(c, net, w.case, grantee, ["address", "name"])
    size = len(await audit_log(c, net))
    again = assert_status(await release(c, net, grantee, grant_id, release_id=first["release"]),
                          200)
    assert (again["release"], again["envelopes"]) == (first["release"], first["envelopes"])
    entry = verify_receipt(again["receipt"], w.server, net.id)
    assert entry.index == size == len(await audit_log(c, net)) - 1
    assert (entry.action, entry.outcome, entry.ref, entry.case, list(entry.classes or ())) == (
        "release", "allow", grant_id, w.case.case, ["address", "name"])
    assert entry.reason == f"allowed; re-delivery of entry {first['receipt']['index']}"
    assert open_release(again, grantee, net, w.case, w.server) == {
        k: IDENTITY[k] for k in ("address", "name")}


async def test_bemoeizorg_release_retry_is_a_redelivery_with_its_own_audit_entry(
        world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-opnieuw")
    inv_id, first = await bemoeizorg_released(c, oggz, invoker)
    again = await c.post(net.path(f"/bemoeizorg/{inv_id}/release"), invoker,
                         {"release": first["release"]})
    again_json = assert_status(again, 200)
    assert again_json["envelopes"] == first["envelopes"]
    entry = verify_receipt(again_json["receipt"], world.server, net.id)
    assert entry.index > first["receipt"]["index"]
    assert (entry.action, entry.ref, entry.review_required, entry.emergency) == (
        "bemoeizorg-release", inv_id, True, True)
    assert entry.reason == f"severe-self-neglect; re-delivery of entry {first['receipt']['index']}"
    feed = assert_status(await c.get(net.path("/notifications?after=0"), net.coordinator), 200)
    assert [i["kind"] for i in feed["items"] if i.get("invocation") == inv_id].count(
        "bemoeizorg-release") == 2


async def test_release_retry_hands_out_nothing_beyond_the_first_answer(
        world: World, ctx: AppContext) -> None:
    """Between the first answer and the retry the owner moved the case to identity version
    2 (new class key, new identity record, a new gated envelope for the grantee).  The
    retry re-delivers the version-1 envelopes of the first answer, nothing of version 2;
    only a new release (a new id, decided and audited as such) gets version 2."""
    w, c, net = world, world.caller, world.a
    owner, grantee = w["core-formal"], w["core-informal"]
    state = await create_case(c, net, owner)
    _, grant_id, first = await released_once(c, net, state, grantee, ["name"])
    key = ClassKey.generate()
    record = IdentityRecord(network=net.id, case=state.case, class_="name", version=2,
                            ciphertext=envelopes.encrypt_json(
                                key, {"given_name": "Nieuw", "family_name": "Sleutel"},
                                envelopes.identity_context(net.id, state.case, "name",
                                                           version=2))).sign(owner.signer)
    blob = envelopes.make_gated(w.server.gate, grantee.box, key, envelopes.GateContext(
        network=net.id, case=state.case, cls="name", version=2, recipient=grantee.key_id))

    def rotate(db: Any) -> None:
        db.execute("UPDATE identity SET version = 2, envelope = ? WHERE network = ?"
                   " AND [case] = ? AND class = 'name'", (json.dumps(record), net.id, state.case))
        db.execute("INSERT INTO gated (network, [case], class, version, recipient, blob)"
                   " VALUES (?, ?, 'name', 2, ?, ?)", (net.id, state.case, grantee.key_id, blob))
    await ctx.store.write(rotate)

    again = assert_status(await release(c, net, grantee, grant_id, release_id=first["release"]),
                          200)
    assert again["envelopes"] == first["envelopes"]
    assert [e["version"] for e in again["envelopes"]] == [1]
    fresh = assert_status(await release(c, net, grantee, grant_id), 201)
    assert [e["version"] for e in fresh["envelopes"]] == [2]


# =============================================================== every attempt is in the log


def assert_bare_denial(entry: dict[str, Any], actor: Actor, ref: str, basis: str) -> None:
    """The entry of a refused attempt under an object the caller does not hold: it names
    the caller and the id it sent, and nothing the server knows about that id."""
    assert entry["actor"]["partner"] == actor.key_id and entry["ref"] == ref
    assert entry["basis"] == basis
    assert not {"case", "subject", "classes"} & set(entry), entry


async def test_release_under_another_partners_grant_is_denied_and_audited(world: World) -> None:
    """Even with the grantee's own release id: no stored answer, no 409 that tells the id
    exists, but the audited denial every other member gets."""
    w, c, net = world, world.caller, world.a
    _, grant_id, first = await released_once(c, net, w.case, w["core-informal"], ["name"])
    intruder = w["core-formal"]
    for release_id in (new_id(), first["release"]):
        reply = await release(c, net, intruder, grant_id, release_id=release_id)
        assert b"inner" not in reply.raw
        entry = await assert_denial_logged(c, net, reply, "grant-not-held")
        assert_bare_denial(entry, intruder, grant_id, "consent")


async def test_release_under_an_unknown_grant_is_denied_and_audited(world: World) -> None:
    w, c, net = world, world.caller, world.a
    unknown = new_id()
    reply = await release(c, net, w["shell"], unknown)
    entry = await assert_denial_logged(c, net, reply, "grant-not-held")
    assert_bare_denial(entry, w["shell"], unknown, "consent")


async def test_unknown_and_another_partners_grant_are_refused_alike(world: World) -> None:
    w, c, net = world, world.caller, world.a
    _, grant_id, _ = await released_once(c, net, w.case, w["core-informal"], ["name"])
    intruder = w["shell-shared"]
    theirs = await release(c, net, intruder, grant_id)
    unknown = await release(c, net, intruder, new_id())
    assert refusal(theirs) == refusal(unknown)
    first, second = await own_entries(c, net, intruder, [theirs, unknown])
    assert first == second


async def test_grant_by_a_non_coordinator_is_denied_and_audited(world: World) -> None:
    """A member that signs a grant to itself attempts a disclosure: refused and audited
    with what its grant names, before any id in it is looked up."""
    w, c, net = world, world.caller, world.a
    member = w["core-formal"]
    consent_id, _ = await consent_and_grant(c, net, w.case, w["core-informal"], ["name"])
    g = grant(net, w.case, member, ["name", "official"], consent_id, signer=member)
    reply = await c.post(net.path("/grants"), member, {"grant": g})
    entry = await assert_denial_logged(c, net, reply, "grant-requires-coordinator",
                                       case=w.case.case)
    assert (entry["actor"]["partner"], entry["actor"]["role"]) == (member.key_id, "member")
    assert (entry["ref"], entry["classes"], entry["basis"]) == (
        g["signed"]["grant"], ["name", "official"], "consent")


async def test_grant_by_a_non_coordinator_with_an_existing_grant_id_is_refused_alike(
        world: World) -> None:
    """Reusing an existing grant's id gets the same refusal as a fresh id, not the 409 that
    would tell the id exists."""
    w, c, net = world, world.caller, world.a
    member = w["core-informal"]
    consent_id, grant_id = await consent_and_grant(c, net, w.case, member, ["name"])
    fresh = grant(net, w.case, member, ["name"], consent_id, signer=member)
    reused = {**fresh["signed"], "grant": grant_id}
    replies = [await c.post(net.path("/grants"), member, {"grant": g}) for g in (
        fresh, Grant.from_json(reused).sign(member.signer))]
    for reply in replies:
        await assert_denial_logged(c, net, reply, "grant-requires-coordinator", case=w.case.case)
    assert refusal(replies[0]) == refusal(replies[1])


async def test_bemoeizorg_release_by_someone_other_than_the_invoker_is_denied_and_audited(
        world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    inv_id, first = await bemoeizorg_released(c, oggz, person(oggz.invoker, "arts-eigen"))
    for release_id in (new_id(), first["release"]):
        reply = await c.post(net.path(f"/bemoeizorg/{inv_id}/release"), oggz.second,
                             {"release": release_id})
        assert b"inner" not in reply.raw
        entry = await assert_denial_logged(c, net, reply, "bemoeizorg-missing")
        assert_bare_denial(entry, oggz.second, inv_id, "bemoeizorg")
        assert entry["emergency"] is True


async def test_bemoeizorg_release_under_an_unknown_invocation_is_denied_and_audited(
        world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    unknown = new_id()
    reply = await c.post(net.path(f"/bemoeizorg/{unknown}/release"), oggz.no_role,
                         {"release": new_id()})
    entry = await assert_denial_logged(c, net, reply, "bemoeizorg-missing")
    assert_bare_denial(entry, oggz.no_role, unknown, "bemoeizorg")


async def test_unknown_and_another_partners_invocation_are_refused_alike(
        world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-derde")
    inv = invocation(net, oggz.case, invoker, auditors=[oggz.auditor])
    inv_id = inv["signed"]["invocation"]
    await post_ok(c, net, "/bemoeizorg", invoker, {"invocation": inv})
    replies = [await c.post(net.path(f"/bemoeizorg/{ref}/release"), oggz.second,
                            {"release": new_id()}) for ref in (inv_id, new_id())]
    assert refusal(replies[0]) == refusal(replies[1])
    first, second = await own_entries(c, net, oggz.second, replies)
    assert first == second
