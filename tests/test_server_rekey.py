"""Case-key rotation, history re-shares and gated-envelope backfill on the server
(ADR 0007; docs/protocol.md §C.11, §14.3).

The real application on a real SQLite file (:class:`tests.server_harness.InProcessServer`,
fake clock), the standard world of :func:`tests.server_harness.build_world`, real keys and
real objects.  One test per rule, named after it.  Each test makes its own case, so the
order of the tests does not matter; tests that distribute a new epoch leave the network
at a later epoch, which every builder reads from the network's state.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol import envelopes
from schakel.protocol.errors import DecryptionError
from schakel.protocol.objects.cases import CaseRekey
from schakel.protocol.objects.disclosure import Share
from tests.disclosure_harness import consent_and_grant, open_release, release
from tests.server_harness import (
    IDENTITY, Actor, CaseState, FakeClock, InProcessServer, World, append, assert_error,
    assert_status, build_world, create_case, enrol, new_epoch, rekey, sync_all,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")
pytestmark = shared_loop


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("rekey"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


async def fresh_case(w: World, owner: str = "core-formal") -> CaseState:
    return await create_case(w.caller, w.a, w[owner])


async def get_case(w: World, state: CaseState, reader: Actor) -> dict[str, Any]:
    return assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"), reader), 200)


async def post_rekey(w: World, state: CaseState, signer: Actor, envelope: dict[str, Any]) -> Any:
    return await w.caller.post(w.a.path(f"/cases/{state.case}/rekeys"), signer,
                               {"rekey": envelope})


async def post_gated(w: World, state: CaseState, signer: Actor, gated: list[dict[str, Any]]
                     ) -> Any:
    return await w.caller.post(w.a.path(f"/cases/{state.case}/gated"), signer, {"gated": gated})


def open_event(w: World, state: CaseState, envelope: dict[str, Any], key: Any) -> Any:
    signed = envelope["signed"]
    return envelopes.decrypt_json(key, signed["ciphertext"], envelopes.event_context(
        w.a.id, state.case, signed["event"], version=signed["case_key_version"]))


# --------------------------------------------------------------------------- rekeys


async def test_rekey_accepted_and_appears_in_sync_and_get(world: World) -> None:
    w = world
    state = await fresh_case(w)
    assert_status(await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                                      {"share": w.a.share(state, w["shell-shared"])}), 201)
    epoch = await new_epoch(w.caller, w.a)
    envelope = w.a.rekey(state)
    answer = assert_status(await post_rekey(w, state, state.owner, envelope), 201)
    state.commit_rekey(envelope)
    assert answer["case"] == state.case and answer["case_key_version"] == 2

    # The sync feed carries it as a `rekey` item, for the core and for the shared shell.
    for reader in (w["core-informal"], w.a.coordinator, w["shell-shared"]):
        items = [i for i in await sync_all(w.caller, w.a, reader)
                 if i["kind"] == "rekey" and i["case"] == state.case]
        assert items == [{"cursor": answer["cursor"], "kind": "rekey", "case": state.case,
                          "envelope": envelope}], reader
    # GET .../cases/{case} answers it too, to the owner, the core and the shared shell.
    for reader in (state.owner, w["core-informal"], w["shell-shared"]):
        assert (await get_case(w, state, reader))["rekeys"] == [envelope]

    # A core member unwraps the new key with the new epoch's key; events then use it.
    rekeyed = CaseRekey.from_envelope(envelope, [state.owner.signer.verify_key])
    assert (rekeyed.epoch, rekeyed.case_key_version) == (epoch, 2)
    assert rekeyed.unwrap(w.a.epoch_keys[epoch][0]).export() == state.case_key.export()
    await append(w.caller, w.a, state, w["core-informal"])
    last = (await get_case(w, state, state.owner))["events"][-1]
    assert last["signed"]["case_key_version"] == 2
    assert open_event(w, state, last, rekeyed.unwrap(w.a.epoch_keys[epoch][0]))["kind"] == "note"


async def test_rekey_by_coordinator_accepted(world: World) -> None:
    w = world
    state = await fresh_case(w, "core-informal")
    answer = await rekey(w.caller, w.a, state, w.a.coordinator)
    assert answer["case_key_version"] == 2
    assert (await get_case(w, state, state.owner))["rekeys"] == state.rekeys


async def test_rekey_with_wrong_version_is_409(world: World) -> None:
    w = world
    state = await fresh_case(w)
    reply = await post_rekey(w, state, state.owner, w.a.rekey(state, version=3))
    assert_error(reply, 409, "conflict")
    assert reply.json["error"]["details"]["case_key_version"] == 1
    await rekey(w.caller, w.a, state)
    # Another rotation to the version the case already has: a lost race, not a retry.
    state.pending_keys.clear()
    reply = await post_rekey(w, state, state.owner, w.a.rekey(state, version=2))
    assert_error(reply, 409, "conflict")
    assert reply.json["error"]["details"]["case_key_version"] == 2
    assert (await get_case(w, state, state.owner))["rekeys"] == state.rekeys


async def test_rekey_with_stale_epoch_is_409(world: World) -> None:
    w = world
    state = await fresh_case(w)
    latest = await new_epoch(w.caller, w.a)
    reply = await post_rekey(w, state, state.owner, w.a.rekey(state, epoch=latest - 1))
    assert_error(reply, 409, "conflict")
    assert reply.json["error"]["details"]["epoch"] == latest
    assert (await get_case(w, state, state.owner))["rekeys"] == []


async def test_rekey_by_non_owner_non_coordinator_is_403(world: World) -> None:
    w = world
    state = await fresh_case(w)
    await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                        {"share": w.a.share(state, w["shell-shared"])})
    for other in (w["core-informal"], w["shell-shared"], w["auditor"]):
        reply = await post_rekey(w, state, other, w.a.rekey(state, signer=other))
        assert_error(reply, 403, "forbidden")
    assert (await get_case(w, state, state.owner))["rekeys"] == []


async def test_rekey_signed_by_another_key_than_the_callers_is_refused(world: World) -> None:
    """The owner may not upload a rotation that another member signed in its place."""
    w = world
    state = await fresh_case(w)
    reply = await post_rekey(w, state, state.owner, w.a.rekey(state, signer=w["core-informal"]))
    assert_error(reply, 401, "bad_signature")


async def test_rekey_for_another_case_than_the_path_is_400(world: World) -> None:
    w = world
    state, other = await fresh_case(w), await fresh_case(w)
    reply = await post_rekey(w, state, state.owner, w.a.rekey(other))
    assert_error(reply, 400, "context_mismatch")


async def test_rekey_retry_is_idempotent(world: World) -> None:
    w = world
    state = await fresh_case(w)
    envelope = w.a.rekey(state)
    first = assert_status(await post_rekey(w, state, state.owner, envelope), 201)
    state.commit_rekey(envelope)
    assert assert_status(await post_rekey(w, state, state.owner, envelope), 200) == first
    await rekey(w.caller, w.a, state)                    # even after a later rotation
    assert assert_status(await post_rekey(w, state, state.owner, envelope), 200) == first
    assert (await get_case(w, state, state.owner))["rekeys"] == state.rekeys
    assert [r["signed"]["case_key_version"] for r in state.rekeys] == [2, 3]


async def test_closed_case_can_be_rekeyed(world: World) -> None:
    w = world
    state = await fresh_case(w)
    await append(w.caller, w.a, state, state.owner, status="closed")
    assert (await rekey(w.caller, w.a, state))["case_key_version"] == 2
    # It reopens under the new key only.
    stale = w.a.event(state, state.owner, status="open", case_key_version=1)
    reply = await w.caller.post(w.a.path(f"/cases/{state.case}/events"), state.owner,
                                {"event": stale})
    assert_error(reply, 409, "conflict")
    await append(w.caller, w.a, state, state.owner, status="open")


async def test_event_with_old_key_version_after_rekey_is_409(world: World) -> None:
    w = world
    state = await fresh_case(w)
    await rekey(w.caller, w.a, state)
    stale = w.a.event(state, w["core-informal"], case_key_version=1)
    reply = await w.caller.post(w.a.path(f"/cases/{state.case}/events"), w["core-informal"],
                                {"event": stale})
    assert_error(reply, 409, "conflict")
    assert reply.json["error"]["details"]["case_key_version"] == 2
    assert (await get_case(w, state, state.owner))["events"] == state.events


async def test_case_creation_events_must_use_the_header_key_version(world: World) -> None:
    w = world
    body, state = w.a.new_case(w["core-formal"])
    state.case_keys[2] = state.case_key
    body["events"] = [w.a.event(state, state.owner, case_key_version=2, _pending=[])]
    reply = await w.caller.post(w.a.path("/cases"), state.owner, body)
    assert_error(reply, 409, "conflict")
    assert reply.json["error"]["details"]["case_key_version"] == 1
    assert_error(await w.caller.get(w.a.path(f"/cases/{state.case}"), state.owner),
                 404, "not_found")


# --------------------------------------------------------------------------- shares


async def test_history_share_to_core_member_accepted(world: World) -> None:
    """A core member that joined after a rotation reads the case's history once the
    coordinator re-shares the earlier version with it."""
    w = world
    state = await fresh_case(w)
    old_key = state.case_key
    late = await enrol(w.caller, w.a, "late-core-history", ring="core")
    await new_epoch(w.caller, w.a)
    await rekey(w.caller, w.a, state, w.a.coordinator)
    share = w.a.share(state, late, version=1)
    answer = assert_status(await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                                               {"share": share}), 201)
    assert (answer["case"], answer["partner"]) == (state.case, late.key_id)
    items = [i for i in await sync_all(w.caller, w.a, late)
             if i["kind"] == "share" and i["case"] == state.case]
    assert [i["envelope"] for i in items] == [share]
    key = Share.from_envelope(share, [w.a.coordinator.signer.verify_key]).open_case_key(
        late.keys.box_secret)
    assert key.export() == old_key.export()
    first = (await get_case(w, state, late))["events"][0]
    assert open_event(w, state, first, key)["kind"] == "intake"


async def test_share_of_version_beyond_current_is_refused(world: World) -> None:
    w = world
    state = await fresh_case(w)
    reply = await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                                {"share": w.a.share(state, w["shell"], version=2)})
    assert_error(reply, 400, "context_mismatch")
    assert reply.json["error"]["details"]["case_key_version"] == 1


async def test_share_with_a_non_member_is_refused(world: World) -> None:
    w = world
    state = await fresh_case(w)
    reply = await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                                {"share": w.a.share(state, w["other-network"])})
    assert_error(reply, 403, "policy_violation")
    assert reply.json["error"]["details"]["reason"] == "partner-not-member"


# --------------------------------------------------------------------------- gated backfill


async def test_gated_backfill_accepted_and_release_to_late_member_works(world: World) -> None:
    w = world
    state = await fresh_case(w)
    late = await enrol(w.caller, w.a, "late-core-release", ring="core",
                       roles=("professional-secrecy",))
    _, grant = await consent_and_grant(w.caller, w.a, state, late, ["name"])
    # Before the backfill there is nothing to release to it (and nothing is released).
    before = await release(w.caller, w.a, late, grant)
    assert_error(before, 409, "conflict")
    assert before.json["error"]["details"]["classes"] == ["name"]

    backfill = w.a.gated(state, [late])
    answer = assert_status(await post_gated(w, state, state.owner, backfill), 201)
    assert answer == {"case": state.case, "stored": len(IDENTITY)}
    released = assert_status(await release(w.caller, w.a, late, grant), 201)
    assert open_release(released, late, w.a, state, w.server) == {"name": IDENTITY["name"]}


async def test_gated_backfill_retry_is_idempotent(world: World) -> None:
    w = world
    state = await fresh_case(w)
    late = await enrol(w.caller, w.a, "late-core-retry", ring="core")
    backfill = w.a.gated(state, [late])
    first = assert_status(await post_gated(w, state, state.owner, backfill), 201)
    assert assert_status(await post_gated(w, state, state.owner, backfill), 200) == first
    # An envelope stored at creation, sent again with the same blob, is a no-op too.
    assert_status(await post_gated(w, state, state.owner, state.gated[:1]), 200)


async def test_gated_backfill_with_conflicting_blob_is_409(world: World) -> None:
    w = world
    state = await fresh_case(w)
    late = await enrol(w.caller, w.a, "late-core-conflict", ring="core")
    assert_status(await post_gated(w, state, state.owner, w.a.gated(state, [late], ["name"])), 201)
    # A second sealing of the same class key has another blob: refused, nothing stored.
    again = w.a.gated(state, [late], ["name", "address"])
    reply = await post_gated(w, state, state.owner, again)
    assert_error(reply, 409, "conflict")
    assert reply.json["error"]["details"]["class"] == "name"
    # The refused request stored nothing: its address envelope is still new afterwards.
    [address] = [g for g in again if g["class"] == "address"]
    assert_status(await post_gated(w, state, state.owner, [address]), 201)


async def test_gated_backfill_for_non_member_refused(world: World) -> None:
    w = world
    state = await fresh_case(w)
    for stranger in (w["other-network"], w["unknown-key"]):
        reply = await post_gated(w, state, state.owner, w.a.gated(state, [stranger]))
        assert_error(reply, 403, "policy_violation")
        assert reply.json["error"]["details"]["reason"] == "recipient-not-member"


async def test_gated_backfill_for_a_consult_refused(world: World) -> None:
    w = world
    consult = await create_case(w.caller, w.a, w["core-formal"], kind="consult")
    donor = await fresh_case(w)
    gated = [{**g, "case": consult.case} for g in w.a.gated(donor, [w["core-informal"]])]
    reply = await post_gated(w, consult, consult.owner, gated)
    assert_error(reply, 403, "policy_violation")
    assert reply.json["error"]["details"]["reason"] == "consult-has-no-identity"


async def test_gated_backfill_by_anyone_but_the_owner_is_403(world: World) -> None:
    w = world
    state = await fresh_case(w)
    backfill = w.a.gated(state, [w["shell"]])
    for other in (w.a.coordinator, w["core-informal"], w["shell-shared"]):
        assert_error(await post_gated(w, state, other, backfill), 403, "forbidden")


async def test_gated_backfill_of_another_class_or_version_is_400(world: World) -> None:
    w = world
    state = await fresh_case(w)
    [good] = w.a.gated(state, [w["shell"]], ["name"])
    for bad, code in (({**good, "class": "care"}, "malformed"),
                      ({**good, "version": 2}, "malformed"),
                      ({**good, "case": (await fresh_case(w)).case}, "context_mismatch")):
        assert_error(await post_gated(w, state, state.owner, [bad]), 400, code)


async def test_removed_member_cannot_read_events_after_rekey(world: World) -> None:
    """RM-5: after a removal, a new epoch for the remaining core and a rekey, the removed
    member's keys (every epoch key it was sent, every case key it unwrapped) open neither
    the new case key nor the events written under it, as stored by the server."""
    w = world
    leaving = await enrol(w.caller, w.a, "leaving-core", ring="core")
    state = await fresh_case(w)                       # the leaving member can read it
    held_epochs = {e: k for e, (k, _) in w.a.epoch_keys.items() if e <= w.a.epoch}
    old_key = state.case_key
    assert_status(await w.caller.post(w.a.path("/revocations"), w.a.coordinator,
                                      {"revocation": w.a.revocation(leaving)}), 201)
    del w.a.members[leaving.label]
    epoch = await new_epoch(w.caller, w.a)
    assert epoch not in held_epochs
    await rekey(w.caller, w.a, state, w.a.coordinator)
    await append(w.caller, w.a, state, state.owner)

    stored = await get_case(w, state, w["core-informal"])
    rekeyed = CaseRekey.from_envelope(stored["rekeys"][0], [w.a.coordinator.signer.verify_key])
    for key in held_epochs.values():
        with pytest.raises(DecryptionError):
            rekeyed.unwrap(key)
    with pytest.raises(DecryptionError):
        open_event(w, state, stored["events"][-1], old_key)
    assert open_event(w, state, stored["events"][-1],
                      rekeyed.unwrap(w.a.epoch_keys[epoch][0]))["kind"] == "note"
