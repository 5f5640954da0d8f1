"""Cases, events, shares, case-key rotations, header replacements, widened audiences and
backfilled gated envelopes (flow 2 and 6; protocol.md §C.1-§C.5, §C.11, §D.7; ADR 0007,
ADR 0011, ADR 0031)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from schakel.protocol.envelopes import PURPOSE_MAX_CHARS
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.disclosure import Share

from schakel.server.audit import read_note, share_note, widen_note
from schakel.server.auth import Caller
from schakel.server.checks.cases import (
    check_case, check_event, check_gated, check_header, check_purge, check_rekey, check_share,
    check_widen,
)
from schakel.server.data.cases import (
    NewWidening, add_gated_txn, add_rekey_txn, add_share_txn, append_event_txn, case_audience,
    case_documents, case_facts, case_header, create_case_txn, replace_header_txn,
    widen_audience_txn,
)
from schakel.server.disclosure.erasure import purge_txn
from schakel.server.disclosure.routes import log_for
from schakel.server.errors import Forbidden, NotFound
from schakel.server.registry import (
    CURSOR, ID, KEYID, Body, Call, Field, RouteTable, array, envelope_of, obj, ref,
)
from schakel.server.checks import canonical

routes = RouteTable("cases")

EVENT_ANSWER = obj(["event", "seq", "cursor"], event=ID, seq={"type": "integer", "minimum": 1},
                   cursor=CURSOR)
VERSION = {"type": "integer", "minimum": 1, "maximum": 1_000_000}
#: Most case owners the append route keeps (``AppContext.case_owners``); then it starts over.
_OWNER_CACHE = 100_000


async def _case_access(call: Call, caller: Caller, case: str) -> str:
    """The case's owner, if the caller may see it (:func:`_case_access_facts`)."""
    return (await _case_access_facts(call, caller, case))[0]


async def _case_access_facts(call: Call, caller: Caller, case: str) -> tuple[str, bool]:
    """The case's owner and whether it is a subset case, if the caller may see it: core
    members see every case of their network but the subset cases whose audience does not
    name them (404 for both, as if the case did not exist: no oracle, ADR 0031), a shell
    partner only a case shared with it (403 otherwise, whether or not the case exists)."""
    facts = await call.ctx.store.read(case_facts, caller.network.network, case, caller.keyid)
    if caller.ring == "shell" and (facts is None or not facts[1]):
        raise Forbidden("this case is not shared with the caller")
    if facts is None or (caller.ring != "shell" and not facts[2]):
        raise NotFound("no such case in this network")
    return facts[0], facts[3]


async def _owners_request(call: Call, doing: str) -> tuple[Caller, str, dict[str, Any], Any]:
    """The caller -- a current core member that owns the path's case, else 403 (``doing``:
    what only the owner does) --, the case id, the request body and the case's stored
    header."""
    network, case = call.id("network"), call.id("case")
    caller = call.member(network, ring="core", membership=True)
    if caller.keyid != await _case_access(call, caller, case):
        raise Forbidden(f"only the case's owner {doing}")
    body = await call.body()
    return caller, case, body, await call.ctx.store.read(case_header, network, case)


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
    """Append an event signed by its author (the caller).  Its ``case_key_version`` must be
    the case's current version, else 409 with ``details.case_key_version`` (ADR 0007: after
    a rekey only the new key may be used); ``seq`` must be the case's last ``seq`` + 1 and
    ``prev`` the ``event_hash`` of its last event, else 409 with ``details.last_seq``; a
    closed case takes only an event with ``status: open``.  The same event id with the same
    body answers 200 with the first answer; with another body 409.

    Example::

        POST /v1/networks/{network}/cases/{case}/events  {"event": {"signed": {"type":
              "event", "seq": 2, "prev": "<hash32>", ...}, "signatures": [...]}}
        201 {"event": "<id>", "seq": 2, "cursor": "18"}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network, membership=True)
    owners = call.ctx.case_owners
    # A core member sees every case of its network but subset cases, so for any other
    # case the owner is all the access check needs: kept after the first read, and
    # re-checked by the writing transaction (a case shredded meanwhile is 404 there, and
    # leaves the cache).  A subset case is checked against its audience every time.
    owner = owners.get((network, case)) if caller.ring == "core" else None
    if owner is None:
        owner, subset = await _case_access_facts(call, caller, case)
        if caller.ring == "core" and not subset:
            if len(owners) >= _OWNER_CACHE:
                owners.clear()
            owners[(network, case)] = owner
    body = await call.body()
    new = check_event(body["event"], caller, case, received=call.ctx.timestamp())
    if new.status is not None and caller.keyid != owner and not caller.is_coordinator:
        # Closing starts the retention clock (flow 9): only the owner or the coordinator.
        raise Forbidden("only the case's owner or the coordinator closes or reopens a case")
    try:
        written = await call.ctx.store.write(append_event_txn, new, owner=owner, notify=network)
    except NotFound:
        owners.pop((network, case), None)
        raise
    if written.created:
        call.ctx.metrics.events_stored.inc()
    return call.written(written.created, written.answer)


@routes.route("GET", "/v1/networks/{network}/cases/{case}", auth="signed",
              who="core members; shell partners the case is shared with",
              response=obj(["header", "events", "identity", "rekeys"],
                           header=envelope_of("case-header"),
                           events=array(envelope_of("event"), 1_000_000_000),
                           identity=array(envelope_of("identity-record"), 16),
                           rekeys=array(envelope_of("case-rekey"), 1_000_000)))
async def get_case(call: Call) -> web.Response:
    """A case's header, events in ``seq`` order, its identity records for the owner only
    (empty for everyone else) and its rekeys in version order (everyone who may read the
    case: a shell partner needs them to follow the key it was shared).  Logged first as
    one ``read`` audit entry (with the identity records' classes when it serves any).

    Example::

        GET /v1/networks/{network}/cases/{case}
        200 {"header": {...}, "events": [{...}, {...}], "identity": [],
             "rekeys": [{"signed": {"type": "case-rekey", "case_key_version": 2, ...}, ...}]}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network)
    owner = await _case_access(call, caller, case)
    documents = await call.ctx.store.read(case_documents, network, case,
                                          with_identity=owner == caller.keyid)
    # protocol.md §15.6: what is served is logged first.
    classes = sorted(r["signed"]["class"] for r in documents["identity"])
    served = (f"case: 1 header, {len(documents['events'])} event, "
              f"{len(documents['rekeys'])} rekey, {len(classes)} identity")
    await call.ctx.store.write(read_note(call.ctx, caller, cases=[case], served=served,
                                         classes=classes or None).append_txn)
    return call.json(documents)


@routes.route("POST", "/v1/networks/{network}/shares", auth="signed", who="coordinator",
              status=201, body=Body((Field("share", envelope_of("share")),)),
              response=obj(["case", "partner", "cursor"], case=ID, partner=KEYID, cursor=CURSOR),
              errors=("context_mismatch", "policy_violation"))
async def share_case(call: Call) -> web.Response:
    """Share a case's anonymous layer with a current member (the case key sealed to it,
    signed by the coordinator key).  A shell partner gets the share that lets it work on
    the case (with the current version, so that it can write); a core member gets a
    re-share of history, an earlier version (ADR 0007).  ``case_key_version`` may be any
    version the case has had, 1..current (else 400 ``context_mismatch``); a partner that is
    not a current member is 403 ``policy_violation`` ``partner-not-member``.  A shell
    partner then syncs the case; its earlier history is read with ``GET .../cases/{case}``.

    Example::

        POST /v1/networks/{network}/shares  {"share": {"signed": {"type": "share",
              "case": "<id>", "partner": "<keyid>", ...}, "signatures": [...]}}
        201 {"case": "<id>", "partner": "<keyid>", "cursor": "19"}
    """
    network = call.id("network")
    caller = call.member(network, coordinator=True)
    body = await call.body()
    case = Share.peek(body["share"])["case"]
    audience = await call.ctx.store.read(case_audience, network, case)
    new = check_share(body["share"], caller.network, call.ctx.now(),
                      received=call.ctx.timestamp(), acting_user=caller.acting_user,
                      audience=audience)
    written = await call.ctx.store.write(add_share_txn, new,
                                         audit=share_note(call.ctx, caller, new), notify=network)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/cases/{case}/rekeys", auth="signed",
              who="the case's owner or the coordinator (a core member; the rekey is signed by "
                  "the caller)",
              status=201, body=Body((Field("rekey", envelope_of("case-rekey")),)),
              response=obj(["case", "case_key_version", "cursor"], case=ID,
                           case_key_version=VERSION, cursor=CURSOR),
              errors=("conflict", "context_mismatch"))
async def rekey_case(call: Call) -> web.Response:
    """Rotate a case's anonymous key (ADR 0007): a ``case-rekey`` signed by the caller, the
    case's owner or the coordinator.  ``case_key_version`` must be the case's current
    version + 1, else 409 with ``details.case_key_version`` = the current version; ``epoch``
    must be the network's latest distributed epoch, else 409 with ``details.epoch``.  A
    subset case's rekey seals the new key to exactly the current members of its audience
    (400 ``context_mismatch`` with ``details.audience`` otherwise; ADR 0031).  Closed
    cases may be rekeyed too.  The rekey becomes a sync item of kind ``rekey``; events must
    then use the new version.  Idempotent by the envelope's digest: an identical retry
    answers 200 with the first answer.

    Example::

        POST /v1/networks/{network}/cases/{case}/rekeys  {"rekey": {"signed": {"type":
              "case-rekey", "case_key_version": 2, "epoch": 3, ...}, "signatures": [...]}}
        201 {"case": "<id>", "case_key_version": 2, "cursor": "41"}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network, ring="core")
    owner = await _case_access(call, caller, case)
    if caller.keyid != owner and not caller.is_coordinator:
        raise Forbidden("only the case's owner or the coordinator rotates its key")
    body = await call.body()
    audience = await call.ctx.store.read(case_audience, network, case)
    new = check_rekey(body["rekey"], caller, case, received=call.ctx.timestamp(),
                      audience=audience, now=call.ctx.now())
    written = await call.ctx.store.write(add_rekey_txn, new, notify=network)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/cases/{case}/header", auth="signed",
              who="the case's owner (a current core member; the header is signed by the caller)",
              status=201,
              body=Body((Field("header", envelope_of("case-header")),
                         Field("identity", envelope_of("identity-record"), many=True,
                               min_items=1, max_items=16),
                         Field("gated", ref("gated-envelope"), required=False, many=True,
                               max_items=64))),
              response=obj(["case", "identity_version", "cursor"], case=ID,
                           identity_version=VERSION, cursor=CURSOR),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def replace_header(call: Call) -> web.Response:
    """Replace a case's header with its next identity version (ADR 0011): new class keys
    sealed in new identity records, and gated envelopes for the members who still hold a
    basis.  Only ``identity_version`` (the current + 1, else 409 with
    ``details.identity_version``) and ``classes`` may differ from the current header (400
    ``context_mismatch``); every class has its record; the case must be open (409); a
    consult is 403 ``policy_violation`` ``consult-has-no-identity``.  The records replace
    the case's, gated envelopes of older versions are deleted, and a ``header`` sync item
    carries the new header.  An identical retry answers 200 with the first answer.

    Example::

        POST /v1/networks/{network}/cases/{case}/header  {"header": {"signed": {"type":
              "case-header", "identity_version": 2, "classes": ["name"], ...}, ...},
              "identity": [{...}], "gated": [{...}]}
        201 {"case": "<id>", "identity_version": 2, "cursor": "52"}
    """
    caller, case, body, held = await _owners_request(call, "replaces its header")
    new = check_header(body, caller, case, held, received=call.ctx.timestamp(),
                       now=call.ctx.now())
    written = await call.ctx.store.write(replace_header_txn, new, notify=caller.network.network)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/cases/{case}/audience", auth="signed",
              who="the case's owner (a current core member; the header is signed by the caller)",
              status=201,
              body=Body((Field("header", envelope_of("case-header")),
                         Field("reason", {"type": "string", "minLength": 1,
                                          "maxLength": PURPOSE_MAX_CHARS}, scalar=True))),
              response=obj(["case", "cursor"], case=ID, cursor=CURSOR),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def widen_audience(call: Call) -> web.Response:
    """Widen a subset case's audience (protocol.md §C.1, "Audience"; ADR 0031): a header
    signed by the owner that keeps every member and sealed key and adds current core
    members, each sealed every case-key version the case has had (409 with
    ``details.case_key_version`` otherwise), with the reason for it.  Each added member
    gets one ``audience-widen`` audit entry (subject = the member) carrying the reason
    sealed to the coordinator and the auditors, appended with the new header; a ``header``
    sync item carries it to the audience, the added members included, who then read the
    case's history with ``GET .../cases/{case}``.  A changed field is 400
    ``context_mismatch``, a member that is not a current core member 403
    ``policy_violation`` ``audience-not-core``, a header that changed meanwhile 409.  The
    same header again answers 200.

    Example::

        POST /v1/networks/{network}/cases/{case}/audience  {"header": {"signed": {"type":
              "case-header", "audience": ["<keyid>", "<keyid>", "<keyid>"], ...}, ...},
              "reason": "wijkverpleging neemt de zorg over"}
        201 {"case": "<id>", "cursor": "61"}
    """
    caller, case, body, held = await _owners_request(call, "widens its audience")
    if not 1 <= len(body["reason"]) <= PURPOSE_MAX_CHARS:
        raise MalformedError(f"reason must be 1..{PURPOSE_MAX_CHARS} characters",
                             details={"field": "reason"})
    header, added = check_widen(body["header"], caller, case, held, call.ctx.now())
    sealed_version = max((k.version for k in header.audience_keys or ()
                          if k.member in added), default=0)
    notes = tuple(widen_note(call.ctx, caller, case=case, member=member,
                             version=sealed_version, reason=body["reason"]) for member in added)
    new = NewWidening(network=caller.network.network, case=case,
                      header=canonical(body["header"])[0], held=canonical(held)[0],
                      added=added, sealed_version=sealed_version, audit=notes)
    written = await call.ctx.store.write(widen_audience_txn, new, notify=caller.network.network)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/cases/{case}/gated", auth="signed",
              who="the case's owner", status=201,
              body=Body((Field("gated", ref("gated-envelope"), many=True, min_items=1,
                               max_items=64),)),
              response=obj(["case", "stored"], case=ID,
                           stored={"type": "integer", "minimum": 1, "maximum": 64}),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def backfill_gated(call: Call) -> web.Response:
    """Store gated envelopes for members who joined after the case was created (ADR 0007),
    in the same table as those uploaded with the case, so releases find them.  Each is for
    one of the case's classes at its identity version (400 otherwise) and for a current
    member (403 ``policy_violation`` ``recipient-not-member``); a consult is 403
    ``policy_violation`` ``consult-has-no-identity``.  An envelope already stored for the
    same (class, version, recipient) with the same blob is a no-op; with another blob 409;
    a class without an identity record 409 with ``details.classes``.  ``stored`` is the
    number of the request's envelopes the server now holds; 201 when at least one was new,
    200 when all were held already (an identical retry).

    Example::

        POST /v1/networks/{network}/cases/{case}/gated  {"gated": [{"network": "<id>",
              "case": "<id>", "class": "name", "version": 1, "recipient": "<keyid>",
              "blob": "..."}]}
        201 {"case": "<id>", "stored": 1}
    """
    caller, _, body, header = await _owners_request(call, "backfills its gated envelopes")
    new = check_gated(body, header, caller.network, call.ctx.now())
    written = await call.ctx.store.write(add_gated_txn, new)
    return call.written(written.created, written.answer)


@routes.route("POST", "/v1/networks/{network}/cases/{case}/purges", auth="signed",
              who="an erasure: the case's owner or the coordinator; a rectification: the "
                  "case's owner (a core member; the purge is signed by the caller)",
              status=201, body=Body((Field("purge", envelope_of("identity-purge")),)),
              response=obj(["case", "purge", "kind", "identity_version", "cursor",
                            "audit_index"], case=ID, purge=ID,
                           kind={"enum": ["erasure", "rectification"]},
                           identity_version=VERSION, cursor=CURSOR,
                           audit_index={"type": "integer", "minimum": 0}),
              errors=("conflict", "context_mismatch", "policy_violation"))
async def purge_identity(call: Call) -> web.Response:
    """Erase (AVG art. 17) or rectify (art. 16) a case's identity (protocol.md §C.12, ADR
    0034): an ``identity-purge`` signed by the caller.  An erasure names the case's current
    ``identity_version``; a rectification a version below it, after the owner's
    replacement header sealed the corrected fields (else 409 with
    ``details.identity_version`` = the current).  In one transaction: audited ``erasure``
    or ``rectification`` (the purge's reason sealed to the coordinator and the auditors),
    the identity records and gated envelopes of the purged versions deleted (for an
    erasure also the case's blind-index tokens and hints), the stored release answers
    stripped of them, and a ``purge`` sync item for every holder.  After an erasure every
    release is denied (R14) and nothing is sealed again (409).  A consult: 403
    ``consult-has-no-identity``.  An identical retry answers 200 with the first answer.

    Example::

        POST /v1/networks/{network}/cases/{case}/purges  {"purge": {"signed": {"type":
              "identity-purge", "kind": "erasure", "identity_version": 1, ...}, ...}}
        201 {"case": "<id>", "purge": "<id>", "kind": "erasure", "identity_version": 1,
             "cursor": "61", "audit_index": 14}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network, ring="core")
    owner = await _case_access(call, caller, case)
    body = await call.body()
    new = check_purge(body["purge"], caller, case, owner, received=call.ctx.timestamp())
    written = await call.ctx.store.write(purge_txn, new,
                                         log_for(call, network, purposes=caller.network),
                                         notify=network, shred=True)
    return call.written(written.created, written.answer)


__all__ = ["routes"]
