"""Subset cases (Integraal Netwerk Almere: a case visible to a chosen subset of the kern;
docs/protocol.md §C.1 "Audience", §C.11; ADR 0031), end to end.

The real application on a real SQLite file behind :class:`tests.tamper_proxy.TamperProxy`
(which forwards untouched unless a test installs a rewriter), real partners built through
the public ``Partner`` API (:func:`tests.client_harness.standard_network`).  The owner is
the formal core member; the coordinator is always in the audience; the informal core
member is the outsider; ``ally`` is a core member the owner adds.  One test per rule.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.client.errors import ServerMisbehaviour, ServerRefused
from schakel.client.fold import epoch_keys, latest_epoch
from schakel.client.partner import Partner
from schakel.protocol import envelopes
from schakel.protocol.errors import DecryptionError, MalformedError, PolicyViolation
from schakel.protocol.objects.audit import AuditEntry
from schakel.protocol.objects.cases import CaseHeader, CaseRekey
from schakel.protocol.objects.disclosure import Share
from tests.client_harness import IDENTITY, INTAKE, Cast, standard_network
from tests.server_harness import INTAKE as SERVER_INTAKE
from tests.tamper_proxy import TamperedServer, stored_feed, tampered_server

assert SERVER_INTAKE == INTAKE   # one intake for both harnesses

NOTE = {"kind": "note", "text": "Huisbezoek gepland met de wijkverpleging."}


@dataclass
class World:
    env: TamperedServer
    cast: Cast
    ally: Partner
    case: str

    @property
    def net(self) -> str:
        return self.cast.network

    @property
    def owner(self) -> Partner:
        return self.cast.formal

    @property
    def outsider(self) -> Partner:
        return self.cast.informal


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with tampered_server(tmp_path) as env:
        cast = await standard_network(tmp_path, env.url)
        try:
            ally = await cast.join(tmp_path, env.url, "ally")
            for p in cast.partners:
                await p.sync(cast.network)
            case = await cast.formal.cases.create(cast.network, INTAKE, identity=IDENTITY,
                                                  audience=[])
            await cast.formal.cases.add_event(cast.network, case, NOTE)
            yield World(env, cast, ally, case)
        finally:
            await cast.close()


def feed_rows(w: World, kind: str) -> list[dict[str, Any]]:
    return [r for r in stored_feed(w.env.db_path, w.net) if r["case"] == w.case
            and r["kind"] == kind]


async def raw_sync(p: Partner, network: str) -> list[dict[str, Any]]:
    """Every sync item the server serves ``p`` (its own signed requests, no verifier)."""
    items, after = [], "0"
    while True:
        page = await p.session.conn.get(f"/v1/networks/{network}/sync?after={after}&limit=500")
        items += page["items"]
        if not page["items"]:
            return items
        after = page["cursor"]


def in_last(items: list[dict[str, Any]], case: str,
            header: dict[str, Any]) -> list[dict[str, Any]]:
    """The page with its last item replaced by ``header`` of ``case`` at that item's
    feed position (a lying server's own feed item)."""
    return [*items[:-1], {"cursor": items[-1]["cursor"], "kind": "header", "case": case,
                          "envelope": copy.deepcopy(header)}]


async def caught(call: Any) -> ServerMisbehaviour:
    try:
        await call
    except ServerMisbehaviour as exc:
        return exc
    pytest.fail("the client accepted what the server served")


# =========================================================================== who reads


async def test_subset_case_is_read_by_its_audience(world: World) -> None:
    """The owner and the coordinator (always in the audience) read the case."""
    w = world
    header = CaseHeader.from_json(feed_rows(w, "header")[0]["envelope"]["signed"])
    assert set(header.audience or ()) == {w.owner.key_id, w.cast.coordinator.key_id}
    assert header.wrapped_case_key is None
    await w.cast.coordinator.sync(w.net)
    view = w.cast.coordinator.cases.get(w.net, w.case)
    assert view.readable and view.audience == header.audience
    assert [e.plaintext["kind"] for e in view.events] == ["intake", "note"]


async def test_subset_case_is_invisible_outside_its_audience_in_sync(world: World) -> None:
    w = world
    assert w.case not in {i["case"] for i in await raw_sync(w.outsider, w.net)}
    assert w.case in {i["case"] for i in await raw_sync(w.cast.coordinator, w.net)}
    await w.outsider.sync(w.net)
    assert w.case not in {v.case for v in w.outsider.cases.all(w.net)}
    assert w.outsider.misbehaviours() == []


async def test_subset_case_by_id_is_answered_as_missing_outside_its_audience(
        world: World) -> None:
    """``GET .../cases/{case}`` and appending an event answer an outsider exactly as for a
    case that does not exist: no oracle."""
    w = world
    refusals = []
    for case in (w.case, "A" * 22):
        for call in (w.outsider.session.conn.get(f"/v1/networks/{w.net}/cases/{case}"),
                     w.outsider.session.conn.post(f"/v1/networks/{w.net}/cases/{case}/events",
                                                  {"event": {"signed": {}, "signatures": []}})):
            with pytest.raises(ServerRefused) as exc:
                await call
            refusals.append((exc.value.status, exc.value.code, exc.value.message))
    assert refusals[0] == refusals[2] and refusals[1] == refusals[3]
    assert refusals[0][:2] == (404, "not_found")


async def test_subset_case_is_left_out_of_reports_outside_its_audience(world: World) -> None:
    """The figures an outsider's client computes leave the case out, and the subject access
    report of the case is 404 to an auditor outside the audience, as for a missing case;
    the coordinator counts it and reports on it."""
    w = world
    for p in (w.outsider, w.cast.coordinator):
        await p.sync(w.net)
    assert w.outsider.reports.aggregate(w.net, min_cell=1)["cases"] == "<1"   # none
    assert w.cast.coordinator.reports.aggregate(w.net, min_cell=1)["cases"] == 1
    with pytest.raises(ServerRefused) as exc:
        await w.cast.auditor.reports.access(w.net, w.case)
    assert (exc.value.status, exc.value.code) == (404, "not_found")
    report = await w.cast.coordinator.reports.access(w.net, w.case)
    assert report["case"] == w.case


async def test_outsider_cannot_decrypt_a_subset_case_even_with_the_epoch_key(
        world: World) -> None:
    """Nothing of the case is wrapped under the epoch key the outsider holds, and no sealed
    key opens with its box key: the exclusion holds if the server's filter fails."""
    w = world
    state = w.outsider.session.state
    epoch = latest_epoch(state, w.net)
    keys = epoch_keys(state, w.net, epoch)
    assert keys is not None
    signed = feed_rows(w, "header")[0]["envelope"]["signed"]
    assert "wrapped_case_key" not in signed
    header = CaseHeader.from_json(signed)
    for entry in header.audience_keys or ():
        with pytest.raises(DecryptionError):
            entry.open(w.outsider.session.keys.box_secret, network=w.net, case=w.case)
        with pytest.raises((DecryptionError, MalformedError)):
            envelopes.unwrap_case_key(keys[0], entry.sealed, network=w.net, case=w.case,
                                      epoch=epoch, version=1)
    event = feed_rows(w, "event")[0]["envelope"]["signed"]
    with pytest.raises(DecryptionError):
        envelopes.decrypt_json(keys[0], event["ciphertext"], envelopes.event_context(
            w.net, w.case, event["event"], version=1))


# =========================================================================== widening


async def test_widening_is_audited_with_its_sealed_reason(world: World) -> None:
    """The owner adds the ally: one ``audience-widen`` entry names the ally as subject and
    carries the reason sealed to the coordinator; the ally then reads the whole case."""
    w = world
    reason = "De wijkverpleging neemt de zorg over."
    assert await w.owner.cases.widen(w.net, w.case, [w.ally.key_id], reason=reason) == \
        [w.ally.key_id]
    entries = [e["entry"] for e in await w.cast.coordinator.audit.entries(w.net)
               if e["entry"] and e["entry"]["action"] == "audience-widen"]
    assert len(entries) == 1
    entry = AuditEntry.from_json(entries[0])
    assert (entry.case, entry.subject, entry.actor.partner) == \
        (w.case, w.ally.key_id, w.owner.key_id)
    assert reason not in json.dumps(entries[0])
    coordinator = w.cast.coordinator
    assert entry.open_purpose(coordinator.key_id, coordinator.session.keys.box_secret) == reason
    await w.ally.sync(w.net)
    view = w.ally.cases.get(w.net, w.case)
    assert view.readable and [e.plaintext["kind"] for e in view.events] == ["intake", "note"]
    await w.ally.cases.add_event(w.net, w.case, NOTE)
    await w.owner.sync(w.net)
    assert len(w.owner.cases.get(w.net, w.case).events) == 3
    assert w.ally.misbehaviours() == [] and w.owner.misbehaviours() == []
    # Still invisible to the outsider.
    assert w.case not in {i["case"] for i in await raw_sync(w.outsider, w.net)}


async def test_widening_after_a_rekey_seals_every_version(world: World) -> None:
    """A member added after the case was rekeyed reads events under every version."""
    w = world
    await w.cast.coordinator.sync(w.net)
    await w.cast.coordinator.networks.remove(w.net, w.outsider.key_id, reason="vertrokken")
    await w.owner.sync(w.net)
    await w.owner.cases.add_event(w.net, w.case, NOTE)
    assert w.owner.cases.get(w.net, w.case).case_key_version == 2
    await w.owner.cases.widen(w.net, w.case, [w.ally.key_id], reason="Extra hulp nodig.")
    await w.ally.sync(w.net)
    view = w.ally.cases.get(w.net, w.case)
    assert view.readable and all(e.plaintext is not None for e in view.events)
    assert {e.case_key_version for e in view.events} == {1, 2}


async def test_only_the_owner_widens(world: World) -> None:
    w = world
    await w.cast.coordinator.sync(w.net)
    with pytest.raises(PolicyViolation) as exc:
        await w.cast.coordinator.cases.widen(w.net, w.case, [w.ally.key_id], reason="Nodig.")
    assert exc.value.details["reason"] == "not-case-owner"


async def test_widening_to_a_shell_partner_is_refused(world: World) -> None:
    """The audience is a subset of the kern; the schil gets a case by a share."""
    w = world
    with pytest.raises(PolicyViolation) as exc:
        await w.owner.cases.widen(w.net, w.case, [w.cast.shell.key_id], reason="Nodig.")
    assert exc.value.details["reason"] == "audience-not-core"


async def test_share_of_a_subset_case_with_a_core_outsider_is_refused(world: World) -> None:
    """A share would give an outsider the key without a widening's audit entry."""
    w = world
    coordinator = w.cast.coordinator
    await coordinator.sync(w.net)
    with pytest.raises(ServerRefused) as exc:
        await coordinator.cases.share(w.net, w.case, w.outsider.key_id, reason="Meekijken.")
    assert exc.value.details["reason"] == "partner-not-in-audience"
    # A shell partner asked to help still gets its share (flow 6).
    await coordinator.cases.share(w.net, w.case, w.cast.shell.key_id, reason="Hulp gevraagd.")
    await w.cast.shell.sync(w.net)
    assert w.cast.shell.cases.get(w.net, w.case).readable
    assert w.cast.shell.misbehaviours() == []


# =========================================================================== rekeys


async def test_rekey_after_removal_excludes_the_removed_member(world: World) -> None:
    w = world
    await w.owner.cases.widen(w.net, w.case, [w.ally.key_id], reason="Extra hulp nodig.")
    await w.ally.sync(w.net)
    coordinator = w.cast.coordinator
    await coordinator.sync(w.net)
    await coordinator.networks.remove(w.net, w.ally.key_id, reason="Uit het netwerk.")
    rekeys = feed_rows(w, "rekey")
    assert len(rekeys) == 1
    rekey = CaseRekey.from_json(rekeys[0]["envelope"]["signed"])
    assert rekey.wrapped_case_key is None
    assert rekey.recipients == {w.owner.key_id, coordinator.key_id}
    await w.owner.sync(w.net)
    await w.owner.cases.add_event(w.net, w.case, NOTE)
    assert w.owner.cases.get(w.net, w.case).case_key_version == 2


async def test_rekey_sealing_to_an_outsider_is_refused(world: World) -> None:
    """The server takes a subset case's rekey only when it seals to exactly the current
    members of the audience."""
    w = world
    from schakel.client.casekeys import audience_boxes, seal_audience
    from schakel.protocol.crypto import CaseKey

    s = w.owner.session
    tv = await s.trusted(w.net)
    for members in ([w.owner.key_id, w.cast.coordinator.key_id, w.outsider.key_id],
                    [w.owner.key_id]):
        rekey = CaseRekey(network=w.net, case=w.case, case_key_version=2,
                          epoch=latest_epoch(s.state, w.net), acting_user=s.acting_user,
                          at=s.stamp(), reason="test", audience_keys=tuple(seal_audience(
                              audience_boxes(tv, members), CaseKey.generate(), network=w.net,
                              case=w.case, version=2))).sign(s.keys.signer)
        with pytest.raises(ServerRefused) as exc:
            await s.conn.post(f"/v1/networks/{w.net}/cases/{w.case}/rekeys", {"rekey": rekey})
        assert (exc.value.status, exc.value.code) == (400, "context_mismatch")


# =========================================================================== a lying server


async def test_subset_case_served_to_an_outsider_is_caught(world: World) -> None:
    """A server that serves the subset case's header (and so its sealed keys) to a kern
    member outside its audience: the member's client refuses it."""
    w = world
    await w.outsider.sync(w.net)
    header = feed_rows(w, "header")[0]["envelope"]
    w.env.proxy.on_sync(w.net, lambda items: in_last(items, w.case, header))
    await w.cast.coordinator.cases.create(w.net, INTAKE)          # a page with an item
    exc = await caught(w.outsider.sync(w.net))
    assert exc.what == "context-mismatch" and "audience does not name" in exc.message
    assert w.case not in {v.case for v in w.outsider.cases.all(w.net)}


async def test_member_dropped_from_a_served_header_is_caught(world: World) -> None:
    """A header whose audience the server shortened fails its owner's signature."""
    w = world
    await w.owner.cases.widen(w.net, w.case, [w.ally.key_id], reason="Extra hulp nodig.")
    w.env.proxy.clear()

    def drop(body: Any) -> Any:
        signed = body["header"]["signed"]
        signed["audience"] = [m for m in signed["audience"] if m != w.ally.key_id]
        return body
    w.env.proxy.on("GET", rf"/v1/networks/{w.net}/cases/{w.case}$", drop)
    exc = await caught(w.ally.sync(w.net))
    assert exc.what == "bad-signature"


async def test_older_narrower_header_served_again_is_caught(world: World) -> None:
    """After a widening, the server serves the header from before it again (dropping the
    added member): a client holding the widened header calls it a rollback."""
    w = world
    coordinator = w.cast.coordinator
    await coordinator.sync(w.net)
    await w.owner.cases.widen(w.net, w.case, [w.ally.key_id], reason="Extra hulp nodig.")
    await coordinator.sync(w.net)
    first = feed_rows(w, "header")[0]["envelope"]
    w.env.proxy.on_sync(w.net, lambda items: in_last(items, w.case, first))
    await coordinator.cases.create(w.net, INTAKE)
    exc = await caught(coordinator.sync(w.net))
    assert exc.what == "event-replayed", exc.message
