"""Membership changes and what old and new members can read (ADR 0007, "Joins and removals
change the epoch"; docs/threat-model.md §5.4 RM-4, RM-5).

* A **removed** member keeps every key it was ever given (its own partner's local state:
  epoch keys and case keys).  After its removal the coordinator starts a new epoch and
  rotates every open case to a new case-key version, so nothing written afterwards opens
  with those keys -- shown on the ciphertexts in the **server's own SQLite file** (what a
  leaked backup or a colluding operator hands the removed member), not through the API,
  which refuses it anyway (403).  Events written before the removal still open with the
  same keys, so the test would fail if it were looking at the wrong keys or ciphertexts.
* A member **added later** reads new events of an existing case, not the case's history
  until the coordinator re-shares it, and identity only through a release (consent ->
  grant -> release); before that it holds no identity and no class key.

The real server runs behind :mod:`tests.tamper_proxy` with no rewriter installed (a plain
forwarding proxy), because that harness exposes the server's data directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner, ServerRefused
from schakel.protocol import envelopes
from schakel.protocol.crypto import CaseKey, EpochKey
from schakel.protocol.errors import ProtocolError
from tests.client_harness import server_fingerprint
from tests.tamper_proxy import TamperedServer, stored_events, stored_feed, tampered_server
from tests.test_client_adversarial import COVENANT, IDENTITY, INTAKE, INTAKE_B, new_partner, note


@dataclass
class Net:
    env: TamperedServer
    coord: Partner
    owner: Partner
    network: str
    tmp_path: Path


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    """A coordinator and a core owner that both accepted the covenant and synced."""
    async with tampered_server(tmp_path) as env:
        coord = await new_partner(tmp_path, env.url, "coordinator")
        owner = await new_partner(tmp_path, env.url, "owner")
        try:
            network = await coord.networks.create(name="Buurtnetwerk Test", kind="neighbourhood",
                                                 covenant=COVENANT,
                                                 server_fingerprint=server_fingerprint(env.url))
            await join(coord, owner, network, ring="core")
            yield Net(env, coord, owner, network, tmp_path)
        finally:
            await owner.close()
            await coord.close()


async def join(coord: Partner, p: Partner, network: str, *, ring: str) -> str:
    member = await coord.networks.admit(network, p.bundle(), ring=ring, party="formal",
                              fingerprint=p.fingerprint)
    p.trust(network, coord.fingerprint)
    await p.networks.accept_covenant(network, COVENANT)
    await p.sync(network)
    return member


# =========================================================================== keys of a partner


def held_keys(p: Partner, network: str) -> tuple[dict[int, EpochKey], dict[tuple[str, int], CaseKey]]:
    """Every epoch key and case key ``p`` stored (ADR 0007: secret kinds ``epoch``
    (network, epoch) and ``case-key`` (network, case, version))."""
    epochs: dict[int, EpochKey] = {}
    for ref in p.session.state.secret_refs("epoch", (network,)):
        raw = p.session.state.get_secret("epoch", ref)
        assert raw is not None
        epochs[int(ref[1])] = EpochKey(raw)
    cases: dict[tuple[str, int], CaseKey] = {}
    for ref in p.session.state.secret_refs("case-key", (network,)):
        raw = p.session.state.get_secret("case-key", ref)
        assert raw is not None
        cases[(ref[1], int(ref[2]))] = CaseKey(raw)
    return epochs, cases


def everything_it_can_unwrap(db_path: Path, network: str, epochs: dict[int, EpochKey],
                             cases: dict[tuple[str, int], CaseKey]) -> dict[tuple[str, int], CaseKey]:
    """The held case keys plus every wrapped case key in the server's database (case
    headers and case rekeys) that one of the held epoch keys unwraps: the most a removed
    member with a copy of the database can reach."""
    reachable = dict(cases)
    for row in stored_feed(db_path, network):
        signed = row["envelope"].get("signed", {})
        wrapped = signed.get("wrapped_case_key")
        if row["kind"] not in ("header", "rekey") or not wrapped:
            continue
        epoch, version = int(signed["epoch"]), int(signed["case_key_version"])
        if epoch not in epochs:
            continue
        try:
            reachable[(signed["case"], version)] = envelopes.unwrap_case_key(
                epochs[epoch], wrapped, network=network, case=signed["case"], epoch=epoch,
                version=version)
        except ProtocolError:
            continue
    return reachable


def opens(keys: dict[tuple[str, int], CaseKey], network: str, envelope: dict[str, Any]) -> bool:
    """Whether any of ``keys`` decrypts the event under its own context (every key is
    tried for every version, so a key reused across versions would show)."""
    signed = envelope["signed"]
    for (case, _version), key in keys.items():
        if case != signed["case"]:
            continue
        try:
            envelopes.decrypt_json(key, signed["ciphertext"], envelopes.event_context(
                network, signed["case"], signed["event"], version=signed["case_key_version"]))
            return True
        except ProtocolError:
            continue
    return False


# =========================================================================== removal


async def test_removed_member_cannot_read_anything_written_after_its_removal(net: Net) -> None:
    n, network = net, net.network
    removed = await new_partner(n.tmp_path, n.env.url, "removed")
    try:
        await join(n.coord, removed, network, ring="core")
        case_x = await n.owner.cases.create(network, INTAKE, identity=IDENTITY)
        await n.owner.cases.add_event(network, case_x, note("Huisbezoek gepland."))
        case_y = await n.coord.cases.create(network, INTAKE_B)
        await removed.sync(network)
        # While a member it read both cases: these are the keys it takes with it.
        for case in (case_x, case_y):
            view = removed.cases.get(network, case)
            assert view.events and all(e.plaintext is not None for e in view.events), case
        before = {e["signed"]["event"] for e in stored_events(n.env.db_path, network)}

        await n.coord.networks.remove(network, removed.key_id, reason="verliet het netwerk")
        await n.owner.sync(network)
        await n.coord.sync(network)
        await n.owner.cases.add_event(network, case_x, note("Na het vertrek: buurvrouw helpt."))
        await n.coord.cases.add_event(network, case_x, note("Na het vertrek: huisarts gebeld."))
        await n.coord.cases.add_event(network, case_y, note("Na het vertrek: budgetcoach."))
        case_z = await n.owner.cases.create(network, {**INTAKE, "summary": "Nieuw na vertrek."})

        # Its requests are refused.
        with pytest.raises(ServerRefused) as refused:
            await removed.sync(network)
        assert refused.value.status == 403

        # Its old keys against the server's own copy of every ciphertext.
        epochs, cases = held_keys(removed, network)
        assert epochs and cases, "the removed member's state holds no keys: wrong place"
        reachable = everything_it_can_unwrap(n.env.db_path, network, epochs, cases)
        events = stored_events(n.env.db_path, network)
        old = [e for e in events if e["signed"]["event"] in before]
        new = [e for e in events if e["signed"]["event"] not in before]
        assert len(old) >= 3 and {e["signed"]["case"] for e in new} == {case_x, case_y, case_z}
        unreadable_old = [e["signed"]["seq"] for e in old if not opens(reachable, network, e)]
        assert unreadable_old == [], "its keys do not even open what it could read before"
        readable_new = [(e["signed"]["case"], e["signed"]["seq"]) for e in new
                        if opens(reachable, network, e)]
        assert readable_new == [], f"a removed member reads events written after: {readable_new}"
    finally:
        await removed.close()


# =========================================================================== a member added later


async def test_member_added_later_reads_new_events_history_after_reshare_identity_after_release(
        net: Net) -> None:
    n, network = net, net.network
    case = await n.owner.cases.create(network, INTAKE, identity=IDENTITY)
    await n.owner.cases.add_event(network, case, note("Voor de toetreding: huisbezoek."))

    late = await new_partner(n.tmp_path, n.env.url, "late")
    try:
        await join(n.coord, late, network, ring="core")
        await n.owner.sync(network)
        await n.owner.cases.add_event(network, case, note("Na de toetreding: buurvrouw helpt."))
        await late.sync(network)

        view = late.cases.get(network, case)
        by_seq = {e.seq: e for e in view.events}
        assert sorted(by_seq) == [1, 2, 3]
        assert by_seq[3].plaintext is not None and \
            by_seq[3].plaintext.get("text") == "Na de toetreding: buurvrouw helpt."
        assert by_seq[1].plaintext is None and by_seq[2].plaintext is None, \
            "the case's history was readable before anyone re-shared it"
        assert view.state.get("summary") != INTAKE["summary"]

        await n.coord.sync(network)
        await n.coord.cases.reshare_history(network, case, late.key_id, reason="casusoverleg")
        await late.sync(network)
        view = late.cases.get(network, case)
        assert all(e.plaintext is not None for e in view.events)
        assert view.state["summary"] == INTAKE["summary"]

        # Identity only through a release.
        assert late.identity.get(network, case) == {}
        assert late.session.state.secret_refs("class-key", (network, case)) == []
        await n.owner.sync(network)   # duties: gated envelopes for the member who joined
        consent = await n.owner.disclosure.record_consent(network, case, classes=["name"],
                                               partners=[late.key_id], purpose="huisbezoek",
                                               evidence=b"getekend formulier")
        await n.coord.sync(network)
        grant = await n.coord.disclosure.grant(network, case, consent=consent, grantee=late.key_id,
                                    classes=["name"], reason="huisbezoek voorbereiden")
        assert late.identity.get(network, case) == {}, "identity before the release"
        released = await late.disclosure.release(network, grant)
        assert released.classes == {"name": IDENTITY["name"]}
        assert late.identity.get(network, case) == {"name": IDENTITY["name"]}
        refs = late.session.state.secret_refs("class-key", (network, case))
        assert {r[2] for r in refs} == {"name"}, refs
        assert late.misbehaviours() == []
    finally:
        await late.close()
