"""The server takes, audits, serves and follows a coordinator key rotation (protocol.md
§4.6.2, §4.6.3, §14.3 ``POST .../rotations``; ADR 0046).

The real application on a real SQLite file (``tests/server_harness.py``), every request
signed with real keys, the server's clock a :class:`FakeClock` that moves only when a test
says so: each rotation is dated exactly where the rule under test puts it.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio

from schakel.keys import PartnerKeys, issue_membership, revoke_membership
from schakel.keys.rotation import rotate
from schakel.protocol.objects.base import parse_timestamp
from tests.server_harness import (
    Actor, Caller, FakeClock, InProcessServer, Network, assert_error, assert_status, register,
    server_keys,
)


class Rig:
    """A network on a running in-process server: its coordinator (the genesis key), a core
    member and a shell member."""

    def __init__(self, server: InProcessServer, caller: Caller, net: Network, core: Actor,
                 shell: Actor) -> None:
        self.server, self.caller, self.net, self.core, self.shell = server, caller, net, core, shell

    @property
    def clock(self) -> FakeClock:
        assert isinstance(self.server.clock, FakeClock)
        return self.server.clock

    def at(self, seconds: int) -> datetime:
        """The server's time plus ``seconds``."""
        return self.clock.now() + timedelta(seconds=seconds)

    def as_key(self, keys: PartnerKeys, label: str = "regie-new") -> Actor:
        """The coordinator acting with ``keys`` (another key of its chain)."""
        return Actor(label=label, keys=keys, name=self.net.coordinator.name,
                     acting_user=self.net.coordinator.acting_user)

    async def post_rotation(self, actor: Actor, envelope: dict[str, Any]) -> Any:
        return await self.caller.post(self.net.path("/rotations"), actor, {"rotation": envelope})

    async def rotations(self) -> list[dict[str, Any]]:
        answer = assert_status(await self.caller.get(self.net.path(), self.core), 200)
        return list(answer["rotations"])


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = InProcessServer(tmp_path / "data", FakeClock())
    caller = await server.start()
    net = Network(await server_keys(caller), caller.clock)
    core = net.actor("wijkteam", ring="core")
    shell = net.actor("huisarts", ring="shell")
    world = Rig(server, caller, net, core, shell)
    try:
        await register(caller, net, [core, shell])
        world.clock.advance(60)
        yield world
    finally:
        await world.server.stop()      # the restarted one, if a test restarted it


def membership_by(rig: Rig, keys: PartnerKeys, member: PartnerKeys, *,
                  valid_from: datetime) -> dict[str, Any]:
    return issue_membership(keys, network=rig.net.id, kind=rig.net.kind, member=member.public,
                            name="Buurtvrijwilligers", ring="core", party="informal", roles=(),
                            serial=1, valid_from=valid_from,
                            valid_until=valid_from + timedelta(days=30))


async def test_rotations_are_served_in_order_and_retries_are_the_same_write(rig: Rig) -> None:
    """Two rotations, each sent with the then-current key: the network answer serves both
    in chain order; an identical retry, by the old or the new key, answers 200 and the
    position it holds."""
    genesis = rig.net.coordinator
    first_keys, first = rotate(genesis.keys, at=rig.at(-20), reason="laptop gestolen")
    second_keys, second = rotate(first_keys, at=rig.at(-10), reason="tweede wissel")
    first_actor = rig.as_key(first_keys)
    assert assert_status(await rig.post_rotation(genesis, first), 201) == {
        "network": rig.net.id, "position": 1}
    assert assert_status(await rig.post_rotation(first_actor, second), 201) == {
        "network": rig.net.id, "position": 2}
    assert assert_status(await rig.post_rotation(first_actor, second), 200)["position"] == 2
    assert assert_status(await rig.post_rotation(genesis, first), 200)["position"] == 1
    assert assert_status(await rig.post_rotation(rig.as_key(second_keys), second), 200)[
        "position"] == 2
    assert await rig.rotations() == [first, second]


async def test_a_rotation_is_audited_as_key_rotation(rig: Rig) -> None:
    new_keys, envelope = rotate(rig.net.coordinator.keys, at=rig.at(0), reason="verdacht")
    assert_status(await rig.post_rotation(rig.net.coordinator, envelope), 201)
    page = assert_status(await rig.caller.get(rig.net.path("/audit/entries?limit=500"),
                                              rig.as_key(new_keys)), 200)
    entries = [item["entry"] for item in page["items"] if item.get("entry")]
    rotations = [e for e in entries if e["action"] == "key-rotation"]
    assert len(rotations) == 1
    entry = rotations[0]
    assert (entry["actor"]["partner"], entry["actor"]["role"]) == (
        rig.net.coordinator.key_id, "coordinator")
    assert (entry["basis"], entry["outcome"], entry["subject"]) == ("none", "allow",
                                                                     new_keys.key_id)
    assert new_keys.key_id in entry["reason"] and "verdacht" not in entry["reason"]


async def test_a_rotation_not_of_the_current_coordinator_key_is_refused(rig: Rig) -> None:
    """Of a member's key: 403 ``untrusted_key``; sent by a member: 403 ``forbidden``; of
    the genesis key once it was rotated away: 403 ``untrusted_key``."""
    genesis = rig.net.coordinator
    _, of_member = rotate(rig.core.keys, at=rig.at(0), reason="niet van regie")
    assert_error(await rig.post_rotation(genesis, of_member), 403, "untrusted_key")
    _, valid = rotate(genesis.keys, at=rig.at(0), reason="verdacht")
    assert_error(await rig.post_rotation(rig.core, valid), 403, "forbidden")

    first_keys, first = rotate(genesis.keys, at=rig.at(0), reason="verdacht")
    assert_status(await rig.post_rotation(genesis, first), 201)
    _, again = rotate(genesis.keys, at=rig.at(1), reason="nog een keer")
    assert_error(await rig.post_rotation(rig.as_key(first_keys), again), 403, "untrusted_key")
    assert await rig.rotations() == [first]


async def test_a_rotation_out_of_order_is_refused(rig: Rig) -> None:
    """Dated at the genesis's ``created``, or at or before the previous rotation: 403
    ``untrusted_key``."""
    genesis = rig.net.coordinator
    created = parse_timestamp(rig.net.genesis["signed"]["created"])
    _, at_genesis = rotate(genesis.keys, at=created, reason="te vroeg")
    assert_error(await rig.post_rotation(genesis, at_genesis), 403, "untrusted_key")

    first_keys, first = rotate(genesis.keys, at=rig.at(-10), reason="verdacht")
    assert_status(await rig.post_rotation(genesis, first), 201)
    for seconds in (-10, -11):
        _, earlier = rotate(first_keys, at=rig.at(seconds), reason="terug in de tijd")
        assert_error(await rig.post_rotation(rig.as_key(first_keys), earlier), 403,
                     "untrusted_key")


async def test_a_rotation_back_to_an_earlier_coordinator_key_is_refused(rig: Rig) -> None:
    genesis = rig.net.coordinator
    first_keys, first = rotate(genesis.keys, at=rig.at(-10), reason="verdacht")
    assert_status(await rig.post_rotation(genesis, first), 201)
    _, back = rotate(first_keys, at=rig.at(0), reason="terug", new=genesis.keys)
    reply = await rig.post_rotation(rig.as_key(first_keys), back)
    assert_error(reply, 403, "untrusted_key")
    assert "earlier coordinator key" in reply.json["error"]["message"]


async def test_a_rotation_without_both_signatures_is_refused(rig: Rig) -> None:
    _, envelope = rotate(rig.net.coordinator.keys, at=rig.at(0), reason="verdacht")
    for keep in (slice(0, 1), slice(1, 2)):
        stripped = copy.deepcopy(envelope)
        stripped["signatures"] = stripped["signatures"][keep]
        assert_error(await rig.post_rotation(rig.net.coordinator, stripped), 401,
                     "bad_signature")
    assert await rig.rotations() == []


async def test_a_rotation_dated_in_the_future_is_refused(rig: Rig) -> None:
    _, later = rotate(rig.net.coordinator.keys, at=rig.at(3600), reason="volgend uur")
    reply = await rig.post_rotation(rig.net.coordinator, later)
    assert_error(reply, 403, "policy_violation")
    assert reply.json["error"]["details"]["reason"] == "rotation-dated-in-future"


async def test_a_rotation_dated_before_what_the_current_key_signed_is_refused(rig: Rig) -> None:
    """A revocation the genesis key dated ``t``: a rotation dated at or before ``t``
    would leave it signed by a retired key after its retirement (409); after it, fine."""
    revocation = revoke_membership(rig.net.coordinator.keys, network=rig.net.id,
                                   member=rig.shell.key_id, serial=1, at=rig.at(-5),
                                   reason="vertrekt")
    assert_status(await rig.caller.post(rig.net.path("/revocations"), rig.net.coordinator,
                                        {"revocation": revocation}), 201)
    for seconds in (-5, -6):
        _, early = rotate(rig.net.coordinator.keys, at=rig.at(seconds), reason="te vroeg")
        assert_error(await rig.post_rotation(rig.net.coordinator, early), 409, "conflict")
    _, after = rotate(rig.net.coordinator.keys, at=rig.at(-4), reason="verdacht")
    assert_status(await rig.post_rotation(rig.net.coordinator, after), 201)


async def test_after_a_rotation_the_new_key_is_the_coordinator_and_the_retired_key_is_refused(
        rig: Rig) -> None:
    """The new key, without a membership, certifies a member; the genesis key signs no
    membership dated from the rotation on (403 ``untrusted_key``) while one it dated
    before stays good; once its own membership is revoked it has no standing left."""
    genesis = rig.net.coordinator
    new_keys, envelope = rotate(genesis.keys, at=rig.at(-30), reason="verdacht")
    assert_status(await rig.post_rotation(genesis, envelope), 201)
    new = rig.as_key(new_keys)

    volunteer = PartnerKeys.generate()
    late = membership_by(rig, genesis.keys, volunteer, valid_from=rig.at(-30))
    reply = await rig.caller.post(rig.net.path("/members"), new, {"membership": late})
    assert_error(reply, 403, "untrusted_key")
    assert "retired" in reply.json["error"]["message"]
    before = membership_by(rig, genesis.keys, volunteer, valid_from=rig.at(-31))
    assert_status(await rig.caller.post(rig.net.path("/members"), new,
                                        {"membership": before}), 201)
    other = PartnerKeys.generate()
    good = membership_by(rig, new_keys, other, valid_from=rig.at(0))
    assert_status(await rig.caller.post(rig.net.path("/members"), new, {"membership": good}),
                  201)

    revocation = revoke_membership(new_keys, network=rig.net.id, member=genesis.key_id,
                                   serial=1, at=rig.at(0), reason="sleutel vervangen")
    assert_status(await rig.caller.post(rig.net.path("/revocations"), new,
                                        {"revocation": revocation}), 201)
    rig.clock.advance(1)
    third = membership_by(rig, new_keys, PartnerKeys.generate(), valid_from=rig.at(0))
    assert_error(await rig.caller.post(rig.net.path("/members"), genesis,
                                       {"membership": third}), 403,
                 ("forbidden", "untrusted_key"))
    assert_error(await rig.caller.get(rig.net.path(), genesis), 403,
                 ("forbidden", "untrusted_key"))


async def test_rotations_survive_a_server_restart(rig: Rig) -> None:
    genesis = rig.net.coordinator
    new_keys, envelope = rotate(genesis.keys, at=rig.at(0), reason="verdacht")
    assert_status(await rig.post_rotation(genesis, envelope), 201)
    await rig.server.stop()
    rig.server = rig.server.restarted()
    rig.caller = await rig.server.start()
    assert await rig.rotations() == [envelope]
    late = membership_by(rig, genesis.keys, PartnerKeys.generate(), valid_from=rig.at(0))
    assert_error(await rig.caller.post(rig.net.path("/members"), rig.as_key(new_keys),
                                       {"membership": late}), 403, "untrusted_key")
    good = membership_by(rig, new_keys, PartnerKeys.generate(), valid_from=rig.at(0))
    assert_status(await rig.caller.post(rig.net.path("/members"), rig.as_key(new_keys),
                                        {"membership": good}), 201)
