"""Coordinator key rotation, served and followed (protocol.md §4.6.2, §4.6.3, §14.3; ADR
0046): the server takes a ``key-rotation`` of the current coordinator key, audits it,
serves the chain in order with the network and from then on takes the new key as the
coordinator key and refuses the retired one on anything dated from the rotation on; the
client follows the chain from the genesis fingerprint, keeps what it verified, and
catches a server that withholds or swaps a rotation (LS-51).  The coordinator's own
client rotates its home to the new key.

Real partners (``schakel.client.Partner``) against the real server on a real SQLite
file, behind the tampering proxy of :mod:`tests.tamper_proxy` where the server lies.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.client.errors import ServerMisbehaviour, ServerRefused
from schakel.client.partner import Partner
from schakel.client.transport import Connection
from schakel.keys import (
    Fingerprint, PartnerKeys, issue_membership, load_keystore, revoke_membership,
)
from schakel.keys.rotation import rotate
from schakel.server.serverkeys import ServerKeys
from tests.client_harness import (
    COVENANT, PASSPHRASE, admit, make_partner, network_policy, running_server,
    server_fingerprint,
)
from tests.tamper_proxy import TamperedServer, tampered_server


@dataclass
class Net:
    """A neighbourhood network: its coordinator (the genesis key) and a core and a shell
    member, all synced."""

    url: str
    network: str
    regie: Partner
    core: Partner
    shell: Partner
    genesis_keys: PartnerKeys
    env: TamperedServer | None = None

    @property
    def partners(self) -> list[Partner]:
        return [self.regie, self.core, self.shell]

    @property
    def anchor(self) -> str:
        """The network's trust anchor: the genesis coordinator key's fingerprint."""
        return str(Fingerprint.of(self.genesis_keys.public.sign))

    def after(self, seconds: int) -> datetime:
        """The genesis's ``created`` plus ``seconds``: rotations are dated after it, and
        a test does not wait for the clock to pass it (the server takes a rotation dated
        up to the request skew ahead)."""
        return self.regie.networks.verified(self.network).verified.created + timedelta(
            seconds=seconds)

    def path(self, tail: str = "") -> str:
        return f"/v1/networks/{self.network}{tail}"


async def build(tmp_path: Path, url: str) -> Net:
    regie = await make_partner(tmp_path, url, "regie", name="Welzijn Eemland (regie)")
    network = await regie.networks.create(
        name="Buurtnetwerk Schothorst", kind="neighbourhood", covenant=COVENANT,
        server_fingerprint=server_fingerprint(url), policy=network_policy("neighbourhood"))
    core = await make_partner(tmp_path, url, "wijkteam", name="Wijkteam Schothorst")
    shell = await make_partner(tmp_path, url, "huisarts", name="Huisartsenpraktijk")
    await admit(regie, network, core, ring="core", party="formal")
    await admit(regie, network, shell, ring="shell", party="formal")
    net = Net(url, network, regie, core, shell, regie.session.keys)
    for p in net.partners:
        await p.sync(network)
    return net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    async with tampered_server(tmp_path) as env:
        world = await build(tmp_path, env.url)
        world.env = env
        try:
            yield world
        finally:
            for p in world.partners:
                await p.close()


def signed_as(net: Net, keys: PartnerKeys) -> Connection:
    """A connection that signs with ``keys`` (a key the coordinator's home no longer
    uses, or a rotation's new key before any home holds it)."""
    return Connection(net.url, keys, "regie-user-1")


async def post_rotation(conn: Connection, net: Net, envelope: dict[str, Any]) -> Any:
    return await conn.post(net.path("/rotations"), {"rotation": envelope})


async def refused(call: Any) -> ServerRefused:
    with pytest.raises(ServerRefused) as caught:
        await call
    return caught.value


def membership_by(net: Net, keys: PartnerKeys, member: PartnerKeys, *,
                  valid_from: datetime) -> dict[str, Any]:
    return issue_membership(keys, network=net.network, kind="neighbourhood",
                            member=member.public, name="Buurtvrijwilligers", ring="core",
                            party="informal", roles=(), serial=1, valid_from=valid_from,
                            valid_until=valid_from + timedelta(days=30))


# =========================================================================== the server


async def test_the_server_serves_rotations_in_order_and_audits_them(net: Net) -> None:
    """Two rotations, each sent with the then-current key: the network answer serves
    both in chain order, each got a ``key-rotation`` entry (coordinator acting, the new
    key the subject), and an identical retry is the same write."""
    first_keys, first = rotate(net.genesis_keys, at=net.after(1), reason="laptop gestolen")
    second_keys, second = rotate(first_keys, at=net.after(2), reason="tweede wissel")
    old, new = signed_as(net, net.genesis_keys), signed_as(net, first_keys)
    try:
        assert await post_rotation(old, net, first) == {"network": net.network, "position": 1}
        assert await post_rotation(new, net, second) == {"network": net.network, "position": 2}
        assert await post_rotation(new, net, second) == {"network": net.network, "position": 2}
        assert await post_rotation(old, net, first) == {"network": net.network, "position": 1}
    finally:
        await old.close()
        await new.close()
    served = await net.core.session.conn.get(net.path())
    assert served["rotations"] == [first, second]
    await net.core.sync(net.network)
    view = net.core.networks.verified(net.network)
    assert view.coordinator_key_id == second_keys.key_id
    assert [link.keys.key_id for link in view.verified.coordinator_keys] == [
        net.genesis_keys.key_id, first_keys.key_id, second_keys.key_id]


async def test_a_rotation_is_in_the_audit_log(net: Net) -> None:
    new_keys, envelope = rotate(net.genesis_keys, at=net.after(1), reason="verdacht")
    await post_rotation(net.regie.session.conn, net, envelope)
    entries = [e["entry"] for e in await net.regie.audit.entries(net.network) if e.get("entry")]
    rotations = [e for e in entries if e["action"] == "key-rotation"]
    assert len(rotations) == 1
    entry = rotations[0]
    assert entry["actor"]["partner"] == net.genesis_keys.key_id
    assert entry["actor"]["role"] == "coordinator"
    assert entry["basis"] == "none" and entry["outcome"] == "allow"
    assert entry["subject"] == new_keys.key_id


async def test_a_rotation_not_of_the_current_coordinator_key_is_refused(net: Net) -> None:
    """A rotation of a member's key, or of the genesis key once it was rotated away, is
    403 ``untrusted_key``; a member that sends a valid rotation is 403 ``forbidden``."""
    member_keys = net.core.session.keys
    _, of_member = rotate(member_keys, at=net.after(1), reason="niet van regie")
    refusal = await refused(post_rotation(net.regie.session.conn, net, of_member))
    assert (refusal.status, refusal.code) == (403, "untrusted_key")

    _, valid = rotate(net.genesis_keys, at=net.after(1), reason="verdacht")
    refusal = await refused(post_rotation(net.core.session.conn, net, valid))
    assert (refusal.status, refusal.code) == (403, "forbidden")

    first_keys, first = rotate(net.genesis_keys, at=net.after(1), reason="verdacht")
    await post_rotation(net.regie.session.conn, net, first)
    _, again = rotate(net.genesis_keys, at=net.after(2), reason="nog een keer")
    new = signed_as(net, first_keys)
    try:
        refusal = await refused(post_rotation(new, net, again))
    finally:
        await new.close()
    assert (refusal.status, refusal.code) == (403, "untrusted_key")
    assert (await net.core.session.conn.get(net.path()))["rotations"] == [first]


async def test_a_rotation_out_of_order_is_refused(net: Net) -> None:
    """Dated at or before the previous link (the genesis's ``created``, then the first
    rotation's ``at``): 403 ``untrusted_key``."""
    _, before_genesis = rotate(net.genesis_keys, at=net.after(-1), reason="te vroeg")
    refusal = await refused(post_rotation(net.regie.session.conn, net, before_genesis))
    assert (refusal.status, refusal.code) == (403, "untrusted_key")

    first_keys, first = rotate(net.genesis_keys, at=net.after(2), reason="verdacht")
    await post_rotation(net.regie.session.conn, net, first)
    _, earlier = rotate(first_keys, at=net.after(1), reason="terug in de tijd")
    new = signed_as(net, first_keys)
    try:
        refusal = await refused(post_rotation(new, net, earlier))
    finally:
        await new.close()
    assert (refusal.status, refusal.code) == (403, "untrusted_key")


async def test_a_rotation_back_to_an_earlier_coordinator_key_is_refused(net: Net) -> None:
    first_keys, first = rotate(net.genesis_keys, at=net.after(1), reason="verdacht")
    await post_rotation(net.regie.session.conn, net, first)
    _, back = rotate(first_keys, at=net.after(2), reason="terug", new=net.genesis_keys)
    new = signed_as(net, first_keys)
    try:
        refusal = await refused(post_rotation(new, net, back))
    finally:
        await new.close()
    assert (refusal.status, refusal.code) == (403, "untrusted_key")
    assert "earlier coordinator key" in refusal.message


async def test_a_rotation_without_the_new_keys_signature_is_refused(net: Net) -> None:
    _, envelope = rotate(net.genesis_keys, at=net.after(1), reason="verdacht")
    stripped = copy.deepcopy(envelope)
    stripped["signatures"] = stripped["signatures"][:1]
    refusal = await refused(post_rotation(net.regie.session.conn, net, stripped))
    assert (refusal.status, refusal.code) == (401, "bad_signature")


async def test_a_rotation_dated_in_the_future_is_refused(net: Net) -> None:
    _, later = rotate(net.genesis_keys, at=net.after(7200), reason="volgende week")
    refusal = await refused(post_rotation(net.regie.session.conn, net, later))
    assert (refusal.status, refusal.code) == (403, "policy_violation")
    assert refusal.details.get("reason") == "rotation-dated-in-future"


async def test_a_rotation_dated_before_what_the_current_key_signed_is_refused(net: Net) -> None:
    """The genesis key signed a revocation dated a few seconds ahead: a rotation dated
    before it would leave it signed by a retired key after its retirement (409)."""
    revocation = revoke_membership(net.genesis_keys, network=net.network,
                                   member=net.shell.key_id, serial=1, at=net.after(5),
                                   reason="vertrekt")
    await net.regie.session.conn.post(net.path("/revocations"), {"revocation": revocation})
    _, early = rotate(net.genesis_keys, at=net.after(2), reason="met terugwerkende kracht")
    refusal = await refused(post_rotation(net.regie.session.conn, net, early))
    assert (refusal.status, refusal.code) == (409, "conflict")


async def test_after_a_rotation_the_server_takes_the_new_key_and_refuses_the_retired_one(
        net: Net) -> None:
    """The new key authenticates as the coordinator and certifies a member; a membership
    the retired key signed, dated after the rotation, is 403 ``untrusted_key``."""
    new_keys, envelope = rotate(net.genesis_keys, at=net.after(1), reason="verdacht")
    await post_rotation(net.regie.session.conn, net, envelope)
    new = signed_as(net, new_keys)
    try:
        late = membership_by(net, net.genesis_keys, PartnerKeys.generate(),
                             valid_from=net.after(1))
        refusal = await refused(new.post(net.path("/members"), {"membership": late}))
        assert (refusal.status, refusal.code) == (403, "untrusted_key")
        assert "retired" in refusal.message
        volunteer = PartnerKeys.generate()
        good = membership_by(net, new_keys, volunteer, valid_from=net.after(0))
        assert await new.post(net.path("/members"), {"membership": good}) == {
            "member": volunteer.key_id, "serial": 1}
    finally:
        await new.close()


async def test_rotations_survive_a_server_restart(tmp_path: Path) -> None:
    keys = ServerKeys.generate()
    async with running_server(tmp_path, keys=keys) as url:
        world = await build(tmp_path, url)
        new_keys, envelope = rotate(world.genesis_keys, at=world.after(1), reason="verdacht")
        await post_rotation(world.regie.session.conn, world, envelope)
        port = int(url.rsplit(":", 1)[1])
    try:
        async with running_server(tmp_path, keys=keys, port=port):
            assert (await world.core.session.conn.get(world.path()))["rotations"] == [envelope]
            new = signed_as(world, new_keys)
            try:
                volunteer = PartnerKeys.generate()
                good = membership_by(world, new_keys, volunteer, valid_from=world.after(0))
                assert (await new.post(world.path("/members"), {"membership": good}))[
                    "member"] == volunteer.key_id
            finally:
                await new.close()
    finally:
        for p in world.partners:
            await p.close()


# =========================================================================== the coordinator's client


async def test_the_coordinator_rotates_its_home_and_members_follow(net: Net, tmp_path: Path) -> None:
    """``rotate_coordinator_key``: the server takes the rotation, the home opens with the
    new key (the old keystore kept), the coordinator's membership is reissued under the
    new key and the old one revoked; a member follows the chain and accepts a
    membership the new key signs; a partner that joins afterwards anchors to the genesis
    fingerprint and follows the chain at first contact."""
    old = net.genesis_keys
    result = await net.regie.rotate_coordinator_key(net.network, reason="laptop gestolen",
                                                    passphrase=PASSPHRASE)
    new_id = result["new"]
    assert result["old"] == old.key_id and net.regie.key_id == new_id
    assert load_keystore(result["retired"], PASSPHRASE).key_id == old.key_id

    await net.core.sync(net.network)
    view = net.core.networks.verified(net.network)
    assert view.coordinator_key_id == new_id and view.is_coordinator(new_id)
    assert not view.is_coordinator(old.key_id)
    assert view.member(old.key_id) is not None and not view.member(old.key_id).current
    me = view.member(new_id)
    assert me is not None and me.current and me.has_role("coordinator") and me.ring == "core"

    volunteer = await make_partner(tmp_path, net.url, "vrijwilligers", name="Buurtvrijwilligers")
    try:
        volunteer.trust(net.network, net.anchor)
        await net.regie.networks.admit(net.network, volunteer.bundle(), ring="core",
                                       party="informal", fingerprint=volunteer.fingerprint)
        await volunteer.networks.accept_covenant(net.network, COVENANT)
        await volunteer.sync(net.network)
        assert volunteer.networks.verified(net.network).coordinator_key_id == new_id
        await net.core.sync(net.network)
        info = net.core.networks.verified(net.network).member(volunteer.key_id)
        assert info is not None and info.current
    finally:
        await volunteer.close()

    await net.regie.close()
    net.regie = await Partner.open(tmp_path / "regie", PASSPHRASE)
    assert net.regie.key_id == new_id
    await net.regie.sync(net.network)


async def test_the_retired_coordinator_key_cannot_act_as_coordinator(net: Net) -> None:
    """After the rotation the old key's membership is revoked and it is no longer the
    coordinator key: a membership it signs, or a request it sends, is refused."""
    old = net.genesis_keys
    await net.regie.rotate_coordinator_key(net.network, reason="laptop gestolen",
                                           passphrase=PASSPHRASE)
    retired = signed_as(net, old)
    try:
        volunteer = PartnerKeys.generate()
        sneaky = membership_by(net, old, volunteer, valid_from=net.after(0))
        refusal = await refused(retired.post(net.path("/members"), {"membership": sneaky}))
        assert refusal.status == 403
    finally:
        await retired.close()


# =========================================================================== a lying server (LS-51)


async def rotated(net: Net) -> tuple[PartnerKeys, dict[str, Any]]:
    """The coordinator rotates; the core member follows.  Returns the genesis keys and
    the rotation."""
    old = net.genesis_keys
    await net.regie.rotate_coordinator_key(net.network, reason="laptop gestolen",
                                           passphrase=PASSPHRASE)
    await net.core.sync(net.network)
    served = await net.core.session.conn.get(net.path())
    return old, served["rotations"][0]


def serve_rotations(net: Net, rotations: list[dict[str, Any]]) -> None:
    def rewrite(body: Any) -> Any:
        body["rotations"] = rotations
        return body
    assert net.env is not None
    net.env.proxy.on("GET", rf"/v1/networks/{net.network}$", rewrite)


async def test_ls51_a_server_that_withholds_a_held_rotation_cannot_take_it_back(net: Net) -> None:
    """Once the member followed the rotation, a server that serves no rotation (the
    genesis key as coordinator again) changes nothing: the member keeps the new key."""
    await rotated(net)
    new_id = net.regie.key_id
    serve_rotations(net, [])
    await net.core.sync(net.network)
    view = net.core.networks.verified(net.network)
    assert view.coordinator_key_id == new_id
    assert not view.is_coordinator(net.genesis_keys.key_id)


async def test_ls51_another_rotation_at_a_held_position_is_caught(net: Net) -> None:
    """A server (or a thief of the genesis key) that serves another rotation of the
    genesis key at position 1 -- to a key it holds -- is ``rotation-untrusted``."""
    old, first = await rotated(net)
    _, other = rotate(old, at=net.after(1), reason="dief")
    serve_rotations(net, [other])
    with pytest.raises(ServerMisbehaviour) as caught:
        await net.core.sync(net.network)
    assert caught.value.what == "rotation-untrusted"
    assert "rotation-untrusted" in [m.get("what") for m in net.core.misbehaviours()]
    assert net.core.networks.verified(net.network).coordinator_key_id == net.regie.key_id
    assert first != other


async def test_ls51_a_rotation_that_does_not_chain_is_caught_at_first_contact(
        net: Net, tmp_path: Path) -> None:
    """A partner that never saw the network: a served rotation not signed by the genesis
    key (a key the server made up) is ``rotation-untrusted``, and nothing is kept."""
    stranger = PartnerKeys.generate()
    _, forged = rotate(stranger, at=net.after(1), reason="vervalst")
    forged = copy.deepcopy(forged)
    forged["signed"]["old"] = net.genesis_keys.key_id
    newcomer = await make_partner(tmp_path, net.url, "nieuw", name="Nieuwe partner")
    try:
        newcomer.trust(net.network, net.anchor)
        await net.regie.networks.admit(net.network, newcomer.bundle(), ring="shell",
                                       party="formal", fingerprint=newcomer.fingerprint)
        serve_rotations(net, [forged])
        with pytest.raises(ServerMisbehaviour) as caught:
            await newcomer.session.trusted(net.network)
        assert caught.value.what == "rotation-untrusted"
        assert newcomer.session.state.docs("rotation", (net.network,)) == []
        assert newcomer.session.state.get_doc("genesis", (net.network,)) is None
    finally:
        await newcomer.close()


async def test_ls51_a_membership_signed_by_the_retired_key_after_the_rotation_is_refused(
        net: Net) -> None:
    """A server that serves a membership the retired (perhaps stolen) genesis key signed,
    dated from the rotation on, makes the member refuse it: ``member-key-substituted``."""
    old, first = await rotated(net)
    at = datetime.fromisoformat(first["signed"]["at"].replace("Z", "+00:00"))
    planted = membership_by(net, old, PartnerKeys.generate(), valid_from=at)

    def rewrite(body: Any) -> Any:
        body["memberships"] = [*body["memberships"], planted]
        return body
    assert net.env is not None
    net.env.proxy.on("GET", rf"/v1/networks/{net.network}/members$", rewrite)
    with pytest.raises(ServerMisbehaviour) as caught:
        await net.core.sync(net.network)
    assert caught.value.what == "member-key-substituted"
    assert net.core.networks.verified(net.network).member(
        planted["signed"]["member"]) is None
