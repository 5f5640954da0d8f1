"""Networks and their epoch keys (flow 1; protocol.md §N.1, §N.9)."""

from __future__ import annotations

from aiohttp import web

from schakel.protocol.crypto import VerifyKey
from schakel.protocol.encoding import b64e
from schakel.server.audit import latest_head, policy_note
from schakel.server.auth import authenticate
from schakel.server.checks import stored
from schakel.server.checks.network import check_distribution, check_genesis, check_policy
from schakel.server.data.networks import (
    add_epoch_txn, add_policy_txn, epoch_entries, network_policies, register_network_txn,
)
from schakel.server.directory import genesis_key
from schakel.server.errors import Forbidden
from schakel.server.registry import ID, Body, Call, Field, RouteTable, array, def_ref, envelope_of, obj

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
              response=obj(["genesis", "policies", "tree_head"],
                           genesis=envelope_of("network-genesis"),
                           policies=array(envelope_of("network-policy"), 1000),
                           tree_head={"anyOf": [envelope_of("tree-head"), {"type": "null"}]}))
async def get_network(call: Call) -> web.Response:
    """The network's genesis, every policy version after it in version order (protocol.md
    §N.3; the highest is in force) and the latest signed tree head of its audit log (null
    while the log is empty; ``GET .../audit/head``).

    Example::

        GET /v1/networks/q5dH3n1Nf0e8iS6vVx0cYA
        200 {"genesis": {...}, "policies": [{"signed": {"type": "network-policy",
             "version": 2, ...}, "signatures": [...]}], "tree_head": {"signed": {"type":
             "tree-head", "size": 7, ...}, "signatures": [...]}}
    """
    network = call.id("network")
    caller = call.member(network)
    head = await call.ctx.store.read(latest_head, network)
    policies = await call.ctx.store.read(network_policies, network)
    return call.json({"genesis": caller.network.envelope, "policies": policies,
                      "tree_head": head})


@routes.route("POST", "/v1/networks/{network}/policies", auth="signed", who="coordinator",
              status=201, body=Body((Field("policy", envelope_of("network-policy")),)),
              response=obj(["network", "version"], network=ID, version=VERSION),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def add_policy(call: Call) -> web.Response:
    """Put a new policy version in force (protocol.md §N.3): a ``network-policy`` signed by
    the coordinator key, for this network, the next version (the genesis is version 1),
    not dated before the version in force nor after the server's time plus the request
    skew, with the genesis's classes and blind index.  A ``policy`` entry is appended to
    the audit log.  The same envelope again answers 200; another version number or an
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
