"""The client's checks of the trust log (docs/protocol.md §15.8, §16.3; ADR 0048; threat model
LS-24, LS-36, LS-54): the chain a server serves must be the chain it logged, under a checkpoint
signed by its log key and consistent with the one the client holds.

Real partners (``schakel.client.Partner``) against the real server behind the tampering
proxy of :mod:`tests.tamper_proxy`.  Each test checks that the proxy really rewrote an
answer, that the client raised and recorded the misbehaviour, and that nothing of the lie
was kept.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner, ServerMisbehaviour
from schakel.client.trustlog import CHECKPOINT_DOC
from schakel.keys.certify import issue_membership
from schakel.keys import PartnerKeys
from schakel.protocol import merkle
from schakel.protocol.crypto import Signer
from schakel.protocol.note import parse_checkpoint, parse_note
from schakel.protocol.trustlog import entry_data
from schakel.protocol.witnessing import TRUST, sign_checkpoint
from tests.client_harness import COVENANT, admit, make_partner, network_policy, server_fingerprint
from tests.tamper_proxy import TamperedServer, caught_by, tampered_server


@dataclass
class World:
    """A coordinator and a core member (the victim), synced; a third partner admitted and
    removed again before anyone else joins."""

    env: TamperedServer
    coord: Partner
    victim: Partner
    removed: str
    network: str
    tmp_path: Path

    @property
    def proxy(self) -> Any:
        return self.env.proxy

    def path(self, suffix: str = "") -> str:
        return rf"/v1/networks/{re.escape(self.network)}{suffix}"

    def logged(self) -> list[tuple[str, dict[str, Any]]]:
        """The trust log as the server stored it: (type, envelope) by index."""
        import json
        with sqlite3.connect(f"file:{self.env.db_path}?mode=ro", uri=True) as db:
            return [(r[0], json.loads(r[1])) for r in db.execute(
                "SELECT type, envelope FROM trust_entries WHERE network = ? ORDER BY idx",
                (self.network,))]

    async def newcomer(self, label: str) -> Partner:
        """A partner admitted now (its membership stored), that has read nothing yet."""
        p = await make_partner(self.tmp_path, self.env.url, label)
        p.trust(self.network, self.coord.fingerprint)
        await self.coord.networks.admit(self.network, p.bundle(), ring="core", party="formal",
                                        fingerprint=p.fingerprint)
        return p


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with tampered_server(tmp_path) as env:
        coord = await make_partner(tmp_path, env.url, "coordinator")
        victim = await make_partner(tmp_path, env.url, "victim")
        gone = await make_partner(tmp_path, env.url, "gone")
        try:
            network = await coord.networks.create(
                name="Buurtnetwerk Trust", kind="neighbourhood", covenant=COVENANT,
                server_fingerprint=server_fingerprint(env.url),
                policy=network_policy("neighbourhood"))
            await admit(coord, network, victim, ring="core", party="formal")
            removed = await admit(coord, network, gone, ring="core", party="formal")
            await coord.networks.remove(network, removed, reason="convenant opgezegd")
            for p in (coord, victim):
                await p.sync(network)
            yield World(env, coord, victim, removed, network, tmp_path)
        finally:
            for p in (coord, victim, gone):
                await p.close()


async def caught(w: World, p: Partner, call: Awaitable[Any], what: str) -> ServerMisbehaviour:
    """``call`` raises ServerMisbehaviour ``what`` after the proxy rewrote an answer, and
    ``p`` recorded it."""
    exc: ServerMisbehaviour = await caught_by(w.proxy, p, call, what)
    return exc


def held_checkpoint(p: Partner, network: str) -> Any:
    return p.session.state.get_doc(CHECKPOINT_DOC, (network,))


def without_revocations(body: Any) -> Any:
    return {**body, "revocations": []}


# =========================================================================== LS-24


async def test_ls24_a_revocation_withheld_from_a_newcomer_is_chain_withheld(world: World) -> None:
    """A partner that joins after a revocation never saw it; the server leaves it out of
    ``.../members``, but its trust log holds it: ``chain-withheld``, and the newcomer keeps
    no view of the network (nothing it could seal to the removed member from)."""
    w = world
    newcomer = await w.newcomer("newcomer")
    try:
        w.proxy.on("GET", w.path("/members"), without_revocations)
        exc = await caught(w, newcomer, newcomer.sync(w.network), "chain-withheld")
        assert exc.details["kind"] == "membership-revocation"
        assert held_checkpoint(newcomer, w.network) is None
        assert not newcomer.session.state.docs("membership", (w.network,))
    finally:
        await newcomer.close()


async def test_ls24_a_revocation_withheld_from_a_member_that_held_it_changes_nothing(
        world: World) -> None:
    """A member that verified the revocation keeps it (§16.3), and the log agrees with what
    it holds: the removed member stays removed, nothing is raised."""
    w = world
    w.proxy.on("GET", w.path("/members"), without_revocations)
    await w.victim.sync(w.network)
    assert w.proxy.hits() > 0
    current = {m["key_id"]: m["current"] for m in w.victim.networks.members(w.network)}
    assert current[w.removed] is False


def _cut(w: World, how: str) -> None:
    """Serve the chain without the removed member (its membership, acceptance and
    revocation): from ``.../members`` and from the trust log, under the latest checkpoint.
    ``tail``: the log ends before the first of them; ``entry``: they are left out, the
    entries after them renumbered and the log padded to the checkpoint's size with copies
    of its last entry."""
    hidden = {i for i, (_, env) in enumerate(w.logged())
              if env["signed"].get("member") == w.removed}
    first = min(hidden)

    def members(body: Any) -> Any:
        return {name: [env for env in envs if env["signed"].get("member") != w.removed]
                for name, envs in body.items()}

    def trust(body: Any, ex: Any) -> Any:
        after = int(ex.query.get("after", "0"))
        log = [env for _, env in w.logged()]
        if how == "tail":
            items = [{"index": i, "envelope": log[i]} for i in range(after, first)]
        else:
            kept = [env for i, env in enumerate(log) if i not in hidden]
            kept += [kept[-1]] * len(hidden)
            items = [{"index": i, "envelope": env} for i, env in enumerate(kept) if i >= after]
        return {"items": items, "cursor": str(items[-1]["index"] + 1 if items else after)}

    w.proxy.on("GET", w.path("/members"), members)
    w.proxy.on_exchange("GET", w.path("/trust"), trust)


@pytest.mark.parametrize(("how", "what"), [("tail", "chain-withheld"),
                                           ("entry", "trust-log-rewritten")])
async def test_ls24_a_shortened_chain_served_to_a_newcomer_under_the_latest_checkpoint(
        world: World, how: str, what: str) -> None:
    """A newcomer is served a chain without a removed member and a trust log cut to match,
    under the latest checkpoint: a log that ends below the checkpoint's size is
    ``chain-withheld``, one of the right size with entries left out does not hash to its
    root (``trust-log-rewritten``).  (A cut log under an *older* checkpoint needs the witnesses'
    freshness to be caught: §15.8.)"""
    w = world
    newcomer = await w.newcomer(f"newcomer-{how}")
    try:
        _cut(w, how)
        await caught(w, newcomer, newcomer.sync(w.network), what)
        assert held_checkpoint(newcomer, w.network) is None
    finally:
        await newcomer.close()


async def test_ls36_a_policy_version_withheld_from_a_newcomer_is_chain_withheld(
        world: World) -> None:
    """The coordinator puts a new policy version in force; a partner that joins after it is
    served only the genesis's policy, but the trust log holds the new version:
    ``chain-withheld``, and no policy version is kept."""
    w = world
    await w.coord.networks.change_policy(
        w.network, {**network_policy("neighbourhood"), "anonymous_signals": False})
    newcomer = await w.newcomer("newcomer")
    try:
        w.proxy.on("GET", w.path(), lambda body: {**body, "policies": []})
        exc = await caught(w, newcomer, newcomer.sync(w.network), "chain-withheld")
        assert exc.details["kind"] == "network-policy"
        assert not newcomer.session.state.docs("policy", (w.network,))
    finally:
        await newcomer.close()


# =========================================================================== LS-54


async def test_ls54_a_rewritten_trust_entry_is_trust_log_rewritten(world: World) -> None:
    """The server changes a logged entry (another acceptance in place of one logged): the
    leaves no longer hash to the checkpoint's root."""
    w = world
    newcomer = await w.newcomer("newcomer")
    try:
        index = max(i for i, (kind, _) in enumerate(w.logged()) if kind == "covenant-acceptance")

        def rewrite(body: Any) -> Any:
            for item in body["items"]:
                if item["index"] == index:
                    item["envelope"]["signed"]["at"] = "2020-01-01T00:00:00Z"
            return body

        w.proxy.on("GET", w.path("/trust"), rewrite)
        await caught(w, newcomer, newcomer.sync(w.network), "trust-log-rewritten")
    finally:
        await newcomer.close()


async def test_ls54_a_trust_checkpoint_not_signed_by_the_log_key_is_refused(world: World) -> None:
    """The same checkpoint text signed by another key under the trust origin is
    ``bad-signature``; the checkpoint held stays the one verified before."""
    w = world
    held = held_checkpoint(w.victim, w.network)
    other = Signer.generate()

    def resign(body: Any) -> Any:
        checkpoint = parse_checkpoint(parse_note(body["checkpoint"]).text)
        forged = sign_checkpoint(TRUST, w.network, checkpoint.size, checkpoint.root, other)
        return {"checkpoint": forged.format(), "latest": forged.format()}

    w.proxy.on("GET", w.path("/trust/checkpoint"), resign)
    await caught(w, w.victim, w.victim.sync(w.network), "bad-signature")
    assert held_checkpoint(w.victim, w.network) == held


@pytest.mark.parametrize(("how", "what"), [("smaller", "trust-log-rollback"),
                                           ("same-size", "trust-log-fork")])
async def test_ls54_a_trust_checkpoint_behind_or_beside_the_one_held(
        world: World, how: str, what: str) -> None:
    """Signed with the server's own log key: a checkpoint of fewer entries than the one held
    is a rollback; one of the same size with another root a fork."""
    w = world
    held = held_checkpoint(w.victim, w.network)
    log = [entry_data(env) for _, env in w.logged()]
    size = len(log) - 1 if how == "smaller" else len(log)
    assert held["size"] == len(log)
    root = merkle.root_hash(log[:size]) if how == "smaller" else merkle.root_hash(log[::-1])

    def replace(body: Any) -> Any:
        note = sign_checkpoint(TRUST, w.network, size, root, w.env.log_signer).format()
        return {"checkpoint": note, "latest": note}

    w.proxy.on("GET", w.path("/trust/checkpoint"), replace)
    await caught(w, w.victim, w.victim.sync(w.network), what)
    assert held_checkpoint(w.victim, w.network) == held


async def test_ls54_a_served_membership_that_is_not_logged_is_chain_not_logged(
        world: World) -> None:
    """A membership signed with the coordinator's real key but never accepted by the server
    (so not in its log) is served with the members: ``chain-not-logged``, and the partner
    does not take it as a member."""
    w = world
    stranger = PartnerKeys.generate()
    now = w.coord.session.now()
    forged = issue_membership(w.coord.session.keys, network=w.network, kind="neighbourhood",
                              member=stranger.public, name="Onbekende partij", ring="core",
                              party="formal", roles=(), serial=1,
                              valid_from=now - timedelta(minutes=5),
                              valid_until=now + timedelta(days=30))

    def add(body: Any) -> Any:
        return {**body, "memberships": [*body["memberships"], forged]}

    w.proxy.on("GET", w.path("/members"), add)
    await caught(w, w.victim, w.victim.sync(w.network), "chain-not-logged")
    assert stranger.key_id not in {m["key_id"] for m in w.victim.networks.members(w.network)}


async def test_the_trust_log_grows_with_the_chain_for_a_member_that_holds_it(
        world: World) -> None:
    """An honest server: a member that holds a checkpoint follows the log as new members
    join (a consistency proof from the one held), and keeps one leaf per entry."""
    w = world
    before = held_checkpoint(w.victim, w.network)["size"]
    newcomer = await w.newcomer("newcomer")
    try:
        await newcomer.networks.accept_covenant(w.network, COVENANT)
        await w.victim.sync(w.network)
        await newcomer.sync(w.network)
    finally:
        await newcomer.close()
    after = held_checkpoint(w.victim, w.network)["size"]
    assert after == len(w.logged()) >= before + 2
    assert len(w.victim.session.state.docs("trust-leaf", (w.network,))) == after
    assert w.proxy.seen("GET", w.path("/trust/proof/consistency"))
