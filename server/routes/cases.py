"""Cases, events and shares (flow 2 and 6; protocol.md §C.1-§C.5, §D.7)."""

from __future__ import annotations

from aiohttp import web

from server.audit import share_note
from server.auth import Caller
from server.checks.cases import check_case, check_event, check_share
from server.data.cases import (
    add_share_txn, append_event_txn, case_documents, case_facts, create_case_txn,
)
from server.errors import Forbidden, NotFound
from server.registry import (
    CURSOR, ID, KEYID, Body, Call, Field, RouteTable, array, envelope_of, obj, ref,
)

routes = RouteTable("cases")

EVENT_ANSWER = obj(["event", "seq", "cursor"], event=ID, seq={"type": "integer", "minimum": 1},
                   cursor=CURSOR)


async def _case_access(call: Call, caller: Caller, case: str) -> str:
    """The case's owner, if the caller may see it: core members see every case of their
    network (404 if there is none), a shell partner only a case shared with it (403
    otherwise, whether or not the case exists)."""
    facts = await call.ctx.store.read(case_facts, caller.network.network, case, caller.keyid)
    if caller.ring == "shell" and (facts is None or not facts[1]):
        raise Forbidden("this case is not shared with the caller")
    if facts is None:
        raise NotFound("no such case in this network")
    return facts[0]


@routes.route("POST", "/v1/networks/{network}/cases", auth="signed",
              who="core members (the header's owner is the caller)", status=201,
              body=Body((Field("header", envelope_of("case-header")),
                         Field("events", envelope_of("event"), many=True, min_items=1,
                               max_items=50),
                         Field("identity", envelope_of("identity-record"), required=False,
                               many=True, max_items=16),
                         Field("gated", ref("gated-envelope"), required=False, many=True,
                               max_items=64),
                         Field("tokens", ref("blind-index-token"), required=False, many=True,
                               max_items=4))),
              response=obj(["case", "cursor"], case=ID, cursor=CURSOR),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def create_case(call: Call) -> web.Response:
    """Create a case or consult: the owner's signed header, its first events (a chain from
    ``seq`` 1), sealed identity records, gated envelopes and blind-index tokens (compared
    with the network's known tokens for the coordinator's duplicate hints).  A consult with
    identity, gated envelopes or tokens is 403 ``policy_violation``.  An identical retry
    answers 200 with the same body; the same case id with other content is 409.

    Example::

        POST /v1/networks/{network}/cases  {"header": {...}, "events": [{...}],
              "identity": [{...}], "gated": [{...}], "tokens": [{"kind": "bsn", "token": "..."}]}
        201 {"case": "<id>", "cursor": "17"}
    """
    network = call.id("network")
    caller = call.member(network, ring="core", membership=True)
    body = await call.body()
    new = check_case(body, caller, received=call.ctx.timestamp(), now=call.ctx.now())
    limits = call.ctx.config.limits
    written = await call.ctx.store.write(create_case_txn, new, hint_limit=limits.max_hints_per_token,
                                         notify=network)
    if written.created:
        call.ctx.metrics.events_stored.inc(len(new.events))
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/cases/{case}/events", auth="signed",
              who="core members; shell partners the case is shared with (author = caller)",
              status=201, body=Body((Field("event", envelope_of("event")),)),
              response=EVENT_ANSWER, errors=("conflict", "context_mismatch"))
async def append_event(call: Call) -> web.Response:
    """Append an event signed by its author (the caller).  ``seq`` must be the case's last
    ``seq`` + 1 and ``prev`` the ``event_hash`` of its last event, else 409 with
    ``details.last_seq``; a closed case takes only an event with ``status: open``.  The same
    event id with the same body answers 200 with the first answer; with another body 409.

    Example::

        POST /v1/networks/{network}/cases/{case}/events  {"event": {"signed": {"type":
              "event", "seq": 2, "prev": "<hash32>", ...}, "signatures": [...]}}
        201 {"event": "<id>", "seq": 2, "cursor": "18"}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network, membership=True)
    owner = await _case_access(call, caller, case)
    body = await call.body()
    new = check_event(body["event"], caller, case, received=call.ctx.timestamp())
    if new.status is not None and caller.keyid != owner and not caller.is_coordinator:
        # Closing starts the retention clock (flow 9): only the owner or the coordinator.
        raise Forbidden("only the case's owner or the coordinator closes or reopens a case")
    written = await call.ctx.store.write(append_event_txn, new, notify=network)
    if written.created:
        call.ctx.metrics.events_stored.inc()
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/cases/{case}", auth="signed",
              who="core members; shell partners the case is shared with",
              response=obj(["header", "events", "identity"], header=envelope_of("case-header"),
                           events=array(envelope_of("event"), 1_000_000_000),
                           identity=array(envelope_of("identity-record"), 16)))
async def get_case(call: Call) -> web.Response:
    """A case's header and events in ``seq`` order; its identity records for the owner only
    (empty for everyone else).

    Example::

        GET /v1/networks/{network}/cases/{case}
        200 {"header": {...}, "events": [{...}, {...}], "identity": []}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network)
    owner = await _case_access(call, caller, case)
    return call.json(await call.ctx.store.read(case_documents, network, case,
                                               with_identity=owner == caller.keyid))


@routes.route("POST", "/v1/networks/{network}/shares", auth="signed", who="coordinator",
              status=201, body=Body((Field("share", envelope_of("share")),)),
              response=obj(["case", "partner", "cursor"], case=ID, partner=KEYID, cursor=CURSOR),
              errors=("context_mismatch", "policy_violation"))
async def share_case(call: Call) -> web.Response:
    """Share a case's anonymous layer with a current shell partner (the case key sealed to
    it, signed by the coordinator key, for the case's current key version).  The partner
    then syncs the case; its earlier history is read with ``GET .../cases/{case}``.

    Example::

        POST /v1/networks/{network}/shares  {"share": {"signed": {"type": "share",
              "case": "<id>", "partner": "<keyid>", ...}, "signatures": [...]}}
        201 {"case": "<id>", "partner": "<keyid>", "cursor": "19"}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    new = check_share(body["share"], caller.network, call.ctx.now(),
                      received=call.ctx.timestamp(), acting_user=caller.acting_user)
    written = await call.ctx.store.write(add_share_txn, new,
                                         audit=share_note(call.ctx, caller, new), notify=network)
    return call.written(written.created, written.answer)


__all__ = ["routes"]
