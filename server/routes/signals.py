"""Signals from outside the core, receipts, feedback and duplicate hints (flow 3 and 8;
protocol.md §C.6-§C.8)."""

from __future__ import annotations

from aiohttp import web

from schakel.protocol.crypto import random_bytes, sha256
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.signals import MAX_FEEDBACK
from schakel.server.auth import VERIFIED
from schakel.server.checks.signals import check_card, check_feedback, check_signal
from schakel.server.data.signals import (
    add_card_txn, add_feedback_txn, add_signal_txn, hint_page, latest_card, signal_page,
    signal_status,
)
from schakel.server.errors import NotFound
from schakel.server.registry import (
    CURSOR, ID, TIMESTAMP, Body, Call, Field, Header, Query, RouteTable, array, def_ref,
    envelope_of, obj, ref,
)

routes = RouteTable("signals")

RECEIPT_HEADER = "Schakel-Receipt"
RECEIPT_BYTES = 32
#: A receipt token: 32 bytes, canonical unpadded base64url (as ``b64d`` accepts it).
RECEIPT = {"type": "string", "pattern": "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$",
           "description": "32 random bytes, unpadded base64url; shown once, stored as SHA-256"}
PAGE = (Query("after", "return items after this cursor", kind="cursor"),
        Query("limit", "most items to return", low=1, high=500, default=100))


@routes.route("POST", "/v1/networks/{network}/signals", auth="optional",
              who="shell partners (signed, source shell); anyone when the policy has "
                  "anonymous_signals (unsigned, source anonymous)",
              status=201,
              body=Body((Field("signal", {"oneOf": [envelope_of("signal"), ref("signal")]}),)),
              response=obj(["receipt"], receipt=RECEIPT),
              errors=("conflict", "context_mismatch", "policy_violation", "rate_limited"))
async def submit_signal(call: Call) -> web.Response:
    """Submit a signal sealed to the coordinator.  A shell partner signs the request and the
    signal; anyone else sends a bare anonymous signal, if the network's policy accepts them,
    limited to ``intake_rate_per_hour`` per source address (429).  The answer is a receipt
    token that reads the signal's status; the server keeps only its SHA-256.  An identical
    retry answers 200 with a fresh token for the same signal; the same signal id with
    other content is 409.

    Example::

        POST /v1/networks/{network}/signals  {"signal": {"network": "<id>", "signal": "<id>",
              "source": "anonymous", "created": "...", "sealed": "...", "reply_key": "..."}}
        201 {"receipt": "<43 characters>"}
    """
    network = call.id("network")
    state = call.ctx.directory.network(network)
    signed = VERIFIED in call.request
    caller = call.member(network, ring="shell", membership=True) if signed else None
    body = await call.body()
    token = random_bytes(RECEIPT_BYTES)
    new = check_signal(body["signal"], state, caller, received=call.ctx.timestamp(),
                       receipt_hash=sha256(token))
    if caller is None:
        await call.ctx.intake.take(network, call.request.remote or "unknown",
                                   state.policy.intake_rate_per_hour)
    limits = call.ctx.config.limits
    written = await call.ctx.store.write(add_signal_txn, new, max_receipts=limits.max_receipts,
                                         hint_limit=limits.max_hints_per_token)
    if written.created:
        call.ctx.metrics.signals_stored.inc()
    return call.written(written.created, {"receipt": b64e(token)})


@routes.route("GET", "/v1/signals/status", auth="unsigned",
              who=f"whoever holds the receipt token (header {RECEIPT_HEADER})",
              headers=(Header(RECEIPT_HEADER, "the receipt token the signal's submission answered",
                              RECEIPT),),
              response=ref("signal-status"))
async def signal_status_route(call: Call) -> web.Response:
    """The status of a signal and the coordinator's signed feedback, for the holder of its
    receipt token (header ``Schakel-Receipt``).  An unknown token is 404.

    Example::

        GET /v1/signals/status        Schakel-Receipt: <token>
        200 {"signal": "<id>", "status": "taken-up", "updated": "...", "feedback": [{...}]}
    """
    given = call.request.headers.get(RECEIPT_HEADER)
    if given is None:
        raise MalformedError(f"the {RECEIPT_HEADER} header is missing",
                             details={"field": RECEIPT_HEADER})
    token = b64d(given, length=RECEIPT_BYTES, what="receipt")
    status = await call.ctx.store.read(signal_status, sha256(token))
    if status is None:
        raise NotFound("no signal has this receipt")
    return call.json(status)


@routes.route("GET", "/v1/networks/{network}/signals", auth="signed", who="coordinator",
              query=PAGE,
              response=obj(["items", "cursor"], cursor=CURSOR, items=array(obj(
                  ["cursor", "signal", "received"], cursor=CURSOR,
                  signal={"oneOf": [envelope_of("signal"), ref("signal")]},
                  received=TIMESTAMP), 500)))
async def list_signals(call: Call) -> web.Response:
    """The network's signals as submitted, oldest first, with the server's receive time.

    Example::

        GET /v1/networks/{network}/signals?after=0&limit=100
        200 {"items": [{"cursor": "1", "signal": {...}, "received": "..."}], "cursor": "1"}
    """
    network = call.id("network")
    call.member(network, coordinator=True)
    q = call.query()
    items = await call.ctx.store.read(signal_page, network, q["after"], q["limit"])
    return call.json({"items": items, "cursor": items[-1]["cursor"] if items else str(q["after"])})


@routes.route("POST", "/v1/networks/{network}/signals/{signal}/feedback", auth="signed",
              who="coordinator", status=201,
              body=Body((Field("feedback", envelope_of("signal-feedback")),)),
              response=obj(["signal", "status"], signal=ID,
                           status=def_ref("signal-feedback", "status")),
              errors=("conflict", "context_mismatch"))
async def give_feedback(call: Call) -> web.Response:
    """The coordinator's signed feedback on a signal (status, and optionally a message
    sealed to the signal's reply key).  Feedback is kept in time order: a statement dated
    before the latest one is 409, as is a 51st.

    Example::

        POST /v1/networks/{network}/signals/{signal}/feedback  {"feedback": {"signed":
              {"type": "signal-feedback", "status": "taken-up", ...}, "signatures": [...]}}
        201 {"signal": "<id>", "status": "taken-up"}
    """
    network, signal = call.id("network"), call.id("signal")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    new = check_feedback(body["feedback"], caller.network, signal, received=call.ctx.timestamp(),
                         acting_user=caller.acting_user)
    written = await call.ctx.store.write(add_feedback_txn, new, max_feedback=MAX_FEEDBACK)
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/hints", auth="signed", who="coordinator",
              query=PAGE,
              response=obj(["items", "cursor"], cursor=CURSOR, items=array(obj(
                  ["cursor", "token_kind", "subject", "may_concern", "at"], cursor=CURSOR,
                  token_kind={"enum": ["bsn", "name-dob"]},
                  subject=obj(["kind", "id"], kind={"enum": ["case", "signal"]}, id=ID),
                  may_concern=ID, at=TIMESTAMP), 500)))
async def list_hints(call: Call) -> web.Response:
    """Duplicate hints: a new case or signal carried a blind-index token equal to one of an
    existing case (or a new case one of an earlier signal) in this network.  A hint, never
    an identification: the coordinator confirms it through a basis.

    Example::

        GET /v1/networks/{network}/hints?after=0
        200 {"items": [{"cursor": "1", "token_kind": "bsn", "subject": {"kind": "signal",
             "id": "<id>"}, "may_concern": "<case id>", "at": "..."}], "cursor": "1"}
    """
    network = call.id("network")
    call.member(network, coordinator=True)
    q = call.query()
    items = await call.ctx.store.read(hint_page, network, q["after"], q["limit"])
    return call.json({"items": items, "cursor": items[-1]["cursor"] if items else str(q["after"])})


@routes.route("POST", "/v1/networks/{network}/card", auth="signed", who="coordinator",
              status=201, body=Body((Field("card", envelope_of("network-card")),)),
              response=obj(["network", "serial"], network=ID,
                           serial=def_ref("common", "version")),
              errors=("conflict", "context_mismatch", "policy_violation", "untrusted_key"))
async def publish_card(call: Call) -> web.Response:
    """Publish the network's card: signed by the coordinator key, naming it as the intake
    keys and this network's server keys, for a network that takes anonymous signals,
    not expired.  Its serial must be higher than the latest card's (409, with
    ``details.serial``); the same card again answers 200.

    Example::

        POST /v1/networks/{network}/card  {"card": {"signed": {"type": "network-card",
              "serial": 1, "intake": {...}, "server": {...}, ...}, "signatures": [...]}}
        201 {"network": "<id>", "serial": 1}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    new = check_card(body["card"], caller.network, now=call.ctx.now(),
                     received=call.ctx.timestamp(), acting_user=caller.acting_user)
    written = await call.ctx.store.write(add_card_txn, new)
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/card", auth="unsigned", who="anyone",
              response=obj(["card"], card=envelope_of("network-card")))
async def get_card(call: Call) -> web.Response:
    """The network's latest card, as the coordinator signed it, for anyone: a resident's
    client verifies it under the coordinator's fingerprint before it believes it.  A
    network without a card, or no such network, is 404.

    Example::

        GET /v1/networks/{network}/card
        200 {"card": {"signed": {"type": "network-card", ...}, "signatures": [...]}}
    """
    network = call.id("network")
    card = await call.ctx.store.read(latest_card, network)
    if card is None:
        raise NotFound("this network publishes no card")
    return call.json({"card": card})


__all__ = ["routes", "RECEIPT_HEADER"]
