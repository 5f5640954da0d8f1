"""A network's policy changes after the network starts (protocol.md §N.3, §14.3): the
coordinator signs a ``network-policy``, the server checks, audits, serves and enforces it
from the next request, and every partner follows it at its next sync.  Refused: a policy
not signed by the coordinator (by the server, and by a client whose server serves one), a
version that is not the next, an older one served as the newest, one dated in the future,
one that changes what cases were sealed under.

Real partners (``schakel.client.Partner``) against the real server on a real SQLite file,
behind the tampering proxy of :mod:`tests.tamper_proxy` where the server lies.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.client.errors import ServerMisbehaviour, ServerRefused
from schakel.client.partner import Partner
from schakel.keys import PartnerKeys, issue_policy
from schakel.protocol.errors import MalformedError
from schakel.server.serverkeys import ServerKeys
from tests.client_harness import (
    COVENANT, admit, make_partner, network_policy, running_server, server_fingerprint,
)
from tests.tamper_proxy import TamperedServer, tampered_server

CONCERN = "Buurvrouw hoort al dagen geschreeuw en gestommel achter de voordeur."


@dataclass
class Rotterdam:
    """An oggz network (the Lokaal Zorgnetwerk Rotterdam of the report: GGD regie, closed
    core) with a core professional and a shell partner, all synced."""

    url: str
    network: str
    ggd: Partner
    core: Partner
    shell: Partner

    @property
    def partners(self) -> list[Partner]:
        return [self.ggd, self.core, self.shell]


async def rotterdam(tmp_path: Path, url: str) -> Rotterdam:
    ggd = await make_partner(tmp_path, url, "ggd", name="GGD Rotterdam-Rijnmond (regie)")
    network = await ggd.networks.create(
        name="Lokaal Zorgnetwerk Woningvervuiling", kind="oggz", covenant=COVENANT,
        server_fingerprint=server_fingerprint(url), policy=network_policy("oggz"))
    core = await make_partner(tmp_path, url, "bemoeizorg", name="Bemoeizorgteam")
    shell = await make_partner(tmp_path, url, "woningcorporatie", name="Woningcorporatie")
    await admit(ggd, network, core, ring="core", party="formal", roles=("bemoeizorg",))
    await admit(ggd, network, shell, ring="shell", party="formal")
    net = Rotterdam(url, network, ggd, core, shell)
    for p in net.partners:
        await p.sync(network)
    return net


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Rotterdam]:
    async with running_server(tmp_path) as url:
        world = await rotterdam(tmp_path, url)
        try:
            yield world
        finally:
            for p in world.partners:
                await p.close()


def changed(**changes: Any) -> dict[str, Any]:
    return {**network_policy("oggz"), **changes}


def signed_policy(net: Rotterdam, keys: PartnerKeys, version: int, **changes: Any) -> dict[str, Any]:
    """A ``network-policy`` signed by ``keys``, dated by the coordinator's clock."""
    return issue_policy(keys, network=net.network, version=version, issued=net.ggd.session.now(),
                        policy=changed(**changes))


async def post(partner: Partner, net: Rotterdam, envelope: dict[str, Any]) -> Any:
    return await partner.session.conn.post(f"/v1/networks/{net.network}/policies",
                                           {"policy": envelope})


async def refused(call: Any) -> ServerRefused:
    with pytest.raises(ServerRefused) as caught:
        await call
    return caught.value


# =========================================================================== followed


async def test_a_policy_change_is_served_and_followed_by_a_client_that_syncs_after_it(
        net: Rotterdam) -> None:
    """The GGD adds a ground and an allow-list word and stops taking anonymous signals:
    the server enforces it from the next request, and a member that syncs afterwards
    holds version 2 and works under it."""
    await net.shell.signals.send(net.network, CONCERN, anonymous=True)       # version 1 allows
    grounds = [*network_policy("oggz")["bemoeizorg"]["grounds"], "public-aggression"]
    version = await net.ggd.networks.change_policy(net.network, changed(
        anonymous_signals=False, pii_allow=["Afrikaanderwijk"],
        bemoeizorg={**network_policy("oggz")["bemoeizorg"], "grounds": grounds}))
    assert version == 2

    served = await net.core.session.conn.get(f"/v1/networks/{net.network}")
    assert [p["signed"]["version"] for p in served["policies"]] == [2]
    refusal = await refused(net.shell.signals.send(net.network, CONCERN, anonymous=True))
    assert refusal.status == 403 and refusal.details.get("reason") == "anonymous-signals-disabled"

    assert net.core.networks.verified(net.network).policy_version == 1       # not synced yet
    await net.core.sync(net.network)
    view = net.core.networks.verified(net.network)
    assert view.policy_version == 2 and not view.policy["anonymous_signals"]
    assert "public-aggression" in view.policy["bemoeizorg"]["grounds"]
    assert net.core.networks.pii_allow(net.network) == ("Afrikaanderwijk",)


async def test_a_policy_change_is_in_the_audit_log(net: Rotterdam) -> None:
    await net.ggd.networks.change_policy(net.network, changed(intake_rate_per_hour=10))
    entries = [e["entry"] for e in await net.ggd.audit.entries(net.network) if e.get("entry")]
    policy = [e for e in entries if e["action"] == "policy"]
    assert len(policy) == 1
    assert policy[0]["actor"]["partner"] == net.ggd.key_id
    assert policy[0]["actor"]["role"] == "coordinator"
    assert policy[0]["reason"].startswith("network policy version 2 in force from ")


async def test_the_policy_in_force_survives_a_server_restart(tmp_path: Path) -> None:
    keys = ServerKeys.generate()
    async with running_server(tmp_path, keys=keys) as url:
        world = await rotterdam(tmp_path, url)
        await world.ggd.networks.change_policy(world.network, changed(anonymous_signals=False))
        port = int(url.rsplit(":", 1)[1])
    try:
        async with running_server(tmp_path, keys=keys, port=port):
            refusal = await refused(world.shell.signals.send(world.network, CONCERN,
                                                             anonymous=True))
            assert refusal.details.get("reason") == "anonymous-signals-disabled"
            await world.core.sync(world.network)
            assert world.core.networks.verified(world.network).policy_version == 2
    finally:
        for p in world.partners:
            await p.close()


# =========================================================================== refused by the server


async def test_a_policy_not_signed_by_the_coordinator_is_refused_by_the_server(
        net: Rotterdam) -> None:
    forged = signed_policy(net, net.core.session.keys, 2, anonymous_signals=False)
    refusal = await refused(post(net.ggd, net, forged))                 # carried by the GGD
    assert refusal.status == 401 and refusal.code == "bad_signature"
    refusal = await refused(post(net.core, net, forged))                # sent by the member
    assert refusal.status == 403
    served = await net.core.session.conn.get(f"/v1/networks/{net.network}")
    assert served["policies"] == []
    await net.shell.signals.send(net.network, CONCERN, anonymous=True)  # version 1 still rules


async def test_an_older_policy_is_not_replayable_as_a_newer_one(net: Rotterdam) -> None:
    """Version 2 (anonymous signals off), then version 3 (on again).  Sending version 2
    again is the same write (200) and changes nothing; another version 2, a version that
    skips one, version 2 with its number raised and a version 4 dated before version 3
    are refused."""
    keys = net.ggd.session.keys
    created = net.ggd.networks.verified(net.network).verified.created

    def dated(version: int, seconds: int, **changes: Any) -> dict[str, Any]:
        return issue_policy(keys, network=net.network, version=version,
                            issued=created + timedelta(seconds=seconds), policy=changed(**changes))

    v2 = dated(2, 0, anonymous_signals=False)
    assert await post(net.ggd, net, v2) == {"network": net.network, "version": 2}
    assert await post(net.ggd, net, dated(3, 2)) == {"network": net.network, "version": 3}

    assert await post(net.ggd, net, v2) == {"network": net.network, "version": 2}   # a retry
    await net.shell.signals.send(net.network, CONCERN, anonymous=True)  # version 3 rules
    other_v2 = dated(2, 0, intake_rate_per_hour=5)
    assert (await refused(post(net.ggd, net, other_v2))).code == "conflict"
    assert (await refused(post(net.ggd, net, dated(5, 3)))).code == "conflict"
    raised = copy.deepcopy(v2)
    raised["signed"]["version"] = 4                                     # the signature covers it
    assert (await refused(post(net.ggd, net, raised))).code == "bad_signature"
    assert (await refused(post(net.ggd, net, dated(4, 1)))).code == "conflict"  # before v3
    await net.core.sync(net.network)
    assert net.core.networks.verified(net.network).policy_version == 3


async def test_a_policy_dated_in_the_future_is_refused(net: Rotterdam) -> None:
    later = issue_policy(net.ggd.session.keys, network=net.network, version=2,
                         issued=net.ggd.session.now() + timedelta(days=2), policy=changed())
    refusal = await refused(post(net.ggd, net, later))
    assert refusal.status == 403 and refusal.details.get("reason") == "policy-dated-in-future"


async def test_a_policy_that_changes_classes_or_blind_index_is_refused(net: Rotterdam) -> None:
    classes = {**network_policy("oggz")["classes"], "housing": {"fields": ["landlord"]}}
    with pytest.raises(MalformedError, match=r"policy\.classes"):       # refused before sending
        await net.ggd.networks.change_policy(net.network, changed(classes=classes))
    envelope = signed_policy(net, net.ggd.session.keys, 2,
                             blind_index={"opslimit": 2, "memlimit": 8192, "token_bytes": 4})
    refusal = await refused(post(net.ggd, net, envelope))
    assert refusal.status == 400 and refusal.code == "malformed"
    assert refusal.details.get("field") == "policy.blind_index"


# =========================================================================== refused by the client


@dataclass
class Lying:
    env: TamperedServer
    net: Rotterdam


@pytest.fixture
async def lying(tmp_path: Path) -> AsyncIterator[Lying]:
    async with tampered_server(tmp_path) as env:
        world = await rotterdam(tmp_path, env.url)
        try:
            yield Lying(env, world)
        finally:
            for p in world.partners:
                await p.close()


def serve_policies(lying: Lying, policies: list[dict[str, Any]]) -> None:
    def rewrite(body: Any) -> Any:
        body["policies"] = policies
        return body
    lying.env.proxy.on("GET", rf"/v1/networks/{lying.net.network}$", rewrite)


async def test_a_policy_not_signed_by_the_coordinator_served_by_the_server_is_refused(
        lying: Lying) -> None:
    net = lying.net
    forged = signed_policy(net, PartnerKeys.generate(), 2, anonymous_signals=False)
    serve_policies(lying, [forged])
    with pytest.raises(ServerMisbehaviour) as caught:
        await net.core.sync(net.network)
    assert caught.value.what == "policy-untrusted"
    assert "policy-untrusted" in [m.get("what") for m in net.core.misbehaviours()]
    lying.env.proxy.clear()
    await net.core.sync(net.network)
    assert net.core.networks.verified(net.network).policy_version == 1   # nothing was kept


async def test_a_server_cannot_roll_a_client_back_to_an_older_policy(lying: Lying) -> None:
    """A client that followed version 3 keeps it when the server serves only version 2
    (or nothing); another object served as version 3 is refused."""
    net = lying.net
    await net.ggd.networks.change_policy(net.network, changed(anonymous_signals=False))
    await net.ggd.networks.change_policy(net.network, changed(intake_rate_per_hour=30))
    await net.core.sync(net.network)
    served = (await net.core.session.conn.get(f"/v1/networks/{net.network}"))["policies"]
    assert net.core.networks.verified(net.network).policy_version == 3

    for stale in ([served[0]], []):
        serve_policies(lying, stale)
        await net.core.sync(net.network)
        view = net.core.networks.verified(net.network)
        assert view.policy_version == 3 and view.policy["intake_rate_per_hour"] == 30
    other_v3 = signed_policy(net, net.ggd.session.keys, 3, intake_rate_per_hour=1000)
    serve_policies(lying, [served[0], other_v3])
    with pytest.raises(ServerMisbehaviour) as caught:
        await net.core.sync(net.network)
    assert caught.value.what == "policy-untrusted"
