"""The trust log: its entries, its checkpoint and consistency proofs (docs/protocol.md §15.8;
ADR 0048).  Every current or former member reads it whole: it holds only what
``GET /v1/networks/{n}`` and ``GET .../members`` serve every member."""

from __future__ import annotations

from aiohttp import web

from schakel.protocol.encoding import b64e
from schakel.server.registry import (
    CURSOR, MAX_INT, Call, Query, RouteTable, array, def_ref, envelope_of, obj,
)
from schakel.protocol.witnessing import TRUST
from schakel.server.trustlog import trust_consistency, trust_page
from schakel.server.witnessing import served_checkpoint

routes = RouteTable("trust")

WHO = "any current or former member"
INDEX = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
SIZE = {"type": "integer", "minimum": 1, "maximum": MAX_INT}
HASHES = array(def_ref("common", "hash32"), 65)
ENTRY = {"anyOf": [envelope_of(kind) for kind in (
    "network-genesis", "network-policy", "membership", "membership-revocation",
    "covenant-acceptance", "key-rotation")]}
ITEM = obj(["index", "envelope"], index=INDEX, envelope=ENTRY)
CHECKPOINT = {"type": "string", "minLength": 1, "maxLength": 65536,
              "description": "a C2SP signed note: the checkpoint text (origin "
                             "schakel/trust/<network>, size, base64 root) and its signature "
                             "lines, the first by the server's log key"}


@routes.route("GET", "/v1/networks/{network}/trust", auth="signed", who=WHO,
              query=(Query("after", "return entries from this index on", kind="cursor"),
                     Query("limit", "most entries to return", low=1, high=500, default=100)),
              response=obj(["items", "cursor"], items=array(ITEM, 500), cursor=CURSOR))
async def trust_entries(call: Call) -> web.Response:
    """Trust-log entries with index ``>= after`` in log order: the chain objects the server
    accepted, leaf 0 the genesis.  ``cursor`` is the last item's index + 1 (``after`` when
    there is none): pass it as the next ``after``.  Every member gets every entry.

    Example::

        GET /v1/networks/{network}/trust?after=0&limit=100
        200 {"items": [{"index": 0, "envelope": {"signed": {"type": "network-genesis", ...},
             "signatures": [...]}}], "cursor": "1"}
    """
    network = call.id("network")
    call.member(network, former=True)
    q = call.query()
    items = await call.ctx.store.read(trust_page, network, q["after"],
                                      min(q["limit"], call.ctx.config.limits.max_page))
    cursor = items[-1]["index"] + 1 if items else q["after"]
    return call.json({"items": items, "cursor": str(cursor)})


@routes.route("GET", "/v1/networks/{network}/trust/checkpoint", auth="signed", who=WHO,
              response=obj(["checkpoint", "latest"], checkpoint=CHECKPOINT, latest=CHECKPOINT))
async def trust_checkpoint_route(call: Call) -> web.Response:
    """The trust log's checkpoints, signed by the server's log key (C2SP signed notes, origin
    ``schakel/trust/<network>``): ``checkpoint`` as the audit log's (protocol.md §17.5), of
    the largest size the policy's witness quorum cosigned, with their cosignatures (without
    witnesses, the latest size); ``latest``, of the log's latest size, with no cosignature.
    A client compares the chain with the log up to ``latest`` and requires ``checkpoint``,
    witnessed, to be consistent with it: an object accepted since the witnesses last
    cosigned is logged, not yet witnessed.  Clients keep the last one they verified and ask
    for a consistency proof from it to every newer one.

    Example::

        GET /v1/networks/{network}/trust/checkpoint
        200 {"checkpoint": "schakel/trust/<network>\\n7\\n<base64 root>\\n\\n— schakel/trust/
             <network> <base64 key hash and signature>\\n— witness.example/w1 <base64>\\n",
             "latest": "schakel/trust/<network>\\n8\\n<base64 root>\\n\\n— ...\\n"}
    """
    network = call.id("network")
    state = call.member(network, former=True).network
    ctx = call.ctx
    text = await ctx.store.read(served_checkpoint, network, TRUST, ctx.keys.log_signer,
                                state.policy.witnesses)
    latest = await ctx.store.read(served_checkpoint, network, TRUST, ctx.keys.log_signer, None)
    return call.json({"checkpoint": text, "latest": latest})


@routes.route("GET", "/v1/networks/{network}/trust/proof/consistency", auth="signed", who=WHO,
              query=(Query("old", "the size of the checkpoint the client holds (0: the empty "
                           "tree; at most new)", low=0, high=MAX_INT, required=True,
                           at_most="new"),
                     Query("new", "a size the trust log has had", low=1, high=MAX_INT,
                           required=True)),
              response=obj(["old", "new", "proof"], old=INDEX, new=SIZE, proof=HASHES),
              errors=("not_found",))
async def trust_consistency_route(call: Call) -> web.Response:
    """The RFC 9162 consistency proof of the trust log from ``old`` entries to ``new``
    entries (empty when ``old`` is 0 or equals ``new``).  ``old > new`` is 400; a ``new``
    above the log's size is 404.

    Example::

        GET /v1/networks/{network}/trust/proof/consistency?old=5&new=7
        200 {"old": 5, "new": 7, "proof": ["<hash32>", ...]}
    """
    network = call.id("network")
    call.member(network, former=True)
    q = call.query()
    proof = await call.ctx.store.read(trust_consistency, network, q["old"], q["new"])
    return call.json({"old": q["old"], "new": q["new"], "proof": [b64e(p) for p in proof]})


__all__ = ["routes"]
