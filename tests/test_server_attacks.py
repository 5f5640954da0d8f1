"""One test per attack where the server is the defender (style.md: "one test per attack";
docs/protocol.md §14; design §2: the server enforces who may see what).

Every test runs the real application on a real SQLite file with a world of real keys
(tests/server_harness.py).  A refusal is checked for its exact status and error code,
and, for writes, that nothing was stored.  Nothing here measures wall-clock time: a
long-poll test asserts that the waiter comes back *with* the new item, under a generous
timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest_asyncio

from schakel.keys import issue_membership
from schakel.protocol.crypto import random_bytes
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.objects.network import EpochKeyDistribution, EpochKeyPayload
from schakel.protocol.objects.signals import SignalFeedback, SignalStatus
from schakel.protocol.signing import add_signature
from tests.server_harness import (
    STALE_BY, Actor, Caller, FakeClock, InProcessServer, Network, World, append, assert_error,
    assert_status, build_world, create_case, network_policy, new_id, send_signal, sync_all,
)


@pytest_asyncio.fixture
async def world(tmp_path: Any) -> Any:
    server = InProcessServer(tmp_path / "data", FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


async def case_events(w: World, state: Any, actor: Actor | None = None) -> list[dict[str, Any]]:
    """The events the server holds for ``state``'s case, read by its owner."""
    answer = assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"),
                                              actor or state.owner), 200)
    return list(answer["events"])


def events_path(w: World, state: Any) -> str:
    return w.a.path(f"/cases/{state.case}/events")


# ============================================================ request authentication


async def test_replayed_request_is_refused(world: World) -> None:
    """The same signed request twice: the second is refused and has no effect."""
    w, author = world, world["core-formal"]
    event = w.a.event(w.case, author)
    first, replay = await w.caller.replayed("POST", events_path(w, w.case), author,
                                            json={"event": event})
    assert_status(first, 201)
    w.case.commit(event)
    assert_error(replay, 401, "replayed_request")
    assert await case_events(w, w.case) == w.case.events

    # A read is a request too: replaying it is refused as well.
    first, replay = await w.caller.replayed("GET", w.a.path("/members"), author)
    assert_status(first, 200)
    assert_error(replay, 401, "replayed_request")

    # The nonce is what counts: a new request under a used nonce is refused.
    used = w.caller.prepare("GET", w.a.path(), author)
    assert_status(await w.caller.send(used), 200)
    nonce = used.header("Signature-Input").split('nonce="')[1].split('"')[0]  # type: ignore[union-attr]
    again = w.caller.prepare("GET", w.a.path("/members"), author, nonce=nonce)
    assert_error(await w.caller.send(again), 401, "replayed_request")


async def test_stale_request_is_refused(world: World) -> None:
    """``created`` outside ±300 s of the server's clock is refused, either side."""
    w, actor = world, world["core-formal"]
    assert_error(await w.caller.send(w.caller.stale("GET", w.a.path(), actor)), 401, "stale_request")
    assert_error(await w.caller.send(w.caller.stale("GET", w.a.path(), actor, by=-STALE_BY)),
                 401, "stale_request")
    # The edge of the window is still inside it (once the server has run that long:
    # requests signed before its start are refused, see the restart test).
    w.clock.advance(2 * STALE_BY)
    assert_status(await w.caller.send(w.caller.stale("GET", w.a.path(), actor, by=STALE_BY - 1)), 200)


async def test_wrong_content_digest_is_refused(world: World) -> None:
    """A body that is not the one the signed Content-Digest names is refused and not stored."""
    w, author = world, world["core-formal"]
    event = w.a.event(w.case, author)
    prepared = w.caller.wrong_digest("POST", events_path(w, w.case), author, json={"event": event})
    assert_error(await w.caller.send(prepared), 400, "digest_mismatch")
    assert await case_events(w, w.case) == w.case.events


async def test_body_swapped_after_signing_is_refused(world: World) -> None:
    """A signed request whose body was replaced in transit (digest left as signed)."""
    w, author = world, world["core-formal"]
    honest = w.caller.prepare("POST", events_path(w, w.case), author,
                              json={"event": w.a.event(w.case, author)})
    other = w.a.event(w.case, author)
    swapped = dataclasses.replace(honest, body=json.dumps({"event": other}).encode())
    assert_error(await w.caller.send(swapped), 400, "digest_mismatch")
    assert await case_events(w, w.case) == w.case.events


async def test_request_moved_to_another_path_is_refused(world: World) -> None:
    """A signature covers @path: the same headers on another route do not verify."""
    w, actor = world, world["core-formal"]
    signed = w.caller.prepare("GET", w.a.path("/members"), actor)
    moved = dataclasses.replace(signed, path=w.a.path("/epochs/mine"))
    assert_error(await w.caller.send(moved), 401, "bad_signature")


async def test_request_signed_for_another_server_is_refused(world: World) -> None:
    """A signature covers @authority: a request signed for another origin does not verify
    here (the server uses its own public origin, never the Host header)."""
    w, actor = world, world["core-formal"]
    elsewhere = Caller(w.caller.transport, "http://other-server.example", w.clock)
    assert_error(await elsewhere.get(w.a.path("/members"), actor), 401, "bad_signature")
    # ... even when the Host header names that other server.
    assert_error(await elsewhere.get(w.a.path("/members"), actor,
                                     headers=(("Host", "other-server.example"),)),
                 401, "bad_signature")


async def test_acting_user_changed_after_signing_is_refused(world: World) -> None:
    """The acting user is part of the signed request (NEN 7513: the person, not only the
    organisation)."""
    w, actor = world, world["core-formal"]
    signed = w.caller.prepare("GET", w.a.path("/members"), actor)
    headers = tuple((k, "someone-else" if k.lower() == "schakel-acting-user" else v)
                    for k, v in signed.headers)
    assert_error(await w.caller.send(dataclasses.replace(signed, headers=headers)),
                 401, "bad_signature")


async def test_unknown_key_is_refused(world: World) -> None:
    w = world
    assert_error(await w.caller.get(w.a.path(), w["unknown-key"]), 401, "untrusted_key")
    event = w.a.event(w.case, w["unknown-key"])
    assert_error(await w.caller.post(events_path(w, w.case), w["unknown-key"], {"event": event}),
                 401, "untrusted_key")
    assert await case_events(w, w.case) == w.case.events


async def test_replay_across_restart_is_refused(tmp_path: Any) -> None:
    """The nonce cache lives in memory; after a restart a request signed before it is
    refused because its ``created`` is earlier than the server's start."""
    clock = FakeClock()
    first = InProcessServer(tmp_path / "data", clock)
    caller = await first.start()
    try:
        w = await build_world(caller)
        seen = caller.prepare("GET", w.a.path("/members"), w["core-formal"])
        assert_status(await caller.send(seen), 200)
    finally:
        await first.stop()
    clock.advance(5)
    second = first.restarted()
    caller = await second.start()
    try:
        replay = await caller.send(seen)
        assert_error(replay, 401, ("stale_request", "replayed_request"))
        # The data survived the restart and fresh requests are served.
        w.caller = caller
        assert await case_events(w, w.case) == w.case.events
    finally:
        await second.stop()


# ============================================================ networks and membership


async def test_genesis_with_foreign_server_keys_is_refused(world: World) -> None:
    """A network must name *this* server's log and gate keys (else its gated envelopes
    could not be released here, and tree heads would be signed by another key)."""
    w = world
    other_server = dataclasses.replace(w.server, log=Actor.fresh("x").keys.signer.verify_key)
    net = Network(other_server, w.clock)
    answer = await w.caller.post("/v1/networks", net.coordinator, {"genesis": net.genesis})
    assert_error(answer, 400)
    assert_error(await w.caller.get(net.path(), net.coordinator), 401, "untrusted_key")


async def test_network_id_reused_with_another_genesis_is_conflict(world: World) -> None:
    w = world
    again = await w.caller.post("/v1/networks", w.a.coordinator, {"genesis": w.a.genesis})
    assert_status(again, 200)
    usurper = Network(w.server, w.clock, network=w.a.id)
    taken = await w.caller.post("/v1/networks", usurper.coordinator, {"genesis": usurper.genesis})
    assert_error(taken, 409, "conflict")
    assert_error(await w.caller.get(w.a.path(), usurper.coordinator), 401, "untrusted_key")
    network = assert_status(await w.caller.get(w.a.path(), w["core-formal"]), 200)
    assert network["genesis"] == w.a.genesis


async def test_genesis_uploaded_by_someone_else_is_refused(world: World) -> None:
    """Only the key a genesis names as coordinator may register it."""
    w = world
    net = Network(w.server, w.clock)
    assert_error(await w.caller.post("/v1/networks", w["core-formal"], {"genesis": net.genesis}),
                 403, "forbidden")
    assert_error(await w.caller.get(net.path(), net.coordinator), 401, "untrusted_key")


async def test_membership_not_signed_by_the_coordinator_is_refused(world: World) -> None:
    """A membership forged by an ordinary member, uploaded by the coordinator, does not
    admit its key."""
    w = world
    intruder = w.a.actor("intruder", ring="core")
    forged = issue_membership(w["core-formal"].keys, network=w.a.id, kind=w.a.kind,
                              member=intruder.keys.public, name="Intruder", ring="core",
                              party="formal", roles=(), serial=1,
                              valid_from=w.clock.now(),
                              valid_until=w.clock.now() + timedelta(days=30))
    answer = await w.caller.post(w.a.path("/members"), w.a.coordinator, {"membership": forged})
    # protocol.md §4.6.4 step 2: no coordinator signature is a SignatureError.
    assert answer.status in (401, 403), answer
    assert_error(answer, answer.status, ("bad_signature", "untrusted_key"))
    assert_error(await w.caller.get(w.a.path(), intruder), 401, "untrusted_key")


async def test_membership_of_another_network_is_refused(world: World) -> None:
    """B's coordinator certifies a key for B; A's coordinator cannot slip it into A."""
    w = world
    stranger = w.b.actor("stranger", ring="core")
    answer = await w.caller.post(w.a.path("/members"), w.a.coordinator,
                                 {"membership": w.b.membership(stranger)})
    assert 400 <= answer.status < 500, answer
    assert_error(answer, answer.status)
    assert_error(await w.caller.get(w.a.path(), stranger), 401, "untrusted_key")


async def test_covenant_with_another_hash_is_refused(world: World) -> None:
    w, member = world, world["core-informal"]
    wrong = w.a.acceptance(member, covenant=bytes(32))
    answer = await w.caller.post(w.a.path("/covenant"), member, {"acceptance": wrong})
    assert 400 <= answer.status < 500, answer
    assert_error(answer, answer.status)


async def test_covenant_accepted_on_behalf_of_another_member_is_refused(world: World) -> None:
    """"The member itself": an acceptance signed by B cannot be filed by A."""
    w = world
    theirs = w.a.acceptance(w["core-informal"])
    assert_error(await w.caller.post(w.a.path("/covenant"), w["core-formal"], {"acceptance": theirs}),
                 403, "forbidden")


async def test_revoked_member_is_refused(world: World) -> None:
    w, leaver = world, world["core-informal"]
    assert_status(await w.caller.post(w.a.path("/revocations"), w.a.coordinator,
                                      {"revocation": w.a.revocation(leaver)}), 201)
    for path in (w.a.path("/sync?after=0&limit=10&wait=0"), w.a.path(f"/cases/{w.case.case}"),
                 w.a.path("/epochs/mine"), w.a.path("/members")):
        assert_error(await w.caller.get(path, leaver), 403, ("forbidden", "untrusted_key"))
    event = w.a.event(w.case, leaver)
    assert_error(await w.caller.post(events_path(w, w.case), leaver, {"event": event}),
                 403, ("forbidden", "untrusted_key"))
    assert await case_events(w, w.case) == w.case.events
    members = assert_status(await w.caller.get(w.a.path("/members"), w["core-formal"]), 200)
    assert [r["signed"]["member"] for r in members["revocations"]] == [leaver.key_id]


async def test_member_of_other_network_sees_nothing(world: World) -> None:
    w, other = world, world["other-network"]
    for path in (w.a.path(), w.a.path("/members"), w.a.path(f"/cases/{w.case.case}"),
                 w.a.path("/sync?after=0&limit=500&wait=0"), w.a.path("/epochs/mine"),
                 w.a.path("/signals?after=0"), w.a.path("/hints?after=0")):
        assert_error(await w.caller.get(path, other), 403, "forbidden")
    # Its own network's sync holds nothing of network A ...
    items = await sync_all(w.caller, w.b, other)
    assert not {i["case"] for i in items} & set(w.a.cases)
    assert w.a.id.encode() not in repr(items).encode()
    # ... and A's case cannot be reached through B's path either.
    assert_error(await w.caller.get(w.b.path(f"/cases/{w.case.case}"), other), 404, "not_found")
    event = w.a.event(w.case, other)
    answer = await w.caller.post(w.b.path(f"/cases/{w.case.case}/events"), other, {"event": event})
    assert answer.status in (400, 403, 404), answer
    assert_error(answer, answer.status)
    assert await case_events(w, w.case) == w.case.events


# ============================================================ epochs


async def test_epoch_entry_delivered_only_to_its_recipient(world: World) -> None:
    w = world
    # Epoch 2 goes to the coordinator and the core formal partner only.
    chosen = [w.a.coordinator, w["core-formal"]]
    dist = w.a.distribution(recipients=chosen)
    assert_status(await w.caller.post(w.a.path("/epochs"), w.a.coordinator, {"distribution": dist}), 201)
    w.a.commit_epoch(dist)
    for actor in [w.a.coordinator, w["core-formal"], w["core-informal"]]:
        answer = assert_status(await w.caller.get(w.a.path("/epochs/mine"), actor), 200)
        epochs = sorted(e["epoch"] for e in answer["entries"])
        assert epochs == ([1, 2] if actor in chosen else [1]), (actor, epochs)
        for entry in answer["entries"]:
            verified = EpochKeyDistribution.from_envelope(entry["distribution"],
                                                          [w.a.coordinator.signer.verify_key])
            assert entry["sealed"] == verified.sealed_for(actor.key_id)
            opened = EpochKeyPayload.open(entry["sealed"], actor.keys.box_secret, network=w.a.id,
                                          epoch=entry["epoch"], recipient=actor.key_id)
            assert opened.epoch_secret() == w.a.epoch_keys[entry["epoch"]][0]
    for actor in (w["shell"], w["shell-shared"], w["auditor"], w["other-network"]):
        assert_error(await w.caller.get(w.a.path("/epochs/mine"), actor), 403, "forbidden")


async def test_epoch_key_sealed_to_a_shell_partner_is_refused(world: World) -> None:
    """Epoch keys open every case of the network: never to the shell."""
    w = world
    dist = w.a.distribution(recipients=[w.a.coordinator, w["shell"]])
    answer = await w.caller.post(w.a.path("/epochs"), w.a.coordinator, {"distribution": dist})
    assert answer.status in (400, 403), answer
    assert_error(answer, answer.status)
    mine = assert_status(await w.caller.get(w.a.path("/epochs/mine"), w.a.coordinator), 200)
    assert [e["epoch"] for e in mine["entries"]] == [1]


async def test_epoch_keys_cannot_be_replaced(world: World) -> None:
    """protocol.md §N.9: a client never replaces the keys of an epoch it holds; the server
    does not let a second distribution for the same epoch through either."""
    w = world
    original = w.a.distributions[1]
    w.a.epoch_keys.pop(1)
    replacement = w.a.distribution(epoch=1)
    answer = await w.caller.post(w.a.path("/epochs"), w.a.coordinator, {"distribution": replacement})
    assert_error(answer, 409, "conflict")
    mine = assert_status(await w.caller.get(w.a.path("/epochs/mine"), w["core-formal"]), 200)
    assert [e["distribution"] for e in mine["entries"]] == [original]


# ============================================================ cases and events


async def test_event_from_non_author_key_is_refused(world: World) -> None:
    """An event names its author and must carry exactly one signature, the author's."""
    w, owner, other = world, world["core-formal"], world["core-informal"]
    forged = w.a.event(w.case, owner, signer=other)          # author: owner; signed by other
    # Uploaded under the author's name (the request signed by the author's key) ...
    assert_error(await w.caller.post(events_path(w, w.case), owner, {"event": forged}),
                 401, "bad_signature")
    # ... or by the key that signed it: either check may refuse it first.
    answer = await w.caller.post(events_path(w, w.case), other, {"event": forged})
    assert answer.status in (401, 403), answer
    assert_error(answer, answer.status, ("bad_signature", "forbidden"))
    honest = w.a.event(w.case, other)
    cosigned = add_signature(honest, owner.signer)          # a second signature changes the hash
    assert_error(await w.caller.post(events_path(w, w.case), other, {"event": cosigned}),
                 401, "bad_signature")
    assert await case_events(w, w.case) == w.case.events


async def test_case_owned_by_someone_else_is_refused(world: World) -> None:
    """The header's owner must be the caller: nobody files a case in another's name."""
    w = world
    body, state = w.a.new_case(w["core-formal"])
    assert_error(await w.caller.post(w.a.path("/cases"), w["core-informal"], body), 403)
    assert_error(await w.caller.get(w.a.path(f"/cases/{state.case}"), w["core-formal"]),
                 404, "not_found")


async def test_identity_on_consult_is_refused(world: World) -> None:
    """A consult is anonymous: identity records, gated envelopes or blind-index tokens
    on one are refused (design §4.2), and the consult is not created."""
    w, owner = world, world["core-formal"]
    token = [w.a.token("bsn", "111222333")]
    for keep in ("identity", "gated", "tokens"):
        body, state = w.a.new_case(owner, kind="consult", identity={"name": {
            "given_names": "Hendrik", "family_name": "de Vries"}}, tokens=token)
        for part in ("identity", "gated", "tokens"):
            if part != keep:
                body[part] = []
        assert body[keep], keep
        answer = await w.caller.post(w.a.path("/cases"), owner, body)
        assert_error(answer, 403, "policy_violation")
        assert_error(await w.caller.get(w.a.path(f"/cases/{state.case}"), owner), 404, "not_found")


async def test_identity_is_served_to_the_owner_only(world: World) -> None:
    w = world
    mine = assert_status(await w.caller.get(w.a.path(f"/cases/{w.case.case}"), w.case.owner), 200)
    assert mine["identity"] == w.case.identity and mine["identity"]
    for kind in ("core-informal", "coordinator", "shell-shared"):
        theirs = assert_status(await w.caller.get(w.a.path(f"/cases/{w.case.case}"), w[kind]), 200)
        assert theirs["identity"] == [], kind
        assert theirs["header"] == w.case.header


async def test_broken_event_chain_is_conflict(world: World) -> None:
    """``seq``/``prev`` must extend the case's last event: a gap, a fork or a rewrite of
    history is 409 with the last sequence number, and is not stored."""
    w, author = world, world["core-formal"]
    last = w.case.last_seq
    attempts = {
        "gap": w.a.event(w.case, author, seq=last + 2),
        "wrong prev": w.a.event(w.case, author, prev=b64e(random_bytes(32))),
        "rewrite of an old position": w.a.event(w.case, author, seq=last),
    }
    for what, event in attempts.items():
        answer = await w.caller.post(events_path(w, w.case), author, {"event": event})
        assert_error(answer, 409, "conflict")
        assert answer.json["error"]["details"].get("last_seq") == last, (what, answer)
    assert await case_events(w, w.case) == w.case.events
    await append(w.caller, w.a, w.case, author)            # the honest next event still fits


async def test_retried_event_is_stored_once(world: World) -> None:
    """Client-chosen event ids make a retry idempotent; the id cannot be reused for
    other content."""
    w, author = world, world["core-formal"]
    event = w.a.event(w.case, author)
    first = assert_status(await w.caller.post(events_path(w, w.case), author, {"event": event}), 201)
    w.case.commit(event)
    again = assert_status(await w.caller.post(events_path(w, w.case), author, {"event": event}), 200)
    assert again == first
    other = w.a.event(w.case, author, seq=event["signed"]["seq"],
                      prev=event["signed"].get("prev"), event=event["signed"]["event"],
                      plaintext={"kind": "note", "text": "Andere inhoud."})
    assert_error(await w.caller.post(events_path(w, w.case), author, {"event": other}), 409, "conflict")
    assert await case_events(w, w.case) == w.case.events


async def test_retried_case_creation_is_answered_the_same(world: World) -> None:
    w, owner = world, world["core-formal"]
    body, state = w.a.new_case(owner)
    first = assert_status(await w.caller.post(w.a.path("/cases"), owner, body), 201)
    again = assert_status(await w.caller.post(w.a.path("/cases"), owner, body), 200)
    assert again == first
    other, _ = w.a.new_case(owner, case=state.case)
    assert_error(await w.caller.post(w.a.path("/cases"), owner, other), 409, "conflict")
    stored = assert_status(await w.caller.get(w.a.path(f"/cases/{state.case}"), owner), 200)
    assert stored["header"] == body["header"] and stored["events"] == body["events"]


async def test_closed_case_refuses_events(world: World) -> None:
    w, author = world, world["core-formal"]
    await append(w.caller, w.a, w.case, author, status="closed")
    late = w.a.event(w.case, author)
    assert_error(await w.caller.post(events_path(w, w.case), author, {"event": late}), 409, "conflict")
    assert await case_events(w, w.case) == w.case.events


async def test_event_for_another_case_is_refused(world: World) -> None:
    """An event signed for case X, posted to case Y's path, is not filed under Y."""
    w, author = world, world["core-formal"]
    other = await create_case(w.caller, w.a, author)
    event = w.a.event(other, author)
    answer = await w.caller.post(events_path(w, w.case), author, {"event": event})
    assert 400 <= answer.status < 500, answer
    assert_error(answer, answer.status)
    assert await case_events(w, w.case) == w.case.events
    assert await case_events(w, other) == other.events


# ============================================================ sync and sharing


async def test_shell_partner_without_share_cannot_sync_case(world: World) -> None:
    w = world
    assert await sync_all(w.caller, w.a, w["shell"]) == []
    assert await sync_all(w.caller, w.a, w["auditor"]) == []
    assert_error(await w.caller.get(w.a.path(f"/cases/{w.case.case}"), w["shell"]), 403, "forbidden")
    # The partner it was shared with sees exactly that case: header, events and its share.
    shared = await sync_all(w.caller, w.a, w["shell-shared"])
    assert {i["case"] for i in shared} == {w.case.case}
    assert {i["kind"] for i in shared} == {"header", "event", "share"}
    assert [i["envelope"] for i in shared if i["kind"] == "event"] == w.case.events
    # A core member sees every case of the network.
    core = await sync_all(w.caller, w.a, w["core-informal"])
    assert {w.case.case, w.consult.case} <= {i["case"] for i in core}


async def test_share_with_an_outsider_is_refused(world: World) -> None:
    """Shares go to current members only (a shell partner, or a core member's history
    re-share, ADR 0007): a case key sealed to a member of another network is refused."""
    w = world
    answer = await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                                 {"share": w.a.share(w.consult, w["other-network"])})
    assert_error(answer, 403, "policy_violation")
    assert answer.json["error"]["details"]["reason"] == "partner-not-member"


async def test_sync_waiter_is_woken_by_new_event(world: World) -> None:
    """A long-poll waiter comes back with the new event, not with an empty answer."""
    w, reader, author = world, world["core-informal"], world["core-formal"]
    page = assert_status(await w.caller.get(w.a.path("/sync?after=0&limit=500&wait=0"), reader), 200)
    cursor = page["cursor"]
    waiter = asyncio.create_task(w.caller.get(
        w.a.path(f"/sync?after={cursor}&limit=500&wait=20"), reader, timeout=40))
    outsider = asyncio.create_task(w.caller.get(
        w.a.path("/sync?after=0&limit=500&wait=1"), w["shell"], timeout=40))
    await asyncio.sleep(0.2)                     # let them wait (the test holds either way)
    event = w.a.event(w.case, author)
    assert_status(await w.caller.post(events_path(w, w.case), author, {"event": event}), 201)
    w.case.commit(event)
    answer = assert_status(await asyncio.wait_for(waiter, 40), 200)
    assert [i["envelope"] for i in answer["items"] if i["kind"] == "event"] == [event]
    assert answer["cursor"] != cursor
    # A shell partner without a share is not woken with it.
    assert assert_status(await asyncio.wait_for(outsider, 40), 200)["items"] == []


# ============================================================ signals


async def test_receipt_token_reads_only_its_own_signal(world: World) -> None:
    w = world
    shell_sig, anon_sig = w.shell_signal, w.anonymous_signal
    assert_status(await w.caller.post(w.a.path(f"/signals/{shell_sig.signal}/feedback"),
                                      w.a.coordinator,
                                      {"feedback": w.a.feedback(shell_sig, "taken-up", "We gaan langs.")}),
                  201)

    async def status(token: str) -> Any:
        return await w.caller.get("/v1/signals/status", headers=(("Schakel-Receipt", token),))

    mine = SignalStatus.from_json(assert_status(await status(shell_sig.receipt or ""), 200))
    assert mine.signal == shell_sig.signal and mine.status == "taken-up"
    (feedback,) = mine.verified_feedback([w.a.coordinator.signer.verify_key], network=w.a.id)
    assert shell_sig.reply_secret.unseal(b64d(feedback.message)) == b"We gaan langs."
    theirs = SignalStatus.from_json(assert_status(await status(anon_sig.receipt or ""), 200))
    assert theirs.signal == anon_sig.signal and theirs.status == "received" and not theirs.feedback
    # Not a token the server issued, the signal id itself, or no token at all.
    assert_error(await status(b64e(random_bytes(32))), 404, "not_found")
    as_id = await status(shell_sig.signal)
    assert as_id.status in (400, 404), as_id
    assert_error(as_id, as_id.status)
    missing = await w.caller.get("/v1/signals/status")
    assert missing.status in (400, 404), missing
    assert_error(missing, missing.status)


async def test_signaller_is_not_told_about_duplicates(world: World) -> None:
    """A signal about a person who already has a case gives the coordinator a hint and the
    signaller nothing but a receipt (design §4.8: the server tells only the coordinator)."""
    w = world
    token = w.case.tokens[0]
    draft = await send_signal(w.caller, w.a.signal(w["shell"], tokens=[token]), w["shell"],
                              w.a.path("/signals"))
    answer = await w.caller.post(w.a.path("/signals"), w["shell-shared"],
                                 w.a.signal(w["shell-shared"], tokens=[token]).body)
    assert set(assert_status(answer, 201)) == {"receipt"}
    status = await w.caller.get("/v1/signals/status", headers=(("Schakel-Receipt", draft.receipt or ""),))
    assert assert_status(status, 200)["status"] == "received"
    assert w.case.case.encode() not in status.raw
    hints = assert_status(await w.caller.get(w.a.path("/hints?after=0"), w.a.coordinator), 200)
    about = [h for h in hints["items"] if h["subject"] == {"kind": "signal", "id": draft.signal}]
    assert about and about[0]["may_concern"] == w.case.case and about[0]["token_kind"] == "bsn"
    # A new case with the same token: a hint for the coordinator, nothing for its owner.
    body, state = w.a.new_case(w["core-informal"], tokens=[token])
    created = assert_status(await w.caller.post(w.a.path("/cases"), w["core-informal"], body), 201)
    assert set(created) == {"case", "cursor"}
    hints = assert_status(await w.caller.get(w.a.path("/hints?after=0"), w.a.coordinator), 200)
    assert any(h["subject"] == {"kind": "case", "id": state.case} and h["may_concern"] == w.case.case
               for h in hints["items"])


async def test_anonymous_intake_is_rate_limited(tmp_path: Any) -> None:
    """``intake_rate_per_hour`` anonymous signals per source address, then 429 (and the
    refused signal is not stored); an hour later the intake is open again."""
    clock = FakeClock()
    server = InProcessServer(tmp_path / "data", clock)
    caller = await server.start()
    try:
        w = await build_world(caller, a_policy=network_policy(intake_rate_per_hour=3))
        sent = [w.anonymous_signal.signal]               # the world sent one already
        for _ in range(2):
            sent.append((await send_signal(caller, w.a.signal(None), None, w.a.path("/signals"))).signal)
        refused = w.a.signal(None)
        assert_error(await caller.post(w.a.path("/signals"), None, refused.body), 429, "rate_limited")
        listed = assert_status(await caller.get(w.a.path("/signals?after=0&limit=500"),
                                                w.a.coordinator), 200)
        ids = {_signal_id(item) for item in listed["items"]}
        assert set(sent) <= ids and refused.signal not in ids
        clock.advance(3601)
        await send_signal(caller, w.a.signal(None), None, w.a.path("/signals"))
    finally:
        await server.stop()


def _signal_id(item: dict[str, Any]) -> str:
    value = item["signal"]
    return value["signed"]["signal"] if "signed" in value else value["signal"]


async def test_anonymous_signal_refused_when_policy_forbids(world: World) -> None:
    """Network B's policy has ``anonymous_signals: false``."""
    w = world
    assert w.b.policy["anonymous_signals"] is False
    draft = w.b.signal(None)
    assert_error(await w.caller.post(w.b.path("/signals"), None, draft.body), 403, "policy_violation")
    listed = assert_status(await w.caller.get(w.b.path("/signals?after=0"), w.b.coordinator), 200)
    assert draft.signal not in {_signal_id(i) for i in listed["items"]}


async def test_signal_for_another_network_is_refused(world: World) -> None:
    """A signal object made for network B, posted to A's intake, is not filed under A."""
    w = world
    draft = w.b.signal(None)
    answer = await w.caller.post(w.a.path("/signals"), None, draft.body)
    assert 400 <= answer.status < 500, answer
    assert_error(answer, answer.status)


async def test_signed_signal_claiming_to_be_anonymous_is_refused(world: World) -> None:
    """A bare signal with ``source: shell`` (a shell claim without a signature)."""
    w = world
    draft = w.a.signal(w["shell"])
    bare = dict(draft.body["signal"]["signed"])
    answer = await w.caller.post(w.a.path("/signals"), None, {"signal": bare})
    assert answer.status in (400, 401, 403), answer
    assert_error(answer, answer.status)


async def test_feedback_for_unknown_signal_is_not_found(world: World) -> None:
    w = world
    ghost = dataclasses.replace(w.shell_signal, signal=new_id())
    answer = await w.caller.post(w.a.path(f"/signals/{ghost.signal}/feedback"), w.a.coordinator,
                                 {"feedback": w.a.feedback(ghost)})
    assert_error(answer, 404, "not_found")


# ============================================================ more of the same kind


async def test_expired_member_is_refused(world: World) -> None:
    """A membership is valid until ``valid_until`` (365 days here) at the server's clock."""
    w = world
    w.clock.advance(366 * 24 * 3600)
    for kind in ("core-formal", "shell-shared"):
        assert_error(await w.caller.get(w.a.path("/sync?after=0&limit=10&wait=0"), w[kind]),
                     403, ("untrusted_key", "forbidden"))
    event = w.a.event(w.case, w["core-formal"])
    assert_error(await w.caller.post(events_path(w, w.case), w["core-formal"], {"event": event}),
                 403, ("untrusted_key", "forbidden"))


async def test_revoked_member_cannot_return_with_its_old_membership(world: World) -> None:
    """Re-uploading the revoked membership (a signed object replayed) does not re-admit
    the member: the revocation covers its serial."""
    w, leaver = world, world["core-informal"]
    old = w.a.membership(leaver)
    assert_status(await w.caller.post(w.a.path("/revocations"), w.a.coordinator,
                                      {"revocation": w.a.revocation(leaver)}), 201)
    again = await w.caller.post(w.a.path("/members"), w.a.coordinator, {"membership": old})
    assert again.status < 500, again
    assert_error(await w.caller.get(w.a.path("/members"), leaver), 403, ("forbidden", "untrusted_key"))


async def test_rate_limit_is_not_bypassed_with_forwarding_headers(tmp_path: Any) -> None:
    """The intake counts the connection's address, not a header the sender writes."""
    server = InProcessServer(tmp_path / "data", FakeClock())
    caller = await server.start()
    try:
        w = await build_world(caller, a_policy=network_policy(intake_rate_per_hour=1))
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            value = "for=203.0.113.7" if header == "Forwarded" else "203.0.113.7"
            answer = await caller.post(w.a.path("/signals"), None, w.a.signal(None).body,
                                       headers=((header, value),))
            assert_error(answer, 429, "rate_limited")
    finally:
        await server.stop()


async def test_blind_index_tokens_are_never_served_to_members(world: World) -> None:
    """Tokens reach the server only; a member who could read them could test whether a
    person it knows is a case (ADR 0004, threat RR-10)."""
    w = world
    token = w.case.tokens[0]["token"]
    for kind in ("core-formal", "core-informal", "coordinator", "shell-shared"):
        for path in (w.a.path("/sync?after=0&limit=500&wait=0"), w.a.path(f"/cases/{w.case.case}")):
            answer = await w.caller.get(path, w[kind])
            assert_status(answer, 200)
            assert token.encode() not in answer.raw, (kind, path)


async def test_case_parts_made_for_another_case_are_refused(world: World) -> None:
    """Every part of a case creation must belong to the header's case and network: an
    event, identity record or gated envelope of another case is not filed under this one."""
    w, owner = world, world["core-formal"]
    donor_body, donor = w.a.new_case(owner)
    for part in ("events", "identity", "gated"):
        body, state = w.a.new_case(owner)
        body[part] = [donor_body[part][0], *body[part][1:]]
        answer = await w.caller.post(w.a.path("/cases"), owner, body)
        assert 400 <= answer.status < 500, (part, answer)
        assert_error(answer, answer.status)
        assert_error(await w.caller.get(w.a.path(f"/cases/{state.case}"), owner), 404, "not_found")
    # A header of network B filed under network A.
    foreign = Network(w.server, w.clock, network=w.b.id)
    foreign.epoch_keys, foreign.epoch = w.a.epoch_keys, w.a.epoch
    body, state = foreign.new_case(owner)
    answer = await w.caller.post(w.a.path("/cases"), owner, body)
    assert 400 <= answer.status < 500, answer
    assert_error(answer, answer.status)


async def test_share_with_a_non_member_is_refused(world: World) -> None:
    """The case key goes only to a current shell partner of this network."""
    w = world
    for outsider in (w["other-network"], w["unknown-key"]):
        answer = await w.caller.post(w.a.path("/shares"), w.a.coordinator,
                                     {"share": w.a.share(w.consult, outsider)})
        assert 400 <= answer.status < 500, answer
        assert_error(answer, answer.status)


async def test_shell_partner_cannot_write_to_a_case_not_shared_with_it(world: World) -> None:
    w, partner = world, world["shell-shared"]
    event = w.a.event(w.consult, partner)
    assert_error(await w.caller.post(events_path(w, w.consult), partner, {"event": event}),
                 403, "forbidden")
    assert await case_events(w, w.consult) == w.consult.events


async def test_duplicated_signature_fields_are_refused(world: World) -> None:
    """protocol.md §10: a second field line of Signature(-Input), Content-Digest or the
    acting user is malformed -- one header must not mean two things to two parsers."""
    w, actor = world, world["core-formal"]
    signed = w.caller.prepare("GET", w.a.path("/members"), actor)
    for name in ("Signature", "Signature-Input", "Content-Digest", "Schakel-Acting-User"):
        value = signed.header(name)
        doubled = dataclasses.replace(signed, headers=(*signed.headers, (name, value or "")))
        assert_error(await w.caller.send(doubled), 400, "malformed")


async def test_signal_to_an_unknown_network_is_not_found(world: World) -> None:
    w = world
    ghost = Network(w.server, w.clock)
    assert_error(await w.caller.post(ghost.path("/signals"), None, ghost.signal(None).body),
                 404, "not_found")


async def test_concurrent_forks_of_a_chain_store_one(world: World) -> None:
    """Ten partners append at the same position at once: exactly one event is stored,
    the others get 409 (the check and the insert are one transaction)."""
    w = world
    authors = [w["core-formal"], w["core-informal"], w.a.coordinator, w["shell-shared"]] * 3
    forks = [w.a.event(w.case, a) for a in authors[:10]]
    answers = await asyncio.gather(*(w.caller.post(events_path(w, w.case), a, {"event": e})
                                     for a, e in zip(authors, forks)))
    won = [e for e, r in zip(forks, answers) if r.status == 201]
    assert len(won) == 1, answers
    for r in answers:
        if r.status != 201:
            assert_error(r, 409, "conflict")
    w.case.commit(won[0])
    assert await case_events(w, w.case) == w.case.events


async def test_concurrent_retries_of_one_event_store_it_once(world: World) -> None:
    w, author = world, world["core-formal"]
    event = w.a.event(w.case, author)
    answers = await asyncio.gather(*(w.caller.post(events_path(w, w.case), author, {"event": event})
                                     for _ in range(6)))
    assert sorted(r.status for r in answers) == [200] * 5 + [201], answers
    assert len({r.raw for r in answers}) == 1, "retries must be answered the same"
    w.case.commit(event)
    assert await case_events(w, w.case) == w.case.events


async def test_paged_sync_neither_drops_nor_repeats_items(world: World) -> None:
    w, reader = world, world["core-informal"]
    for _ in range(3):
        await append(w.caller, w.a, w.case, w["core-formal"])
    whole = await sync_all(w.caller, w.a, reader, limit=500)
    paged = await sync_all(w.caller, w.a, reader, limit=1)
    assert paged == whole
    cursors = [int(i["cursor"]) for i in whole]
    assert cursors == sorted(set(cursors))
    assert [i["envelope"] for i in whole if i["kind"] == "event" and i["case"] == w.case.case] \
        == w.case.events


async def test_duplicate_hints_stay_within_their_network(world: World) -> None:
    """The same token bytes in two networks link nothing across them."""
    w = world
    token = w.case.tokens[0]
    other_case = await create_case(w.caller, w.b, w["other-network"], tokens=[token])
    a_hints = assert_status(await w.caller.get(w.a.path("/hints?after=0"), w.a.coordinator), 200)
    b_hints = assert_status(await w.caller.get(w.b.path("/hints?after=0"), w.b.coordinator), 200)
    assert other_case.case.encode() not in json.dumps(a_hints).encode()
    assert w.case.case.encode() not in json.dumps(b_hints).encode()


async def test_feedback_for_another_signal_is_refused(world: World) -> None:
    """Feedback signed for signal X, posted under signal Y, is not shown to Y's holder."""
    w = world
    for_shell = w.a.feedback(w.shell_signal, "closed", "Afgerond.")
    answer = await w.caller.post(w.a.path(f"/signals/{w.anonymous_signal.signal}/feedback"),
                                 w.a.coordinator, {"feedback": for_shell})
    assert 400 <= answer.status < 500, answer
    assert_error(answer, answer.status)
    status = await w.caller.get("/v1/signals/status",
                                headers=(("Schakel-Receipt", w.anonymous_signal.receipt or ""),))
    assert assert_status(status, 200)["feedback"] == []


async def test_feedback_not_signed_by_the_coordinator_is_refused(world: World) -> None:
    """The signaller trusts feedback because the coordinator signed it; the server does
    not store a status statement anyone else signed."""
    w = world
    forged = SignalFeedback(network=w.a.id, signal=w.shell_signal.signal, status="closed",
                            at=w.a.stamp()).sign(w["core-formal"].signer)
    answer = await w.caller.post(w.a.path(f"/signals/{w.shell_signal.signal}/feedback"),
                                 w.a.coordinator, {"feedback": forged})
    assert answer.status in (401, 403), answer
    assert_error(answer, answer.status)
    status = await w.caller.get("/v1/signals/status",
                                headers=(("Schakel-Receipt", w.shell_signal.receipt or ""),))
    assert assert_status(status, 200)["feedback"] == []


# ============================================================ who may close, who may receive


async def test_only_owner_or_coordinator_closes_a_case(world: World) -> None:
    """Closing starts the retention clock (flow 9), so another core member, even one
    that may append events, cannot close or reopen a case it does not own."""
    w, owner, other = world, world["core-formal"], world["core-informal"]
    body, state = w.a.new_case(owner)
    assert_status(await w.caller.post(w.a.path("/cases"), owner, body), 201)
    closing = w.a.event(state, other, status="closed")
    assert_error(await w.caller.post(events_path(w, state), other, {"event": closing}),
                 403, "forbidden")
    assert await case_events(w, state) == state.events
    by_coordinator = w.a.event(state, w.a.coordinator, status="closed")
    assert_status(await w.caller.post(events_path(w, state), w.a.coordinator,
                                      {"event": by_coordinator}), 201)
    state.commit(by_coordinator)
    reopening = w.a.event(state, other, status="open")
    assert_error(await w.caller.post(events_path(w, state), other, {"event": reopening}),
                 403, "forbidden")


async def test_gated_envelope_for_revoked_member_is_refused(world: World) -> None:
    """An owner must not leave a gated envelope for a member who has left: a later
    release could otherwise hand it identity."""
    w, owner, leaver = world, world["core-formal"], world["core-informal"]
    assert_status(await w.caller.post(w.a.path("/revocations"), w.a.coordinator,
                                      {"revocation": w.a.revocation(leaver)}), 201)
    body, state = w.a.new_case(owner, recipients=[owner, leaver])
    answer = await w.caller.post(w.a.path("/cases"), owner, body)
    assert_error(answer, 403, "policy_violation")
    assert answer.json["error"]["details"]["reason"] == "recipient-not-member"
    assert_error(await w.caller.get(w.a.path(f"/cases/{state.case}"), owner), 404, "not_found")
