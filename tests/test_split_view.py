"""A split view of a network's audit log is caught once its policy requires a witness quorum
(docs/protocol.md §17.5; threat model LS-19, LS-54).

The real server sits behind the tampering proxy (tests/tamper_proxy.py); two real witnesses
(tests/witness_harness.py) cosign its checkpoints.  The server collects their cosignatures
(server/witnessing.py ``collect``, run on the spot here instead of waiting for the background
task).  The coordinator sees the real log; the proxy shows the victim, and only the victim, a
forked log re-signed with the server's real log key, with each way a server could then answer
for the checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schakel.client import Partner, ServerMisbehaviour
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.encoding import b64d
from schakel.protocol.note import parse_note
from schakel.protocol.witnessing import (
    AUDIT, NotWitnessedError, sign_checkpoint, verify_network_checkpoint,
)
from schakel.server.audit import entry_count
from schakel.server.config import Limits
from schakel.server.witnessing import collect, cosignatures, submission
from tests.client_harness import COVENANT, make_partner, network_policy, server_fingerprint
from tests.tamper_proxy import TamperedServer, tampered_server
from tests.witness_harness import Witness, running_witnesses, witness_policy


#: The server's own witness pass is left for an hour: each test runs ``collect`` itself, so
#: no background pass races the states a test sets up.
QUIET = Limits(witness_interval=3600.0)


@dataclass
class Watched:
    env: TamperedServer
    witnesses: list[Witness]
    coord: Partner
    victim: Partner
    network: str
    log_key: VerifyKey

    async def collect(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            return await collect(self.env.ctx, http)

    async def checkpoint(self, partner: Partner) -> str:
        answer = await partner.session.conn.get(f"/v1/networks/{self.network}/audit/checkpoint")
        return str(answer["checkpoint"])


async def watched_network(tmp_path: Path, env: TamperedServer, witnesses: list[Witness], *,
                          quorum: int, add_to: list[Witness] | None = None) -> Watched:
    """A network founded without witnesses, as a coordinator does: a core member (the
    victim) and a shell member admitted; ``add_to`` (default all of ``witnesses``) are told
    to witness its logs; then a policy version names ``witnesses`` with ``quorum`` (the
    server asks them at once), and one more pass is run."""
    coord = await make_partner(tmp_path, env.url, "coordinator")
    victim = await make_partner(tmp_path, env.url, "victim")
    network = await coord.networks.create(name="Buurtnetwerk Soesterkwartier",
                                          kind="neighbourhood", covenant=COVENANT,
                                          server_fingerprint=server_fingerprint(env.url),
                                          policy=network_policy())
    log_key = env.log_signer.verify_key
    for w in witnesses if add_to is None else add_to:
        w.add_network(network, log_key)
    await coord.networks.admit(network, victim.bundle(), ring="core", party="formal",
                               fingerprint=victim.fingerprint)
    victim.trust(network, coord.fingerprint)
    await victim.networks.accept_covenant(network, COVENANT)
    # One more member after the victim: the newest entries are ones the victim has not yet
    # seen a head of, so a fork of them is what only the witnesses can show it.
    extra = await make_partner(tmp_path, env.url, "extra")
    try:
        await coord.networks.admit(network, extra.bundle(), ring="shell", party="formal",
                                   fingerprint=extra.fingerprint)
    finally:
        await extra.close()
    watched = Watched(env, witnesses, coord, victim, network, log_key)
    if witnesses:
        policy = {**coord.networks.verified(network).policy,
                  "witnesses": witness_policy(witnesses, quorum=quorum)}
        cosigning = len(witnesses if add_to is None else add_to)
        if cosigning >= quorum:
            await coord.networks.change_policy(network, policy)
        else:
            with pytest.raises(NotWitnessedError):
                await coord.networks.change_policy(network, policy)
    await watched.collect()
    return watched


@pytest.fixture
async def two_witnesses(tmp_path: Path) -> AsyncIterator[list[Witness]]:
    async with running_witnesses(tmp_path, 2) as witnesses:
        yield witnesses


@pytest.fixture
async def watched(tmp_path: Path, two_witnesses: list[Witness]) -> AsyncIterator[Watched]:
    async with tampered_server(tmp_path, limits=QUIET) as env:
        w = await watched_network(tmp_path, env, two_witnesses, quorum=2)
        try:
            await w.coord.sync(w.network)
            yield w
        finally:
            await w.victim.close()
            await w.coord.close()


# =========================================================================== the server


async def test_the_server_collects_the_quorums_cosignatures_into_the_checkpoint(
        watched: Watched) -> None:
    """After a pass, both witnesses cosigned the newest size; the checkpoint the server
    serves is signed by its log key under ``schakel/audit/<network>``, carries both
    cosignatures, and has the size and root of the signed tree head of that size."""
    w = watched
    text = await w.checkpoint(w.coord)
    checked = verify_network_checkpoint(text, log=AUDIT, network=w.network, log_key=w.log_key,
                                        witnesses=None, now=0)
    assert parse_note(text).text.startswith(f"schakel/audit/{w.network}\n")
    held = await w.env.ctx.store.read(cosignatures, w.network, AUDIT)
    assert {c.witness for c in held.values()} == {x.name for x in w.witnesses}
    assert {c.size for c in held.values()} == {checked.size}
    head = await w.coord.session.conn.get(f"/v1/networks/{w.network}/audit/heads/{checked.size}")
    assert b64d(head["tree_head"]["signed"]["root"], length=32) == checked.root
    witnessed = await w.coord.audit.monitor(w.network).witnessed()
    assert witnessed is not None and witnessed.size == checked.size


async def test_a_grown_log_is_cosigned_again_from_the_size_each_witness_holds(
        watched: Watched) -> None:
    """Entries appended after a pass: the next pass submits the new size with a consistency
    proof from the size each witness cosigned, and both cosign it."""
    w = watched
    before = {c.witness: c.size for c in
              (await w.env.ctx.store.read(cosignatures, w.network, AUDIT)).values()}
    extra = await make_partner(w.env.data_dir.parent, w.env.url, "extra-2")
    try:
        await w.coord.networks.admit(w.network, extra.bundle(), ring="shell", party="formal",
                                     fingerprint=extra.fingerprint)
        outcomes = await w.collect()
    finally:
        await extra.close()
    assert outcomes and all(o["status"] == 200 for o in outcomes), outcomes
    after = {c.witness: c.size for c in
             (await w.env.ctx.store.read(cosignatures, w.network, AUDIT)).values()}
    assert all(after[name] > before[name] for name in before)


async def test_a_forked_checkpoint_submitted_to_a_witness_is_refused_and_recorded(
        watched: Watched) -> None:
    """A server that submits the checkpoint of another history of the same size (signed
    with its real log key) after the real one is refused with 422, and the witness records
    the refusal with its reason."""
    w = watched
    forged = w.env.fork_audit_log(w.network, index=1, partner="nobody")
    size = forged.size
    held = await w.env.ctx.store.read(cosignatures, w.network, AUDIT)
    witness = w.witnesses[0]
    assert held[witness.name].size == size, "the real log of this size was cosigned first"
    root = b64d(forged.head()["signed"]["root"], length=32)
    note = sign_checkpoint(AUDIT, w.network, size, root, w.env.log_signer)
    async with aiohttp.ClientSession() as http:
        async with http.post(witness.url + "/add-checkpoint",
                             data=submission(size, [], note)) as answer:
            status, reason = answer.status, await answer.text()
    assert status == 422, reason
    assert reason.strip(), "the witness says why"
    [record] = witness.refused()
    assert (record["origin"], int(record["size"])) == (f"schakel/audit/{w.network}", size)
    assert record["reason"] and record["checkpoint"] == note.format()


# =========================================================================== the client


async def test_a_client_refuses_a_checkpoint_without_the_quorum(
        tmp_path: Path, two_witnesses: list[Witness]) -> None:
    """Quorum 2, but only one witness was told about the network: its sync refuses
    (``not_witnessed``) until the second witness cosigns too, then succeeds."""
    async with tampered_server(tmp_path, limits=QUIET) as env:
        w = await watched_network(tmp_path, env, two_witnesses, quorum=2,
                                  add_to=two_witnesses[:1])
        try:
            with pytest.raises(NotWitnessedError) as caught:
                await w.victim.sync(w.network)
            assert caught.value.details["cosigned"] == 1
            two_witnesses[1].add_network(w.network, w.log_key)
            await w.collect()
            await w.victim.sync(w.network)
            assert w.victim.misbehaviours() == []
        finally:
            await w.victim.close()
            await w.coord.close()


def _strip_cosignatures(text: str) -> str:
    note = parse_note(text)
    return type(note)(note.text, note.signatures[:1]).format()


async def _expect(call: Any) -> BaseException:
    try:
        await call
    except (ServerMisbehaviour, NotWitnessedError) as exc:
        return exc
    pytest.fail("the forked log was believed")


async def _fork_for_the_victim(w: Watched) -> Any:
    """Show the victim (only) the log with its newest entry replaced, every head re-signed
    with the real log key: a history it has no head of yet, the same size as the real one."""
    size = await w.env.ctx.store.read(entry_count, w.network)
    return w.env.fork_audit_log(w.network, index=size - 1, partner=w.victim.key_id)


async def test_without_witnesses_a_partner_shown_a_forked_log_cannot_tell(
        tmp_path: Path, two_witnesses: list[Witness]) -> None:
    """The limitation the witnesses close (LS-19): with no witness quorum in the policy, a
    partner shown another history than the others, re-signed with the real log key, verifies
    it as the log."""
    async with tampered_server(tmp_path, limits=QUIET) as env:
        w = await watched_network(tmp_path, env, [], quorum=0)
        try:
            forged = await _fork_for_the_victim(w)
            verified = await w.victim.audit.verify(w.network)
            assert verified.root == forged.head()["signed"]["root"]
            assert w.victim.misbehaviours() == []
        finally:
            await w.victim.close()
            await w.coord.close()


@pytest.mark.parametrize("checkpoint", ["the-real-one", "the-forks-with-the-real-cosignatures",
                                        "the-forks-without-cosignatures"])
async def test_a_log_forked_between_two_partners_is_caught(watched: Watched,
                                                           checkpoint: str) -> None:
    """The victim is shown another history of the log (its newest entry replaced, every
    head re-signed with the real log key) while the coordinator sees the real one.  However
    the server answers for the checkpoint, the victim catches it: the witnessed checkpoint's
    root is not the forked head's (``audit-fork``); a checkpoint of the fork carries
    cosignatures that do not verify over it (``bad-signature``); without them it lacks the
    quorum (``not_witnessed``).  The coordinator's view verifies throughout."""
    w = watched
    await w.coord.audit.verify(w.network)
    forged = await _fork_for_the_victim(w)
    real = await w.checkpoint(w.coord)
    assert verify_network_checkpoint(real, log=AUDIT, network=w.network, log_key=w.log_key,
                                     witnesses=None, now=0).size == forged.size
    if checkpoint != "the-real-one":
        root = b64d(forged.head()["signed"]["root"], length=32)
        fork = sign_checkpoint(AUDIT, w.network, forged.size, root, w.env.log_signer)
        lines = parse_note(real).signatures[1:]
        text = fork.with_signatures(
            lines if checkpoint == "the-forks-with-the-real-cosignatures" else []).format()
        w.env.proxy.on_exchange("GET", rf"/v1/networks/{w.network}/audit/checkpoint",
                                lambda body, _ex: {**body, "checkpoint": text},
                                partner=w.victim.key_id)
    caught = await _expect(w.victim.audit.verify(w.network))
    expected = {"the-real-one": "audit-fork",
                "the-forks-with-the-real-cosignatures": "bad-signature"}.get(checkpoint)
    if expected is None:
        assert isinstance(caught, NotWitnessedError)
    else:
        assert isinstance(caught, ServerMisbehaviour) and caught.what == expected, caught
        assert expected in [m.get("what") for m in w.victim.misbehaviours()]
    assert w.env.proxy.hits() > 0
    verified = await w.coord.audit.verify(w.network)
    assert verified.size == forged.size and w.coord.misbehaviours() == []


async def test_a_server_that_lost_its_record_of_a_witness_resubmits_from_the_size_it_names(
        watched: Watched) -> None:
    """The server's record of what a witness cosigned is gone (a restored backup): it submits
    from size 0, the witness answers 409 with the size it holds, and the server proves
    consistency from that size and gets the cosignature."""
    w = watched
    await w.env.ctx.store.write(lambda db: db.execute("DELETE FROM witness_cosignatures"))
    outcomes = await w.collect()
    assert [o["status"] for o in outcomes] == [200] * 4, outcomes     # 2 logs, 2 witnesses
    held = await w.env.ctx.store.read(cosignatures, w.network, AUDIT)
    assert len(held) == 2


async def test_a_witness_that_holds_a_larger_tree_than_the_log_is_reported_not_cosigned(
        watched: Watched) -> None:
    """A witness that cosigned a larger size than the log now has (the server's database
    was rolled back) answers 409 with that size; the server cannot prove consistency
    backwards, keeps no cosignature and reports it."""
    w = watched
    witness = w.witnesses[0]
    origin = f"schakel/audit/{w.network}"
    latest = witness.ctx.store.latest(origin)
    assert latest is not None
    witness.ctx.store._conn.execute("UPDATE checkpoints SET size = ? WHERE origin = ?",
                                    (str(int(latest.size) + 5), origin))
    await w.env.ctx.store.write(lambda db: db.execute("DELETE FROM witness_cosignatures"))
    outcomes = {o["witness"]: o for o in await w.collect() if o["log"] == AUDIT}
    assert outcomes[witness.name]["status"] == 409, outcomes
    held = await w.env.ctx.store.read(cosignatures, w.network, AUDIT)
    assert witness.name not in held and w.witnesses[1].name in held


async def test_an_unchanged_checkpoint_is_cosigned_again_before_its_cosignatures_age(
        watched: Watched) -> None:
    """Nothing was appended, but the witnesses' cosignatures are older than
    ``witness_refresh``: the next pass submits the same checkpoint again (old = size, an
    empty proof) and keeps the newer cosignatures; a pass with fresh ones submits nothing."""
    w = watched
    refresh = int(w.env.ctx.config.limits.witness_refresh)
    assert await w.collect() == [], "fresh cosignatures of the newest size: nothing is due"
    await w.env.ctx.store.write(lambda db: db.execute(
        "UPDATE witness_cosignatures SET time = time - ?", (refresh + 1,)))
    aged = await w.env.ctx.store.read(cosignatures, w.network, AUDIT)
    outcomes = await w.collect()
    assert sorted(o["status"] for o in outcomes) == [200] * 4, outcomes   # 2 logs, 2 witnesses
    renewed = await w.env.ctx.store.read(cosignatures, w.network, AUDIT)
    for name, before in aged.items():
        assert renewed[name].size == before.size and renewed[name].time > before.time


# =========================================================================== the trust log


async def test_a_member_admitted_since_the_witnesses_last_cosigned_is_no_misbehaviour(
        watched: Watched) -> None:
    """A membership accepted after the witnesses last cosigned the trust log is served and
    logged, not yet witnessed: the client compares the chain with the log's latest
    checkpoint, which continues the witnessed one, and believes it."""
    w = watched
    late = await make_partner(w.env.data_dir.parent, w.env.url, "late")
    try:
        await w.coord.networks.admit(w.network, late.bundle(), ring="shell", party="formal",
                                     fingerprint=late.fingerprint)
        answer = await w.victim.session.conn.get(f"/v1/networks/{w.network}/trust/checkpoint")
        witnessed = parse_note(answer["checkpoint"]).text.split("\n")[1]
        latest = parse_note(answer["latest"]).text.split("\n")[1]
        assert int(witnessed) < int(latest), "the new membership is not witnessed yet"
        await w.victim.sync(w.network)
        assert w.victim.misbehaviours() == []
        assert late.key_id in {m.key_id for m in w.victim.networks.verified(w.network).members()}
    finally:
        await late.close()


async def test_a_revocation_withheld_behind_an_old_witnessed_checkpoint_is_caught_once_it_ages(
        watched: Watched) -> None:
    """A member is removed; the server keeps showing the victim the chain and the trust
    log from before, under the checkpoint the witnesses cosigned then.  The witnesses
    cosign only the newest checkpoint, so that one's cosignatures only age: once they are
    older than the policy's ``max_age_hours`` the victim refuses it (``not_witnessed``).
    (Here the old cosignatures are made two hours back, by the witnesses' own clocks.)"""
    w = watched
    late = await make_partner(w.env.data_dir.parent, w.env.url, "late")
    try:
        await w.coord.networks.admit(w.network, late.bundle(), ring="shell", party="formal",
                                     fingerprint=late.fingerprint)
        for witness in w.witnesses:
            witness.ctx.clock = lambda: int(time.time()) - 7200
        await w.env.ctx.store.write(lambda db: db.execute("DELETE FROM witness_cosignatures"))
        assert all(o["status"] == 200 for o in await w.collect())
        path = f"/v1/networks/{w.network}"
        before = await w.coord.session.conn.get(f"{path}/trust/checkpoint")
        size = int(parse_note(before["latest"]).text.split("\n")[1])
        for witness in w.witnesses:
            witness.ctx.clock = lambda: int(time.time())
        assert all(o["status"] == 200 for o in await w.collect())     # fresh ones again
        await w.coord.networks.remove(w.network, late.key_id, reason="vertrokken uit de wijk")
        assert all(o["status"] == 200 for o in await w.collect())
    finally:
        await late.close()

    def no_revocation(body: Any) -> Any:
        body["revocations"] = [r for r in body.get("revocations", [])
                               if r["signed"]["member"] != late.key_id]
        return body

    def old_entries(body: Any) -> Any:
        body["items"] = [i for i in body.get("items", []) if i["index"] < size]
        return body

    proxy, victim = w.env.proxy, w.victim.key_id
    proxy.on_exchange("GET", rf"{path}/members", lambda b, _: no_revocation(b), partner=victim)
    proxy.on_exchange("GET", rf"{path}/trust/checkpoint", lambda b, _: dict(before),
                      partner=victim)
    proxy.on_exchange("GET", rf"{path}/trust", lambda b, _: old_entries(b), partner=victim)
    with pytest.raises(NotWitnessedError) as caught:
        await w.victim.sync(w.network)
    assert caught.value.details["size"] == int(parse_note(before["checkpoint"]).text.split("\n")[1])
    assert proxy.hits() > 0
    assert late.key_id not in {m.key_id for m in w.victim.networks.verified(w.network).members()}


async def test_a_latest_trust_checkpoint_that_does_not_continue_the_witnessed_one_is_a_fork(
        watched: Watched) -> None:
    """The server signs a latest trust checkpoint, one entry past the witnessed one, of
    another history (its real log key, another root): the consistency proof from the
    witnessed checkpoint does not lead to it, ``trust-log-fork``."""
    w = watched
    path = f"/v1/networks/{w.network}"
    answer = await w.victim.session.conn.get(f"{path}/trust/checkpoint")
    witnessed = int(parse_note(answer["checkpoint"]).text.split("\n")[1])
    other = sign_checkpoint("trust", w.network, witnessed + 1, b"\x07" * 32,
                            w.env.log_signer).format()
    w.env.proxy.on_exchange("GET", rf"{path}/trust/checkpoint",
                            lambda body, _ex: {**body, "latest": other},
                            partner=w.victim.key_id)
    caught = await _expect(w.victim.sync(w.network))
    assert isinstance(caught, ServerMisbehaviour) and caught.what == "trust-log-fork", caught
    assert w.env.proxy.hits() > 0
