"""Referrals in the database (protocol.md §D.8, flow 7; docs/protocol.md §15 §15.5).

:func:`refer_txn` is ONE write transaction: it checks the case, the receiving case and the
basis, stores the referral, appends ``referral-out`` to the sending network's log and
``referral-in`` to the receiving network's log.  If any step raises, none happened.
:func:`referral_closed_txn` runs inside ``append_event_txn`` when a case closes: for every
referral that created that case, the sending coordinator gets a ``referral-closed``
notification (the sending case and the referral id; nothing identity-related).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schakel.protocol.errors import ContextMismatchError, PolicyViolation
from schakel.protocol.objects.audit import AuditActor
from schakel.protocol.objects.base import parse_timestamp
from schakel.server.data import Written, cursor_text, insert
from schakel.server.disclosure.data import Log
from schakel.server.errors import Conflict, NotFound
from schakel.server.storage import Db

#: The kind of the coordinator's notification when a referred case closes.
REFERRAL_CLOSED = "referral-closed"


@dataclass(frozen=True, kw_only=True)
class NewReferral:
    network: str
    referral: str          #: the first 16 bytes of the envelope's digest (base64url)
    to_network: str
    to_coordinator: str    #: the receiving network's coordinator key id (``subject``)
    case: str
    new_case: str
    basis: str             #: consent | bemoeizorg
    basis_ref: str
    envelope: str
    digest: bytes
    actor: AuditActor


def _case_status(db: Db, network: str, case: str) -> str | None:
    row = db.execute("SELECT status FROM cases WHERE network = ? AND [case] = ?",
                     (network, case)).fetchone()
    return None if row is None else str(row["status"])


def _check_basis(db: Db, r: NewReferral, now: datetime) -> None:
    """The basis must exist in the sending network for the referred case: a consent not
    revoked, in force now and naming the receiving coordinator as a partner (§D.8), or an
    accepted bemoeizorg invocation."""
    if r.basis == "consent":
        row = db.execute("SELECT [case], revoked, partners, valid_from, valid_until"
                         " FROM consents WHERE network = ? AND consent = ?",
                         (r.network, r.basis_ref)).fetchone()
    else:
        row = db.execute("SELECT [case], NULL AS revoked FROM invocations WHERE network = ?"
                         " AND invocation = ?", (r.network, r.basis_ref)).fetchone()
    if row is None:
        raise NotFound(f"no such {r.basis} in this network", details={"field": "basis.ref"})
    if row["case"] != r.case:
        raise ContextMismatchError(f"the {r.basis} is for another case than the referral",
                                   details={"field": "basis.ref"})
    if row["revoked"] is not None:
        raise Conflict("the consent of the referral was revoked",
                       details={"field": "basis.ref"})
    if r.basis == "consent":
        if r.to_coordinator not in json.loads(row["partners"]):
            raise PolicyViolation("the consent does not name the receiving network's "
                                  "coordinator", details={"reason": "consent-not-for-receiver"})
        if not parse_timestamp(row["valid_from"]) <= now < parse_timestamp(row["valid_until"]):
            raise PolicyViolation("the consent is not in force",
                                  details={"reason": "consent-not-in-force"})


def refer_txn(db: Db, r: NewReferral, sending: Log, receiving: Log) -> Written:
    """Store a referral and record it in both logs, or do nothing (404/400/409)."""
    found = db.execute("SELECT digest, answer FROM referrals WHERE network = ?"
                       " AND referral = ?", (r.network, r.referral)).fetchone()
    if found is not None:
        return Written(False, json.loads(found["answer"]))
    if db.execute("SELECT 1 FROM referrals WHERE to_network = ? AND new_case = ?",
                  (r.to_network, r.new_case)).fetchone() is not None:
        raise Conflict("another referral already names this receiving case",
                       details={"field": "new_case"})
    if _case_status(db, r.network, r.case) is None:
        raise NotFound("no such case in this network", details={"field": "case"})
    if _case_status(db, r.to_network, r.new_case) is None:
        raise NotFound("no such case in the receiving network (create it there first)",
                       details={"field": "new_case"})
    _check_basis(db, r, sending.now)
    emergency = r.basis == "bemoeizorg"
    out = sending.append(db, actor=r.actor, action="referral-out", basis=r.basis,
                         reason="referred", case=r.case, subject=r.to_coordinator,
                         ref=r.referral, emergency=emergency)
    inn = receiving.append(db, actor=r.actor, action="referral-in", basis=r.basis,
                           reason="referred", case=r.new_case, ref=r.referral,
                           emergency=emergency)
    answer = {"referral": r.referral, "audit_index": out["index"],
              "receiving_audit_index": inn["index"]}
    insert(db, "referrals", {
        "network": r.network, "referral": r.referral, "case": r.case,
        "to_network": r.to_network, "new_case": r.new_case, "basis": r.basis,
        "basis_ref": r.basis_ref, "envelope": r.envelope, "digest": r.digest,
        "out_index": out["index"], "in_index": inn["index"], "answer": json.dumps(answer),
        "received": sending.stamp, "closed": None})
    return Written(True, answer)


def referral_closed_txn(db: Db, network: str, case: str, at: str) -> None:
    """``case`` of ``network`` was just closed: if a referral created it, tell the sending
    coordinator (a ``referral-closed`` notification naming the referral and the sending
    case).  Called by ``append_event_txn`` in its transaction."""
    for row in db.execute("SELECT network, referral, [case] FROM referrals"
                          " WHERE to_network = ? AND new_case = ?", (network, case)).fetchall():
        db.execute("UPDATE referrals SET closed = ? WHERE network = ? AND referral = ?",
                   (at, row["network"], row["referral"]))
        insert(db, "notifications", {"network": row["network"], "kind": REFERRAL_CLOSED,
                                     "invocation": row["referral"], "case": row["case"],
                                     "at": at})


def referrals_page(db: Db, network: str, after: int, limit: int) -> list[dict[str, Any]]:
    """The network's referrals, sent and received, after cursor ``after``."""
    return [{"cursor": cursor_text(r["id"]),
             "direction": "out" if r["network"] == network else "in",
             "referral": r["referral"], "envelope": json.loads(r["envelope"]),
             "received": r["received"], "closed": r["closed"]}
            for r in db.execute("SELECT id, network, referral, envelope, received, closed"
                                " FROM referrals WHERE (network = ? OR to_network = ?)"
                                " AND id > ? ORDER BY id LIMIT ?",
                                (network, network, after, limit))]


__all__ = ["REFERRAL_CLOSED", "NewReferral", "refer_txn", "referral_closed_txn",
           "referrals_page"]
