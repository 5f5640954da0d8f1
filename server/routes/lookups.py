"""Lookups by blind index: which cases of a network carry a person's tokens, for the
person's right of access through one contact point (docs/protocol.md §15.7; ADR 0033).
The transaction is ``schakel.server.disclosure.lookups.lookup_txn``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.protocol.access import LOOKUP_PURPOSES, MAX_LOOKUP_CASES, MAX_LOOKUP_TOKENS
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.objects.cases import BlindIndexToken
from schakel.server.audit import actor_of
from schakel.server.disclosure.data import Denied
from schakel.server.disclosure.lookups import Limited, NewLookup, lookup_txn
from schakel.server.disclosure.routes import RECEIPT, log_for
from schakel.server.errors import Conflict, RateLimited
from schakel.server.registry import ID, Body, Call, Field, RouteTable, array, obj, ref

routes = RouteTable("lookups")

PURPOSE = {"enum": list(LOOKUP_PURPOSES)}


def _tokens(values: list[Any], size: int) -> tuple[tuple[str, bytes], ...]:
    """The request's tokens in order (a match names them by position), each of the
    network policy's length: a token of another length was made under another policy and
    can match nothing here: 409 with the length this network's tokens have, as a stale
    key version is answered with the current one."""
    out = []
    for value in values:
        token = BlindIndexToken.from_json(value)
        if len(token.raw) != size:
            raise Conflict(f"blind-index tokens of this network are {size} bytes",
                           details={"field": "tokens", "token_bytes": size})
        out.append((token.kind, token.raw))
    return tuple(out)


@routes.route("POST", "/v1/networks/{network}/lookups", auth="signed",
              who="the coordinator (any other member: an audited denial)", status=201,
              body=Body((Field("tokens", ref("blind-index-token"), many=True, min_items=1,
                               max_items=MAX_LOOKUP_TOKENS),
                         Field("purpose", PURPOSE, scalar=True))),
              response=obj(["matches", "complete", "receipt"],
                           matches=array(obj(["case", "tokens"], case=ID, tokens=array(
                               {"type": "integer", "minimum": 0,
                                "maximum": MAX_LOOKUP_TOKENS - 1}, MAX_LOOKUP_TOKENS, 1)),
                               MAX_LOOKUP_CASES),
                           complete={"type": "boolean"}, receipt=RECEIPT),
              errors=("conflict", "policy_violation", "rate_limited"))
async def lookup(call: Call) -> web.Response:
    """Which cases of the network carry one of these blind-index tokens (a person's, made
    by the coordinator's client from a BSN and a date of birth under every match key it
    holds).  Coordinator only: any other member's lookup is an audited denial
    (``lookup-requires-coordinator``, 403).  At most ``lookups_per_day`` per partner per
    network in 24 hours: one more is an audited denial (``lookup-rate-limit``, 429 with
    ``Retry-After``).  Every lookup is audited (``lookup``, naming the cases found) before
    the answer is sent, and the answer carries the entry's receipt.  A match is a hint:
    the tokens are truncated.

    Example::

        POST /v1/networks/{network}/lookups  {"tokens": [{"kind": "bsn", "token": "q1xbmw"}],
              "purpose": "access-request"}
        201 {"matches": [{"case": "<id>", "tokens": [0]}], "complete": true,
             "receipt": {"entry": {...}, "index": 41, "proof": [...], "tree_head": {...}}}
    """
    network = call.id("network")
    caller = call.member(network)
    body = await call.body()
    if body["purpose"] not in LOOKUP_PURPOSES:
        raise MalformedError("purpose must be one of " + ", ".join(LOOKUP_PURPOSES),
                             details={"field": "purpose"})
    tokens = _tokens(body["tokens"], caller.network.policy.blind_index.token_bytes)
    role = "coordinator" if caller.is_coordinator else "member"
    new = NewLookup(actor=actor_of(caller, role), coordinator=caller.is_coordinator,
                    tokens=tokens, purpose=body["purpose"],
                    per_day=call.ctx.config.limits.lookups_per_day)
    result = await call.ctx.store.write(lookup_txn, new, log_for(call, network))
    if isinstance(result, Limited):
        raise RateLimited(result.denied.message, details={
            "reason": result.denied.reason, "audit_index": result.denied.audit_index,
            "retry_after": result.retry_after})
    if isinstance(result, Denied):
        raise PolicyViolation(result.message, details={"reason": result.reason,
                                                       "audit_index": result.audit_index})
    return call.json(result)


__all__ = ["routes"]
