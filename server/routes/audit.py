"""The audit log: signed tree heads, entries, inclusion and consistency proofs
(docs/protocol.md §15 §15.1; protocol.md §9, §A.1, §A.2; design flow 10)."""

from __future__ import annotations

from aiohttp import web

from schakel.protocol.encoding import b64e
from schakel.protocol.note import MAX_NOTE_BYTES
from schakel.protocol.witnessing import AUDIT
from schakel.server.audit import consistency_proof, entries_page, head_at, inclusion_proof, latest_head
from schakel.server.errors import NotFound
from schakel.server.witnessing import served_checkpoint
from schakel.server.registry import (
    CURSOR, MAX_INT, Call, Query, RouteTable, array, def_ref, envelope_of, obj, ref,
)

routes = RouteTable("audit")

HEAD = obj(["tree_head"], tree_head=envelope_of("tree-head"))
INDEX = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
SIZE = {"type": "integer", "minimum": 1, "maximum": MAX_INT}
HASHES = array(def_ref("common", "hash32"), 65)
ITEM = obj(["index", "entry", "commitment"], index=INDEX,
           entry={"anyOf": [ref("audit-entry"), {"type": "null"}],
                  "description": "null once the body was erased after retention"},
           commitment=def_ref("common", "hash32"),
           proof={**HASHES, "description": "only when the request gave size, and then on "
                                           "every item: the entry's RFC 9162 inclusion proof "
                                           "in the tree of that size, leaf to root"})


@routes.route("GET", "/v1/networks/{network}/audit/head", auth="signed", who="any member",
              response=HEAD, errors=("not_found",))
async def audit_head(call: Call) -> web.Response:
    """The latest tree head of the network's audit log, signed by the server's log key
    (404 while the log is empty).  Clients keep the last head they verified and ask for a
    consistency proof from it to every newer one.

    Example::

        GET /v1/networks/{network}/audit/head
        200 {"tree_head": {"signed": {"type": "tree-head", "network": "<id>", "size": 42,
             "root": "<hash32>", "time": "..."}, "signatures": [...]}}
    """
    network = call.id("network")
    call.member(network)
    head = await call.ctx.store.read(latest_head, network)
    if head is None:
        raise NotFound("the audit log of this network is empty")
    return call.json({"tree_head": head})


@routes.route("GET", "/v1/networks/{network}/audit/checkpoint", auth="signed",
              who="any member",
              response=obj(["checkpoint"], checkpoint={
                  "type": "string", "maxLength": MAX_NOTE_BYTES,
                  "description": "a C2SP checkpoint note (c2sp.org/tlog-checkpoint): origin "
                                 "schakel/audit/<network>, size, base64 root, signed by the "
                                 "log key, with the witnesses' cosignatures the server holds "
                                 "for that size"}),
              errors=("not_found",))
async def audit_checkpoint(call: Call) -> web.Response:
    """The audit log as a C2SP checkpoint for the witnesses of the policy in force
    (protocol.md §17.5): the largest size that the policy's quorum of witnesses cosigned,
    with their cosignatures; without a quorum, the largest size any of them cosigned; with no
    witnesses, the latest size.  Its size and root are those of the signed ``tree-head`` of
    that size.  404 while the log is empty.

    Example::

        GET /v1/networks/{network}/audit/checkpoint
        200 {"checkpoint": "schakel/audit/<network>\n42\n<base64 root>\n\n— schakel/audit/<network> <base64>\n— witness.example/w1 <base64>\n"}
    """
    network = call.id("network")
    state = call.member(network).network
    ctx = call.ctx
    text = await ctx.store.read(served_checkpoint, network, AUDIT, ctx.keys.log_signer,
                                state.policy.witnesses)
    return call.json({"checkpoint": text})


@routes.route("GET", "/v1/networks/{network}/audit/heads/{size}", auth="signed",
              who="any member", response=HEAD, errors=("not_found",))
async def audit_head_at(call: Call) -> web.Response:
    """The tree head the server signed for ``size`` entries: every size the log ever had
    (404 for a size it never signed).

    Example::

        GET /v1/networks/{network}/audit/heads/17
        200 {"tree_head": {"signed": {"type": "tree-head", "size": 17, ...}, ...}}
    """
    network, size = call.id("network"), call.integer("size")
    call.member(network)
    return call.json({"tree_head": await call.ctx.store.read(head_at, network, size)})


@routes.route("GET", "/v1/networks/{network}/audit/entries", auth="signed",
              who="any member: auditors and the coordinator read every entry, any other "
                  "member the entries whose actor.partner or subject is its key id and "
                  "every erase entry",
              query=(Query("after", "return entries from this index on", kind="cursor"),
                     Query("limit", "most entries to return", low=1, high=500, default=100),
                     Query("size", "a tree size the server signed: only entries below it, "
                           "each with its inclusion proof in the tree of that size",
                           low=1, high=MAX_INT, default=None)),
              response=obj(["items", "cursor"], items=array(ITEM, 500), cursor=CURSOR),
              errors=("not_found",))
async def audit_entries(call: Call) -> web.Response:
    """Audit entries with index ``>= after`` in log order, each with its commitment (the
    leaf data of the tree).  ``cursor`` is the last item's index + 1 (``after`` when there
    is none): pass it as the next ``after``.  A member that is not an auditor or the
    coordinator gets only the entries naming it and the ``erase`` entries (which say
    whose bodies were erased, §A.1), so its indexes may have gaps.  With ``size`` (a size
    the server signed, 404 otherwise) the page stops below ``size`` and every item carries
    ``proof``, as ``.../proof/inclusion?index=&size=`` would answer it: a client verifies
    a whole page against the signed head of that size without a request per entry.

    Example::

        GET /v1/networks/{network}/audit/entries?after=0&limit=100&size=42
        200 {"items": [{"index": 0, "entry": {"network": "<id>", "index": 0, "action":
             "membership", ...}, "commitment": "<hash32>", "proof": ["<hash32>", ...]}],
             "cursor": "1"}
    """
    network = call.id("network")
    caller = call.member(network)
    q = call.query()
    reads_all = caller.is_coordinator or "auditor" in caller.roles
    items = await call.ctx.store.read(entries_page, network, q["after"],
                                      min(q["limit"], call.ctx.config.limits.max_page),
                                      None if reads_all else caller.keyid, q.get("size"))
    cursor = items[-1]["index"] + 1 if items else q["after"]
    return call.json({"items": items, "cursor": str(cursor)})


@routes.route("GET", "/v1/networks/{network}/audit/proof/inclusion", auth="signed",
              who="any member",
              query=(Query("index", "the entry's index (below size)", low=0, high=MAX_INT,
                           required=True, below="size"),
                     Query("size", "a tree size the server signed", low=1, high=MAX_INT,
                           required=True)),
              response=obj(["index", "size", "proof"], index=INDEX, size=SIZE, proof=HASHES),
              errors=("not_found",))
async def audit_inclusion(call: Call) -> web.Response:
    """The RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries,
    leaf to root; verify it with ``merkle.verify_inclusion(entry_commitment(entry), index,
    size, proof, root)`` taking ``size`` and ``root`` from the signed head of that size.
    ``index >= size`` is 400; a size the server never signed is 404.

    Example::

        GET /v1/networks/{network}/audit/proof/inclusion?index=3&size=17
        200 {"index": 3, "size": 17, "proof": ["<hash32>", ...]}
    """
    network = call.id("network")
    call.member(network)
    q = call.query()
    proof = await call.ctx.store.read(inclusion_proof, network, q["index"], q["size"])
    return call.json({"index": q["index"], "size": q["size"], "proof": [b64e(p) for p in proof]})


@routes.route("GET", "/v1/networks/{network}/audit/proof/consistency", auth="signed",
              who="any member",
              query=(Query("old", "the size of the head the client holds (0: the empty tree; "
                           "at most new)", low=0, high=MAX_INT, required=True, at_most="new"),
                     Query("new", "a later size the server signed", low=1, high=MAX_INT,
                           required=True)),
              response=obj(["old", "new", "proof"], old=INDEX, new=SIZE, proof=HASHES),
              errors=("not_found",))
async def audit_consistency(call: Call) -> web.Response:
    """The RFC 9162 consistency proof from the tree of ``old`` entries to the tree of
    ``new`` entries (empty when ``old`` is 0 or equals ``new``); verify it with
    ``merkle.verify_consistency(old, new, old_root, new_root, proof)`` against the two
    signed heads.  ``old > new`` is 400; a ``new`` the server never signed is 404.

    Example::

        GET /v1/networks/{network}/audit/proof/consistency?old=17&new=42
        200 {"old": 17, "new": 42, "proof": ["<hash32>", ...]}
    """
    network = call.id("network")
    call.member(network)
    q = call.query()
    proof = await call.ctx.store.read(consistency_proof, network, q["old"], q["new"])
    return call.json({"old": q["old"], "new": q["new"], "proof": [b64e(p) for p in proof]})


__all__ = ["routes"]
