"""Consents, grants, releases and purges in the database (docs/protocol.md §15 §15.2,
§15.3; protocol.md §D.1-§D.3, §D.9, §D.10; flow 4).

Every write here is one ``*_txn`` on the writer thread.  The policy facts that live in the
database (the case, its shares, the consent and its revocation) are read **inside** the
transaction, so a release decided here cannot race a revocation: the writer is one thread,
and whatever committed before this transaction is what ``decide`` sees.  A denial is a
value, not an exception: its ``deny`` entry must commit, so the txn returns
:class:`Denied` and the handler answers 403 after the commit.

A release is ONE transaction (§15.3): decide → ``append_txn`` (the ``release`` entry) →
``open_gate`` for each granted class's gated envelope of the grantee → store the answer.
If anything in it raises, the savepoint rolls all of it back and nothing is answered as
released; ``append_txn`` and ``open_gate`` are this module's names so that a test can inject
a failure between them.  A retry under a stored release id is decided again like a new
release and, when allowed, re-delivers the first answer's envelopes under an entry of its
own (ADR 0009).  Every refused attempt -- also under a grant the caller does not hold, and a
grant signed by anyone but the coordinator -- is an audited ``deny``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, Signer, random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.envelopes import GateContext, open_gate
from schakel.protocol.errors import ContextMismatchError
from schakel.protocol.objects.audit import AuditActor
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.protocol.objects.disclosure import PurgeInstruction
from schakel.protocol.policy import ConsentFacts, Decision, Grantee, Request, Rules, decide
from schakel.server.audit import Purpose, append_txn
from schakel.server.data import Written, cursor_text, insert
from schakel.server.errors import Conflict, Forbidden, NotFound
from schakel.server.storage import Db


def new_object_id() -> str:
    """A fresh protocol id (16 random bytes, base64url) for an object the server makes."""
    return b64e(random_bytes(16))


# --------------------------------------------------------------------------- the log


@dataclass(frozen=True, kw_only=True)
class Log:
    """What an audited write appends with: the network, the server's log key and the
    server's time of the request (``append_txn`` of server/audit.py, §15.1)."""

    network: str
    log_key: Signer
    now: datetime
    #: Who reads a purpose this write seals into its entries (``audit.purpose_readers``).
    readers: tuple[tuple[str, BoxPublicKey], ...] = ()

    @property
    def stamp(self) -> str:
        return format_timestamp(self.now)

    def append(self, db: Db, *, actor: AuditActor, action: str, basis: str, reason: str,
               outcome: str = "allow", case: str | None = None, subject: str | None = None,
               cases: Sequence[str] | None = None,
               classes: Sequence[str] | None = None, ref: str | None = None,
               review_required: bool = False, emergency: bool = False,
               erased_below: int | None = None, purpose: str | None = None) -> dict[str, Any]:
        """Append one entry and return its receipt as JSON.  ``subject`` is dropped when it
        is the actor itself (the field names *another* partner, protocol.md §A.1); a
        ``purpose`` is sealed to this log's ``readers``."""
        receipt = append_txn(
            db, network=self.network, log_key=self.log_key, now=self.now, actor=actor,
            action=action, basis=basis, outcome=outcome, reason=reason, case=case, cases=cases,
            subject=subject if subject != actor.partner else None,
            classes=sorted(classes) if classes else None, ref=ref,
            review_required=review_required, emergency=emergency, erased_below=erased_below,
            purpose=Purpose(purpose, self.readers) if purpose and self.readers else None)
        return receipt.to_json()


@dataclass(frozen=True)
class Denied:
    """A policy denial that was audited (``deny`` entry at ``audit_index``): the handler
    answers 403 ``policy_violation`` with ``details.reason`` and ``details.audit_index``."""

    reason: str
    message: str
    audit_index: int


Basis = Literal["consent", "bemoeizorg"]


def deny(db: Db, log: Log, decision: Decision, *, actor: AuditActor, basis: Basis,
         case: str | None, subject: str | None, classes: Sequence[str],
         ref: str | None, purpose: str | None = None) -> Denied:
    """Audit a denial (``action: deny``, the policy reason, the refused act's purpose
    sealed) and return it."""
    bemoeizorg = basis == "bemoeizorg"
    receipt = log.append(db, actor=actor, action="deny", basis=basis, outcome="deny",
                         reason=decision.reason, case=case, subject=subject, classes=classes,
                         ref=ref, emergency=bemoeizorg, purpose=purpose)
    return Denied(decision.reason, decision.message, receipt["index"])


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, kw_only=True)
class Signed:
    """A verified signed object as stored: canonical JSON and digest (idempotency), with
    the audit actor of the request that brought it."""

    envelope: str
    digest: bytes
    actor: AuditActor


@dataclass(frozen=True, kw_only=True)
class NewConsent:
    network: str
    consent: str
    case: str
    classes: tuple[str, ...]
    partners: tuple[str, ...]
    parties: tuple[str, ...]
    valid_from: str
    valid_until: str
    purpose: str             #: the purpose the person was told, sealed into the entry
    signed: Signed


@dataclass(frozen=True, kw_only=True)
class NewRevocation:
    network: str
    consent: str
    case: str
    signed: Signed


@dataclass(frozen=True, kw_only=True)
class NewGrant:
    network: str
    grant: str
    case: str
    grantee: str
    consent: str
    classes: tuple[str, ...]
    reason: str              #: why the grantee needs the identity, sealed into the entry
    signed: Signed


@dataclass(frozen=True, kw_only=True)
class NewRelease:
    """One release asked for by a member (or a former one): ``release`` is the client's
    id for it (a retry under it is decided again and re-delivers the first answer's
    envelopes, :func:`release_envelopes_txn`)."""

    network: str
    release: str
    ref: str                 #: the grant (consent basis) or invocation (bemoeizorg)
    actor: AuditActor
    grantee: Grantee


@dataclass(frozen=True, kw_only=True)
class NewAck:
    network: str
    instruction: str
    case: str
    signed: Signed


# --------------------------------------------------------------------------- shared reads


def case_row(db: Db, network: str, case: str) -> Any:
    """``(owner, kind)`` of a case; 404 if there is none."""
    row = db.execute("SELECT owner, kind FROM cases WHERE network = ? AND [case] = ?",
                     (network, case)).fetchone()
    if row is None:
        raise NotFound("no such case in this network")
    return row


def identity_erased(db: Db, network: str, case: str) -> bool:
    """The case's identity was erased (an ``identity-purge`` of kind erasure, §C.12;
    release row R14): no version of it is sealed, backfilled or released again."""
    return db.execute("SELECT 1 FROM identity_purges WHERE network = ? AND [case] = ?"
                      " AND kind = 'erasure' LIMIT 1", (network, case)).fetchone() is not None


def shared_with(db: Db, network: str, case: str, partner: str) -> bool:
    return db.execute("SELECT 1 FROM shares WHERE network = ? AND partner = ? AND [case] = ?"
                      " LIMIT 1", (network, partner, case)).fetchone() is not None


def _idempotent(row: Any, digest: bytes, what: str) -> Written | None:
    """The first answer for an identical retry; 409 for the same id with other content."""
    if row is None:
        return None
    if row["digest"] != digest:
        raise Conflict(f"{what} already exists with other content")
    return Written(False, json.loads(row["answer"]))


def _consent_facts(db: Db, network: str, consent: str) -> ConsentFacts | None:
    row = db.execute("SELECT * FROM consents WHERE network = ? AND consent = ?",
                     (network, consent)).fetchone()
    if row is None:
        return None
    return ConsentFacts(consent=consent, case=row["case"],
                        classes=frozenset(json.loads(row["classes"])),
                        partners=frozenset(json.loads(row["partners"])),
                        parties=frozenset(json.loads(row["parties"])),
                        valid_from=parse_timestamp(row["valid_from"]),
                        valid_until=parse_timestamp(row["valid_until"]),
                        revoked=row["revoked"] is not None)


# --------------------------------------------------------------------------- consent


def record_consent_txn(db: Db, c: NewConsent, log: Log) -> Written | Denied:
    """Record a consent (audited ``consent``).  A consult has no identity to consent to:
    the attempt is audited as a denial (R1)."""
    found = db.execute("SELECT digest, answer FROM consents WHERE network = ? AND consent = ?",
                       (c.network, c.consent)).fetchone()
    if (again := _idempotent(found, c.signed.digest, "a consent with this id")) is not None:
        return again
    if case_row(db, c.network, c.case)["kind"] == "consult":
        return deny(db, log, Decision(False, "consult-has-no-identity",
                                      "a consult is anonymous: it has no identity to consent to"),
                    actor=c.signed.actor, basis="consent", case=c.case, subject=None,
                    classes=c.classes, ref=c.consent, purpose=c.purpose)
    receipt = log.append(db, actor=c.signed.actor, action="consent", basis="consent",
                         reason="consent-recorded", case=c.case, classes=c.classes, ref=c.consent,
                         purpose=c.purpose)
    answer = {"consent": c.consent}
    insert(db, "consents", {
        "network": c.network, "consent": c.consent, "case": c.case,
        "classes": json.dumps(c.classes), "partners": json.dumps(c.partners),
        "parties": json.dumps(c.parties), "valid_from": c.valid_from,
        "valid_until": c.valid_until, "envelope": c.signed.envelope, "digest": c.signed.digest,
        "audit_index": receipt["index"], "answer": json.dumps(answer), "received": log.stamp,
        "acting_user": c.signed.actor.acting_user})
    return Written(True, answer)


def revoke_consent_txn(db: Db, r: NewRevocation, log: Log, server: AuditActor) -> Written:
    """Revoke a consent (audited ``consent-revoke``): from this commit on every release
    under it is denied (R5).  Every partner that received classes under it gets a
    ``purge-instruction`` signed by the log key (audited, subject = the recipient)."""
    row = db.execute("SELECT [case], revocation_digest, revocation_answer FROM consents"
                     " WHERE network = ? AND consent = ?", (r.network, r.consent)).fetchone()
    if row is None:
        raise NotFound("no such consent in this network")
    if row["case"] != r.case:
        raise ContextMismatchError("the revocation names another case than the consent",
                                   details={"field": "case"})
    if row["revocation_digest"] is not None:
        if row["revocation_digest"] != r.signed.digest:
            raise Conflict("this consent was already revoked by another revocation")
        return Written(False, json.loads(row["revocation_answer"]))
    log.append(db, actor=r.signed.actor, action="consent-revoke", basis="consent",
               reason="consent-revoked", case=r.case, ref=r.consent)
    instructions = []
    for recipient, classes in released_under_consent(db, r.network, r.consent).items():
        instructions.append(purge_instruction_txn(db, log, server, case=r.case,
                                                  recipient=recipient, classes=classes,
                                                  reason="consent-revoked", ref=r.consent,
                                                  basis="consent"))
    answer = {"consent": r.consent, "purge_instructions": instructions}
    db.execute("UPDATE consents SET revoked = ?, revocation = ?, revocation_digest = ?,"
               " revocation_answer = ? WHERE network = ? AND consent = ?",
               (log.stamp, r.signed.envelope, r.signed.digest, json.dumps(answer), r.network,
                r.consent))
    return Written(True, answer)


def released(db: Db, network: str, *, per: Literal["grantee", "case"],
             where: Literal["consent", "grantee", "case"], value: str) -> dict[str, tuple[str, ...]]:
    """The classes released, per grantee or per case (``per``), among the releases whose
    ``where`` is ``value`` (any basis), in the order of the first release of each."""
    out: dict[str, set[str]] = {}
    for row in db.execute(f"SELECT [{per}] AS key, classes FROM releases WHERE network = ?"
                          f" AND [{where}] = ? ORDER BY id", (network, value)):
        out.setdefault(row["key"], set()).update(json.loads(row["classes"]))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def released_under_consent(db: Db, network: str, consent: str) -> dict[str, tuple[str, ...]]:
    """Every partner that received classes under ``consent``, with those classes."""
    return released(db, network, per="grantee", where="consent", value=consent)


def purge_instruction_txn(db: Db, log: Log, server: AuditActor, *, case: str, recipient: str,
                          classes: Sequence[str], reason: str, ref: str | None,
                          basis: str) -> str:
    """Sign (the server's log key), audit (``purge-instruction``, the server as actor,
    subject = the recipient, ``ref`` = the instruction; emergency when the basis is
    bemoeizorg) and store one purge instruction for its recipient (protocol.md §D.9)."""
    instruction = new_object_id()
    fields: dict[str, Any] = dict(network=log.network, instruction=instruction, case=case,
                                  recipient=recipient, classes=tuple(classes), reason=reason,
                                  at=log.stamp)
    if ref is not None:
        fields["ref"] = ref
    envelope = PurgeInstruction(**fields).sign(log.log_key)
    receipt = log.append(db, actor=server, action="purge-instruction", basis=basis,
                         reason=reason, case=case, subject=recipient, classes=classes,
                         ref=instruction, emergency=basis == "bemoeizorg")
    insert(db, "purge_instructions", {
        "network": log.network, "instruction": instruction, "case": case,
        "recipient": recipient, "classes": json.dumps(list(classes)),
        "envelope": json.dumps(envelope), "audit_index": receipt["index"]})
    return instruction


def purged_cases(db: Db, network: str, recipient: str, *, reason: str, ref: str) -> set[str]:
    """The cases for which ``recipient`` holds an instruction of ``reason`` caused by
    ``ref`` (an invocation, a revocation): what a due purge must not issue twice."""
    return {row["case"] for row in db.execute(
        "SELECT [case] FROM purge_instructions WHERE network = ? AND recipient = ?"
        " AND json_extract(envelope, '$.signed.reason') = ?"
        " AND json_extract(envelope, '$.signed.ref') = ?", (network, recipient, reason, ref))}


def revocation_ref(digest: bytes) -> str:
    """The id a ``membership-removed`` instruction names as its ``ref``: a revocation has
    no id field, so the first 16 bytes of its envelope's SHA-256 (as a referral's)."""
    return b64e(digest[:16])


def membership_removed_txn(db: Db, log: Log, server: AuditActor, *, member: str,
                           ref: str) -> list[str]:
    """The purge a removal owes (protocol.md §N.5): one ``membership-removed`` instruction
    (``ref`` = the revocation's id) for every case ``member`` received identity of, with
    the classes it received, unless this revocation already caused one for that case.
    Audited like every purge instruction (basis ``policy``).  Returns the new ids."""
    done = purged_cases(db, log.network, member, reason="membership-removed", ref=ref)
    return [purge_instruction_txn(db, log, server, case=case, recipient=member,
                                  classes=classes, reason="membership-removed", ref=ref,
                                  basis="policy")
            for case, classes in released(db, log.network, per="case", where="grantee",
                                          value=member).items()
            if case not in done]


# --------------------------------------------------------------------------- grants


def _consent_request(db: Db, network: str, case: str, classes: Sequence[str],
                     grantee: Grantee, consent: str) -> Request:
    """The policy request of a consent-based release, with the facts from storage."""
    return Request(network=network, case=case,
                   case_kind="consult" if case_row(db, network, case)["kind"] == "consult"
                   else "case",
                   classes=frozenset(classes), grantee=grantee, basis="consent",
                   shared_with_grantee=shared_with(db, network, case, grantee.partner),
                   consent=_consent_facts(db, network, consent),
                   identity_erased=identity_erased(db, network, case))


#: A grant signed by a member that is not the coordinator (protocol.md §D.3).
NOT_THE_COORDINATOR = Decision(False, "grant-requires-coordinator",
                               "only the network's coordinator grants access to identity")


def non_coordinator_grant_txn(db: Db, g: NewGrant, log: Log) -> Denied:
    """A member that is not the coordinator tried to grant identity: an audited denial
    with what its own grant names (case, grantee, classes, grant id), decided before
    any id in it is looked up, so the answer is the same whichever of them exist."""
    return deny(db, log, NOT_THE_COORDINATOR, actor=g.signed.actor, basis="consent",
                case=g.case, subject=g.grantee, classes=g.classes, ref=g.grant, purpose=g.reason)


def grant_txn(db: Db, g: NewGrant, log: Log, rules: Rules, grantee: Grantee) -> Written | Denied:
    """Grant classes under a consent if ``policy.decide`` allows it now (audited
    ``grant``, subject = the grantee); a denial is audited ``deny``."""
    found = db.execute("SELECT digest, answer FROM grants WHERE network = ? AND [grant] = ?",
                       (g.network, g.grant)).fetchone()
    if (again := _idempotent(found, g.signed.digest, "a grant with this id")) is not None:
        return again
    request = _consent_request(db, g.network, g.case, g.classes, grantee, g.consent)
    decision = decide(request, rules, now=log.now)
    if not decision.allowed:
        return deny(db, log, decision, actor=g.signed.actor, basis="consent", case=g.case,
                    subject=g.grantee, classes=g.classes, ref=g.grant, purpose=g.reason)
    receipt = log.append(db, actor=g.signed.actor, action="grant", basis="consent",
                         reason=decision.reason, case=g.case, subject=g.grantee,
                         classes=g.classes, ref=g.grant, purpose=g.reason)
    answer = {"grant": g.grant}
    insert(db, "grants", {
        "network": g.network, "grant": g.grant, "case": g.case, "grantee": g.grantee,
        "consent": g.consent, "classes": json.dumps(g.classes), "envelope": g.signed.envelope,
        "digest": g.signed.digest, "audit_index": receipt["index"],
        "answer": json.dumps(answer), "received": log.stamp,
        "acting_user": g.signed.actor.acting_user})
    return Written(True, answer)


# --------------------------------------------------------------------------- releases

#: A release under a grant the caller does not hold: the same answer, and the same entry,
#: for a grant id that does not exist and for another partner's grant (docs/protocol.md
#: §15.2), so the answer does not tell which ids exist.
GRANT_NOT_HELD = Decision(False, "grant-not-held",
                          "the caller holds no grant with this id in this network")


def not_held(db: Db, log: Log, decision: Decision, r: NewRelease, basis: Basis) -> Denied:
    """Audit a release asked under a grant or invocation the caller does not hold.  The
    entry names the caller and the id it sent, nothing the server knows about that id
    (no case, subject or classes): the caller reads its own entries."""
    return deny(db, log, decision, actor=r.actor, basis=basis, case=None, subject=None,
                classes=(), ref=r.ref)


def earlier_release(db: Db, r: NewRelease) -> Any | None:
    """The stored release ``r.release`` (its row), or None; 409 when that id was used for
    another grant, invocation or grantee."""
    row = db.execute("SELECT ref, grantee, audit_index, answer FROM releases"
                     " WHERE network = ? AND [release] = ?", (r.network, r.release)).fetchone()
    if row is not None and (row["ref"] != r.ref or row["grantee"] != r.grantee.partner):
        raise Conflict("a release with this id exists for another grant or grantee")
    return row


def _gated(db: Db, network: str, case: str, classes: Sequence[str],
           recipient: str) -> list[tuple[str, int, str, Any]]:
    """(class, version, gated blob, identity record) of each class for ``recipient``, at
    the case's current identity version; 409 if any is missing (the owner backfills)."""
    out, missing = [], []
    for cls in sorted(classes):
        row = db.execute(
            "SELECT i.version, i.envelope, g.blob FROM identity i LEFT JOIN gated g"
            " ON g.network = i.network AND g.[case] = i.[case] AND g.class = i.class"
            " AND g.version = i.version AND g.recipient = ?"
            " WHERE i.network = ? AND i.[case] = ? AND i.class = ?",
            (recipient, network, case, cls)).fetchone()
        if row is None or row["blob"] is None:
            missing.append(cls)
        else:
            out.append((cls, int(row["version"]), row["blob"], json.loads(row["envelope"])))
    if missing:
        raise Conflict("no gated envelope of these classes for the grantee: nothing to "
                       "release (the case owner must backfill)", details={"classes": missing})
    return out


def _release_entry(db: Db, log: Log, r: NewRelease, *, case: str, classes: Sequence[str],
                   action: str, basis: Basis, reason: str) -> dict[str, Any]:
    """Append the entry of a release or re-delivery; its receipt as JSON."""
    bemoeizorg = basis == "bemoeizorg"
    return log.append(db, actor=r.actor, action=action, basis=basis, reason=reason, case=case,
                      classes=classes, ref=r.ref, review_required=bemoeizorg,
                      emergency=bemoeizorg)


def _redeliver(db: Db, log: Log, r: NewRelease, earlier: Any, *, case: str,
               classes: Sequence[str], action: str, basis: Basis, reason: str) -> Written:
    """A retry under a stored release id, allowed again: its own entry (``reason`` names
    the first release's entry) and the first answer's envelopes with the new receipt.
    409 when those envelopes were emptied (the identity was shredded after retention, or
    the released version purged: nothing is left to deliver, and nothing is audited)."""
    stored: dict[str, Any] = json.loads(earlier["answer"])
    if not stored["envelopes"]:
        raise Conflict("the identity of this release was shredded after retention, erased or "
                       "rectified: nothing to deliver again", details={"classes": sorted(classes)})
    receipt = _release_entry(db, log, r, case=case, classes=classes, action=action,
                             basis=basis,
                             reason=f"{reason}; re-delivery of entry {earlier['audit_index']}")
    return Written(False, {**stored, "receipt": receipt})


def release_envelopes_txn(db: Db, log: Log, gate_secret: BoxSecretKey, r: NewRelease, *,
                          case: str, classes: Sequence[str], action: str, basis: Basis,
                          reason: str, consent: str | None = None,
                          earlier: Any | None = None) -> Written:
    """The release itself (§15.3), after an allowing decision: append the audit entry,
    THEN remove the gate seal of each class's envelope for the grantee, then store the
    answer.  One savepoint: if any step raises, none of them happened.

    ``earlier`` (the stored release a retry names, decided again by the caller) makes it
    a re-delivery (:func:`_redeliver`): it hands out the first answer's envelopes and
    nothing else, whatever happened to the case's identity since."""
    if earlier is not None:
        return _redeliver(db, log, r, earlier, case=case, classes=classes, action=action,
                          basis=basis, reason=reason)
    gated = _gated(db, log.network, case, classes, r.grantee.partner)
    receipt = _release_entry(db, log, r, case=case, classes=classes, action=action,
                             basis=basis, reason=reason)
    envelopes = []
    for cls, version, blob, record in gated:
        context = GateContext(network=log.network, case=case, cls=cls, version=version,
                              recipient=r.grantee.partner)
        envelopes.append({"class": cls, "version": version,
                          "inner": open_gate(gate_secret, blob, context), "identity": record})
    answer = {"release": r.release, "envelopes": envelopes, "receipt": receipt}
    insert(db, "releases", {
        "network": log.network, "release": r.release, "case": case,
        "grantee": r.grantee.partner, "acting_user": r.actor.acting_user, "basis": basis,
        "ref": r.ref, "consent": consent, "classes": json.dumps(sorted(classes)),
        "audit_index": receipt["index"], "answer": json.dumps(answer), "received": log.stamp})
    return Written(True, answer)


def release_txn(db: Db, r: NewRelease, log: Log, rules: Rules,
                gate_secret: BoxSecretKey) -> Written | Denied:
    """A release under grant ``r.ref``, new or retried under a stored release id.  A grant
    the caller does not hold (none with this id, or another partner's) is an audited
    ``deny`` (``grant-not-held``).  Otherwise ``decide`` runs again now (the consent may
    have been revoked or have expired, the grantee removed, since the grant or the first
    answer): denied → audited ``deny``; allowed → :func:`release_envelopes_txn` (audited
    ``release``)."""
    grant = db.execute("SELECT [case], grantee, consent, classes FROM grants"
                       " WHERE network = ? AND [grant] = ?", (r.network, r.ref)).fetchone()
    if grant is None or grant["grantee"] != r.grantee.partner:
        return not_held(db, log, GRANT_NOT_HELD, r, "consent")
    earlier = earlier_release(db, r)
    classes = json.loads(grant["classes"])
    request = _consent_request(db, r.network, grant["case"], classes, r.grantee,
                               grant["consent"])
    decision = decide(request, rules, now=log.now)
    if not decision.allowed:
        return deny(db, log, decision, actor=r.actor, basis="consent", case=grant["case"],
                    subject=r.grantee.partner, classes=classes, ref=r.ref)
    return release_envelopes_txn(db, log, gate_secret, r, case=grant["case"], classes=classes,
                                 action="release", basis="consent", reason=decision.reason,
                                 consent=grant["consent"], earlier=earlier)


# --------------------------------------------------------------------------- purges


def ack_purge_txn(db: Db, a: NewAck, log: Log) -> Written:
    """The recipient acknowledges a purge instruction (audited ``purge-ack``); one ack per
    instruction (an identical retry answers 200, another ack 409)."""
    row = db.execute("SELECT [case], recipient, classes, ack_digest, ack_answer"
                     " FROM purge_instructions WHERE network = ? AND instruction = ?",
                     (a.network, a.instruction)).fetchone()
    if row is None:
        raise NotFound("no such purge instruction in this network")
    if row["recipient"] != a.signed.actor.partner:
        raise Forbidden("only the instruction's recipient acknowledges it")
    if row["case"] != a.case:
        raise ContextMismatchError("the acknowledgement names another case than the "
                                   "instruction", details={"field": "case"})
    if row["ack_digest"] is not None:
        if row["ack_digest"] != a.signed.digest:
            raise Conflict("this purge instruction was already acknowledged")
        return Written(False, json.loads(row["ack_answer"]))
    receipt = log.append(db, actor=a.signed.actor, action="purge-ack", basis="policy",
                         reason="purged", case=a.case, classes=json.loads(row["classes"]),
                         ref=a.instruction)
    answer = {"instruction": a.instruction, "audit_index": receipt["index"]}
    db.execute("UPDATE purge_instructions SET ack = ?, ack_digest = ?, ack_answer = ?,"
               " acked = ? WHERE network = ? AND instruction = ?",
               (a.signed.envelope, a.signed.digest, json.dumps(answer), log.stamp, a.network,
                a.instruction))
    return Written(True, answer)


def purge_page(db: Db, network: str, recipient: str, after: int,
               limit: int) -> list[dict[str, Any]]:
    """The recipient's purge instructions after cursor ``after``."""
    return [{"cursor": cursor_text(r["id"]), "instruction": json.loads(r["envelope"])}
            for r in db.execute("SELECT id, envelope FROM purge_instructions WHERE network = ?"
                                " AND recipient = ? AND id > ? ORDER BY id LIMIT ?",
                                (network, recipient, after, limit))]


def owned_purge_page(db: Db, network: str, owner: str, after: int,
                     limit: int) -> list[dict[str, Any]]:
    """The purge instructions about the cases ``owner`` owns, after cursor ``after``: how
    the owner learns that a recipient of its case's identity lost its basis, and rotates
    the case's class keys (ADR 0011)."""
    return [{"cursor": cursor_text(r["id"]), "instruction": json.loads(r["envelope"])}
            for r in db.execute(
                "SELECT p.id, p.envelope FROM purge_instructions p JOIN cases c"
                " ON c.network = p.network AND c.[case] = p.[case]"
                " WHERE p.network = ? AND c.owner = ? AND p.id > ? ORDER BY p.id LIMIT ?",
                (network, owner, after, limit))]


@dataclass(frozen=True, kw_only=True)
class GrantFacts:
    """A grant of a case, with the facts of its consent from storage (``decide`` needs
    the grantee's membership too, which the member directory holds)."""

    grant: str
    grantee: str
    classes: tuple[str, ...]
    consent: ConsentFacts | None
    shared: bool


def case_grants(db: Db, network: str, case: str) -> list[GrantFacts]:
    """Every grant of ``case``, oldest first."""
    return [GrantFacts(grant=row["grant"], grantee=row["grantee"],
                       classes=tuple(json.loads(row["classes"])),
                       consent=_consent_facts(db, network, row["consent"]),
                       shared=shared_with(db, network, case, row["grantee"]))
            for row in db.execute("SELECT [grant], grantee, consent, classes FROM grants"
                                  " WHERE network = ? AND [case] = ? ORDER BY rowid",
                                  (network, case)).fetchall()]


def case_owner(db: Db, network: str, case: str) -> str:
    return str(case_row(db, network, case)["owner"])


__all__ = ["new_object_id", "Log", "Denied", "deny", "Signed", "NewConsent", "NewRevocation",
           "NewGrant", "NewRelease", "NewAck", "case_row", "identity_erased", "shared_with", "record_consent_txn",
           "revoke_consent_txn", "released", "released_under_consent",
           "purge_instruction_txn", "purged_cases", "revocation_ref", "membership_removed_txn",
           "NOT_THE_COORDINATOR", "non_coordinator_grant_txn", "grant_txn", "GRANT_NOT_HELD",
           "not_held", "earlier_release", "release_envelopes_txn", "release_txn",
           "ack_purge_txn", "purge_page", "owned_purge_page", "GrantFacts", "case_grants",
           "case_owner"]
