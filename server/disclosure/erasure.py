"""Erasure and rectification of a case's identity in the database (AVG art. 17 and 16;
protocol.md §C.12; docs/protocol.md §14.3, ``POST .../cases/{case}/purges``; ADR 0034).

One ``identity-purge`` is one write transaction, in this order:

1. the checks that need the stored case: it exists (404), is no consult (403
   ``consult-has-no-identity``), its identity was not erased already (409), and the
   version fits the kind -- an erasure names the current ``identity_version``, a
   rectification one below it (the owner replaced the header first), else 409 with
   ``details.identity_version`` = the current;
2. the audit entry (``erasure`` or ``rectification``: the caller as actor, the case's owner
   as subject when someone else asked, ``ref`` = the purge, the purge's ``reason`` sealed
   to the purpose readers, never in the clear);
3. what the server holds that could still open a purged version is deleted: the identity
   records and gated envelopes of every purged version and the envelopes kept in the
   stored answers of earlier releases for retries; for an erasure also the case's
   blind-index tokens and the duplicate hints that name the case;
4. the purge becomes a ``purge`` sync item, so every holder -- also one offline now --
   receives the signed instruction in feed order, after the header it refers to.

The anonymous layer stays (ADR 0034): it holds no identity (the PII guard, §8), and
retention removes it as for every closed case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from schakel.protocol.errors import PolicyViolation
from schakel.protocol.objects.audit import AuditActor
from schakel.server.data import Written, cursor_text, insert
from schakel.server.disclosure.data import Log, identity_erased
from schakel.server.errors import Conflict, NotFound
from schakel.server.storage import Db


@dataclass(frozen=True, kw_only=True)
class NewPurge:
    """A verified ``identity-purge`` signed by the caller (the route checked who may
    sign which kind)."""

    network: str
    case: str
    purge: str
    kind: str                #: erasure | rectification
    identity_version: int
    classes: tuple[str, ...]
    reason: str              #: sealed into the audit entry's purpose, never stored in clear
    envelope: str            #: canonical JSON of the envelope (the sync item)
    digest: bytes
    actor: AuditActor
    received: str


def _current_version(db: Db, network: str, case: str) -> tuple[str, str, int]:
    """(owner, kind, identity_version of the current header) of the case; 404 if none."""
    row = db.execute("SELECT c.owner, c.kind, f.envelope FROM cases c JOIN feed f"
                     " ON f.id = c.header WHERE c.network = ? AND c.[case] = ?",
                     (network, case)).fetchone()
    if row is None:
        raise NotFound("no such case in this network")
    version = int(json.loads(row["envelope"])["signed"].get("identity_version", 0))
    return row["owner"], row["kind"], version


def _strip_release_answers(db: Db, network: str, case: str, version: int) -> None:
    """A release's stored answer (for retries) holds the released inner envelopes and
    identity records: an answer that holds one of a purged version is emptied, so no retry
    hands it out (a retry then answers 409, as after retention's shred)."""
    for row in db.execute("SELECT id, answer FROM releases WHERE network = ? AND [case] = ?",
                          (network, case)).fetchall():
        answer = json.loads(row["answer"])
        if any(int(e["version"]) <= version for e in answer["envelopes"]):
            answer["envelopes"] = []
            db.execute("UPDATE releases SET answer = ? WHERE id = ?",
                       (json.dumps(answer), row["id"]))


def purge_txn(db: Db, p: NewPurge, log: Log) -> Written:
    """Erase or rectify (module docstring).  Idempotent by the purge id: the same envelope
    again answers 200 with the first answer, another envelope under that id 409."""
    found = db.execute("SELECT digest, answer FROM identity_purges WHERE network = ?"
                       " AND purge = ?", (p.network, p.purge)).fetchone()
    if found is not None:
        if found["digest"] != p.digest:
            raise Conflict("a purge with this id already exists with other content")
        return Written(False, json.loads(found["answer"]))
    owner, kind, current = _current_version(db, p.network, p.case)
    if kind == "consult":
        raise PolicyViolation("a consult is anonymous: it has no identity to erase or rectify",
                              details={"reason": "consult-has-no-identity"})
    if identity_erased(db, p.network, p.case):
        raise Conflict("the identity of this case was erased already",
                       details={"identity_version": current})
    if p.kind == "erasure" and p.identity_version != current:
        raise Conflict("an erasure names the case's current identity version",
                       details={"identity_version": current})
    if p.kind == "rectification" and not 1 <= p.identity_version < current:
        raise Conflict("a rectification purges a version below the current one: replace the "
                       "header with the corrected identity first",
                       details={"identity_version": current})
    if db.execute("SELECT 1 FROM identity_purges WHERE network = ? AND [case] = ?"
                  " AND identity_version = ?", (p.network, p.case, p.identity_version)
                  ).fetchone() is not None:
        raise Conflict("this identity version was purged already",
                       details={"identity_version": current})
    receipt = log.append(db, actor=p.actor, action=p.kind, basis="policy",
                         reason=f"{p.kind}: identity versions up to {p.identity_version} "
                                f"destroyed",
                         case=p.case, subject=owner, classes=p.classes, ref=p.purge,
                         purpose=p.reason)
    net, case, version = p.network, p.case, p.identity_version
    db.execute("DELETE FROM identity WHERE network = ? AND [case] = ? AND version <= ?",
               (net, case, version))
    db.execute("DELETE FROM gated WHERE network = ? AND [case] = ? AND version <= ?",
               (net, case, version))
    if p.kind == "erasure":
        db.execute("DELETE FROM tokens WHERE network = ? AND subject_kind = 'case'"
                   " AND subject = ?", (net, case))
        db.execute("DELETE FROM hints WHERE network = ? AND ((subject_kind = 'case'"
                   " AND subject = ?) OR may_concern = ?)", (net, case, case))
    _strip_release_answers(db, net, case, version)
    cursor = insert(db, "feed", {"network": net, "case": case, "kind": "purge",
                                 "partner": None, "envelope": p.envelope})
    answer: dict[str, Any] = {"case": case, "purge": p.purge, "kind": p.kind,
                              "identity_version": version, "cursor": cursor_text(cursor),
                              "audit_index": receipt["index"]}
    insert(db, "identity_purges", {
        "network": net, "case": case, "purge": p.purge, "kind": p.kind,
        "identity_version": version, "digest": p.digest, "cursor": cursor,
        "answer": json.dumps(answer), "received": p.received,
        "acting_user": p.actor.acting_user})
    return Written(True, answer)


__all__ = ["NewPurge", "purge_txn"]
