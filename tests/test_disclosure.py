"""The disclosure engine end to end (issue 4, "Done when"; docs/protocol.md §15 §15.2;
protocol.md §7, §D; flows 4, 5 and 10).

The real application on a real SQLite file, real keys and real signed objects
(:mod:`tests.server_harness`, :mod:`tests.disclosure_harness`).  Every refusal the issue
names is its own test, and each also finds its ``deny`` entry, with the policy's reason
code, in the audit log at the index the 403 answer named.  The end-to-end tests go as far
as a real client does: the grantee verifies the inclusion receipt against the tree head
signed by the server's log key, opens the released class keys with its own box key and
decrypts the owner's identity records.

One server and one world per module (module-scoped loop); the clock is the server's fake
clock, moved forward only (consent expiry, bemoeizorg access hours).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol.objects.disclosure import BemoeizorgInvocation, Grant, PurgeInstruction
from tests.disclosure_harness import (
    JUSTIFICATION, Oggz, assert_denial_logged, audit_log, consent, consent_and_grant,
    cosign, grant, invocation, oggz_network, open_release, person, post_ok, purge_ack, release,
    review, revocation, verify_receipt,
)
from tests.server_harness import (
    IDENTITY, FakeClock, InProcessServer, World, assert_error, assert_status,
    build_world, create_case, enrol, new_id,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("disclosure"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oggz(world: World) -> Oggz:
    return await oggz_network(world.caller, world.server, world.clock)


# =========================================================================== the refusals


async def test_informal_party_asking_for_official_is_denied(world: World) -> None:
    w, net = world, world.a
    c = consent(net, w.case, w["core-formal"], classes=["name", "official"], parties=["informal"])
    await post_ok(w.caller, net, "/consents", w["core-formal"], {"consent": c})
    g = grant(net, w.case, w["core-informal"], ["official"], c["signed"]["consent"])
    reply = await w.caller.post(net.path("/grants"), net.coordinator, {"grant": g})
    entry = await assert_denial_logged(w.caller, net, reply, "informal-class-not-allowed",
                                       case=w.case.case)
    assert entry["subject"] == w["core-informal"].key_id
    assert entry["classes"] == ["official"] and entry["basis"] == "consent"


async def test_release_after_revocation_is_denied(world: World) -> None:
    w, net = world, world.a
    consent_id, grant_id = await consent_and_grant(w.caller, net, w.case, w["core-informal"],
                                                   ["name"])
    await post_ok(w.caller, net, f"/consents/{consent_id}/revocation", w["core-formal"],
                  {"revocation": revocation(net, w.case, consent_id, w["core-formal"])})
    reply = await release(w.caller, net, w["core-informal"], grant_id)
    entry = await assert_denial_logged(w.caller, net, reply, "consent-revoked", case=w.case.case)
    assert entry["actor"]["partner"] == w["core-informal"].key_id and entry["ref"] == grant_id


async def test_expired_consent_is_denied(world: World) -> None:
    w, net = world, world.a
    _, grant_id = await consent_and_grant(w.caller, net, w.case, w["core-informal"], ["address"],
                                          valid_for=timedelta(hours=1))
    w.clock.advance(2 * 3600)
    reply = await release(w.caller, net, w["core-informal"], grant_id)
    await assert_denial_logged(w.caller, net, reply, "consent-expired", case=w.case.case)


async def test_bemoeizorg_in_a_neighbourhood_network_is_denied(world: World) -> None:
    w, net = world, world.a
    inv = invocation(net, w.case, w["core-formal"], auditors=[w["auditor"]])
    reply = await w.caller.post(net.path("/bemoeizorg"), w["core-formal"], {"invocation": inv})
    entry = await assert_denial_logged(w.caller, net, reply, "bemoeizorg-not-in-oggz",
                                       case=w.case.case)
    assert entry["basis"] == "bemoeizorg" and entry["emergency"] is True


async def test_bemoeizorg_without_the_role_is_denied(world: World, oggz: Oggz) -> None:
    inv = invocation(oggz.net, oggz.case, oggz.no_role, auditors=[oggz.auditor])
    reply = await world.caller.post(oggz.net.path("/bemoeizorg"), oggz.no_role,
                                    {"invocation": inv})
    await assert_denial_logged(world.caller, oggz.net, reply, "bemoeizorg-role-required",
                               case=oggz.case.case)


async def test_bemoeizorg_without_ground_is_denied(world: World, oggz: Oggz) -> None:
    """The schema requires a ground, so "without" is one the policy does not list."""
    inv = invocation(oggz.net, oggz.case, oggz.invoker, auditors=[oggz.auditor],
                     ground="curiosity")
    reply = await world.caller.post(oggz.net.path("/bemoeizorg"), oggz.invoker,
                                    {"invocation": inv})
    await assert_denial_logged(world.caller, oggz.net, reply, "bemoeizorg-ground-invalid",
                               case=oggz.case.case)


async def test_bemoeizorg_without_justification_is_denied(world: World, oggz: Oggz) -> None:
    """The schema requires one sealed entry, so "without" is a justification the network's
    auditors cannot read: sealed to somebody else."""
    inv = invocation(oggz.net, oggz.case, oggz.invoker, auditors=[oggz.second])
    reply = await world.caller.post(oggz.net.path("/bemoeizorg"), oggz.invoker,
                                    {"invocation": inv})
    await assert_denial_logged(world.caller, oggz.net, reply, "bemoeizorg-justification-missing",
                               case=oggz.case.case)


async def test_four_eyes_with_the_same_user_twice_is_denied(world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-vier-ogen")
    inv = invocation(net, oggz.case, invoker, auditors=[oggz.auditor])
    await post_ok(c, net, "/bemoeizorg", invoker, {"invocation": inv})
    path = f"/bemoeizorg/{inv['signed']['invocation']}"
    reply = await c.post(net.path(path + "/cosign"), invoker, {"cosign": cosign(net, inv, invoker)})
    await assert_denial_logged(c, net, reply, "bemoeizorg-same-person-cosign", case=oggz.case.case)
    reply = await c.post(net.path(path + "/release"), invoker, {"release": new_id()})
    await assert_denial_logged(c, net, reply, "bemoeizorg-four-eyes-required",
                               case=oggz.case.case)


async def test_rate_limit_is_denied_and_alerted(world: World, oggz: Oggz) -> None:
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-veel")
    limit = net.policy["bemoeizorg"]["max_per_user_per_day"]
    for _ in range(limit):
        await post_ok(c, net, "/bemoeizorg", invoker,
                      {"invocation": invocation(net, oggz.case, invoker, auditors=[oggz.auditor])})
    one_more = invocation(net, oggz.case, invoker, auditors=[oggz.auditor])
    reply = await c.post(net.path("/bemoeizorg"), invoker, {"invocation": one_more})
    denial = await assert_denial_logged(c, net, reply, "bemoeizorg-rate-limit", case=oggz.case.case)
    alert = (await audit_log(c, net))[denial["index"] + 1]
    assert (alert["action"], alert["reason"], alert["review_required"]) == (
        "bemoeizorg-alert", "bemoeizorg-rate-limit", True)
    assert alert["actor"]["role"] == "server" and alert["subject"] == invoker.key_id
    feed = assert_status(await c.get(net.path("/notifications?after=0"), net.coordinator), 200)
    assert {"kind": "bemoeizorg-alert", "invocation": one_more["signed"]["invocation"]} in [
        {"kind": i["kind"], "invocation": i["invocation"]} for i in feed["items"]]
    # Another person of the same partner is not limited by it.
    await post_ok(c, net, "/bemoeizorg", oggz.invoker,
                  {"invocation": invocation(net, oggz.case, oggz.invoker, auditors=[oggz.auditor])})


async def test_consult_with_identity_is_refused(world: World) -> None:
    """A consult is anonymous (R1): neither a consent nor a grant of its identity."""
    w, net = world, world.a
    owner = w.consult.owner
    c = consent(net, w.consult, owner, classes=["name"], parties=["formal"])
    reply = await w.caller.post(net.path("/consents"), owner, {"consent": c})
    await assert_denial_logged(w.caller, net, reply, "consult-has-no-identity",
                               case=w.consult.case)
    g = grant(net, w.consult, w["core-formal"], ["name"], c["signed"]["consent"])
    reply = await w.caller.post(net.path("/grants"), net.coordinator, {"grant": g})
    await assert_denial_logged(w.caller, net, reply, "consult-has-no-identity",
                               case=w.consult.case)


async def test_shell_partner_without_a_share_is_denied(world: World) -> None:
    w, net = world, world.a
    c = consent(net, w.case, w["core-formal"], classes=["name"], partners=[w["shell"]])
    await post_ok(w.caller, net, "/consents", w["core-formal"], {"consent": c})
    g = grant(net, w.case, w["shell"], ["name"], c["signed"]["consent"])
    reply = await w.caller.post(net.path("/grants"), net.coordinator, {"grant": g})
    entry = await assert_denial_logged(w.caller, net, reply, "shell-without-share",
                                       case=w.case.case)
    assert entry["subject"] == w["shell"].key_id


# =========================================================================== consent end to end


async def test_consent_release_end_to_end(world: World) -> None:
    """consent → grant → release → the grantee decrypts; the receipt verifies; revocation →
    purge instruction → audited acknowledgement; a later release is denied."""
    w, c, net = world, world.caller, world.a
    ggz = await enrol(c, net, "ggz-e2e", roles=("professional-secrecy",))
    state = await create_case(c, net, w["core-formal"])          # gated envelopes for ggz too
    classes = ["address", "name", "official"]
    consent_id, grant_id = await consent_and_grant(c, net, state, ggz, classes,
                                                   recorder=w["core-formal"])
    release_id = new_id()
    answer = assert_status(await release(c, net, ggz, grant_id, release_id=release_id), 201)
    assert answer["release"] == release_id
    assert open_release(answer, ggz, net, state, w.server) == {k: IDENTITY[k] for k in classes}

    entry = verify_receipt(answer["receipt"], w.server, net.id)
    assert (entry.action, entry.basis, entry.outcome, entry.ref) == (
        "release", "consent", "allow", grant_id)
    assert (entry.actor.partner, entry.actor.acting_user) == (ggz.key_id, ggz.acting_user)
    assert entry.case == state.case and list(entry.classes or ()) == classes
    log = await audit_log(c, net)
    assert log[entry.index] == answer["receipt"]["entry"]
    head = assert_status(await c.get(net.path(f"/audit/heads/{entry.index + 1}"), ggz), 200)
    assert head["tree_head"] == answer["receipt"]["tree_head"]
    # A retry under the same release id is decided again and re-delivers the same
    # envelopes, under an entry of its own (tests/test_disclosure_basis.py has the rules).
    again = assert_status(await release(c, net, ggz, grant_id, release_id=release_id), 200)
    assert again["envelopes"] == answer["envelopes"]
    assert again["receipt"]["index"] == len(log) == len(await audit_log(c, net)) - 1

    revoked = await post_ok(c, net, f"/consents/{consent_id}/revocation", w["core-formal"],
                            {"revocation": revocation(net, state, consent_id, w["core-formal"])})
    assert len(revoked["purge_instructions"]) == 1
    feed = assert_status(await c.get(net.path("/purge-instructions/mine?after=0"), ggz), 200)
    [item] = [i for i in feed["items"]
              if i["instruction"]["signed"]["instruction"] in revoked["purge_instructions"]]
    instruction = PurgeInstruction.from_envelope(item["instruction"], [w.server.log])
    assert (instruction.recipient, instruction.case, instruction.reason, instruction.ref) == (
        ggz.key_id, state.case, "consent-revoked", consent_id)
    assert list(instruction.classes) == classes
    acked = await post_ok(c, net, "/purge-acks", ggz,
                          {"ack": purge_ack(net, item["instruction"], ggz)})
    log = await audit_log(c, net)
    issued = [e for e in log if e["action"] == "purge-instruction"
              and e["ref"] == instruction.instruction]
    assert len(issued) == 1 and issued[0]["subject"] == ggz.key_id
    assert issued[0]["actor"]["role"] == "server"
    ack = log[acked["audit_index"]]
    assert (ack["action"], ack["ref"], ack["actor"]["partner"]) == (
        "purge-ack", instruction.instruction, ggz.key_id)
    assert [e["action"] for e in log if e.get("ref") == consent_id][-1] == "consent-revoke"

    reply = await release(c, net, ggz, grant_id)
    await assert_denial_logged(c, net, reply, "consent-revoked", case=state.case)
    # The grantee reads the entries that name it: its release, the instruction, its ack.
    mine = await audit_log(c, net, ggz)
    assert {"release", "purge-instruction", "purge-ack", "deny", "grant"} <= {
        e["action"] for e in mine}


async def test_release_without_a_gated_envelope_is_a_conflict_and_not_audited(
        world: World) -> None:
    """A shell partner the case is shared with may receive ``name`` (informal), but the
    owner never wrapped a key for it: 409, and nothing is recorded as released."""
    w, c, net = world, world.caller, world.a
    _, grant_id = await consent_and_grant(c, net, w.case, w["shell-shared"], ["name"])
    before = len(await audit_log(c, net))
    assert_error(await release(c, net, w["shell-shared"], grant_id), 409, "conflict")
    assert len(await audit_log(c, net)) == before


async def test_only_the_grantee_releases_and_writes_are_idempotent(world: World) -> None:
    w, c, net = world, world.caller, world.a
    grantee = w["core-informal"]
    c1 = consent(net, w.case, w["core-formal"], classes=["name"], partners=[grantee])
    assert_status(await c.post(net.path("/consents"), w["core-formal"], {"consent": c1}), 201)
    assert_status(await c.post(net.path("/consents"), w["core-formal"], {"consent": c1}), 200)
    g = grant(net, w.case, grantee, ["name"], c1["signed"]["consent"])
    assert_status(await c.post(net.path("/grants"), net.coordinator, {"grant": g}), 201)
    assert_status(await c.post(net.path("/grants"), net.coordinator, {"grant": g}), 200)
    changed = Grant.from_json({**g["signed"], "reason": "een andere reden"}).sign(
        net.coordinator.signer)
    assert_error(await c.post(net.path("/grants"), net.coordinator, {"grant": changed}),
                 409, "conflict")
    grant_id = g["signed"]["grant"]
    await assert_denial_logged(c, net, await release(c, net, w["core-formal"], grant_id),
                               "grant-not-held")
    first = assert_status(await release(c, net, grantee, grant_id), 201)
    again = assert_status(await release(c, net, grantee, grant_id, release_id=first["release"]),
                          200)
    assert again["envelopes"] == first["envelopes"]
    g2 = grant(net, w.case, grantee, ["name"], c1["signed"]["consent"])
    await post_ok(c, net, "/grants", net.coordinator, {"grant": g2})
    assert_error(await release(c, net, grantee, g2["signed"]["grant"],
                               release_id=first["release"]), 409, "conflict")


# =========================================================================== bemoeizorg end to end


async def test_bemoeizorg_end_to_end(world: World, oggz: Oggz) -> None:
    """invocation (justification sealed to the auditor) → coordinator notified → co-sign
    by another person → release → the invoker decrypts → the auditor reads the
    justification and reviews; the entries are flagged review required / emergency."""
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-e2e")
    inv = invocation(net, oggz.case, invoker, auditors=[oggz.auditor])
    inv_id = inv["signed"]["invocation"]
    invoked = await post_ok(c, net, "/bemoeizorg", invoker, {"invocation": inv})
    feed = assert_status(await c.get(net.path("/notifications?after=0"), net.coordinator), 200)
    assert ("bemoeizorg", inv_id, oggz.case.case) in [
        (i["kind"], i["invocation"], i["case"]) for i in feed["items"]]

    documents = assert_status(await c.get(net.path(f"/bemoeizorg/{inv_id}"), oggz.auditor), 200)
    signed = BemoeizorgInvocation.from_envelope(documents["invocation"], [invoker.signer.verify_key])
    assert signed.open_justification(oggz.auditor.key_id,
                                     oggz.auditor.keys.box_secret) == JUSTIFICATION

    await post_ok(c, net, f"/bemoeizorg/{inv_id}/cosign", oggz.second,
                  {"cosign": cosign(net, inv, oggz.second)})
    released = await post_ok(c, net, f"/bemoeizorg/{inv_id}/release", invoker,
                             {"release": new_id()})
    assert open_release(released, invoker, net, oggz.case, world.server) == {
        k: IDENTITY[k] for k in ("address", "name")}
    feed = assert_status(await c.get(net.path("/notifications?after=0"), net.coordinator), 200)
    assert ("bemoeizorg-release", inv_id) in [(i["kind"], i["invocation"]) for i in feed["items"]]

    log = await audit_log(c, net)
    flagged = {e["action"]: e for e in log if e.get("ref") == inv_id}
    for action in ("bemoeizorg-invoke", "bemoeizorg-release"):
        entry = flagged[action]
        assert (entry["basis"], entry["review_required"], entry["emergency"]) == (
            "bemoeizorg", True, True), entry
    assert flagged["bemoeizorg-invoke"]["index"] == invoked["audit_index"]
    assert flagged["bemoeizorg-invoke"]["reason"] == "severe-self-neglect"
    assert flagged["bemoeizorg-cosign"]["actor"]["partner"] == oggz.second.key_id

    reviewed = await post_ok(c, net, "/reviews", oggz.auditor,
                             {"review": review(net, oggz.auditor, invocation=inv_id)})
    entry = (await audit_log(c, net, oggz.auditor))[reviewed["audit_index"]]
    assert (entry["action"], entry["ref"], entry["actor"]["role"]) == ("review", inv_id, "auditor")
    # Only the coordinator, auditors and the invoker read the invocation.
    assert_error(await c.get(net.path(f"/bemoeizorg/{inv_id}"), oggz.no_role), 403, "forbidden")


async def test_bemoeizorg_access_expires(world: World, oggz: Oggz) -> None:
    """R13: a release after ``access_hours`` is denied and audited."""
    c, net = world.caller, oggz.net
    invoker = person(oggz.invoker, "arts-later")
    inv = invocation(net, oggz.case, invoker, auditors=[oggz.auditor])
    inv_id = inv["signed"]["invocation"]
    await post_ok(c, net, "/bemoeizorg", invoker, {"invocation": inv})
    await post_ok(c, net, f"/bemoeizorg/{inv_id}/cosign", oggz.second,
                  {"cosign": cosign(net, inv, oggz.second)})
    world.clock.advance((net.policy["bemoeizorg"]["access_hours"] + 1) * 3600)
    reply = await c.post(net.path(f"/bemoeizorg/{inv_id}/release"), invoker,
                         {"release": new_id()})
    await assert_denial_logged(c, net, reply, "bemoeizorg-expired", case=oggz.case.case)


# =========================================================================== the access report


async def test_subject_access_report_lists_exactly_the_releases(world: World) -> None:
    """A scripted scenario on a fresh case: three releases to two partners and one refused
    request; the report (from the audit log only) lists exactly those."""
    w, c, net = world, world.caller, world.a
    state = await create_case(c, net, w["core-formal"])
    informal = w["core-informal"]
    consent_a, grant_a = await consent_and_grant(c, net, state, informal, ["address", "name"])
    _, grant_b = await consent_and_grant(c, net, state, net.coordinator, ["name"])
    receipts = []
    for grantee, grant_id in ((informal, grant_a), (net.coordinator, grant_b),
                              (informal, grant_a)):
        answer = assert_status(await release(c, net, grantee, grant_id), 201)
        receipts.append(answer["receipt"])
    await post_ok(c, net, f"/consents/{consent_a}/revocation", net.coordinator,
                  {"revocation": revocation(net, state, consent_a, net.coordinator)})
    refused = await release(c, net, informal, grant_a)
    denial_index = (await assert_denial_logged(c, net, refused, "consent-revoked"))["index"]

    for reader in (net.coordinator, w["auditor"]):
        report = assert_status(await c.get(net.path(f"/cases/{state.case}/access-report"),
                                           reader), 200)
        expected = [{"index": r["index"], "time": r["entry"]["time"],
                     "partner": r["entry"]["actor"]["partner"],
                     "organisation": r["entry"]["actor"]["organisation"],
                     "acting_user": r["entry"]["actor"]["acting_user"],
                     "classes": r["entry"]["classes"], "basis": "consent",
                     "ref": r["entry"]["ref"],
                     **{k: v for k, v in r["entry"]["actor"].items()
                        if k in ("party", "on_behalf_of")}} for r in receipts]
        assert report["releases"] == expected
        assert [d["index"] for d in report["denials"]] == [denial_index]
        assert report["denials"][0]["reason"] == "consent-revoked"
        text = report["text"]
        assert "Verstrekkingen / releases: 3" in text and "refused requests: 1" in text
        for item in expected:
            assert f"#{item['index']}" in text and item["organisation"] in text
        assert IDENTITY["name"]["family_name"] not in text
    assert_error(await c.get(net.path(f"/cases/{state.case}/access-report"), w["core-formal"]),
                 403, "forbidden")
