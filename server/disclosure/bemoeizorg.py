"""Bemoeizorg, reviews and the coordinator's notifications in the database
(docs/protocol.md §15 §15.2; protocol.md §D.4-§D.6, §7 rows R8-R13; flow 5).

As in :mod:`schakel.server.disclosure.data`, every fact ``decide`` reads from storage is read
inside the write transaction: the invocation, its co-signs and the person's invocations of
the 24 hours before it (R12).  Times are the server's: an invocation starts its
``access_hours`` (R13) and counts for the rate limit at the moment the server accepted it,
not at the ``at`` its client wrote.

At invocation the policy is checked without the four-eyes row (the co-sign comes later):
rows R1-R4, R8-R10, R12 and R13.  At release every row is checked again, with the co-signs,
also for a retry under a stored release id (after ``access_hours`` it is denied).
A rate-limit denial also appends a ``bemoeizorg-alert`` entry (actor: the server, subject:
the person's partner) and notifies the coordinator.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from schakel.protocol.crypto import BoxSecretKey
from schakel.protocol.errors import ContextMismatchError
from schakel.protocol.objects.audit import AuditActor
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.protocol.policy import BemoeizorgFacts, Decision, Grantee, Person, Request, Rules, decide
from schakel.server.audit import entry_count
from schakel.server.data import Written, cursor_text, insert
from schakel.server.disclosure.data import (
    Denied, Log, NewRelease, Signed, case_row, deny, identity_erased, earlier_release, not_held,
    release_envelopes_txn, shared_with,
)
from schakel.server.errors import Conflict, NotFound
from schakel.server.storage import Db

DAY = timedelta(hours=24)
RATE_LIMIT = "bemoeizorg-rate-limit"


@dataclass(frozen=True, kw_only=True)
class NewInvocation:
    network: str
    invocation: str
    case: str
    classes: tuple[str, ...]
    ground: str
    auditors: frozenset[str]        #: the auditors the justification is sealed to
    person: Person                  #: the signer and the invocation's acting user
    at: str
    signed: Signed


@dataclass(frozen=True, kw_only=True)
class NewCosign:
    network: str
    invocation: str
    case: str
    person: Person
    roles: frozenset[str]           #: the co-signer's roles now (membership)
    at: str
    signed: Signed


@dataclass(frozen=True, kw_only=True)
class NewReview:
    network: str
    invocation: str | None
    entry: int | None
    outcome: str
    signed: Signed


#: A release under an invocation the caller did not make: the same answer, and the same
#: entry, for an invocation id that does not exist and for another partner's (row R9's
#: reason; docs/protocol.md §15.2), so the answer does not tell which ids exist.
NO_INVOCATION = Decision(False, "bemoeizorg-missing",
                         "the caller made no bemoeizorg invocation with this id in this network")


def _invocation_row(db: Db, network: str, invocation: str) -> Any | None:
    return db.execute("SELECT * FROM invocations WHERE network = ? AND invocation = ?",
                      (network, invocation)).fetchone()


def _invocation(db: Db, network: str, invocation: str) -> Any:
    row = _invocation_row(db, network, invocation)
    if row is None:
        raise NotFound("no such bemoeizorg invocation in this network")
    return row


def _recent(db: Db, network: str, person: Person, *, before: str, exclude: str = "") -> int:
    """The person's accepted invocations in the 24 hours before ``before`` (R12)."""
    since = format_timestamp(parse_timestamp(before) - DAY)
    row = db.execute("SELECT COUNT(*) FROM invocations WHERE network = ? AND invoker = ?"
                     " AND acting_user = ? AND received > ? AND received <= ?"
                     " AND invocation != ?",
                     (network, person.partner, person.acting_user, since, before, exclude))
    return int(row.fetchone()[0])


def _request(db: Db, network: str, case: str, classes: Any, grantee: Grantee,
             facts: BemoeizorgFacts) -> Request:
    return Request(network=network, case=case,
                   case_kind="consult" if case_row(db, network, case)["kind"] == "consult"
                   else "case",
                   classes=frozenset(classes), grantee=grantee, basis="bemoeizorg",
                   shared_with_grantee=shared_with(db, network, case, grantee.partner),
                   bemoeizorg=facts, identity_erased=identity_erased(db, network, case))


def _notify(db: Db, log: Log, kind: str, invocation: str, case: str) -> None:
    insert(db, "notifications", {"network": log.network, "kind": kind,
                                 "invocation": invocation, "case": case, "at": log.stamp})


def _denied(db: Db, log: Log, decision: Decision, *, actor: AuditActor, server: AuditActor,
            case: str, classes: Any, ref: str) -> Denied:
    """Audit a bemoeizorg denial; the rate limit also raises an alert entry and tells the
    coordinator (protocol.md §D.4, flow 5)."""
    denied = deny(db, log, decision, actor=actor, basis="bemoeizorg", case=case,
                  subject=actor.partner, classes=classes, ref=ref)
    if decision.reason == RATE_LIMIT:
        log.append(db, actor=server, action="bemoeizorg-alert", basis="bemoeizorg",
                   outcome="deny", reason=RATE_LIMIT, case=case, subject=actor.partner,
                   classes=classes, ref=ref, review_required=True, emergency=True)
        _notify(db, log, "bemoeizorg-alert", ref, case)
    return denied


# --------------------------------------------------------------------------- invocation


def invoke_txn(db: Db, inv: NewInvocation, log: Log, rules: Rules, grantee: Grantee,
               auditors: frozenset[str], server: AuditActor) -> Written | Denied:
    """Accept a bemoeizorg invocation if the policy allows it apart from the co-sign
    (audited ``bemoeizorg-invoke``: emergency, review required; the coordinator is
    notified); a denial is audited ``deny``."""
    found = db.execute("SELECT digest, answer FROM invocations WHERE network = ?"
                       " AND invocation = ?", (inv.network, inv.invocation)).fetchone()
    if found is not None:
        if found["digest"] != inv.signed.digest:
            raise Conflict("an invocation with this id already exists with other content")
        return Written(False, json.loads(found["answer"]))
    justified = bool(auditors) and inv.auditors == auditors      # R10: sealed to the auditors
    facts = BemoeizorgFacts(invoker=inv.person, ground=inv.ground, has_justification=justified,
                            invoked_at=log.now,
                            recent_by_person=_recent(db, inv.network, inv.person,
                                                     before=log.stamp))
    request = _request(db, inv.network, inv.case, inv.classes, grantee, facts)
    decision = decide(request, dataclasses.replace(rules, four_eyes=False), now=log.now)
    actor = inv.signed.actor
    if not decision.allowed:
        return _denied(db, log, decision, actor=actor, server=server, case=inv.case,
                       classes=inv.classes, ref=inv.invocation)
    receipt = log.append(db, actor=actor, action="bemoeizorg-invoke", basis="bemoeizorg",
                         reason=inv.ground, case=inv.case, classes=inv.classes,
                         ref=inv.invocation, review_required=True, emergency=True)
    answer = {"invocation": inv.invocation, "audit_index": receipt["index"]}
    insert(db, "invocations", {
        "network": inv.network, "invocation": inv.invocation, "case": inv.case,
        "invoker": inv.person.partner, "acting_user": inv.person.acting_user,
        "classes": json.dumps(inv.classes), "ground": inv.ground, "justified": justified,
        "at": inv.at, "envelope": inv.signed.envelope, "digest": inv.signed.digest,
        "audit_index": receipt["index"], "answer": json.dumps(answer), "received": log.stamp})
    _notify(db, log, "bemoeizorg", inv.invocation, inv.case)
    return Written(True, answer)


def cosign_txn(db: Db, c: NewCosign, log: Log) -> Written | Denied:
    """A second role-holder co-signs (audited ``bemoeizorg-cosign``).  The invoker itself,
    or a co-signer without the role, is an audited denial (R11)."""
    found = db.execute("SELECT digest, answer FROM cosigns WHERE network = ? AND digest = ?",
                       (c.network, c.signed.digest)).fetchone()
    if found is not None:
        return Written(False, json.loads(found["answer"]))
    inv = _invocation(db, c.network, c.invocation)
    if inv["case"] != c.case:
        raise ContextMismatchError("the co-sign names another case than the invocation",
                                   details={"field": "case"})
    if c.at < inv["at"]:
        raise ContextMismatchError("a co-sign cannot be dated before the invocation",
                                   details={"field": "at"})
    classes = json.loads(inv["classes"])
    invoker = Person(partner=inv["invoker"], acting_user=inv["acting_user"])
    if "bemoeizorg" not in c.roles:
        decision = Decision(False, "bemoeizorg-cosigner-without-role",
                            "the co-signer does not hold the bemoeizorg role")
    elif c.person == invoker:
        decision = Decision(False, "bemoeizorg-same-person-cosign",
                            "four eyes means two people: the invoker cannot co-sign")
    else:
        decision = Decision(True, "allowed", "")
    if not decision.allowed:
        return deny(db, log, decision, actor=c.signed.actor, basis="bemoeizorg", case=c.case,
                    subject=invoker.partner, classes=classes, ref=c.invocation)
    receipt = log.append(db, actor=c.signed.actor, action="bemoeizorg-cosign",
                         basis="bemoeizorg", reason="four-eyes", case=c.case,
                         subject=invoker.partner, classes=classes, ref=c.invocation,
                         emergency=True)
    answer = {"invocation": c.invocation, "audit_index": receipt["index"]}
    insert(db, "cosigns", {
        "network": c.network, "invocation": c.invocation, "partner": c.person.partner,
        "acting_user": c.person.acting_user, "roles": json.dumps(sorted(c.roles)),
        "envelope": c.signed.envelope, "digest": c.signed.digest,
        "audit_index": receipt["index"], "answer": json.dumps(answer), "received": log.stamp})
    return Written(True, answer)


def bemoeizorg_release_txn(db: Db, r: NewRelease, log: Log, rules: Rules,
                           gate_secret: BoxSecretKey, server: AuditActor) -> Written | Denied:
    """The invoker's release under invocation ``r.ref``, new or retried under a stored
    release id.  An invocation the caller did not make (none with this id, or another
    partner's) is an audited ``deny`` (``bemoeizorg-missing``).  Otherwise every row
    (R1-R13) runs again now with the co-signs; denied → audited ``deny`` (and the alert for
    the rate limit; after ``access_hours``: ``bemoeizorg-expired``); allowed → the
    one-transaction release or re-delivery, audited ``bemoeizorg-release`` (emergency,
    review required), and the coordinator is notified."""
    inv = _invocation_row(db, r.network, r.ref)
    if inv is None or inv["invoker"] != r.grantee.partner:
        return not_held(db, log, NO_INVOCATION, r, "bemoeizorg")
    earlier = earlier_release(db, r)
    invoker = Person(partner=inv["invoker"], acting_user=inv["acting_user"])
    cosigners = tuple(
        (Person(partner=row["partner"], acting_user=row["acting_user"]),
         frozenset(json.loads(row["roles"])))
        for row in db.execute("SELECT partner, acting_user, roles FROM cosigns"
                              " WHERE network = ? AND invocation = ? ORDER BY id",
                              (r.network, r.ref)))
    facts = BemoeizorgFacts(invoker=invoker, ground=inv["ground"],
                            has_justification=bool(inv["justified"]),
                            invoked_at=parse_timestamp(inv["received"]), cosigners=cosigners,
                            recent_by_person=_recent(db, r.network, invoker,
                                                     before=inv["received"], exclude=r.ref))
    classes = json.loads(inv["classes"])
    decision = decide(_request(db, r.network, inv["case"], classes, r.grantee, facts), rules,
                      now=log.now)
    if not decision.allowed:
        return _denied(db, log, decision, actor=r.actor, server=server, case=inv["case"],
                       classes=classes, ref=r.ref)
    written = release_envelopes_txn(db, log, gate_secret, r, case=inv["case"], classes=classes,
                                    action="bemoeizorg-release", basis="bemoeizorg",
                                    reason=inv["ground"], earlier=earlier)
    _notify(db, log, "bemoeizorg-release", r.ref, inv["case"])
    return written


# --------------------------------------------------------------------------- reviews


def review_txn(db: Db, rv: NewReview, log: Log) -> Written:
    """An auditor's review of an invocation or of an audit entry (audited ``review``)."""
    found = db.execute("SELECT digest, answer FROM reviews WHERE network = ? AND digest = ?",
                       (rv.network, rv.signed.digest)).fetchone()
    if found is not None:
        return Written(False, json.loads(found["answer"]))
    case = None
    reason = f"review-{rv.outcome}"
    if rv.invocation is not None:
        case = _invocation(db, rv.network, rv.invocation)["case"]
    elif rv.entry is not None and rv.entry >= entry_count(db, rv.network):
        raise NotFound("no audit entry with this index", details={"entry": rv.entry})
    else:
        reason = f"{reason} of entry {rv.entry}"
    receipt = log.append(db, actor=rv.signed.actor, action="review", basis="policy",
                         reason=reason, case=case, ref=rv.invocation)
    answer = {"audit_index": receipt["index"]}
    insert(db, "reviews", {
        "network": rv.network, "invocation": rv.invocation, "entry": rv.entry,
        "auditor": rv.signed.actor.partner, "outcome": rv.outcome,
        "envelope": rv.signed.envelope, "digest": rv.signed.digest,
        "audit_index": receipt["index"], "answer": json.dumps(answer), "received": log.stamp})
    return Written(True, answer)


# --------------------------------------------------------------------------- reads


def invocation_documents(db: Db, network: str, invocation: str) -> dict[str, Any] | None:
    """The signed invocation with its co-signs and reviews, or None."""
    row = db.execute("SELECT envelope, invoker FROM invocations WHERE network = ?"
                     " AND invocation = ?", (network, invocation)).fetchone()
    if row is None:
        return None

    def envelopes(table: str) -> list[Any]:
        return [json.loads(r["envelope"]) for r in db.execute(
            f"SELECT envelope FROM {table} WHERE network = ? AND invocation = ? ORDER BY id",
            (network, invocation))]
    return {"invoker": row["invoker"], "invocation": json.loads(row["envelope"]),
            "cosigns": envelopes("cosigns"), "reviews": envelopes("reviews")}


def notifications_page(db: Db, network: str, after: int, limit: int) -> list[dict[str, Any]]:
    # A ``referral-closed`` row keeps the referral id in the ``invocation`` column.
    return [{"cursor": cursor_text(r["id"]), "kind": r["kind"],
             "referral" if r["kind"] == "referral-closed" else "invocation": r["invocation"],
             "case": r["case"], "at": r["at"]}
            for r in db.execute("SELECT id, kind, invocation, [case], at FROM notifications"
                                " WHERE network = ? AND id > ? ORDER BY id LIMIT ?",
                                (network, after, limit))]


__all__ = ["NO_INVOCATION", "NewInvocation", "NewCosign", "NewReview", "invoke_txn", "cosign_txn",
           "bemoeizorg_release_txn", "review_txn", "invocation_documents", "notifications_page"]
