"""Referral routes (docs/protocol.md §15 §15.5; protocol.md §D.8, flow 7): thin
handlers — authorise the coordinator, verify the referral (``checks``), hand
``refer_txn`` to the writer, answer."""

from __future__ import annotations

from aiohttp import web

from schakel.server.disclosure.data import Log
from schakel.server.referrals.checks import check_referral
from schakel.server.referrals.data import refer_txn, referrals_page
from schakel.server.registry import (
    CURSOR, ID, MAX_INT, TIMESTAMP, Body, Call, Field, Query, RouteTable, array, envelope_of,
    obj,
)

routes = RouteTable("referrals")

PAGE = (Query("after", "return items after this cursor", kind="cursor"),
        Query("limit", "most items to return", low=1, high=500, default=100))
INDEX = {"type": "integer", "minimum": 0, "maximum": MAX_INT}


@routes.route("POST", "/v1/networks/{network}/referrals", auth="signed",
              who="the coordinator of the sending network (the referral's signer)", status=201,
              body=Body((Field("referral", envelope_of("referral")),)),
              response=obj(["referral", "audit_index", "receiving_audit_index"], referral=ID,
                           audit_index=INDEX, receiving_audit_index=INDEX),
              errors=("conflict", "context_mismatch", "not_found"))
async def refer(call: Call) -> web.Response:
    """Refer a case to another network on this server.  The receiving case (``new_case``)
    must already exist there (created by a core member of ``to_network``); the basis (a
    consent or a bemoeizorg invocation of the case) must exist here.  In ONE transaction:
    the referral is stored, ``referral-out`` appended to this network's log (subject = the
    receiving coordinator) and ``referral-in`` to the receiving network's log.  The id is
    derived from the envelope's digest: an identical retry answers 200.

    Example::

        POST /v1/networks/{network}/referrals  {"referral": {"signed": {"type": "referral",
              "to_network": "<id>", "case": "<id>", "new_case": "<id>",
              "basis": {"kind": "consent", "ref": "<id>"}, ...}, "signatures": [...]}}
        201 {"referral": "<id>", "audit_index": 14, "receiving_audit_index": 3}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    new = check_referral((await call.body())["referral"], caller, call.ctx.directory)
    now, key = call.ctx.now(), call.ctx.keys.log_signer
    written = await call.ctx.store.write(
        refer_txn, new, Log(network=network, log_key=key, now=now),
        Log(network=new.to_network, log_key=key, now=now))
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/referrals", auth="signed", who="coordinator",
              query=PAGE,
              response=obj(["items", "cursor"], cursor=CURSOR, items=array(obj(
                  ["cursor", "direction", "referral", "envelope", "received", "closed"],
                  cursor=CURSOR, direction={"enum": ["out", "in"]}, referral=ID,
                  envelope=envelope_of("referral"), received=TIMESTAMP,
                  closed={"anyOf": [TIMESTAMP, {"type": "null"}]}), 500)))
async def list_referrals(call: Call) -> web.Response:
    """The network's referrals, sent (``out``) and received (``in``), in order; ``closed``
    is when the receiving case was last closed.

    Example::

        GET /v1/networks/{network}/referrals?after=0
        200 {"items": [{"cursor": "1", "direction": "out", "referral": "<id>",
             "envelope": {...}, "received": "...", "closed": null}], "cursor": "1"}
    """
    network = call.id("network")
    call.member(network, coordinator=True)
    q = call.query()
    items = await call.ctx.store.read(referrals_page, network, q["after"],
                                      min(q["limit"], call.ctx.config.limits.max_page))
    return call.json({"items": items, "cursor": items[-1]["cursor"] if items else str(q["after"])})


__all__ = ["routes"]
