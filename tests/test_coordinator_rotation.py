"""Coordinator key rotation followed by the client (protocol.md §4.6.2, §4.6.3, §16.3;
ADR 0046): a member follows the chain the server serves from the genesis fingerprint,
keeps what it verified, and catches a server that withholds or swaps a rotation or serves
a membership the retired key signed after its retirement (LS-51); the coordinator's own
client rotates its home to the new key and reissues its membership under it.  What the
server checks is in ``tests/test_server_rotation.py``.

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
from schakel.keys import Fingerprint, PartnerKeys, issue_membership, load_keystore
from schakel.keys.rotation import rotate
from schakel.protocol.errors import MalformedError
from tests.client_harness import (
    COVENANT, PASSPHRASE, admit, make_partner, network_policy, server_fingerprint,
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


# =========================================================================== a member follows


async def test_a_member_follows_a_chain_of_two_rotations(net: Net) -> None:
    """Two rotations, each sent with the then-current key (identical retries included):
    the network answer serves both in chain order and a member that syncs follows the
    chain to the last key."""
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


# =========================================================================== the coordinator's client


async def test_the_coordinator_rotates_its_home_and_members_follow(net: Net,
                                                                  tmp_path: Path) -> None:
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


async def test_a_home_that_takes_part_in_another_network_is_not_rotated(
        net: Net, tmp_path: Path) -> None:
    """The coordinator is also a member of another network: its key there belongs to
    that network's coordinator, so the rotation is refused before anything is sent."""
    other = await make_partner(tmp_path, net.url, "ggd", name="GGD regio Utrecht (regie)")
    try:
        second = await other.networks.create(
            name="OGGZ-netwerk Amersfoort", kind="oggz", covenant=COVENANT,
            server_fingerprint=server_fingerprint(net.url), policy=network_policy("oggz"))
        await admit(other, second, net.regie, ring="shell", party="formal")
        await net.regie.sync(second)
        with pytest.raises(MalformedError) as caught:
            await net.regie.rotate_coordinator_key(net.network, reason="laptop gestolen",
                                                   passphrase=PASSPHRASE)
        assert caught.value.details == {"network": second}
    finally:
        await other.close()
    assert net.regie.key_id == net.genesis_keys.key_id
    assert (await net.core.session.conn.get(net.path()))["rotations"] == []
    assert not list((tmp_path / "regie").glob("keystore.json.*"))


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
