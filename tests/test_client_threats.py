"""The client's defences of docs/threat-model.md, one test per threat, named after it.

Real partners (``schakel.client.Partner``) against the real server, behind the tampering proxy
of :mod:`tests.tamper_proxy` where the threat is a lying server (§5.2), or with the
server's own SQLite file read where the threat is what the server can see (§5.1).  Each
attack test checks that the proxy really rewrote an answer, that the client raised and
recorded the ADR 0007 ``what``, and that nothing of the lie was believed.  Where the
attacker must sign (the owner, the coordinator), the test signs with that partner's real
key: the server alone cannot, so this is the strongest form of the lie.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner, ServerMisbehaviour
from schakel.client.wire import new_id
from schakel.client.fold import case_key, epoch_keys, latest_epoch, summary
from schakel.keys.certify import revoke_membership
from schakel.protocol import envelopes, signing
from schakel.protocol.crypto import BoxSecretKey, CaseKey, ClassKey, EpochKey, MatchKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import DecryptionError, PolicyViolation
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.cases import CaseHeader, CaseRekey, Event, event_hash
from schakel.protocol.objects.network import EpochKeyDistribution, EpochKeyPayload
from tests.client_harness import (
    COVENANT, IDENTITY, INTAKE, admit, make_partner, network_policy, server_fingerprint,
)
from tests.tamper_proxy import TamperedServer, caught_by, tampered_server

NOTE = {"kind": "note", "text": "Huisbezoek gepland met de wijkverpleging."}
CONCERN = "Mevrouw op de hoek komt al weken niet buiten en de post stapelt zich op."


@dataclass
class World:
    """A coordinator (owner of ``case``, with identity), a core member (the victim) and a
    shell partner, all synced, behind the tampering proxy."""

    env: TamperedServer
    coord: Partner
    victim: Partner
    shell: Partner
    network: str
    case: str
    tmp_path: Path

    @property
    def proxy(self) -> Any:
        return self.env.proxy

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.env.db_path}?mode=ro", uri=True)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with tampered_server(tmp_path) as env:
        coord = await make_partner(tmp_path, env.url, "coordinator")
        victim = await make_partner(tmp_path, env.url, "victim")
        shell = await make_partner(tmp_path, env.url, "shell")
        try:
            network = await coord.networks.create(
                name="Buurtnetwerk Test", kind="neighbourhood", covenant=COVENANT,
                server_fingerprint=server_fingerprint(env.url),
                policy=network_policy("neighbourhood"))
            await admit(coord, network, victim, ring="core", party="formal")
            await admit(coord, network, shell, ring="shell", party="formal")
            case = await coord.cases.create(network, INTAKE, identity=IDENTITY)
            for p in (coord, victim, shell):
                await p.sync(network)
            assert victim.cases.get(network, case).readable
            yield World(env, coord, victim, shell, network, case, tmp_path)
        finally:
            for p in (coord, victim, shell):
                await p.close()


async def caught(w: World, p: Partner, call: Awaitable[Any], what: str) -> ServerMisbehaviour:
    """``call`` raises ServerMisbehaviour ``what`` after the proxy rewrote an answer, and
    ``p`` recorded it."""
    exc: ServerMisbehaviour = await caught_by(w.proxy, p, call, what)
    return exc


def append_to_sync(w: World, make: Callable[[], dict[str, Any]]) -> None:
    """Append one item (``make()`` -> {kind, case, envelope}) to the next non-empty sync
    page, at a feed position after the page's last item (so only the item is a lie)."""
    def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*items, {"cursor": str(int(items[-1]["cursor"]) + 1), **make()}]
    w.proxy.on_sync(w.network, fn, times=1)


def sync_path(network: str) -> str:
    return rf"/v1/networks/{re.escape(network)}"


def forged_event(p: Partner, w: World, *, seq: int, prev: str | None,
                 plaintext: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An event of ``w.case`` signed by ``p`` (``extra`` overrides signed fields)."""
    info = summary(w.coord.session.state, w.network, w.case)
    assert info is not None
    version = int(info["version"])
    key = case_key(w.coord.session.state, w.network, w.case, version)
    assert key is not None
    event_id = new_id()
    fields: dict[str, Any] = dict(
        network=w.network, case=w.case, event=event_id, author=p.key_id,
        acting_user=p.acting_user, seq=seq, created=format_timestamp(p.session.now()),
        case_key_version=version,
        ciphertext=envelopes.encrypt_json(key, plaintext, envelopes.event_context(
            w.network, w.case, event_id, version=version)))
    if prev is not None:
        fields["prev"] = prev
    fields.update(extra)
    return Event(**fields).sign(p.session.keys.signer)


# =========================================================================== §5.1


async def test_cs6_signal_content_reaches_the_server_sealed_to_the_coordinator(
        world: World) -> None:
    """CS-6: the signaller's client seals the concern to the coordinator's box key from
    the verified genesis; the server stores only that sealed box."""
    w, net = world, world.network
    ticket = await w.shell.signals.send(net, CONCERN)
    with w.db() as db:
        (submission,), = db.execute("SELECT submission FROM signals WHERE network = ? AND "
                                    "signal = ?", (net, ticket.signal)).fetchall()
    assert "weken niet buiten" not in submission
    sealed = b64d(json.loads(submission)["signed"]["sealed"], what="sealed")
    assert CONCERN in w.coord.session.keys.box_secret.unseal(sealed).decode("utf-8")
    with pytest.raises(DecryptionError):
        w.victim.session.keys.box_secret.unseal(sealed)


async def test_cs7_message_to_a_signaller_is_sealed_to_its_reply_key(world: World) -> None:
    """CS-7: the coordinator's message is sealed to the one-time reply key the signaller
    bound into its sealed content; the server stores only the sealed box, and only the
    signaller's kept reply key opens it."""
    w, net = world, world.network
    ticket = await w.shell.signals.send(net, CONCERN)
    message = "Dank u, de wijkverpleging gaat langs."
    await w.coord.signals.received(net)
    await w.coord.signals.feedback(net, ticket.signal, "taken-up", message=message)
    with w.db() as db:
        rows = [r[0] for r in db.execute("SELECT envelope FROM feedback").fetchall()]
    assert rows and all("wijkverpleging gaat langs" not in r for r in rows)
    sealed = b64d(json.loads(rows[-1])["signed"]["message"], what="message")
    with pytest.raises(DecryptionError):
        w.coord.session.keys.box_secret.unseal(sealed)
    status = await w.shell.signals.status(ticket)
    assert status.messages == [message] and status.status == "taken-up"


async def test_cs11_identifier_in_free_text_is_refused_before_sending(world: World) -> None:
    """CS-11: free text the server reads (a consent's purpose, a grant's reason) is run
    through the PII guard by the client, and refused before any request is built."""
    w, net = world, world.network
    posted = len(w.proxy.exchanges)
    with pytest.raises(PolicyViolation):
        await w.coord.disclosure.record_consent(net, w.case, classes=["name"], partners=[w.victim.key_id],
                                     purpose="huisbezoek, bel 06-12345678",
                                     evidence=b"getekend formulier")
    consent = await w.coord.disclosure.record_consent(net, w.case, classes=["name"],
                                           partners=[w.victim.key_id], purpose="huisbezoek",
                                           evidence=b"getekend formulier")
    with pytest.raises(PolicyViolation):
        await w.coord.disclosure.grant(net, w.case, consent=consent, grantee=w.victim.key_id,
                            classes=["name"], reason="mail jan@example.nl voor afspraak")
    sent = [ex for ex in w.proxy.exchanges[posted:] if ex.method == "POST"]
    assert [ex.path.rsplit("/", 1)[-1] for ex in sent] == ["consents"]


# =========================================================================== §5.2


async def test_ls3_event_signed_by_another_key_claiming_the_authors_key_id(
        world: World) -> None:
    """LS-3: an event whose signature was made by another member's key but names the
    author's key id: the client verifies with the author's verified key only."""
    w, p, net = world, world.victim, world.network
    before = [e.event for e in p.cases.get(net, w.case).events]
    await w.coord.cases.add_event(net, w.case, NOTE)

    def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for it in items:
            if it["kind"] == "event":
                env = signing.sign("event", it["envelope"]["signed"], w.shell.session.keys.signer)
                env["signatures"][0]["keyid"] = w.coord.key_id
                it["envelope"] = env
        return items
    w.proxy.on_sync(net, fn)
    await caught(w, p, p.sync(net), "bad-signature")
    assert [e.event for e in p.cases.get(net, w.case).events] == before


async def test_ls6_event_whose_prev_is_not_the_event_before_it_is_refused(world: World) -> None:
    """LS-6: a validly signed event at the next ``seq`` whose ``prev`` names another
    predecessor (a fork of the chain: the owner's client was shown a history without
    event 3) is refused as ``event-reordered``.  Only the ``prev`` link tells it apart:
    its seq, author, signature and ciphertext are all right.  The page it came in is not
    believed, and the honest chain arrives once the server stops lying."""
    w, p, net = world, world.victim, world.network
    await w.coord.cases.add_event(net, w.case, NOTE)
    await p.sync(net)
    assert [e.seq for e in p.cases.get(net, w.case).events] == [1, 2]
    second = p.session.state.get_doc("event", (net, w.case, f"{2:010d}"))
    await w.coord.cases.add_event(net, w.case, {"kind": "note", "text": "Derde notitie."})
    fork = forged_event(w.coord, w, seq=4, prev=b64e(event_hash(second)),
                        plaintext={"kind": "note", "text": "Een vierde notitie op een zijtak."})
    append_to_sync(w, lambda: {"kind": "event", "case": w.case, "envelope": fork})
    await caught(w, p, p.sync(net), "event-reordered")
    assert [e.seq for e in p.cases.get(net, w.case).events] == [1, 2]
    w.proxy.clear()
    await p.sync(net)
    assert [e.seq for e in p.cases.get(net, w.case).events] == [1, 2, 3]


async def test_ls7_truncated_chain_continued_by_the_server_is_caught(world: World) -> None:
    """LS-7: the client keeps the longest chain it verified.  A server that cut the case
    back to seq 2 and then serves another (validly signed) event 3 is caught: the client
    holds an event 3 already.  The chain it holds stays whole."""
    w, p, net = world, world.victim, world.network
    await w.coord.cases.add_event(net, w.case, NOTE)
    await w.coord.cases.add_event(net, w.case, {"kind": "note", "text": "Derde notitie."})
    await p.sync(net)
    held = p.cases.get(net, w.case)
    assert [e.seq for e in held.events] == [1, 2, 3]
    second = p.session.state.get_doc("event", (net, w.case, f"{2:010d}"))
    other = forged_event(w.coord, w, seq=3, prev=b64e(event_hash(second)),
                         plaintext={"kind": "note", "text": "Een andere derde notitie."})
    await w.coord.cases.add_event(net, w.case, NOTE)       # a page for the lie to ride on
    append_to_sync(w, lambda: {"kind": "event", "case": w.case, "envelope": other})
    await caught(w, p, p.sync(net), "event-replayed")
    after = p.cases.get(net, w.case)
    assert [(e.seq, e.event, e.plaintext) for e in after.events] == \
        [(e.seq, e.event, e.plaintext) for e in held.events]


async def test_sync_page_whose_head_lies_before_its_cursor_is_caught(world: World) -> None:
    """The server reads a sync page and its head together (protocol.md §14.3), so a head
    before the page's own cursor is a lie the client can see: ``context-mismatch``,
    nothing of the page stored, the cursor where it was.  An honest page is read in full
    once the server stops lying."""
    w, p, net = world, world.victim, world.network
    await w.coord.cases.add_event(net, w.case, NOTE)
    cursor = p.session.state.cursor(net, "sync")

    def lie(body: Any) -> Any:
        if body.get("items"):
            body["head"] = cursor
        return body
    w.proxy.on("GET", rf"{sync_path(net)}/sync", lie, times=1)
    await caught(w, p, p.sync(net), "context-mismatch")
    assert p.session.state.cursor(net, "sync") == cursor
    assert [e.seq for e in p.cases.get(net, w.case).events] == [1]
    w.proxy.clear()
    await p.sync(net)
    assert [e.seq for e in p.cases.get(net, w.case).events] == [1, 2]


@pytest.mark.parametrize("what", ["header", "rekey"])
async def test_ls8_case_header_or_key_version_rolled_back(world: World, what: str) -> None:
    """LS-8: the case was rotated to case-key version 2.  The server then serves another
    header for the case (signed by its owner, wrapping another version-1 key) or another
    rekey for version 2: the client keeps what it verified, and its current version stays
    2 with the key it holds."""
    w, p, net = world, world.victim, world.network
    tv = await w.coord.session.trusted(net)
    assert await w.coord._case_keys.rekey(net, tv, w.case, reason="test", force=True)
    await p.sync(net)
    assert p.cases.get(net, w.case).case_key_version == 2
    key2 = case_key(p.session.state, net, w.case, 2)
    header = p.session.state.get_doc("header", (net, w.case))
    keys = epoch_keys(w.coord.session.state, net, 1)
    assert key2 is not None and keys is not None
    if what == "header":
        signed = dict(header["signed"])
        signed["wrapped_case_key"] = envelopes.wrap_case_key(
            keys[0], CaseKey.generate(), network=net, case=w.case, epoch=1, version=1)
        forged = CaseHeader.from_json(signed).sign(w.coord.session.keys.signer)
        expected = "context-mismatch"
    else:
        forged = CaseRekey(
            network=net, case=w.case, case_key_version=2, epoch=1,
            wrapped_case_key=envelopes.wrap_case_key(keys[0], CaseKey.generate(), network=net,
                                                     case=w.case, epoch=1, version=2),
            acting_user=w.coord.acting_user, at=format_timestamp(w.coord.session.now()),
            reason="rollback").sign(w.coord.session.keys.signer)
        expected = "event-replayed"
    await w.coord.cases.add_event(net, w.case, NOTE)
    append_to_sync(w, lambda: {"kind": what, "case": w.case, "envelope": forged})
    await caught(w, p, p.sync(net), expected)
    assert p.session.state.get_doc("header", (net, w.case)) == header
    assert p.cases.get(net, w.case).case_key_version == 2
    held = case_key(p.session.state, net, w.case, 2)
    assert held is not None and held.export() == key2.export()


async def _granted(w: World, classes: list[str]) -> str:
    consent = await w.coord.disclosure.record_consent(w.network, w.case, classes=classes,
                                           partners=[w.victim.key_id], purpose="huisbezoek",
                                           evidence=b"getekend formulier")
    return await w.coord.disclosure.grant(w.network, w.case, consent=consent, grantee=w.victim.key_id,
                               classes=classes, reason="huisbezoek voorbereiden")


async def test_ls10_gated_envelope_made_by_the_server_is_refused(world: World) -> None:
    """LS-10: the server seals a class key of its own choosing to the grantee, with the
    right context (sealed boxes are anonymous): that key does not open the owner-signed
    identity record, so nothing is stored (denial of service, not false identity)."""
    w, p, net = world, world.victim, world.network
    grant = await _granted(w, ["name"])

    def rewrite(body: Any) -> Any:
        for item in body.get("envelopes", []):
            ctx = envelopes.GateContext(network=net, case=w.case, cls=item["class"],
                                        version=item["version"], recipient=p.key_id)
            item["inner"] = envelopes.seal_json(
                p.session.keys.public.box, "class-key",
                {**ctx.fields(), "key": b64e(ClassKey.generate().export())})
        return body
    w.proxy.on("POST", sync_path(net) + "/releases", rewrite)
    await caught(w, p, p.disclosure.release(net, grant), "ciphertext-swapped")
    assert p.identity.get(net, w.case) == {}
    assert p.session.state.secret_refs("class-key", (net, w.case)) == []


async def test_ls11_sealed_epoch_entry_moved_to_another_member(world: World) -> None:
    """LS-11: a new epoch (a core member joined): the server hands the victim another
    member's sealed entry of the coordinator-signed distribution.  The distribution names
    the recipient of each entry, so the entry is refused and no epoch key is stored."""
    w, p, net = world, world.victim, world.network
    held = latest_epoch(p.session.state, net)
    late = await make_partner(w.tmp_path, w.env.url, "late")
    try:
        await admit(w.coord, net, late, ring="core", party="formal")
    finally:
        await late.close()
    assert latest_epoch(w.coord.session.state, net) == held + 1

    def rewrite(body: Any) -> Any:
        for entry in body.get("entries", []):
            others = [k for k in entry["distribution"]["signed"]["keys"]
                      if k["recipient"] != p.key_id]
            if entry["epoch"] == held + 1 and others:
                entry["sealed"] = others[0]["sealed"]
        return body
    w.proxy.on("GET", sync_path(net) + "/epochs/mine", rewrite)
    await caught(w, p, p.sync(net), "context-mismatch")
    assert epoch_keys(p.session.state, net, held + 1) is None


async def test_ls12_held_epoch_key_is_not_replaced(world: World) -> None:
    """LS-12: the server answers a distribution for an epoch the victim holds that
    seals other keys to it (signed with the coordinator's key, the strongest form).  A
    held epoch key is never replaced: the answer is flagged and the key kept."""
    w, p, net = world, world.victim, world.network
    epoch = latest_epoch(p.session.state, net)
    held = epoch_keys(p.session.state, net, epoch)
    assert held is not None
    payload = EpochKeyPayload.create(network=net, epoch=epoch, recipient=p.key_id,
                                     epoch_key=EpochKey.generate(), match_key=MatchKey.generate())
    dist = EpochKeyDistribution(network=net, epoch=epoch, created=format_timestamp(w.coord.session.now()),
                                keys=[payload.seal(p.session.keys.public.box)]).sign(w.coord.session.keys.signer)

    def rewrite(body: Any) -> Any:
        for entry in body.get("entries", []):
            if entry["epoch"] == epoch:
                entry["distribution"] = dist
                entry["sealed"] = dist["signed"]["keys"][0]["sealed"]
        return body
    w.proxy.on("GET", sync_path(net) + "/epochs/mine", rewrite)
    await caught(w, p, p.sync(net), "context-mismatch")
    kept = epoch_keys(p.session.state, net, epoch)
    assert kept is not None and kept[0].export() == held[0].export()
    assert kept[1].export() == held[1].export()


async def test_ls14_share_carrying_another_cases_key(world: World) -> None:
    """LS-14: the coordinator shares two cases with the shell partner; the server swaps
    the sealed case keys of the two shares.  The coordinator's signature covers case and
    sealed key, so neither share is believed and the shell partner stores no case key."""
    w, p, net = world, world.shell, world.network
    other = await w.coord.cases.create(net, dict(INTAKE, neighbourhood="Vathorst"))
    await w.coord.cases.share(net, w.case, p.key_id, reason="hulp bij administratie")
    await w.coord.cases.share(net, other, p.key_id, reason="hulp bij administratie")

    def fn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shares = [it for it in items if it["kind"] == "share"]
        if len(shares) >= 2:
            a, b = shares[0]["envelope"]["signed"], shares[1]["envelope"]["signed"]
            a["sealed_case_key"], b["sealed_case_key"] = b["sealed_case_key"], a["sealed_case_key"]
        return items
    w.proxy.on_sync(net, fn)
    await caught(w, p, p.sync(net), "bad-signature")
    assert p.session.state.secret_refs("case-key", (net,)) == []


@pytest.mark.parametrize("how", ["reply-key", "moved-content"])
async def test_ls15_signal_content_moved_or_reply_key_swapped(world: World, how: str) -> None:
    """LS-15: the server swaps in its own reply key on an anonymous signal (to read the
    coordinator's answer), or moves one signal's sealed content to another.  The content
    repeats network, signal and reply key; the coordinator's client leaves the signal out,
    records it, and so never seals an answer to the server's key."""
    w, net = world, world.network
    first = await w.shell.signals.send(net, CONCERN, anonymous=True)
    second = await w.shell.signals.send(net, "Buurman lijkt verward.", anonymous=True)
    server_reply = BoxSecretKey.generate().public_key.b64()

    def rewrite(body: Any) -> Any:
        items = body.get("items", [])
        if len(items) >= 2:
            if how == "reply-key":
                items[0]["signal"]["reply_key"] = server_reply
            else:
                items[0]["signal"]["sealed"] = items[1]["signal"]["sealed"]
        return body
    w.proxy.on("GET", sync_path(net) + "/signals", rewrite)
    opened = await w.coord.signals.received(net)
    assert w.proxy.hits() > 0
    assert [s.signal for s in opened] == [second.signal]
    assert "context-mismatch" in [m["what"] for m in w.coord.misbehaviours()]
    assert w.coord.session.state.get_doc("signal", (net, first.signal)) is None


async def test_ls16_false_signal_status_is_refused(world: World) -> None:
    """LS-16: the server tells the signaller "taken-up" while the coordinator signed no
    such feedback: the status must equal the latest coordinator-signed one."""
    w, p, net = world, world.shell, world.network
    ticket = await p.signals.send(net, CONCERN)
    w.proxy.on("GET", r"/v1/signals/status", lambda body: {**body, "status": "taken-up"})
    await caught(w, p, p.signals.status(ticket), "context-mismatch")


# =========================================================================== §5.3


async def test_mm7_roles_added_to_a_membership_are_refused(world: World) -> None:
    """MM-7: a member admitted later is served with a role added to its membership (the
    server cannot re-sign it): it no longer verifies against the coordinator."""
    w, p, net = world, world.victim, world.network
    late = await make_partner(w.tmp_path, w.env.url, "late")
    try:
        member = await w.coord.networks.admit(net, late.bundle(), ring="shell", party="formal",
                                     fingerprint=late.fingerprint)
    finally:
        await late.close()

    def rewrite(body: Any) -> Any:
        for env in body.get("memberships", []):
            if env["signed"]["member"] == member:
                env["signed"]["roles"] = sorted({*env["signed"]["roles"], "auditor"})
        return body
    w.proxy.on("GET", sync_path(net) + "/members", rewrite)
    await caught(w, p, p.sync(net), "member-key-substituted")
    assert member not in {m["key_id"] for m in p.networks.members(net)}


async def test_mm13_cleartext_status_that_contradicts_the_content(world: World) -> None:
    """MM-13: the case owner tells the server "closed" in an event's cleartext status
    while the encrypted content is an ordinary note.  The server (which cannot read the
    content) accepts it; the members' clients compare and refuse it."""
    w, p, net = world, world.victim, world.network
    info = summary(w.coord.session.state, net, w.case)
    assert info is not None
    event = forged_event(w.coord, w, seq=int(info["last_seq"]) + 1, prev=info["last_hash"],
                         plaintext=NOTE, status="closed")
    await w.coord.session.conn.post(f"/v1/networks/{net}/cases/{w.case}/events", {"event": event})
    with w.db() as db:
        (status,), = db.execute("SELECT status FROM cases WHERE network = ? AND [case] = ?",
                                (net, w.case)).fetchall()
    assert status == "closed"                     # the server believed the cleartext
    try:
        await p.sync(net)
    except ServerMisbehaviour as exc:
        assert exc.what == "context-mismatch"
    else:
        pytest.fail("the client believed a cleartext status its content contradicts")
    assert "context-mismatch" in [m["what"] for m in p.misbehaviours()]
    assert p.cases.get(net, w.case).status == "open"


async def test_mm15_object_of_another_network_is_refused(world: World) -> None:
    """MM-15: a validly signed case header of another network (same coordinator) served
    in this network's feed: it names the other network, so it is not believed."""
    w, p, net = world, world.victim, world.network
    other_net = await w.coord.networks.create(name="Ander netwerk", kind="neighbourhood",
                                             covenant=COVENANT,
                                             server_fingerprint=server_fingerprint(w.env.url),
                                             policy=network_policy("neighbourhood"))
    other_case = await w.coord.cases.create(other_net, INTAKE)
    header = w.coord.session.state.get_doc("header", (other_net, other_case))
    assert header is not None
    await w.coord.cases.add_event(net, w.case, NOTE)
    append_to_sync(w, lambda: {"kind": "header", "case": other_case, "envelope": header})
    await caught(w, p, p.sync(net), "context-mismatch")
    assert p.session.state.get_doc("header", (net, other_case)) is None


async def test_ms4_coordinator_role_in_the_shell_is_refused(world: World) -> None:
    """MS-4: a membership giving the shell partner the coordinator role, even signed with
    the coordinator's key (a higher serial, so a new object): the role rule of the chain
    refuses it, and the shell partner gets no coordinator standing at the client."""
    w, p, net = world, world.victim, world.network
    envs = [env for _, env in w.coord.session.state.docs("membership", (net,))
            if env["signed"]["member"] == w.shell.key_id]
    signed = {**envs[-1]["signed"], "roles": ["coordinator"],
              "serial": int(envs[-1]["signed"]["serial"]) + 1}
    forged = signing.sign("membership", signed, w.coord.session.keys.signer)

    def rewrite(body: Any) -> Any:
        body["memberships"] = [*body.get("memberships", []), forged]
        return body
    w.proxy.on("GET", sync_path(net) + "/members", rewrite)
    await caught(w, p, p.sync(net), "member-key-substituted")
    roles = {m["key_id"]: m["roles"] for m in p.networks.members(net)}
    assert "coordinator" not in roles[w.shell.key_id]


# =========================================================================== §5.4


async def test_rm3_no_backfill_to_a_removed_member_when_the_revocation_is_withheld(
        world: World) -> None:
    """RM-3: the victim owns a case with identity; a core member joins and is removed
    before the victim syncs.  Once the victim has seen the revocation, a server that stops
    serving it cannot make the victim's backfill seal to the removed member: verified
    revocations are kept and unioned with later answers."""
    w, p, net = world, world.victim, world.network
    await p.cases.create(net, INTAKE, identity=IDENTITY)
    late = await make_partner(w.tmp_path, w.env.url, "late")
    try:
        member = await admit(w.coord, net, late, ring="core", party="formal")
    finally:
        await late.close()
    await w.coord.networks.remove(net, member, reason="convenant opgezegd")
    await p.sync(net)
    w.proxy.on("GET", sync_path(net) + "/members", lambda body: {**body, "revocations": []})
    await p.sync(net)
    assert w.proxy.hits() > 0
    current = {m["key_id"]: m["current"] for m in p.networks.members(net)}
    assert current[member] is False
    assert not w.proxy.seen("POST", sync_path(net) + r"/cases/[^/]+/gated")
    with w.db() as db:
        rows = db.execute("SELECT COUNT(*) FROM gated WHERE recipient = ?", (member,)).fetchall()
    assert rows[0][0] == 0


async def test_rm8_forged_revocation_is_refused(world: World) -> None:
    """RM-8: a revocation of the shell partner signed by another member's key, served
    with the members: an error (not skipped), and the shell partner stays current."""
    w, p, net = world, world.victim, world.network
    forged = revoke_membership(p.session.keys, network=net, member=w.shell.key_id, serial=1,
                               at=w.coord.session.now(), reason="vervalst")

    def rewrite(body: Any) -> Any:
        body["revocations"] = [*body.get("revocations", []), forged]
        return body
    w.proxy.on("GET", sync_path(net) + "/members", rewrite)
    await caught(w, p, p.sync(net), "member-key-substituted")
    current = {m["key_id"]: m["current"] for m in p.networks.members(net)}
    assert current[w.shell.key_id] is True


# =========================================================================== §5.5


async def test_sl9_local_state_holds_no_plaintext(world: World) -> None:
    """SL-9: after syncing content and receiving identity in a release, none of it is in
    the clear in the partner's home directory (state.db and its journal): secrets are
    sealed under the state key, events are kept as their ciphertext envelopes."""
    w, p, net = world, world.victim, world.network
    await w.coord.cases.add_event(net, w.case, NOTE)
    await p.sync(net)
    released = await p.disclosure.release(net, await _granted(w, ["name", "address"]))
    assert released.classes["name"] == IDENTITY["name"]
    for partner in (p, w.coord):
        blob = b"".join(f.read_bytes() for f in Path(partner.session.home.path).iterdir()
                        if f.is_file())
        for text in ("Hendrik", "de Vries", "Soesterweg", "3812 AB",
                     "komt de deur nauwelijks uit", "wijkverpleging"):
            assert text.encode() not in blob, (partner.name, text)


async def test_sl10_events_by_a_revoked_key_after_its_revocation_are_refused(
        world: World) -> None:
    """SL-10 (and the client side of RM-7): a stolen key whose membership the coordinator
    revoked.  An event it signs after the revocation, served by the server anyway, is
    refused by the clients: its author held no membership when it was written."""
    w, p, net = world, world.victim, world.network
    stolen = await make_partner(w.tmp_path, w.env.url, "stolen")
    try:
        member = await admit(w.coord, net, stolen, ring="core", party="formal")
        await w.coord.networks.remove(net, member, reason="laptop gestolen")
        await p.sync(net)
        info = summary(p.session.state, net, w.case)
        assert info is not None
        event = forged_event(stolen, w, seq=int(info["last_seq"]) + 1, prev=info["last_hash"],
                             plaintext=NOTE)
    finally:
        await stolen.close()
    await w.coord.cases.add_event(net, w.case, NOTE)
    w.proxy.on_sync(net, lambda items: [
        {**it, "envelope": event} if it["kind"] == "event" else it for it in items], times=1)
    await caught(w, p, p.sync(net), "bad-signature")
    assert all(e.author != member for e in p.cases.get(net, w.case).events)
