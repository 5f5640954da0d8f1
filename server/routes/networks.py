"""Networks and their epoch keys (flow 1; protocol.md §N.1, §N.9)."""

from __future__ import annotations

from aiohttp import web

from schakel.protocol.crypto import VerifyKey
from schakel.protocol.encoding import b64e
from schakel.server.audit import latest_head, policy_note, rotation_note
from schakel.server.auth import VERIFIED, authenticate
from schakel.server.checks import stored
from schakel.server.checks.network import (
    check_distribution, check_genesis, check_policy, check_rotation,
)
from schakel.server.data.networks import (
    add_epoch_txn, add_policy_txn, add_rotation_txn, epoch_entries, network_policies,
    register_network_txn,
)
from schakel.server.directory import genesis_key
from schakel.server.errors import Forbidden
from schakel.server.registry import (
    ID, Body, Call, Field, RouteTable, array, def_ref, envelope_of, obj,
)
from schakel.server.witnessing import collect_now

routes = RouteTable("networks")

VERSION = def_ref("common", "version")


@routes.route("POST", "/v1/networks", auth="genesis",
              who="the coordinator: signed by the genesis's coordinator key", status=201,
              body=Body((Field("genesis", envelope_of("network-genesis")),)),
              response=obj(["network"], network=ID), errors=("conflict", "context_mismatch"))
async def register_network(call: Call) -> web.Response:
    """Register a network from its genesis.  The genesis must name this server's log and
    gate keys (``GET /v1/server``); its coordinator key becomes the network's anchor.  An
    identical retry answers 200; another genesis under the same id is 409.

    Example::

        POST /v1/networks  {"genesis": {"signed": {"type": "network-genesis", ...},
                                        "signatures": [...]}}
        201 {"network": "q5dH3n1Nf0e8iS6vVx0cYA"}
    """
    body = await call.body()
    key = genesis_key(body["genesis"])

    def resolve(keyid: str) -> VerifyKey:
        return key if keyid == key.key_id else call.ctx.directory.resolve(keyid)

    verified = await authenticate(call.request, call.ctx, resolve=resolve)
    if verified.keyid != key.key_id:
        raise Forbidden("a network is registered with its coordinator key")
    genesis = check_genesis(body["genesis"], call.ctx.keys)
    written = await call.ctx.store.write(
        register_network_txn, stored(genesis.network, body["genesis"], received=call.ctx.timestamp(),
                                     acting_user=verified.acting_user),
        coordinator=key.key_id, kind=genesis.kind)
    call.ctx.directory.add_network(genesis, body["genesis"])
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}", auth="signed", who="any member",
              response=obj(["genesis", "rotations", "policies", "tree_head"],
                           genesis=envelope_of("network-genesis"),
                           rotations=array(envelope_of("key-rotation"), 256),
                           policies=array(envelope_of("network-policy"), 1000),
                           tree_head={"anyOf": [envelope_of("tree-head"), {"type": "null"}]}))
async def get_network(call: Call) -> web.Response:
    """The network's genesis, the coordinator's key rotations in chain order (protocol.md
    §4.6.2; the last one's new key is the current coordinator key), every policy version
    after the genesis in version order (protocol.md §N.3; the highest is in force) and the
    latest signed tree head of its audit log (null while the log is empty; ``GET
    .../audit/head``).

    Example::

        GET /v1/networks/q5dH3n1Nf0e8iS6vVx0cYA
        200 {"genesis": {...}, "rotations": [{"signed": {"type": "key-rotation", "old":
             "<keyid>", "new": {...}, "at": "...", "reason": "..."}, "signatures": [...]}],
             "policies": [{"signed": {"type": "network-policy", "version": 2, ...},
             "signatures": [...]}], "tree_head": {"signed": {"type": "tree-head", "size": 7,
             ...}, "signatures": [...]}}
    """
    network = call.id("network")
    caller = call.member(network)
    head = await call.ctx.store.read(latest_head, network)
    policies = await call.ctx.store.read(network_policies, network)
    return call.json({"genesis": caller.network.envelope,
                      "rotations": list(caller.network.rotations), "policies": policies,
                      "tree_head": head})


@routes.route("POST", "/v1/networks/{network}/rotations", auth="signed",
              who="the current coordinator key (the key the rotation retires)", status=201,
              body=Body((Field("rotation", envelope_of("key-rotation")),)),
              response=obj(["network", "position"], network=ID,
                           position={"type": "integer", "minimum": 1, "maximum": 256}),
              errors=("conflict", "policy_violation"))
async def add_rotation(call: Call) -> web.Response:
    """Rotate the network's coordinator key (protocol.md §4.6.2, ADR 0046): a
    ``key-rotation`` of the current coordinator key, signed by it and by the new key, dated
    after the previous link, not to an earlier coordinator key, not in the future and not
    at or before an object the current key signed that the server holds.  The request is
    signed by the current coordinator key.  From the commit on, the new key is the
    coordinator key: it authenticates as the coordinator and signs what only the
    coordinator signs; the retired key signs nothing dated from the rotation's ``at`` on
    (§4.6.3) and keeps only the standing its own membership gives it.  A ``key-rotation``
    entry is appended to the audit log.  The same envelope again answers 200 (signed by
    its old or new key); a rotation of a key that is no longer current is 403
    ``untrusted_key``.

    Example::

        POST /v1/networks/{network}/rotations  {"rotation": {"signed": {"type":
              "key-rotation", "old": "<keyid>", "new": {"sign": "...", "box": "..."},
              "at": "...", "reason": "..."}, "signatures": [...]}}
        201 {"network": "q5dH3n1Nf0e8iS6vVx0cYA", "position": 1}
    """
    network = call.id("network")
    state = call.ctx.directory.network(network)
    body = await call.body()
    envelope = body["rotation"]
    if envelope in state.rotations:
        # An identical retry, from either key it links: the old one may have no standing
        # left once it is retired (no membership of its own).
        position = state.rotations.index(envelope) + 1
        links = state.genesis.coordinator_keys
        if call.request[VERIFIED].keyid in (links[position - 1].keys.key_id,
                                            links[position].keys.key_id):
            return call.json({"network": network, "position": position}, status=200)
    caller = call.member(network)
    if caller.keyid != state.genesis.coordinator.key_id:
        raise Forbidden("a coordinator key rotation is sent with the current coordinator key",
                        details={"reason": "not-the-coordinator-key"})
    genesis = check_rotation(envelope, state, call.ctx.now(),
                             skew=call.ctx.config.limits.max_skew)
    record = stored(network, envelope, received=call.ctx.timestamp(),
                    acting_user=caller.acting_user)
    link = genesis.coordinator_keys[-1]
    written = await call.ctx.store.write(
        add_rotation_txn, record, position=len(genesis.coordinator_keys) - 1,
        old=state.genesis.coordinator.key_id, new=link.keys.key_id,
        at=envelope["signed"]["at"],
        audit=rotation_note(call.ctx, caller, genesis, ref=b64e(record.digest[:16])))
    call.ctx.directory.add_rotation(genesis, envelope)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/policies", auth="signed", who="coordinator",
              status=201, body=Body((Field("policy", envelope_of("network-policy")),)),
              response=obj(["network", "version"], network=ID, version=VERSION),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def add_policy(call: Call) -> web.Response:
    """Put a new policy version in force (protocol.md §N.3): a ``network-policy`` signed by
    the coordinator key, for this network, the next version (the genesis is version 1),
    not dated before the version in force nor after the server's time plus the request
    skew, with the genesis's classes and blind index.  A ``policy`` entry is appended to
    the audit log.  A policy that names witnesses has the network's newest checkpoints
    submitted to them before it answers (protocol.md §17.5).  The same envelope again answers 200; another version number or an
    older date is 409.

    Example::

        POST /v1/networks/{network}/policies  {"policy": {"signed": {"type":
              "network-policy", "network": "...", "version": 2, "issued": "...",
              "policy": {...}}, "signatures": [...]}}
        201 {"network": "q5dH3n1Nf0e8iS6vVx0cYA", "version": 2}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    policy = check_policy(body["policy"], caller.network, call.ctx.now(),
                          skew=call.ctx.config.limits.max_skew)
    record = stored(network, body["policy"], received=call.ctx.timestamp(),
                    acting_user=caller.acting_user)
    written = await call.ctx.store.write(
        add_policy_txn, record, version=policy.version,
        issued=body["policy"]["signed"]["issued"],
        audit=policy_note(call.ctx, caller, policy, ref=b64e(record.digest[:16])))
    call.ctx.directory.add_policy(policy)
    if written.created and policy.policy.witnesses is not None:
        # The policy's witnesses are asked at once, before the answer: from this version
        # on clients believe the logs only on checkpoints they cosigned (protocol.md §17.5).
        await collect_now(call.ctx, network)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/epochs", auth="signed", who="coordinator",
              status=201, body=Body((Field("distribution", envelope_of("epoch-key-distribution")),)),
              response=obj(["epoch"], epoch=VERSION),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def add_epoch(call: Call) -> web.Response:
    """Store an epoch-key distribution signed by the coordinator; every recipient must be a
    current core member.  One distribution per epoch (another under the same number: 409).

    Example::

        POST /v1/networks/{network}/epochs  {"distribution": {"signed": {"type":
              "epoch-key-distribution", "epoch": 1, "keys": [...]}, "signatures": [...]}}
        201 {"epoch": 1}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    distribution = check_distribution(body["distribution"], caller.network, call.ctx.now())
    written = await call.ctx.store.write(
        add_epoch_txn, stored(network, body["distribution"], received=call.ctx.timestamp(),
                              acting_user=caller.acting_user),
        epoch=distribution.epoch, entries=[(k.recipient, k.sealed) for k in distribution.keys])
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/epochs/mine", auth="signed", who="core members",
              response=obj(["entries"], entries=array(obj(
                  ["epoch", "sealed", "distribution"], epoch=VERSION,
                  sealed={"type": "string"}, distribution=envelope_of("epoch-key-distribution")),
                  1_000_000)))
async def my_epochs(call: Call) -> web.Response:
    """The caller's sealed epoch keys, each with the signed distribution it came from (the
    coordinator's signature covers every entry).  Shell partners get 403.

    Example::

        GET /v1/networks/{network}/epochs/mine
        200 {"entries": [{"epoch": 1, "sealed": "<b64url>", "distribution": {...}}]}
    """
    network = call.id("network")
    caller = call.member(network, ring="core")
    return call.json({"entries": await call.ctx.store.read(epoch_entries, network, caller.keyid)})


__all__ = ["routes"]
