"""The client against a lying server (docs/threat-model.md §5.2; ADR 0007, "Verification").

Every test runs real partners (``schakel.client.Partner``, public API only) against the real
server behind :mod:`tests.tamper_proxy`, a reverse proxy that rewrites one kind of answer
the way a compromised server would.  Each attack test asserts three things, because each
alone can pass for the wrong reason:

1. the client raises :class:`ServerMisbehaviour` with the ADR 0007 ``what`` of the attack
   (and the proxy really rewrote an answer: ``proxy.hits() > 0``);
2. the client *recorded* it (``p.misbehaviours()``), so the evidence outlives the call;
3. nothing forged was believed: the case state, the member list, the held audit head or
   the stored identity is what it was before the attack.

:func:`test_control_the_same_flows_untampered_pass` runs the same flows through the same
proxy with no rewriter and shows they succeed, so the attack tests cannot pass merely
because the proxy (or the flow) is broken.

Where the server cannot forge a signature, the *right* detection is the signature check:
a ciphertext moved into a signed event breaks the author's signature (``bad-signature``),
and a validly signed event of another case served under this case's item names the other
case (``context-mismatch``).  ``ciphertext-swapped`` is what the server can actually cause
with an unsigned ciphertext: the released class-key envelopes of a release answer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner, ServerMisbehaviour
from schakel.protocol.errors import UntrustedKeyError
from tests.client_harness import make_partner, server_fingerprint
from tests.tamper_proxy import (
    TamperedServer, rewrite_audit_entry, rewrite_audit_proof, roll_back_head, tampered_server,
)

COVENANT = "Convenant Buurtnetwerk Test: wij delen alleen wat nodig is."
INTAKE = {"kind": "intake", "age_band": "75-84", "neighbourhood": "Soesterkwartier",
          "domains": ["loneliness", "self-care"], "severity": "medium",
          "care_status": "avoids-care", "source": "partner", "complex": False,
          "summary": "Woont alleen, komt de deur nauwelijks uit."}
INTAKE_B = {**INTAKE, "age_band": "45-54", "domains": ["financial"],
            "summary": "Schulden stapelen zich op, post blijft ongeopend."}
IDENTITY = {"name": {"given_names": "Hendrik", "family_name": "de Vries"},
            "address": {"street": "Soesterweg", "house_number": "12", "postcode": "3812 AB",
                        "city": "Amersfoort"}}


def note(text: str) -> dict[str, Any]:
    return {"kind": "note", "text": text}


async def new_partner(tmp_path: Path, url: str, label: str) -> Partner:
    """A partner with its own home directory (tests/client_harness.py)."""
    return await make_partner(tmp_path, url, label)


@dataclass
class World:
    """A coordinator (owner of two cases) and a core member, the victim, who synced."""

    env: TamperedServer
    coord: Partner
    victim: Partner
    network: str
    case_a: str
    case_b: str
    tmp_path: Path

    @property
    def proxy(self) -> Any:
        return self.env.proxy


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with tampered_server(tmp_path) as env:
        coord = await new_partner(tmp_path, env.url, "coordinator")
        victim = await new_partner(tmp_path, env.url, "victim")
        try:
            network = await coord.networks.create(name="Buurtnetwerk Test", kind="neighbourhood",
                                                 covenant=COVENANT,
                                                 server_fingerprint=server_fingerprint(env.url))
            await coord.networks.admit(network, victim.bundle(), ring="core", party="formal",
                             fingerprint=victim.fingerprint)
            victim.trust(network, coord.fingerprint)
            await victim.networks.accept_covenant(network, COVENANT)
            case_a = await coord.cases.create(network, INTAKE, identity=IDENTITY)
            case_b = await coord.cases.create(network, INTAKE_B)
            await victim.sync(network)
            assert victim.cases.get(network, case_a).readable and victim.cases.get(network, case_b).readable
            assert victim.misbehaviours() == []
            yield World(env, coord, victim, network, case_a, case_b, tmp_path)
        finally:
            await victim.close()
            await coord.close()


async def misbehaviour(proxy: Any, call: Awaitable[Any]) -> ServerMisbehaviour:
    """Run ``call``; it must raise :class:`ServerMisbehaviour`.  If it does not, say
    whether the lie reached the client (then the client believed it)."""
    try:
        await call
    except ServerMisbehaviour as exc:
        return exc
    pytest.fail(f"no ServerMisbehaviour: the proxy rewrote {proxy.hits()} answer(s) and the "
                f"client accepted them")


def assert_caught(p: Partner, exc: ServerMisbehaviour, what: str | set[str],
                  proxy: Any) -> None:
    """The attack reached the client, was named ``what`` and was recorded."""
    wanted = {what} if isinstance(what, str) else what
    assert proxy.hits() > 0, "the proxy rewrote nothing: the attack never reached the client"
    assert exc.what in wanted, f"caught as {exc.what!r} ({exc.message}), want {sorted(wanted)}"
    recorded = [m.get("what") for m in p.misbehaviours()]
    assert exc.what in recorded, f"not recorded: {recorded}"


def snapshot(p: Partner, network: str, case: str) -> dict[str, Any]:
    """What the partner believes about a case (events and folded state)."""
    view = p.cases.get(network, case)
    return {"events": [(e.seq, e.event, e.plaintext) for e in view.events], "state": view.state,
            "status": view.status, "case_key_version": view.case_key_version}


def seqs(p: Partner, network: str, case: str) -> list[int]:
    return [e.seq for e in p.cases.get(network, case).events]


async def grow_log(w: World, label: str) -> None:
    """The coordinator admits a new shell partner: one more audit entry."""
    late = await new_partner(w.tmp_path, w.env.url, label)
    try:
        await w.coord.networks.admit(w.network, late.bundle(), ring="shell", party="formal",
                            fingerprint=late.fingerprint)
    finally:
        await late.close()


def believed(p: Partner, text: str, kinds: tuple[str, ...]) -> bool:
    """Whether ``text`` (a key, a root) occurs in any verified document of ``kinds`` the
    partner stored (ADR 0007 local state: ``state.docs(kind)``)."""
    return any(text in json.dumps(p.session.state.docs(kind), default=str) for kind in kinds)


# =========================================================================== control


async def test_control_the_same_flows_untampered_pass(world: World) -> None:
    """Every flow the attacks tamper with, through the same proxy, untampered: sync of new
    events of two cases, a member admitted later, the audit log verified, a release with
    its receipt, and the grown log verified again.  Nothing is flagged."""
    w, p, net = world, world.victim, world.network
    await w.coord.cases.add_event(net, w.case_a, note("Huisbezoek gepland."))
    await w.coord.cases.add_event(net, w.case_b, note("Budgetcoach gevraagd."))
    await w.coord.cases.add_event(net, w.case_a, note("Buurvrouw houdt contact."))
    third = await new_partner(w.tmp_path, w.env.url, "third")
    try:
        member = await w.coord.networks.admit(net, third.bundle(), ring="core", party="formal",
                                     fingerprint=third.fingerprint)
        await p.sync(net)
        assert seqs(p, net, w.case_a) == [1, 2, 3] and seqs(p, net, w.case_b) == [1, 2]
        assert p.cases.get(net, w.case_a).state["notes"], "the notes were not folded"
        assert member in {m["key_id"] for m in p.networks.members(net)}
        first = await w.coord.audit.verify(net)
        consent = await w.coord.disclosure.record_consent(net, w.case_a, classes=["name"],
                                               partners=[p.key_id], purpose="huisbezoek",
                                               evidence=b"getekend formulier")
        grant = await w.coord.disclosure.grant(net, w.case_a, consent=consent, grantee=p.key_id,
                                    classes=["name"], reason="huisbezoek voorbereiden")
        released = await p.disclosure.release(net, grant)
        assert released.classes == {"name": IDENTITY["name"]}
        assert p.identity.get(net, w.case_a) == {"name": IDENTITY["name"]}
        second = await w.coord.audit.verify(net)
        assert second.size > first.size   # consent, grant and release were audited
    finally:
        await third.close()
    assert w.proxy.seen("GET", rf"/v1/networks/{net}/sync"), "traffic bypassed the proxy"
    assert p.misbehaviours() == [] and w.coord.misbehaviours() == []


# =========================================================================== the event feed


async def test_swapped_event_ciphertext_between_cases(world: World) -> None:
    """Case B's event ciphertext put into case A's event: the author's signature covers
    the ciphertext, so the swap is a bad signature, and case A is unchanged."""
    w, p, net = world, world.victim, world.network
    before = snapshot(p, net, w.case_a)
    await w.coord.cases.add_event(net, w.case_a, note("Huisbezoek gepland."))
    await w.coord.cases.add_event(net, w.case_b, note("Budgetcoach gevraagd."))
    w.proxy.swap_event_ciphertext(net, w.case_a, w.case_b)
    exc = await misbehaviour(w.proxy, p.sync(net))
    assert_caught(p, exc, "bad-signature", w.proxy)
    assert snapshot(p, net, w.case_a) == before


async def test_event_envelope_of_another_case_moved_under_this_case(world: World) -> None:
    """Case B's whole (validly signed) event served in case A's item: the envelope names
    case B, so it is a context mismatch; case A is unchanged and B gets no second copy."""
    w, p, net = world, world.victim, world.network
    before_a = snapshot(p, net, w.case_a)
    await w.coord.cases.add_event(net, w.case_a, note("Huisbezoek gepland."))
    await w.coord.cases.add_event(net, w.case_b, note("Budgetcoach gevraagd."))
    w.proxy.move_event_envelope(net, w.case_a, w.case_b)
    exc = await misbehaviour(w.proxy, p.sync(net))
    assert_caught(p, exc, "context-mismatch", w.proxy)
    assert snapshot(p, net, w.case_a) == before_a
    events_b = [e.event for e in p.cases.get(net, w.case_b).events]
    assert len(events_b) == len(set(events_b))


async def test_replayed_event(world: World) -> None:
    """An event the client already holds, served again later in the feed: after a newer
    event of the same case, with its old feed cursor (below the ``after`` the client asked
    for), which no honest server does.  It must be flagged, not silently skipped."""
    w, p, net = world, world.victim, world.network
    old = [it for ex in w.proxy.seen("GET", rf"/v1/networks/{net}/sync") if ex.body
           for it in ex.body.get("items", [])
           if it["kind"] == "event" and it["case"] == w.case_a]
    assert old, "the victim's first sync delivered no event of case A"
    await w.coord.cases.add_event(net, w.case_a, note("Huisbezoek gepland."))
    w.proxy.replay_event(net, old[0])
    exc = await misbehaviour(w.proxy, p.sync(net))
    assert_caught(p, exc, "event-replayed", w.proxy)
    view = p.cases.get(net, w.case_a)
    ids = [e.event for e in view.events]
    assert len(ids) == len(set(ids)), "the replayed event was applied twice"
    assert seqs(p, net, w.case_a) == list(range(1, len(ids) + 1))
    assert len(view.state["notes"]) <= 1


async def test_reordered_events(world: World) -> None:
    """Two consecutive events of one case served in swapped order: the later one arrives
    first, so neither is believed."""
    w, p, net = world, world.victim, world.network
    before = snapshot(p, net, w.case_a)
    await w.coord.cases.add_event(net, w.case_a, note("Huisbezoek gepland."))
    await w.coord.cases.add_event(net, w.case_a, note("Buurvrouw houdt contact."))
    w.proxy.reorder_events(net, w.case_a)
    exc = await misbehaviour(w.proxy, p.sync(net))
    assert_caught(p, exc, "event-reordered", w.proxy)
    assert snapshot(p, net, w.case_a) == before


async def test_dropped_event(world: World) -> None:
    """An event removed from the middle of a case's chain: the next one does not link."""
    w, p, net = world, world.victim, world.network
    for text in ("Huisbezoek gepland.", "Buurvrouw houdt contact.", "Huisarts ingelicht."):
        await w.coord.cases.add_event(net, w.case_a, note(text))
    w.proxy.drop_event(net, w.case_a, seq=3)
    exc = await misbehaviour(w.proxy, p.sync(net))
    assert_caught(p, exc, "event-missing", w.proxy)
    assert seqs(p, net, w.case_a) in ([1], [1, 2]), "an event after the gap was believed"


async def test_dropped_event_is_fetched_once_the_server_stops_lying(world: World) -> None:
    """Detection must not cost the event: after the lie, an honest sync delivers the whole
    chain (the client did not move its cursor past what it refused)."""
    w, p, net = world, world.victim, world.network
    for text in ("Huisbezoek gepland.", "Buurvrouw houdt contact.", "Huisarts ingelicht."):
        await w.coord.cases.add_event(net, w.case_a, note(text))
    w.proxy.drop_event(net, w.case_a, seq=3)
    with pytest.raises(ServerMisbehaviour):
        await p.sync(net)
    w.proxy.clear()
    await p.sync(net)
    assert seqs(p, net, w.case_a) == [1, 2, 3, 4]
    assert len(p.cases.get(net, w.case_a).state["notes"]) == 3


# =========================================================================== keys and members


@pytest.mark.parametrize("which", ["box", "sign"])
async def test_substituted_member_key(world: World, which: str) -> None:
    """A member admitted later is served with a key the server holds (its box key, or its
    signing key and key id): the membership no longer verifies against the coordinator,
    and the victim never believes the substituted key."""
    w, p, net = world, world.victim, world.network
    newcomer = await new_partner(w.tmp_path, w.env.url, "newcomer")
    try:
        member = await w.coord.networks.admit(net, newcomer.bundle(), ring="core", party="formal",
                           fingerprint=newcomer.fingerprint)
    finally:
        await newcomer.close()
    _rule, fake_id = w.proxy.substitute_member_key(net, member, which)
    exc = await misbehaviour(w.proxy, p.sync(net))
    assert_caught(p, exc, "member-key-substituted", w.proxy)
    assert fake_id not in {m["key_id"] for m in p.networks.members(net)}
    substituted = _substituted_value(w, net, member, which)
    assert believed(p, p.session.keys.signer.verify_key.b64(), ("membership",)), \
        "held memberships are not where this looks"
    assert not believed(p, substituted, ("membership",)), "the substituted key was stored"


def _substituted_value(w: World, network: str, member: str, which: str) -> str:
    """The key value the proxy served for ``member`` (from the rewritten answer)."""
    for ex in reversed(w.proxy.seen("GET", rf"/v1/networks/{network}/members")):
        if ex.rewritten:
            for env in ex.body["memberships"]:
                signed = env["signed"]
                if which == "box" and signed["member"] == member:
                    return str(signed["box"])
                if which == "sign" and signed["member"] != member and \
                        signed["name"] == "Partner newcomer":
                    return str(signed["sign"])
    raise AssertionError("no rewritten members answer was served")


@pytest.mark.parametrize("contact", ["known-network", "first-contact"])
async def test_substituted_genesis_coordinator_key(world: World, contact: str) -> None:
    """A genesis naming a coordinator key the server made (and signed by it) is not the
    anchor whose fingerprint the partner configured: genesis-untrusted, both for a partner
    that knew the network and for one that meets it for the first time."""
    w, net = world, world.network
    p = w.victim
    newcomer = None
    if contact == "first-contact":
        newcomer = await new_partner(w.tmp_path, w.env.url, "newcomer")
        await w.coord.networks.admit(net, newcomer.bundle(), ring="core", party="formal",
                           fingerprint=newcomer.fingerprint)
        newcomer.trust(net, w.coord.fingerprint)
        p = newcomer
    try:
        _rule, attacker = w.proxy.substitute_genesis(net)
        exc = await misbehaviour(w.proxy, p.sync(net))
        assert_caught(p, exc, "genesis-untrusted", w.proxy)
        assert not believed(p, attacker.verify_key.b64(), ("genesis", "membership"))
        if contact == "known-network":
            assert believed(p, w.coord.session.keys.signer.verify_key.b64(), ("genesis",)), \
                "the held genesis is not where this looks"
    finally:
        if newcomer is not None:
            await newcomer.close()


@pytest.mark.parametrize("which", ["log", "gate", "both"])
async def test_substituted_server_keys_at_network_creation(world: World, which: str) -> None:
    """Whoever answers ``GET /v1/server`` (unsigned) hands the founding coordinator another
    log key, gate key or both.  They do not have the server fingerprint the operator gave
    out, so the client refuses them as untrusted before it signs or sends a genesis: there
    is no network yet to record a misbehaviour for, and nothing of the lie is kept."""
    w = world
    before = w.coord.networks.trusted()
    registered = len(w.proxy.seen("POST", "/v1/networks"))
    w.proxy.substitute_server_keys(which)
    with pytest.raises(UntrustedKeyError) as caught:
        await w.coord.networks.create(name="Buurtnetwerk Nieuw", kind="neighbourhood",
                                     covenant=COVENANT,
                                     server_fingerprint=server_fingerprint(w.env.url))
    assert w.proxy.hits() > 0, "the proxy rewrote nothing: the attack never reached the client"
    assert "server fingerprint" in caught.value.message and caught.value.code == "untrusted_key"
    assert len(w.proxy.seen("POST", "/v1/networks")) == registered, \
        "a genesis was sent with the lie in it"
    assert w.coord.networks.trusted() == before
    w.proxy.clear()
    honest = await w.coord.networks.create(name="Buurtnetwerk Nieuw", kind="neighbourhood",
                                          covenant=COVENANT,
                                          server_fingerprint=server_fingerprint(w.env.url))
    assert honest in w.coord.networks.trusted()


# =========================================================================== the audit log


async def test_forked_audit_log(world: World) -> None:
    """A log of the same size whose entry at an already verified index differs, every head
    re-signed with the server's real log key: same size, another root is a fork.  The
    client keeps the head it held: once the server stops lying, the real log verifies
    against it again."""
    w, c, net = world, world.coord, world.network
    honest = await c.audit.verify(net)
    assert honest.size >= 2
    forged = w.env.fork_audit_log(net, index=1)
    assert forged.size == honest.size
    exc = await misbehaviour(w.proxy, c.audit.verify(net))
    assert_caught(c, exc, "audit-fork", w.proxy)
    forged_root = forged.head()["signed"]["root"]
    assert believed(c, honest.root, ("tree-head",)), "held heads are not where this looks"
    assert not believed(c, forged_root, ("tree-head",)), "the forked head was kept"
    w.proxy.clear()
    again = await c.audit.verify(net)
    assert (again.size, again.root) == (honest.size, honest.root)


async def test_rewritten_audit_entry(world: World) -> None:
    """An entry's body changed in the entries answer, its commitment and every head left
    alone: the recomputed commitment is not the logged leaf."""
    w, c, net = world, world.coord, world.network
    honest = await c.audit.verify(net)
    rewrite_audit_entry(w.proxy, net, index=1)
    exc = await misbehaviour(w.proxy, c.audit.verify(net))
    assert_caught(c, exc, "audit-entry-rewritten", w.proxy)
    w.proxy.clear()
    again = await c.audit.verify(net)
    assert (again.size, again.root) == (honest.size, honest.root)


@pytest.mark.parametrize("reader", ["coordinator", "member"])
@pytest.mark.parametrize("how", ["changed", "truncated", "dropped"])
async def test_wrong_inclusion_proof_in_an_audit_page(world: World, reader: str,
                                                      how: str) -> None:
    """The entries come in pages for the head's size, each with its inclusion proof
    (protocol.md §15.1, §16.5): a proof that does not lead from the entry to the signed
    root, or no proof at all, is caught by a reader of the whole log (the coordinator)
    and of part of it (a member reading the entries naming it), with both reads, and the
    real pages verify again afterwards."""
    w, net = world, world.network
    p = w.coord if reader == "coordinator" else w.victim
    [index, *_] = [e["index"] for e in await w.victim.audit.entries(net)
                   if e["entry"].get("subject") == w.victim.key_id]
    honest = await p.audit.verify(net)
    rewrite_audit_proof(w.proxy, net, index, how)
    for read in (p.audit.verify, p.audit.entries):
        exc = await misbehaviour(w.proxy, read(net))
        assert_caught(p, exc, "audit-entry-rewritten", w.proxy)
    w.proxy.clear()
    again = await p.audit.verify(net)
    assert (again.size, again.root) == (honest.size, honest.root)


async def test_audit_page_with_an_entry_beyond_its_size_is_caught(world: World) -> None:
    """A page asked for the head's size holds only entries below it (protocol.md §15.1).
    The log grows by one entry; the server still names the head the client holds as its
    latest, and adds the new (real) entry to the page of that size: caught, not
    skipped."""
    w, c, net = world, world.coord, world.network
    held = await c.audit.verify(net)
    await grow_log(w, "late")
    page = await c.session.conn.get(f"/v1/networks/{net}/audit/entries",
                            {"after": held.size, "size": held.size + 1})
    [newer] = page["items"]
    roll_back_head(w.proxy, w.env.db_path, net, held.size)

    def extend(body: Any) -> Any:
        body["items"].append(copy.deepcopy(newer))
        return body
    w.proxy.on("GET", rf"/v1/networks/{net}/audit/entries", extend, times=1)
    exc = await misbehaviour(w.proxy, c.audit.verify(net))
    assert_caught(c, exc, "audit-entry-rewritten", w.proxy)
    assert exc.details.get("index") == held.size, exc.message


async def test_audit_log_rolled_back(world: World) -> None:
    """After the client verified a larger log, the server serves an older (really signed)
    head as the latest: a rollback."""
    w, c, net = world, world.coord, world.network
    older = await c.audit.verify(net)
    await grow_log(w, "late")
    newer = await c.audit.verify(net)
    assert newer.size > older.size
    roll_back_head(w.proxy, w.env.db_path, net, older.size)
    exc = await misbehaviour(w.proxy, c.audit.verify(net))
    assert_caught(c, exc, "audit-rollback", w.proxy)
    w.proxy.clear()
    again = await c.audit.verify(net)
    assert (again.size, again.root) == (newer.size, newer.root)


async def test_audit_log_rolled_back_is_caught_by_sync(world: World) -> None:
    """Every sync reads the log's latest head with the network: a partner that never
    runs an audit still notices a log that shrank since it last looked."""
    w, c, net = world, world.coord, world.network
    await c.sync(net)
    older = c.audit.monitor(net).latest
    assert older is not None
    await grow_log(w, "late2")
    await c.sync(net)
    assert c.audit.monitor(net).latest.size > older.size
    roll_back_head(w.proxy, w.env.db_path, net, older.size)
    exc = await misbehaviour(w.proxy, c.sync(net))
    assert_caught(c, exc, "audit-rollback", w.proxy)


# =========================================================================== releases


async def _granted(w: World, classes: list[str]) -> str:
    consent = await w.coord.disclosure.record_consent(w.network, w.case_a, classes=classes,
                                           partners=[w.victim.key_id], purpose="huisbezoek",
                                           evidence=b"getekend formulier")
    return await w.coord.disclosure.grant(w.network, w.case_a, consent=consent, grantee=w.victim.key_id,
                               classes=classes, reason="huisbezoek voorbereiden")


def assert_no_identity(p: Partner, network: str, case: str) -> None:
    assert p.identity.get(network, case) == {}, "identity stored from an unverified release"
    assert p.session.state.secret_refs("class-key", (network, case)) == [], "a class key was stored"


async def test_release_receipt_stripped(world: World) -> None:
    """A release answer without its inclusion receipt: the key may have left the server
    without an audit entry (T3), so nothing of it is used or stored."""
    w, p, net = world, world.victim, world.network
    grant = await _granted(w, ["name"])
    w.proxy.strip_receipt(net)
    exc = await misbehaviour(w.proxy, p.disclosure.release(net, grant))
    assert_caught(p, exc, "receipt-missing", w.proxy)
    assert_no_identity(p, net, w.case_a)


@pytest.mark.parametrize("how", ["entry", "proof", "index"])
async def test_release_receipt_corrupted(world: World, how: str) -> None:
    """A receipt whose entry was altered, whose proof has a flipped bit, or that claims
    another index: it does not prove the release was logged."""
    w, p, net = world, world.victim, world.network
    grant = await _granted(w, ["name"])
    w.proxy.corrupt_receipt(net, how)
    exc = await misbehaviour(w.proxy, p.disclosure.release(net, grant))
    assert_caught(p, exc, "receipt-invalid", w.proxy)
    assert_no_identity(p, net, w.case_a)


async def test_released_class_keys_swapped(world: World) -> None:
    """The unsigned part of a release, the class-key envelopes, swapped between two
    classes: each is sealed with its own class in its context, so the opener refuses it.
    (ADR 0007 names an AEAD failure ``ciphertext-swapped`` and a wrong context
    ``context-mismatch``; a sealed key under another class is either, and both mean the
    same refusal.)"""
    w, p, net = world, world.victim, world.network
    grant = await _granted(w, ["address", "name"])
    w.proxy.swap_released_class_keys(net)
    exc = await misbehaviour(w.proxy, p.disclosure.release(net, grant))
    assert_caught(p, exc, {"ciphertext-swapped", "context-mismatch"}, w.proxy)
    assert_no_identity(p, net, w.case_a)
