"""Disclosure routes: consent, grants, releases, bemoeizorg, reviews, purges, the
coordinator's notifications and the subject access report (docs/protocol.md §15 §15.2;
protocol.md §D; flows 4, 5 and 10).

Thin handlers: authorise the caller, verify the object (``checks``), hand one ``*_txn`` to
the writer (``data``, ``bemoeizorg``), answer.  A policy denial comes back from the
transaction as a value after its ``deny`` entry committed and is answered 403
``policy_violation`` with ``details.reason`` and ``details.audit_index``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from schakel.protocol.errors import PolicyViolation
from schakel.server.audit import purpose_readers
from schakel.server.data import Written
from schakel.server.data.cases import reads_case
from schakel.server.disclosure import checks
from schakel.server.disclosure.bemoeizorg import (
    bemoeizorg_release_txn, cosign_txn, invocation_documents, invoke_txn, notifications_page,
    review_txn,
)
from schakel.server.disclosure.data import (
    Denied, Log, ack_purge_txn, case_grants, case_owner, case_row, grant_txn,
    non_coordinator_grant_txn, owned_purge_page, purge_page, record_consent_txn, release_txn,
    revoke_consent_txn,
)
from schakel.server.disclosure.facts import (
    auditors, basis_holders, grantee_of, rules_of, server_actor,
)
from schakel.server.disclosure.report import access_report
from schakel.server.directory import NetworkState
from schakel.server.errors import Forbidden, NotFound
from schakel.server.storage import Db
from schakel.server.registry import (
    CURSOR, ID, KEYID, MAX_INT, TIMESTAMP, Body, Call, Field, Query, RouteTable, array,
    def_ref, envelope_of, obj, ref,
)

routes = RouteTable("disclosure")

PAGE = (Query("after", "return items after this cursor", kind="cursor"),
        Query("limit", "most items to return", low=1, high=500, default=100))
INDEX = {"type": "integer", "minimum": 0, "maximum": MAX_INT}
CLASSES = def_ref("common", "classes")
AUDITED = obj(["audit_index"], audit_index=INDEX)
RECEIPT = obj(["entry", "index", "proof", "tree_head"], entry=ref("audit-entry"), index=INDEX,
              proof=array(def_ref("common", "hash32"), 65), tree_head=envelope_of("tree-head"))
RELEASED = obj(["release", "envelopes", "receipt"], release=ID, receipt=RECEIPT,
               envelopes=array(obj(["class", "version", "inner", "identity"],
                                   **{"class": {"type": "string"}},
                                   version=def_ref("common", "version"),
                                   inner={"type": "string", "description":
                                          "the class-key envelope sealed to the grantee"},
                                   identity=envelope_of("identity-record")), 16, 1))
RELEASE_ID = Field("release", ID, scalar=True)
RELEASE_ERRORS = ("conflict", "context_mismatch", "policy_violation", "not_found")
ON_BEHALF_OF = array(def_ref("common", "printable_text"), 32, 1)
REPORT_ITEM = obj(["index", "time", "partner", "organisation", "acting_user", "classes",
                   "basis", "ref"], index=INDEX, time=TIMESTAMP, partner=def_ref("common", "keyid"),
                  organisation={"type": "string"}, acting_user=def_ref("common", "acting_user"),
                party=def_ref("common", "party"), on_behalf_of=ON_BEHALF_OF,
                  classes=array({"type": "string"}, 16), basis={"type": "string"},
                  ref={"anyOf": [ID, {"type": "null"}]}, action={"type": "string"},
                  reason={"type": "string"})
PURPOSE_ITEM = obj(["index", "time", "partner", "organisation", "acting_user", "classes",
                    "action", "subject", "ref", "purpose"],
                   index=INDEX, time=TIMESTAMP, partner=def_ref("common", "keyid"),
                   organisation={"type": "string"}, acting_user=def_ref("common", "acting_user"),
                   party=def_ref("common", "party"), on_behalf_of=ON_BEHALF_OF,
                   classes=array({"type": "string"}, 16), action={"type": "string"},
                   subject={"anyOf": [def_ref("common", "keyid"), {"type": "null"}]},
                   ref={"anyOf": [ID, {"type": "null"}]},
                   purpose=array(def_ref("audit-entry", "sealed_purpose"), 64))
READ_ITEM = obj(["index", "time", "partner", "organisation", "acting_user", "classes", "served"],
                index=INDEX, time=TIMESTAMP, partner=def_ref("common", "keyid"),
                organisation={"type": "string"}, acting_user=def_ref("common", "acting_user"),
                party=def_ref("common", "party"), on_behalf_of=ON_BEHALF_OF,
                classes=array({"type": "string"}, 16), served={"type": "string"})


def answer(call: Call, result: Written | Denied) -> web.Response:
    """201/200 for a write, 403 ``policy_violation`` for an audited denial."""
    if isinstance(result, Denied):
        raise PolicyViolation(result.message, details={"reason": result.reason,
                                                       "audit_index": result.audit_index})
    return call.written(result.created, result.answer)


def log_for(call: Call, network: str, *, purposes: NetworkState | None = None) -> Log:
    """The audit context of this request: the server's log key and time, and with
    ``purposes`` (the network) the readers a purpose is sealed to."""
    now = call.ctx.now()
    readers = () if purposes is None else purpose_readers(purposes, now)
    return Log(network=network, log_key=call.ctx.keys.log_signer, now=now, readers=readers)


# --------------------------------------------------------------------------- consent


@routes.route("POST", "/v1/networks/{network}/consents", auth="signed",
              who="the case's owner or the coordinator (the consent's signer is the caller)",
              status=201, body=Body((Field("consent", envelope_of("consent")),)),
              response=obj(["consent"], consent=ID),
              errors=("conflict", "context_mismatch", "policy_violation", "not_found"))
async def record_consent(call: Call) -> web.Response:
    """Record the person's consent to disclose classes of a case (audited ``consent``).
    A consent on a consult is an audited denial (``consult-has-no-identity``).  An
    identical retry answers 200; the same consent id with other content is 409.

    Example::

        POST /v1/networks/{network}/consents  {"consent": {"signed": {"type": "consent",
              "consent": "<id>", "case": "<id>", "classes": ["address", "name"],
              "grantees": {"parties": ["formal"]}, ...}, "signatures": [...]}}
        201 {"consent": "<id>"}
    """
    network = call.id("network")
    caller = call.member(network)
    envelope = (await call.body())["consent"]
    owner = await call.ctx.store.read(case_owner, network, checks.case_of_consent(envelope))
    new = checks.check_consent(envelope, caller, owner)
    return answer(call, await call.ctx.store.write(
        record_consent_txn, new, log_for(call, network, purposes=caller.network)))


@routes.route("POST", "/v1/networks/{network}/consents/{consent}/revocation", auth="signed",
              who="the case's owner or the coordinator", status=201,
              body=Body((Field("revocation", envelope_of("consent-revocation")),)),
              response=obj(["consent", "purge_instructions"], consent=ID,
                           purge_instructions=array(ID, 10_000)),
              errors=("conflict", "context_mismatch", "not_found"))
async def revoke_consent(call: Call) -> web.Response:
    """Revoke a consent (audited ``consent-revoke``): every later release under it is
    denied.  Each partner that received classes under it gets a purge instruction signed
    by the server's log key (audited ``purge-instruction``, subject = the recipient); the
    answer lists their ids.  One revocation per consent (an identical retry: 200).

    Example::

        POST /v1/networks/{network}/consents/{consent}/revocation  {"revocation": {"signed":
              {"type": "consent-revocation", "consent": "<id>", "case": "<id>", ...}, ...}}
        201 {"consent": "<id>", "purge_instructions": ["<id>"]}
    """
    network, consent = call.id("network"), call.id("consent")
    caller = call.member(network)
    envelope = (await call.body())["revocation"]
    owner = await call.ctx.store.read(case_owner, network, checks.case_of_revocation(envelope))
    new = checks.check_revocation(envelope, caller, owner, consent)
    return answer(call, await call.ctx.store.write(
        revoke_consent_txn, new, log_for(call, network), server_actor(call.ctx.keys)))


# --------------------------------------------------------------------------- grants and releases


@routes.route("POST", "/v1/networks/{network}/grants", auth="signed",
              who="the coordinator (any other member: an audited denial)",
              status=201, body=Body((Field("grant", envelope_of("grant")),)),
              response=obj(["grant"], grant=ID), errors=RELEASE_ERRORS)
async def grant(call: Call) -> web.Response:
    """Grant a member classes of a case under a consent.  ``policy.decide`` runs now with
    the stored consent, share and the grantee's membership: allowed → audited ``grant``;
    denied → audited ``deny`` and 403 ``policy_violation`` (``details.reason``,
    ``details.audit_index``).  A grant signed by a member that is not the coordinator is
    an audited denial (``grant-requires-coordinator``) before anything in it is looked up.

    Example::

        POST /v1/networks/{network}/grants  {"grant": {"signed": {"type": "grant",
              "grant": "<id>", "grantee": "<keyid>", "classes": ["name"],
              "basis": {"kind": "consent", "consent": "<id>"}, ...}, "signatures": [...]}}
        201 {"grant": "<id>"}
        403 {"error": {"code": "policy_violation", "message": "...",
             "details": {"reason": "informal-class-not-allowed", "audit_index": 12}}}
    """
    network = call.id("network")
    caller = call.member(network)
    new = checks.check_grant((await call.body())["grant"], caller)
    log = log_for(call, network, purposes=caller.network)
    if not caller.is_coordinator:
        return answer(call, await call.ctx.store.write(non_coordinator_grant_txn, new, log))
    return answer(call, await call.ctx.store.write(
        grant_txn, new, log, rules_of(caller.network),
        grantee_of(caller.network, new.grantee, call.ctx.now())))


@routes.route("POST", "/v1/networks/{network}/releases", auth="signed",
              who="the grantee (anyone else, and a former member: an audited denial)",
              status=201, body=Body((Field("grant", ID, scalar=True), RELEASE_ID)),
              response=RELEASED, errors=RELEASE_ERRORS)
async def release(call: Call) -> web.Response:
    """Release what a grant gave: ``decide`` again now (the consent may have been revoked
    or have expired, the grantee removed), then in ONE transaction the audit entry
    (``release``) and the gate seal removed from each granted class's envelope for the
    grantee.  The answer holds the inner envelopes (sealed to the grantee), the owner's
    identity records they open, and the inclusion receipt of the entry.  A grant the
    caller does not hold -- unknown or another partner's, answered alike -- is an audited
    denial (``grant-not-held``).  ``release`` is the client's id: a retry with it is
    decided again; allowed, it answers 200 with the first answer's envelopes and the
    receipt of its own ``release`` entry (a re-delivery).  No gated envelope for a class,
    or a re-delivery after the identity was shredded: 409.

    Example::

        POST /v1/networks/{network}/releases  {"grant": "<id>", "release": "<id>"}
        201 {"release": "<id>", "envelopes": [{"class": "name", "version": 1,
             "inner": "<sealed>", "identity": {...}}], "receipt": {"entry": {...},
             "index": 7, "proof": ["<hash32>"], "tree_head": {...}}}
        403 {"error": {"code": "policy_violation", "message": "...",
             "details": {"reason": "consent-revoked", "audit_index": 9}}}
    """
    network = call.id("network")
    caller = call.member(network, former=True, unlisted=True)
    body = await call.body()
    new = checks.new_release(caller, checks.object_id(body["grant"], "grant"),
                             checks.object_id(body["release"], "release"), "member",
                             call.ctx.now())
    return answer(call, await call.ctx.store.write(
        release_txn, new, log_for(call, network), rules_of(caller.network),
        call.ctx.keys.gate_secret))


# --------------------------------------------------------------------------- bemoeizorg


@routes.route("POST", "/v1/networks/{network}/bemoeizorg", auth="signed",
              who="a formal member holding the bemoeizorg role, in an oggz network (anyone "
                  "else: an audited denial)",
              status=201, body=Body((Field("invocation", envelope_of("bemoeizorg-invocation")),)),
              response=obj(["invocation", "audit_index"], invocation=ID, audit_index=INDEX),
              errors=RELEASE_ERRORS)
async def invoke_bemoeizorg(call: Call) -> web.Response:
    """Invoke the bemoeizorg exception on a case: a ground from the policy, the
    justification sealed to every current auditor.  Rows R1-R4, R8-R10, R12 and R13 are
    checked now (the co-sign comes later): allowed → audited ``bemoeizorg-invoke``
    (emergency, review required) and a notification for the coordinator; denied → audited
    ``deny`` (the rate limit also ``bemoeizorg-alert``) and 403.

    Example::

        POST /v1/networks/{network}/bemoeizorg  {"invocation": {"signed": {"type":
              "bemoeizorg-invocation", "invocation": "<id>", "case": "<id>",
              "ground": "severe-self-neglect", "justification": [...], ...}, ...}}
        201 {"invocation": "<id>", "audit_index": 9}
    """
    network = call.id("network")
    caller = call.member(network, unlisted=True)
    new = checks.check_invocation((await call.body())["invocation"], caller)
    now = call.ctx.now()
    return answer(call, await call.ctx.store.write(
        invoke_txn, new, log_for(call, network), rules_of(caller.network),
        grantee_of(caller.network, caller.keyid, now,
                   (caller.acting_user, new.person.acting_user)),
        auditors(caller.network, now),
        server_actor(call.ctx.keys)))


@routes.route("GET", "/v1/networks/{network}/bemoeizorg/{invocation}", auth="signed",
              who="the coordinator, auditors and the invoker",
              response=obj(["invocation", "cosigns", "reviews"],
                           invocation=envelope_of("bemoeizorg-invocation"),
                           cosigns=array(envelope_of("bemoeizorg-cosign"), 10_000),
                           reviews=array(envelope_of("review"), 10_000)),
              errors=("not_found",))
async def get_invocation(call: Call) -> web.Response:
    """A bemoeizorg invocation with its co-signs and reviews: an auditor opens its
    justification from here (``open_justification``) before it reviews.

    Example::

        GET /v1/networks/{network}/bemoeizorg/{invocation}
        200 {"invocation": {...}, "cosigns": [{...}], "reviews": []}
    """
    network, invocation = call.id("network"), call.id("invocation")
    caller = call.member(network)
    reads_all = caller.is_coordinator or "auditor" in caller.roles
    found = await call.ctx.store.read(invocation_documents, network, invocation)
    if found is None or (not reads_all and found["invoker"] != caller.keyid):
        if reads_all:
            raise NotFound("no such bemoeizorg invocation in this network")
        raise Forbidden("only the coordinator, auditors and the invoker read an invocation")
    del found["invoker"]
    return call.json(found)


@routes.route("POST", "/v1/networks/{network}/bemoeizorg/{invocation}/cosign", auth="signed",
              who="a second holder of the bemoeizorg role (another person than the invoker)",
              status=201, body=Body((Field("cosign", envelope_of("bemoeizorg-cosign")),)),
              response=obj(["invocation", "audit_index"], invocation=ID, audit_index=INDEX),
              errors=RELEASE_ERRORS)
async def cosign_bemoeizorg(call: Call) -> web.Response:
    """Co-sign an invocation (four eyes; audited ``bemoeizorg-cosign``).  The invoker
    itself (same partner and acting user) or a co-signer without the role is an audited
    denial (``bemoeizorg-same-person-cosign``, ``bemoeizorg-cosigner-without-role``).

    Example::

        POST /v1/networks/{network}/bemoeizorg/{invocation}/cosign  {"cosign": {"signed":
              {"type": "bemoeizorg-cosign", "invocation": "<id>", ...}, ...}}
        201 {"invocation": "<id>", "audit_index": 10}
    """
    network, invocation = call.id("network"), call.id("invocation")
    caller = call.member(network, unlisted=True)
    new = checks.check_cosign((await call.body())["cosign"], caller, invocation)
    return answer(call, await call.ctx.store.write(cosign_txn, new, log_for(call, network)))


@routes.route("POST", "/v1/networks/{network}/bemoeizorg/{invocation}/release", auth="signed",
              who="the invoker (anyone else, and a former member: an audited denial)",
              status=201, body=Body((RELEASE_ID,)), response=RELEASED, errors=RELEASE_ERRORS)
async def release_bemoeizorg(call: Call) -> web.Response:
    """Release under an invocation: every row R1-R13 with the co-signs; allowed → ONE
    transaction, audited ``bemoeizorg-release`` (emergency, review required) with the gate
    seals removed, answered like ``POST .../releases``, and the coordinator notified;
    denied → audited ``deny`` and 403 (after ``access_hours``: ``bemoeizorg-expired``).
    An invocation the caller did not make -- unknown or another partner's, answered alike
    -- is an audited denial (``bemoeizorg-missing``).  A retry under its release id is
    decided again and re-delivers like ``POST .../releases``.

    Example::

        POST /v1/networks/{network}/bemoeizorg/{invocation}/release  {"release": "<id>"}
        201 {"release": "<id>", "envelopes": [...], "receipt": {...}}
    """
    network, invocation = call.id("network"), call.id("invocation")
    caller = call.member(network, former=True, unlisted=True)
    body = await call.body()
    new = checks.new_release(caller, invocation, checks.object_id(body["release"], "release"),
                             checks.bemoeizorg_role(caller), call.ctx.now())
    return answer(call, await call.ctx.store.write(
        bemoeizorg_release_txn, new, log_for(call, network), rules_of(caller.network),
        call.ctx.keys.gate_secret, server_actor(call.ctx.keys)))


@routes.route("GET", "/v1/networks/{network}/notifications", auth="signed", who="coordinator",
              query=PAGE,
              response=obj(["items", "cursor"], cursor=CURSOR, items=array(obj(
                  ["cursor", "kind", "case", "at"], cursor=CURSOR,
                  kind={"enum": ["bemoeizorg", "bemoeizorg-release", "bemoeizorg-alert",
                                 "referral-closed"]},
                  invocation=ID, referral=ID, case=ID, at=TIMESTAMP), 500)))
async def notifications(call: Call) -> web.Response:
    """The coordinator's notifications: each bemoeizorg invocation, release and rate-limit
    alert, in order (``invocation`` is the id the invoker gave, also for a refused one),
    and each ``referral-closed``: a case this network referred was closed by the receiving
    network (``referral`` and this network's ``case``; docs/protocol.md §15 §15.5).

    Example::

        GET /v1/networks/{network}/notifications?after=0
        200 {"items": [{"cursor": "3", "kind": "bemoeizorg", "invocation": "<id>",
             "case": "<id>", "at": "..."}], "cursor": "3"}
    """
    network = call.id("network")
    call.member(network, coordinator=True)
    q = call.query()
    items = await call.ctx.store.read(notifications_page, network, q["after"],
                                      min(q["limit"], call.ctx.config.limits.max_page))
    return call.json({"items": items, "cursor": items[-1]["cursor"] if items else str(q["after"])})


# --------------------------------------------------------------------------- reviews and purges


@routes.route("POST", "/v1/networks/{network}/reviews", auth="signed", who="auditors",
              status=201, body=Body((Field("review", envelope_of("review")),)),
              response=AUDITED, errors=("context_mismatch", "not_found"))
async def review(call: Call) -> web.Response:
    """An auditor's review of a bemoeizorg invocation or of an audit entry (``approved`` /
    ``questioned``, with a note; audited ``review``).

    Example::

        POST /v1/networks/{network}/reviews  {"review": {"signed": {"type": "review",
              "invocation": "<id>", "outcome": "approved", "note": "...", ...}, ...}}
        201 {"audit_index": 14}
    """
    network = call.id("network")
    caller = call.member(network, roles=("auditor",))
    new = checks.check_review((await call.body())["review"], caller)
    return answer(call, await call.ctx.store.write(review_txn, new, log_for(call, network)))


PURGE_PAGE = obj(["items", "cursor"], cursor=CURSOR, items=array(obj(
    ["cursor", "instruction"], cursor=CURSOR, instruction=envelope_of("purge-instruction")), 500))


@routes.route("GET", "/v1/networks/{network}/purge-instructions/mine", auth="signed",
              who="any member, and a former member (its memberships revoked or expired)",
              query=PAGE, response=PURGE_PAGE)
async def my_purge_instructions(call: Call) -> web.Response:
    """The caller's purge instructions (signed by the server's log key), in order.  A
    compliant client destroys the keys and plaintexts of the named classes of the case,
    then acknowledges with ``POST .../purge-acks``.  A removed member still reaches this
    route and the acknowledgement with its old key (``membership-removed``, §N.5), and
    no other.

    Example::

        GET /v1/networks/{network}/purge-instructions/mine?after=0
        200 {"items": [{"cursor": "1", "instruction": {"signed": {"type":
             "purge-instruction", "reason": "consent-revoked", ...}, ...}}], "cursor": "1"}
    """
    network = call.id("network")
    caller = call.member(network, former=True)
    return await purge_feed(call, purge_page, network, caller.keyid)


@routes.route("GET", "/v1/networks/{network}/purge-instructions/owned", auth="signed",
              who="any member (the instructions about the cases it owns)", query=PAGE,
              response=PURGE_PAGE)
async def owned_purge_instructions(call: Call) -> web.Response:
    """The purge instructions about the cases the caller owns, in order: how a case's
    owner learns that a recipient of its identity lost its basis (a consent revoked, a
    member removed), after which its client rotates the case's class keys (ADR 0011).

    Example::

        GET /v1/networks/{network}/purge-instructions/owned?after=0
        200 {"items": [{"cursor": "4", "instruction": {"signed": {"type":
             "purge-instruction", "reason": "membership-removed", ...}, ...}}], "cursor": "4"}
    """
    network = call.id("network")
    caller = call.member(network)
    return await purge_feed(call, owned_purge_page, network, caller.keyid)


PurgePage = Callable[[Db, str, str, int, int], list[dict[str, Any]]]


async def purge_feed(call: Call, page: PurgePage, network: str, partner: str) -> web.Response:
    """One page of a purge-instruction feed (``page``: which instructions) for ``partner``."""
    q = call.query()
    items = await call.ctx.store.read(page, network, partner, q["after"],
                                      min(q["limit"], call.ctx.config.limits.max_page))
    return call.json({"items": items, "cursor": items[-1]["cursor"] if items else str(q["after"])})


@routes.route("GET", "/v1/networks/{network}/cases/{case}/holders", auth="signed",
              who="the case's owner", response=obj(
                  ["case", "holders"], case=ID,
                  holders=array(obj(["partner", "classes"], partner=KEYID, classes=CLASSES),
                                10_000)),
              errors=("policy_violation", "not_found"))
async def basis_holders_of_case(call: Call) -> web.Response:
    """Who holds a basis for which classes of the case now: each grantee whose grant
    ``policy.decide`` still allows, and in an oggz network with bemoeizorg each current
    formal holder of the role (every class).  The owner seals a rotated identity version
    to these members only (ADR 0011).  A consult is 403 ``policy_violation``
    ``consult-has-no-identity``; anyone but the owner 403 ``forbidden``.

    Example::

        GET /v1/networks/{network}/cases/{case}/holders
        200 {"case": "<id>", "holders": [{"partner": "<keyid>", "classes": ["name"]}]}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network)
    row = await call.ctx.store.read(case_row, network, case)
    if row["owner"] != caller.keyid:
        raise Forbidden("only the case's owner reads who holds a basis for its identity")
    if row["kind"] == "consult":
        raise PolicyViolation("a consult is anonymous: nobody holds a basis for its identity",
                              details={"reason": "consult-has-no-identity"})
    grants = await call.ctx.store.read(case_grants, network, case)
    holders = basis_holders(caller.network, rules_of(caller.network), case, grants,
                            call.ctx.now())
    return call.json({"case": case, "holders": [
        {"partner": partner, "classes": sorted(classes)} for partner, classes in holders.items()]})


@routes.route("POST", "/v1/networks/{network}/purge-acks", auth="signed",
              who="the instruction's recipient (also a former member)", status=201,
              body=Body((Field("ack", envelope_of("purge-ack")),)),
              response=obj(["instruction", "audit_index"], instruction=ID, audit_index=INDEX),
              errors=("conflict", "context_mismatch", "not_found"))
async def ack_purge(call: Call) -> web.Response:
    """Acknowledge a purge instruction (audited ``purge-ack``): evidence that a compliant
    client destroyed the keys, not enforcement.  One per instruction.

    Example::

        POST /v1/networks/{network}/purge-acks  {"ack": {"signed": {"type": "purge-ack",
              "instruction": "<id>", "case": "<id>", ...}, "signatures": [...]}}
        201 {"instruction": "<id>", "audit_index": 15}
    """
    network = call.id("network")
    caller = call.member(network, former=True)
    new = checks.check_purge_ack((await call.body())["ack"], caller)
    return answer(call, await call.ctx.store.write(ack_purge_txn, new, log_for(call, network)))


# --------------------------------------------------------------------------- the report


@routes.route("GET", "/v1/networks/{network}/cases/{case}/access-report", auth="signed",
              who="the coordinator and auditors",
              response=obj(["case", "size", "releases", "denials", "reads", "purposes", "erased",
                            "text"],
                           case=ID, size={"type": "integer", "minimum": 0},
                           releases=array(REPORT_ITEM, 1_000_000),
                           denials=array(REPORT_ITEM, 1_000_000),
                           reads=array(READ_ITEM, 1_000_000),
                           purposes=array(PURPOSE_ITEM, 1_000_000),
                           erased={"type": "integer", "minimum": 0},
                           text={"type": "string"}))
async def subject_access_report(call: Call) -> web.Response:
    """The subject access report of one case (design flow 10: the network answers a
    person's access request through one contact point): every release of its identity,
    every refused request and every read of its data -- who, when, which classes, on what
    basis, what was served -- built from the audit log only, as JSON and as a readable
    Dutch/English text.  A subset case outside the caller's audience is 404, as a case
    that does not exist (ADR 0031).

    Example::

        GET /v1/networks/{network}/cases/{case}/access-report
        200 {"case": "<id>", "size": 12, "releases": [{"index": 7, "time": "...", "partner": "<keyid>",
             "organisation": "...", "acting_user": "...", "classes": ["name"],
             "basis": "consent", "ref": "<grant id>"}], "denials": [...],
             "reads": [{"index": 9, "time": "...", "partner": "<keyid>", "organisation": "...",
             "acting_user": "...", "classes": [], "served": "sync 18..40: 23 event"}],
             "purposes": [{"index": 6, "action": "grant", "ref": "<grant id>", ...,
             "purpose": [{"reader": "<keyid>", "sealed": "..."}]}],
             "erased": 0,
             "text": "Inzageverslag / subject access report\\n..."}
    """
    network, case = call.id("network"), call.id("case")
    caller = call.member(network)
    if not (caller.is_coordinator or "auditor" in caller.roles):
        raise Forbidden("only the coordinator and auditors produce an access report")
    if not await call.ctx.store.read(reads_case, network, case, caller.keyid):
        # ADR 0031: a subset case outside the caller's audience is answered as absent.
        raise NotFound("no such case in this network")
    return call.json(await call.ctx.store.read(
        access_report, network, case, network_name=caller.network.genesis.name,
        produced=call.ctx.timestamp()))


__all__ = ["routes"]
