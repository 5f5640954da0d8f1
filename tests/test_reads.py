"""Reads are logged and purposes sealed (NEN 7513, AVG; docs/protocol.md §15.6,
"Purposes", §A.1, §15.2).

The server records in the network's audit log, before it answers, who fetched which cases'
data -- what it served (headers, events, shares, rekeys, identity records), since it cannot
know what was decrypted -- one ``read`` entry per answer, and the subject access report
lists the reads of the case.  The entries of a consent, a grant and a share carry the
purpose text of that act sealed to the coordinator and each auditor: the report's reader
opens it, any other member of the network only sees ciphertext.

The real application on a real SQLite file (tests/server_harness.py), one server and one
world per module; each test makes its own cases and looks only at the entries after the
log size it started from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import pytest_asyncio

from schakel.protocol.errors import ContextMismatchError, DecryptionError, MalformedError
from schakel.protocol.objects.audit import AuditActor, AuditEntry
from schakel.server import audit as server_audit
from tests.disclosure_harness import audit_log, consent, consent_and_grant, grant, post_ok
from tests.server_harness import (
    Actor, Caller, FakeClock, InProcessServer, Network, World, append, assert_error,
    assert_status, build_world, create_case, new_id, sync_all,
)

shared_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = InProcessServer(tmp_path_factory.mktemp("reads"), FakeClock())
    caller = await server.start()
    try:
        yield await build_world(caller)
    finally:
        await server.stop()


async def feed_end(caller: Caller, net: Network) -> str:
    """The network's last feed cursor (read by the coordinator)."""
    items = await sync_all(caller, net, net.coordinator)
    return items[-1]["cursor"]


async def reads_since(caller: Caller, net: Network, size: int) -> list[dict[str, Any]]:
    """The ``read`` entries at index ``size`` and later, in log order."""
    return [e for e in (await audit_log(caller, net))[size:] if e["action"] == "read"]


async def pages(caller: Caller, net: Network, actor: Actor, after: str, limit: int
                ) -> list[list[dict[str, Any]]]:
    """``actor``'s sync from ``after`` page by page (only the pages with items)."""
    out = []
    while True:
        page = assert_status(await caller.get(
            net.path(f"/sync?after={after}&limit={limit}&wait=0"), actor), 200)
        if not page["items"]:
            return out
        out.append(page["items"])
        after = page["cursor"]


def distinct(cases: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(cases))


# =========================================================================== sync


@shared_loop
async def test_sync_page_is_logged_as_one_read_entry_naming_the_reader_and_its_cases(
        world: World) -> None:
    w, c, net = world, world.caller, world.a
    after = await feed_end(c, net)
    one = await create_case(c, net, w["core-formal"])
    two = await create_case(c, net, w["core-informal"])
    await append(c, net, one, w["core-informal"])
    size = len(await audit_log(c, net))

    reader = w["core-informal"]
    [page] = await pages(c, net, reader, after, 100)
    [entry] = await reads_since(c, net, size)
    assert [i["case"] for i in page] == [one.case, one.case, two.case, two.case, one.case]
    assert entry["cases"] == [one.case, two.case]
    assert entry["actor"] == {"partner": reader.key_id, "acting_user": reader.acting_user,
                              "role": "member", "organisation": reader.name,
                              "party": reader.party}
    assert (entry["basis"], entry["outcome"]) == ("policy", "allow")
    assert "case" not in entry and "subject" not in entry and "classes" not in entry
    assert entry["reason"] == (f"sync {page[0]['cursor']}..{page[-1]['cursor']}: "
                               "2 header, 3 event")


@shared_loop
async def test_a_long_sync_writes_one_read_entry_per_page_not_per_item_or_case(
        world: World) -> None:
    """The bound: a catch-up writes as many entries as it took pages, however many
    events and however interleaved its cases are."""
    w, c, net = world, world.caller, world.a
    after = await feed_end(c, net)
    owner, other = w["core-formal"], w["core-informal"]
    cases = [await create_case(c, net, owner, events=40) for _ in range(10)]
    for _ in range(5):
        for state in cases:
            await append(c, net, state, other)
    size = len(await audit_log(c, net))

    served = await pages(c, net, owner, after, 100)
    entries = await reads_since(c, net, size)
    items = sum(len(p) for p in served)
    assert items == 10 + 400 + 50 and len(served) == 5
    assert len(entries) == len(served)
    assert [e["cases"] for e in entries] == [distinct(i["case"] for i in p) for p in served]
    assert len(entries[-1]["cases"]) == 10           # the interleaved appends: one entry


@shared_loop
async def test_a_sync_that_serves_nothing_writes_no_read_entry(world: World) -> None:
    w, c, net = world, world.caller, world.a
    after = await feed_end(c, net)
    size = len(await audit_log(c, net))
    for wait in (0, 1):
        page = assert_status(await c.get(net.path(f"/sync?after={after}&wait={wait}"),
                                         w["core-formal"]), 200)
        assert page["items"] == []
    assert len(await audit_log(c, net)) == size


@shared_loop
async def test_shell_partner_sync_logs_only_the_cases_shared_with_it(world: World) -> None:
    w, c, net = world, world.caller, world.a
    size = len(await audit_log(c, net))
    shell = w["shell-shared"]
    items = await sync_all(c, net, shell)
    [entry] = await reads_since(c, net, size)
    assert entry["cases"] == [w.case.case] == distinct(i["case"] for i in items)
    assert entry["actor"]["partner"] == shell.key_id


@shared_loop
async def test_sync_is_not_served_when_its_read_cannot_be_logged(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logged before served: a read whose entry cannot be appended answers 500 and
    carries no envelope."""
    w, c, net = world, world.caller, world.a
    after = await feed_end(c, net)
    await create_case(c, net, w["core-formal"])
    size = len(await audit_log(c, net))

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the audit append fails")
    monkeypatch.setattr(server_audit, "append_txn", fail)
    reply = await c.get(net.path(f"/sync?after={after}"), w["core-informal"])
    case_reply = await c.get(net.path(f"/cases/{w.case.case}"), w["core-formal"])
    monkeypatch.undo()
    for answer in (reply, case_reply):
        assert_error(answer, 500, "internal_error")
        assert b"envelope" not in answer.raw and b"signed" not in answer.raw
    assert len(await audit_log(c, net)) == size


# =========================================================================== one case


@shared_loop
async def test_case_read_by_its_owner_logs_the_identity_classes_served(world: World) -> None:
    w, c, net = world, world.caller, world.a
    owner, member = w["core-formal"], w["core-informal"]
    state = await create_case(c, net, owner)
    await append(c, net, state, member)
    size = len(await audit_log(c, net))

    mine = assert_status(await c.get(net.path(f"/cases/{state.case}"), owner), 200)
    theirs = assert_status(await c.get(net.path(f"/cases/{state.case}"), member), 200)
    first, second = await reads_since(c, net, size)
    classes = sorted(r["signed"]["class"] for r in mine["identity"])
    assert classes and theirs["identity"] == []
    assert (first["cases"], first["classes"], first["actor"]["partner"]) == (
        [state.case], classes, owner.key_id)
    assert first["reason"] == f"case: 1 header, 2 event, 0 rekey, {len(classes)} identity"
    assert (second["cases"], second["actor"]["partner"]) == ([state.case], member.key_id)
    assert "classes" not in second and second["reason"].endswith(", 0 identity")


@shared_loop
async def test_a_refused_case_read_is_not_logged_as_a_read(world: World) -> None:
    """A shell partner asking for a case not shared with it gets 403 and nothing was
    served, so there is no ``read`` entry."""
    w, c, net = world, world.caller, world.a
    state = await create_case(c, net, w["core-formal"])
    size = len(await audit_log(c, net))
    assert_error(await c.get(net.path(f"/cases/{state.case}"), w["shell"]), 403, "forbidden")
    assert await reads_since(c, net, size) == []


# =========================================================================== the report


@shared_loop
async def test_access_report_lists_the_reads_of_its_case_and_no_other(world: World) -> None:
    w, c, net = world, world.caller, world.a
    after = await feed_end(c, net)
    owner, member = w["core-formal"], w["core-informal"]
    mine = await create_case(c, net, owner)
    other = await create_case(c, net, owner)
    size = len(await audit_log(c, net))
    await pages(c, net, member, after, 100)                          # both cases
    assert_status(await c.get(net.path(f"/cases/{other.case}"), member), 200)  # the other one
    assert_status(await c.get(net.path(f"/cases/{mine.case}"), owner), 200)    # with identity
    sync_read, _, owner_read = [e for e in (await audit_log(c, net))[size:]
                                if e["action"] == "read"]

    for reader in (net.coordinator, w["auditor"]):
        report = assert_status(await c.get(net.path(f"/cases/{mine.case}/access-report"),
                                            reader), 200)
        assert report["size"] >= owner_read["index"] + 1
        assert [(r["index"], r["partner"], r["acting_user"], r["classes"], r["served"])
                for r in report["reads"]] == [
            (sync_read["index"], member.key_id, member.acting_user, [], sync_read["reason"]),
            (owner_read["index"], owner.key_id, owner.acting_user, owner_read["classes"],
             owner_read["reason"])]
        text = report["text"]
        assert "reads of the case's data: 2" in text
        assert f"#{sync_read['index']}" in text and member.name in text
        assert other.case not in text and other.case not in str(report["reads"])


# =========================================================================== purposes


def entry_at(entries: list[dict[str, Any]], action: str, ref: str) -> AuditEntry:
    [found] = [e for e in entries if e["action"] == action and e.get("ref") == ref]
    return AuditEntry.from_json(found)


@shared_loop
async def test_consent_grant_and_share_entries_carry_their_purpose_sealed_to_the_readers(
        world: World) -> None:
    """Only the coordinator and the auditors open the purpose; it is nowhere in the
    entry's clear text, and a member the act concerns has no copy."""
    w, c, net = world, world.caller, world.a
    owner, grantee, auditor = w["core-formal"], w["core-informal"], w["auditor"]
    state = await create_case(c, net, owner)
    consent_id, grant_id = await consent_and_grant(c, net, state, grantee, ["name"])
    share = net.share(state, w["shell"])
    assert_status(await c.post(net.path("/shares"), net.coordinator, {"share": share}), 201)
    log = await audit_log(c, net)

    acts = {"consent": (entry_at(log, "consent", consent_id),
                        "Afstemming van hulp rond de woning."),
            "grant": (entry_at(log, "grant", grant_id),
                      "heeft het adres nodig voor een huisbezoek"),
            "share": (AuditEntry.from_json([e for e in log if e["action"] == "share"
                                            and e.get("case") == state.case][0]),
                      share["signed"]["reason"])}
    for action, (entry, text) in acts.items():
        assert {p.reader for p in entry.purpose or ()} == {net.coordinator.key_id,
                                                           auditor.key_id}, action
        assert text not in str(entry.to_json())
        for reader in (net.coordinator, auditor):
            assert entry.open_purpose(reader.key_id, reader.keys.box_secret) == text
        assert entry.open_purpose(grantee.key_id, grantee.keys.box_secret) is None
        with pytest.raises(DecryptionError):      # the auditor's copy, tried with another key
            entry.open_purpose(auditor.key_id, grantee.keys.box_secret)


@shared_loop
async def test_a_refused_grant_carries_its_purpose_too(world: World) -> None:
    w, c, net = world, world.caller, world.a
    state = await create_case(c, net, w["core-formal"])
    informal = w["core-informal"]
    cons = consent(net, state, net.coordinator, classes=["official"], partners=[informal])
    await post_ok(c, net, "/consents", net.coordinator, {"consent": cons})
    refused = grant(net, state, informal, ["official"], cons["signed"]["consent"])
    reply = await c.post(net.path("/grants"), net.coordinator, {"grant": refused})
    assert_error(reply, 403, "policy_violation")
    entry = entry_at(await audit_log(c, net), "deny", refused["signed"]["grant"])
    assert entry.open_purpose(w["auditor"].key_id, w["auditor"].keys.box_secret) == \
        refused["signed"]["reason"]


@shared_loop
async def test_a_sealed_purpose_moved_to_another_entry_does_not_open(world: World) -> None:
    """Bound to its entry: a server that copies one act's sealed purpose into another
    entry (to give a grant a better reason) is caught when the reader opens it."""
    w, c, net = world, world.caller, world.a
    state = await create_case(c, net, w["core-formal"])
    first_consent, first_grant = await consent_and_grant(c, net, state, w["core-informal"],
                                                         ["name"])
    _, second_grant = await consent_and_grant(c, net, state, w["core-informal"], ["address"])
    log = await audit_log(c, net)
    first, second = entry_at(log, "grant", first_grant), entry_at(log, "grant", second_grant)
    consent_entry = entry_at(log, "consent", first_consent)
    coordinator = net.coordinator
    for donor in (first, consent_entry):
        moved = AuditEntry.from_json({**second.to_json(),
                                      "purpose": [p.to_json() for p in donor.purpose or ()]})
        with pytest.raises(ContextMismatchError):
            moved.open_purpose(coordinator.key_id, coordinator.keys.box_secret)


# =========================================================================== the entry's rules


ACTOR = AuditActor(partner="A" * 43, acting_user="u-1", role="member", organisation="O")


def read_entry(**overrides: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "network": new_id(), "index": 0, "salt": new_id(), "time": "2026-01-01T00:00:00Z",
        "actor": ACTOR, "action": "read", "cases": (new_id(),), "basis": "policy",
        "outcome": "allow", "reason": "sync 1..1: 1 header", "review_required": False,
        "emergency": False, **overrides}
    return AuditEntry(**fields)


def test_a_read_entry_round_trips() -> None:
    entry = read_entry(classes=("name",))
    assert AuditEntry.from_json(entry.to_json()) == entry


@pytest.mark.parametrize("overrides", [
    {"cases": None},                                      # a read names its cases
    {"action": "grant"},                                   # cases only on a read
    {"case": new_id()},                                    # ... in cases, not case
    {"subject": "B" * 43},
    {"basis": "consent"},
    {"cases": (new_id(),) * 2},                            # unique
    {"cases": tuple(new_id() for _ in range(501))},        # at most a page
], ids=["no-cases", "cases-on-grant", "case", "subject", "basis", "repeated", "too-many"])
def test_a_read_entry_breaking_its_rules_cannot_be_built(overrides: dict[str, Any]) -> None:
    with pytest.raises(MalformedError):
        read_entry(**overrides)
