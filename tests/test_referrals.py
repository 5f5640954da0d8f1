"""Referrals between networks (issue 4 item 5; protocol.md §D.8, flow 7;
docs/protocol.md §15 §15.5).

The real application on a real SQLite file with two networks on one server (the world of
:mod:`tests.server_harness`: A is a neighbourhood network, B an oggz network).  A's
coordinator refers A's main case to B: B's case is created first by B's core member
through the normal case route; the referral is recorded in both logs (read back through
the audit routes); B closing its case puts a ``referral-closed`` item in A's coordinator's
notifications.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol.objects.disclosure import Referral, ReferralBasis
from tests.disclosure_harness import (
    audit_log, consent, invocation, post_ok, revocation, staff_oggz,
)
from tests.server_harness import (
    Actor, CaseState, FakeClock, InProcessServer, Network, World, append, assert_error,
    assert_status, build_world, create_case, new_id,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("referrals"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


def referral(net: Network, state: CaseState, to: Network, new_case: str, basis_ref: str, *,
             signer: Actor | None = None, kind: str = "consent",
             to_network: str | None = None) -> dict[str, Any]:
    signer = signer or net.coordinator
    return Referral(network=net.id, to_network=to_network or to.id, case=state.case,
                    new_case=new_case, basis=ReferralBasis(kind=kind, ref=basis_ref),
                    acting_user=signer.acting_user, at=net.stamp(),
                    reason="verhuisd naar de regio Eemland").sign(signer.signer)


async def a_consent(w: World) -> str:
    """A consent for A's main case naming B's coordinator (the basis of a referral)."""
    c = consent(w.a, w.case, w.a.coordinator, classes=["name"], partners=[w.b.coordinator])
    await post_ok(w.caller, w.a, "/consents", w.a.coordinator, {"consent": c})
    return str(c["signed"]["consent"])


async def b_case(w: World) -> CaseState:
    """The receiving side's case, created by B's core member through the case route."""
    return await create_case(w.caller, w.b, w["other-network"])


async def referrals(w: World, net: Network, reader: Actor) -> list[dict[str, Any]]:
    page = assert_status(await w.caller.get(net.path("/referrals?after=0"), reader), 200)
    return list(page["items"])


async def notifications(w: World, net: Network) -> list[dict[str, Any]]:
    page = assert_status(await w.caller.get(net.path("/notifications?after=0"),
                                            net.coordinator), 200)
    return list(page["items"])


async def test_referral_is_recorded_in_both_logs(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    r = referral(w.a, w.case, w.b, new.case, basis)
    answer = await post_ok(w.caller, w.a, "/referrals", w.a.coordinator, {"referral": r})
    out = (await audit_log(w.caller, w.a))[answer["audit_index"]]
    inn = (await audit_log(w.caller, w.b))[answer["receiving_audit_index"]]
    assert out["action"] == "referral-out" and out["case"] == w.case.case
    assert out["subject"] == w.b.coordinator.key_id and out["ref"] == answer["referral"]
    assert out["actor"]["partner"] == w.a.coordinator.key_id and out["basis"] == "consent"
    assert inn["action"] == "referral-in" and inn["case"] == new.case
    assert inn["ref"] == answer["referral"] and inn["network"] == w.b.id
    # Both coordinators see it, in their own direction, with the signed referral.
    sent = [i for i in await referrals(w, w.a, w.a.coordinator)
            if i["referral"] == answer["referral"]]
    got = [i for i in await referrals(w, w.b, w.b.coordinator)
           if i["referral"] == answer["referral"]]
    assert [i["direction"] for i in sent] == ["out"] and [i["direction"] for i in got] == ["in"]
    assert sent[0]["envelope"] == r and sent[0]["closed"] is None


async def test_identical_retry_answers_200_and_records_nothing_more(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    r = referral(w.a, w.case, w.b, new.case, basis)
    first = await post_ok(w.caller, w.a, "/referrals", w.a.coordinator, {"referral": r})
    sizes = len(await audit_log(w.caller, w.a)), len(await audit_log(w.caller, w.b))
    again = assert_status(await w.caller.post(w.a.path("/referrals"), w.a.coordinator,
                                              {"referral": r}), 200)
    assert again == first
    assert (len(await audit_log(w.caller, w.a)), len(await audit_log(w.caller, w.b))) == sizes
    # Another referral into the same receiving case: 409.
    other = referral(w.a, w.case, w.b, new.case, basis)
    other["signed"]["reason"] = "nog een keer"
    other = Referral.from_json(other["signed"]).sign(w.a.coordinator.signer)
    assert_error(await w.caller.post(w.a.path("/referrals"), w.a.coordinator,
                                     {"referral": other}), 409, "conflict")


@pytest.mark.parametrize("kind", ["core-formal", "core-informal", "auditor", "other-network"])
async def test_only_the_coordinator_refers(world: World, kind: str) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    actor = w[kind]
    r = referral(w.a, w.case, w.b, new.case, basis, signer=actor)
    assert_error(await w.caller.post(w.a.path("/referrals"), actor, {"referral": r}), 403,
                 "forbidden")
    assert not [i for i in await referrals(w, w.b, w.b.coordinator)
                if i["envelope"]["signed"]["new_case"] == new.case]


async def _refused(w: World, r: dict[str, Any], status: int, code: str) -> None:
    sizes = len(await audit_log(w.caller, w.a)), len(await audit_log(w.caller, w.b))
    count = len(await referrals(w, w.a, w.a.coordinator))
    assert_error(await w.caller.post(w.a.path("/referrals"), w.a.coordinator, {"referral": r}),
                 status, code)
    assert (len(await audit_log(w.caller, w.a)), len(await audit_log(w.caller, w.b))) == sizes
    assert len(await referrals(w, w.a, w.a.coordinator)) == count


async def test_unknown_target_network_is_refused_and_nothing_stored(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    await _refused(w, referral(w.a, w.case, w.b, new.case, basis, to_network=new_id()),
                   404, "not_found")


async def test_unknown_cases_are_refused_and_nothing_stored(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    # The receiving case does not exist (yet) in B.
    await _refused(w, referral(w.a, w.case, w.b, new_id(), basis), 404, "not_found")
    # A's case id is not a case of A.
    r = referral(w.a, w.case, w.b, new.case, basis)
    r = Referral.from_json({**r["signed"], "case": new_id()}).sign(w.a.coordinator.signer)
    await _refused(w, r, 404, "not_found")
    # A case of B named as A's case (another network's case is not A's).
    r = Referral.from_json({**r["signed"], "case": new.case, "new_case": w.case.case}
                           ).sign(w.a.coordinator.signer)
    await _refused(w, r, 404, "not_found")


async def test_unknown_or_foreign_basis_is_refused_and_nothing_stored(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    await _refused(w, referral(w.a, w.case, w.b, new.case, new_id()), 404, "not_found")
    await _refused(w, referral(w.a, w.case, w.b, new.case, new_id(), kind="bemoeizorg"),
                   404, "not_found")
    # A consent of another case of A.
    other = await create_case(w.caller, w.a, w["core-formal"])
    await _refused(w, referral(w.a, other, w.b, new.case, basis), 400, "context_mismatch")
    # A consent of the case that does not name B's coordinator (§D.8).
    c = consent(w.a, w.case, w.a.coordinator, classes=["name"], partners=[w["core-formal"]])
    await post_ok(w.caller, w.a, "/consents", w.a.coordinator, {"consent": c})
    await _refused(w, referral(w.a, w.case, w.b, new.case, c["signed"]["consent"]), 403,
                   "policy_violation")
    # A revoked consent.
    revoked = await a_consent(w)
    await post_ok(w.caller, w.a, f"/consents/{revoked}/revocation", w.a.coordinator,
                  {"revocation": revocation(w.a, w.case, revoked, w.a.coordinator)})
    await _refused(w, referral(w.a, w.case, w.b, new.case, revoked), 409, "conflict")


async def test_referral_for_another_network_path_is_refused(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    r = referral(w.a, w.case, w.b, new.case, basis)
    # A's coordinator posting under B's path is not B's coordinator.
    assert_error(await w.caller.post(w.b.path("/referrals"), w.a.coordinator, {"referral": r}),
                 403, "forbidden")


async def test_closing_the_new_case_notifies_the_sender(world: World) -> None:
    w = world
    basis, new = await a_consent(w), await b_case(w)
    answer = await post_ok(w.caller, w.a, "/referrals", w.a.coordinator,
                           {"referral": referral(w.a, w.case, w.b, new.case, basis)})
    assert not [n for n in await notifications(w, w.a)
                if n.get("referral") == answer["referral"]]
    await append(w.caller, w.b, new, w["other-network"], status="closed")
    told = [n for n in await notifications(w, w.a) if n.get("referral") == answer["referral"]]
    assert len(told) == 1
    assert told[0]["kind"] == "referral-closed" and told[0]["case"] == w.case.case
    assert set(told[0]) == {"cursor", "kind", "referral", "case", "at"}
    # B's coordinator is not told (it closed it), and the referral shows it closed.
    assert not [n for n in await notifications(w, w.b) if n["kind"] == "referral-closed"]
    sent = [i for i in await referrals(w, w.a, w.a.coordinator)
            if i["referral"] == answer["referral"]]
    assert sent[0]["closed"] is not None


async def test_bemoeizorg_basis_from_the_oggz_network(world: World) -> None:
    """B (oggz) refers its case to A under an accepted bemoeizorg invocation: both entries
    carry basis bemoeizorg (emergency); B's coordinator hears when A closes its case."""
    w = world
    cast = await staff_oggz(w.caller, w.b, prefix="r-")
    inv = invocation(w.b, cast.case, cast.invoker, auditors=[cast.auditor])
    await post_ok(w.caller, w.b, "/bemoeizorg", cast.invoker, {"invocation": inv})
    new = await create_case(w.caller, w.a, w["core-formal"])
    r = referral(w.b, cast.case, w.a, new.case, inv["signed"]["invocation"], kind="bemoeizorg")
    answer = await post_ok(w.caller, w.b, "/referrals", w.b.coordinator, {"referral": r})
    out = (await audit_log(w.caller, w.b))[answer["audit_index"]]
    inn = (await audit_log(w.caller, w.a))[answer["receiving_audit_index"]]
    assert out["action"] == "referral-out" and inn["action"] == "referral-in"
    assert out["basis"] == inn["basis"] == "bemoeizorg" and out["emergency"] and inn["emergency"]
    assert out["subject"] == w.a.coordinator.key_id
    await append(w.caller, w.a, new, w["core-formal"], status="closed")
    told = [n for n in await notifications(w, w.b) if n.get("referral") == answer["referral"]]
    assert [(n["kind"], n["case"]) for n in told] == [("referral-closed", cast.case.case)]


@pytest.mark.parametrize("kind", ["core-formal", "core-informal", "shell", "auditor",
                                  "other-network"])
async def test_others_cannot_read_referrals(world: World, kind: str) -> None:
    w = world
    for net in (w.a, w.b):
        reply = await w.caller.get(net.path("/referrals?after=0"), w[kind])
        assert_error(reply, 403, "forbidden")
    # A's coordinator cannot read B's list, nor B's A's.
    assert_error(await w.caller.get(w.b.path("/referrals?after=0"), w.a.coordinator), 403,
                 "forbidden")
    assert_error(await w.caller.get(w.a.path("/referrals?after=0"), w.b.coordinator), 403,
                 "forbidden")
