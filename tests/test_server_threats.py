"""One test per threat of docs/threat-model.md that the running server defends, named after
the threat's row (CS-9, MM-3, ...), where no other server test shows the defence.

The real application on a real SQLite file with real keys (:mod:`tests.server_harness`,
:mod:`tests.disclosure_harness`). Each refusal of the release policy (docs/protocol.md §7)
is checked the way a privacy officer would: a 403 ``policy_violation`` with the reason
code, and a ``deny`` entry with that reason at the index the answer named.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from schakel.keys.certify import revoke_membership
from schakel.protocol.objects.disclosure import Consent, ConsentRevocation, Grant
from schakel.protocol.objects.network import Membership, default_policy
from tests.disclosure_harness import (
    Oggz, assert_denial_logged, audit_log, consent, consent_and_grant, cosign, grant, invocation,
    oggz_network, post_ok, release, revocation,
)
from tests.server_harness import (
    Actor, World, assert_error, assert_status, create_case, enrol, new_id, running_world, ts,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    async with running_world(tmp_path_factory.mktemp("threats")) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def oggz(world: World) -> Oggz:
    return await oggz_network(world.caller, world.server, world.clock)


# =========================================================================== curious server


async def test_cs9_audit_entries_hold_reason_codes_never_the_free_text_of_objects(
        world: World) -> None:
    """The server sees a consent's purpose, a grant's reason and a revocation's reason in
    the clear; none of them reaches an audit entry, which holds reason codes only."""
    w, c, net = world, world.caller, world.a
    state = await create_case(c, net, w["core-formal"])
    marks = {"purpose": "DOEL-merkteken-71", "grant": "REDEN-merkteken-72",
             "revocation": "INTREKKING-merkteken-73"}
    plain = consent(net, state, w["core-formal"], classes=["name"], partners=[w["core-informal"]])
    c1 = Consent.from_json({**plain["signed"], "purpose": marks["purpose"]}).sign(
        w["core-formal"].signer)
    await post_ok(c, net, "/consents", w["core-formal"], {"consent": c1})
    consent_id = c1["signed"]["consent"]
    g = grant(net, state, w["core-informal"], ["name"], consent_id)
    g = Grant.from_json({**g["signed"], "reason": marks["grant"]}).sign(net.coordinator.signer)
    await post_ok(c, net, "/grants", net.coordinator, {"grant": g})
    await post_ok(c, net, "/releases", w["core-informal"],
                  {"grant": g["signed"]["grant"], "release": new_id()})
    r = revocation(net, state, consent_id, w["core-formal"])
    r = ConsentRevocation.from_json({**r["signed"], "reason": marks["revocation"]}).sign(
        w["core-formal"].signer)
    await post_ok(c, net, f"/consents/{consent_id}/revocation", w["core-formal"],
                  {"revocation": r})
    await release(c, net, w["core-informal"], g["signed"]["grant"])      # an audited denial

    entries = [e for e in await audit_log(c, net) if e.get("case") == state.case]
    assert {"consent", "grant", "release", "consent-revoke", "purge-instruction", "deny"} <= {
        e["action"] for e in entries}
    text = json.dumps(entries)
    assert not [mark for mark in marks.values() if mark in text]
    assert {e["reason"] for e in entries} <= {
        "consent-recorded", "consent-revoked", "allowed", "purged"}


# =========================================================================== any member


@pytest.mark.parametrize("reason", [
    "consent-missing", "consent-wrong-case", "consent-not-yet-valid",
    "consent-does-not-cover-grantee", "consent-does-not-cover-class"])
async def test_mm3_grant_the_consent_does_not_cover_is_denied_and_audited(
        world: World, reason: str) -> None:
    """Row R5 at the server, besides a revoked and an expired consent
    (tests/test_disclosure.py): nothing is granted, and the refusal is in the log."""
    w, c, net = world, world.caller, world.a
    owner, grantee, other = w["core-formal"], w["core-informal"], w["shell-shared"]
    case, elsewhere = w.case, await create_case(c, net, owner)
    options: dict[str, Any] = {"partners": [grantee]}
    if reason == "consent-wrong-case":
        case = elsewhere
    elif reason == "consent-not-yet-valid":
        options["starts"] = timedelta(days=1)
    elif reason == "consent-does-not-cover-grantee":
        options["partners"] = [other]
    c1 = consent(net, w.case, owner, classes=["address"], **options)
    if reason != "consent-missing":
        await post_ok(c, net, "/consents", owner, {"consent": c1})
    classes = ["name"] if reason == "consent-does-not-cover-class" else ["address"]
    g = grant(net, case, grantee, classes, c1["signed"]["consent"])
    reply = await c.post(net.path("/grants"), net.coordinator, {"grant": g})
    entry = await assert_denial_logged(c, net, reply, reason, case=case.case)
    assert (entry["subject"], entry["ref"], entry["basis"]) == (
        grantee.key_id, g["signed"]["grant"], "consent")
    refused = await release(c, net, grantee, g["signed"]["grant"])
    assert_error(refused, 403, "policy_violation")      # no grant was made: nothing is held
    assert refused.json["error"]["details"]["reason"] == "grant-not-held"


async def test_mm5_grant_of_a_class_the_policy_does_not_define_is_denied_and_audited(
        world: World) -> None:
    """Row R4: a grant may name any well-formed class; the policy decides which exist."""
    w, c, net = world, world.caller, world.a
    c1 = consent(net, w.case, w["core-formal"], classes=["name"], partners=[w["core-informal"]])
    await post_ok(c, net, "/consents", w["core-formal"], {"consent": c1})
    g = grant(net, w.case, w["core-informal"], ["medical"], c1["signed"]["consent"])
    reply = await c.post(net.path("/grants"), net.coordinator, {"grant": g})
    entry = await assert_denial_logged(c, net, reply, "unknown-class", case=w.case.case)
    assert entry["classes"] == ["medical"]


@pytest.mark.parametrize("recorder", ["core-informal", "shell-shared"])
async def test_mm9_consent_recorded_by_neither_owner_nor_coordinator_is_refused(
        world: World, recorder: str) -> None:
    """§D.1: only the case owner or the coordinator records a consent; the refusal
    stores nothing (a grant under it finds no consent)."""
    w, c, net = world, world.caller, world.a
    actor = w[recorder]
    c1 = consent(net, w.case, actor, classes=["name"], partners=[actor])
    assert_error(await c.post(net.path("/consents"), actor, {"consent": c1}), 403, "forbidden")
    g = grant(net, w.case, actor, ["name"], c1["signed"]["consent"])
    reply = await c.post(net.path("/grants"), net.coordinator, {"grant": g})
    await assert_denial_logged(c, net, reply, "consent-missing", case=w.case.case)


async def test_mm7_membership_granting_a_role_the_network_does_not_allow_is_refused(
        world: World) -> None:
    """MS-4, MI-2 and MF-2 at the server: a membership signed by the coordinator's own key
    that gives the coordinator role to a shell partner, professional secrecy to an informal
    party, or the bemoeizorg role in a neighbourhood network is not registered, and the key
    it names is not let in."""
    c, net = world.caller, world.a
    for ring, party, roles in (("shell", "formal", ("coordinator",)),
                               ("core", "informal", ("professional-secrecy",)),
                               ("core", "formal", ("bemoeizorg",))):
        actor = Actor.fresh(f"{ring}-{party}-{roles[0]}", ring=ring, party=party, roles=roles)
        public = actor.keys.public
        membership = Membership(
            network=net.id, member=actor.key_id, name=actor.name, sign_key=public.sign.b64(),
            box_key=public.box.b64(), ring=ring, party=party, roles=roles, serial=1,
            valid_from=ts(net.now() - timedelta(minutes=5)),
            valid_until=ts(net.now() + timedelta(days=30))).sign(net.coordinator.signer)
        assert_error(await c.post(net.path("/members"), net.coordinator,
                                  {"membership": membership}), 403, "untrusted_key")
        assert_error(await c.get(net.path("/members"), actor), 401, "untrusted_key")


# =========================================================================== formal partners


async def test_mf1_official_for_a_formal_party_without_professional_secrecy_is_denied(
        world: World) -> None:
    """Row R7: `official` (BSN, date of birth) needs the professional-secrecy role, even
    with the person's consent."""
    w, c, net = world, world.caller, world.a
    formal = await enrol(c, net, "formeel-zonder-geheim")
    c1 = consent(net, w.case, w["core-formal"], classes=["name", "official"], partners=[formal])
    await post_ok(c, net, "/consents", w["core-formal"], {"consent": c1})
    g = grant(net, w.case, formal, ["official"], c1["signed"]["consent"])
    reply = await c.post(net.path("/grants"), net.coordinator, {"grant": g})
    entry = await assert_denial_logged(c, net, reply, "class-requires-role", case=w.case.case)
    assert entry["subject"] == formal.key_id


async def test_mf2_bemoeizorg_where_the_policy_switches_it_off_is_denied(world: World) -> None:
    """Row R8 for an oggz network whose signed policy disables the exception."""
    off = {**default_policy("oggz").to_json()["bemoeizorg"], "enabled": False}
    o = await oggz_network(world.caller, world.server, world.clock, bemoeizorg=off)
    inv = invocation(o.net, o.case, o.invoker, auditors=[o.auditor])
    reply = await world.caller.post(o.net.path("/bemoeizorg"), o.invoker, {"invocation": inv})
    entry = await assert_denial_logged(world.caller, o.net, reply, "bemoeizorg-disabled",
                                       case=o.case.case)
    assert (entry["basis"], entry["emergency"]) == ("bemoeizorg", True)


async def test_mf5_justification_kept_from_one_auditor_is_denied(world: World) -> None:
    """§D.4: the justification is sealed to every current auditor. With two auditors, an
    invocation that leaves one out (a friendly auditor only) is refused and audited."""
    o = await oggz_network(world.caller, world.server, world.clock)
    second = await enrol(world.caller, o.net, "auditor-2", ring="shell", roles=("auditor",))
    inv = invocation(o.net, o.case, o.invoker, auditors=[o.auditor])
    reply = await world.caller.post(o.net.path("/bemoeizorg"), o.invoker, {"invocation": inv})
    await assert_denial_logged(world.caller, o.net, reply, "bemoeizorg-justification-missing",
                               case=o.case.case)
    both = invocation(o.net, o.case, o.invoker, auditors=[o.auditor, second])
    await post_ok(world.caller, o.net, "/bemoeizorg", o.invoker, {"invocation": both})


async def test_mf6_cosign_by_someone_without_the_role_is_denied(world: World, oggz: Oggz) -> None:
    """Row R11: four eyes needs a second person who holds the bemoeizorg role."""
    c, net = world.caller, oggz.net
    inv = invocation(net, oggz.case, oggz.invoker, auditors=[oggz.auditor])
    await post_ok(c, net, "/bemoeizorg", oggz.invoker, {"invocation": inv})
    path = f"/bemoeizorg/{inv['signed']['invocation']}/cosign"
    reply = await c.post(net.path(path), oggz.no_role, {"cosign": cosign(net, inv, oggz.no_role)})
    await assert_denial_logged(c, net, reply, "bemoeizorg-cosigner-without-role",
                               case=oggz.case.case)


async def test_mf9_every_bemoeizorg_entry_is_flagged_as_the_emergency_procedure(
        world: World, oggz: Oggz) -> None:
    """§A.1: every entry with basis bemoeizorg, allowed or denied, carries emergency."""
    c, net = world.caller, oggz.net
    inv = invocation(net, oggz.case, oggz.invoker, auditors=[oggz.auditor])
    await post_ok(c, net, "/bemoeizorg", oggz.invoker, {"invocation": inv})
    await c.post(net.path("/bemoeizorg"), oggz.no_role,
                 {"invocation": invocation(net, oggz.case, oggz.no_role, auditors=[oggz.auditor])})
    bemoeizorg = [e for e in await audit_log(c, net) if e["basis"] == "bemoeizorg"]
    assert {"bemoeizorg-invoke", "deny"} <= {e["action"] for e in bemoeizorg}
    assert all(e["emergency"] is True for e in bemoeizorg)


# =========================================================================== informal partners


async def test_mi3_informal_party_with_the_bemoeizorg_role_is_denied(
        world: World, oggz: Oggz) -> None:
    """Row R9: the exception is for formal parties; the role alone does not open it."""
    volunteer = await enrol(world.caller, oggz.net, "vrijwilliger-met-rol", party="informal",
                            roles=("bemoeizorg",))
    inv = invocation(oggz.net, oggz.case, volunteer, auditors=[oggz.auditor])
    reply = await world.caller.post(oggz.net.path("/bemoeizorg"), volunteer, {"invocation": inv})
    await assert_denial_logged(world.caller, oggz.net, reply, "bemoeizorg-role-required",
                               case=oggz.case.case)


# =========================================================================== removed member


async def test_rm2_grant_to_a_removed_member_is_denied_and_audited(world: World) -> None:
    """Row R2: the grantee must be a current member, even under a consent that names it."""
    w, c, net = world, world.caller, world.a
    leaver = await enrol(c, net, "vertrekkende-partner")
    c1 = consent(net, w.case, w["core-formal"], classes=["name"], partners=[leaver])
    await post_ok(c, net, "/consents", w["core-formal"], {"consent": c1})
    await post_ok(c, net, "/revocations", net.coordinator, {"revocation": net.revocation(leaver)})
    g = grant(net, w.case, leaver, ["name"], c1["signed"]["consent"])
    reply = await c.post(net.path("/grants"), net.coordinator, {"grant": g})
    entry = await assert_denial_logged(c, net, reply, "not-a-member", case=w.case.case)
    assert entry["subject"] == leaver.key_id


# =========================================================================== lying owner / server


async def test_ls9_gated_envelope_sealed_for_another_class_is_not_released(world: World) -> None:
    """The gate seal repeats its context and the server compares it with the stored
    envelope's before it releases (§3.4): the `address` key uploaded as the `name`
    envelope is never handed to the grantee as `name`."""
    w, c, net = world, world.caller, world.a
    owner, grantee = w["core-formal"], w["core-informal"]
    body, state = net.new_case(owner, recipients=[grantee])
    blobs = {g["class"]: g["blob"] for g in body["gated"]}
    body["gated"] = [{**g, "blob": blobs["address"]} if g["class"] == "name" else g
                     for g in body["gated"]]
    await post_ok(c, net, "/cases", owner, body)
    net.cases[state.case] = state
    _, grant_id = await consent_and_grant(c, net, state, grantee, ["name"], recorder=owner)
    assert_error(await release(c, net, grantee, grant_id), 400, "context_mismatch")
    assert not [e for e in await audit_log(c, net)
                if e["action"] == "release" and e.get("ref") == grant_id]


async def test_rm8_revocation_not_signed_by_the_coordinator_is_refused(world: World) -> None:
    """A member (or a removed one) cannot revoke others: a revocation signed by another
    key than the coordinator's is refused, and the member it names stays in."""
    w, c, net = world, world.caller, world.a
    target = await enrol(c, net, "blijft-lid")
    forged = revoke_membership(w["core-formal"].keys, network=net.id, member=target.key_id,
                               serial=target.serial, at=net.now(), reason="vals")
    assert_error(await c.post(net.path("/revocations"), net.coordinator, {"revocation": forged}),
                 401, "bad_signature")
    assert_status(await c.get(net.path("/members"), target), 200)


# =========================================================================== outsider


async def test_ou12_anonymous_signal_carrying_blind_index_tokens_is_refused(world: World) -> None:
    """Only members hold the match key; an anonymous sender's tokens would let it probe
    for duplicates, so the intake refuses them and stores nothing."""
    net = world.a
    draft = net.signal(None, tokens=[net.token("bsn", "111222333")])
    reply = await world.caller.post(net.path("/signals"), None, draft.body)
    assert_error(reply, 403, "policy_violation")
    assert reply.json["error"]["details"]["reason"] == "anonymous-tokens"
    listed = assert_status(await world.caller.get(net.path("/signals?after=0&limit=500"),
                                                  net.coordinator), 200)
    assert draft.signal not in [i["signal"].get("signal") for i in listed["items"]]
