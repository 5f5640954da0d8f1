"""Lookups by blind index for the person's right of access (docs/protocol.md §15.7; ADR
0033): which cases of a network carry one of the tokens a coordinator sends.

A lookup is a disclosure: it tells the coordinator that a person is a case of the
network.  So it is one write transaction that counts the caller's lookups of the last
24 hours, compares the tokens, appends the ``lookup`` entry naming the cases found and
only then answers.  A refused lookup (not the coordinator, or over the day's limit) is
an audited ``deny``.  The tokens themselves are compared and forgotten: neither the
``lookups`` row nor the log entry keeps one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from schakel.protocol.access import MAX_LOOKUP_CASES
from schakel.protocol.objects.audit import AuditActor
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.server.data import insert
from schakel.server.data.signals import Token
from schakel.server.disclosure.data import Denied, Log
from schakel.server.storage import Db

DAY = timedelta(hours=24)


@dataclass(frozen=True, kw_only=True)
class NewLookup:
    """A checked lookup request: the caller, its tokens (kind, bytes) in request order,
    the purpose, and the caller's allowance of lookups per 24 hours."""

    actor: AuditActor
    coordinator: bool
    tokens: tuple[Token, ...]
    purpose: str
    per_day: int


@dataclass(frozen=True)
class Limited:
    """An audited denial over the day's limit: 429 after the commit, with the seconds
    until the oldest counted lookup leaves the 24-hour window."""

    denied: Denied
    retry_after: int


def _reason(lookup: NewLookup, matched: int) -> str:
    kinds = [kind for kind, _ in lookup.tokens]
    return (f"{lookup.purpose}: {len(kinds)} tokens ({kinds.count('bsn')} bsn, "
            f"{kinds.count('name-dob')} name-dob); {matched} cases matched")


def lookup_txn(db: Db, lookup: NewLookup, log: Log) -> dict[str, object] | Denied | Limited:
    """Decide, match and audit one lookup (module docstring).  The answer is
    ``{"matches": [{"case", "tokens": [request index…]}], "complete", "receipt"}``:
    cases in the order their first token was stored, each with the positions of the
    request's tokens it carries; ``complete`` is false when more than
    :data:`MAX_LOOKUP_CASES` cases matched and only that many are named."""
    actor, network = lookup.actor, log.network
    if not lookup.coordinator:
        receipt = log.append(db, actor=actor, action="deny", basis="policy", outcome="deny",
                             reason="lookup-requires-coordinator")
        return Denied("lookup-requires-coordinator", "only the network's coordinator looks "
                      "a person up by blind index", receipt["index"])
    since = format_timestamp(log.now - DAY)
    recent = db.execute("SELECT at FROM lookups WHERE network = ? AND partner = ? AND at > ?"
                        " ORDER BY at", (network, actor.partner, since)).fetchall()
    if len(recent) >= lookup.per_day:
        receipt = log.append(db, actor=actor, action="deny", basis="policy", outcome="deny",
                             reason="lookup-rate-limit")
        oldest = parse_timestamp(recent[0]["at"])
        wait = math.ceil((oldest + DAY - log.now).total_seconds())
        return Limited(Denied("lookup-rate-limit", f"at most {lookup.per_day} lookups per "
                              f"24 hours in this network", receipt["index"]), max(1, wait))
    matches: dict[str, list[int]] = {}
    complete = True
    for position, (kind, token) in enumerate(lookup.tokens):
        rows = db.execute(
            "SELECT subject, MIN(id) AS first FROM tokens WHERE network = ? AND"
            " subject_kind = 'case' AND kind = ? AND token = ? GROUP BY subject"
            " ORDER BY first LIMIT ?", (network, kind, token, MAX_LOOKUP_CASES + 1)).fetchall()
        for row in rows:
            case = str(row["subject"])
            if case not in matches and len(matches) >= MAX_LOOKUP_CASES:
                complete = False
                continue
            matches.setdefault(case, []).append(position)
    cases = list(matches)
    receipt = log.append(db, actor=actor, action="lookup", basis="policy",
                         reason=_reason(lookup, len(cases)), cases=cases or None)
    insert(db, "lookups", {"network": network, "partner": actor.partner,
                           "acting_user": actor.acting_user, "at": log.stamp,
                           "idx": receipt["index"]})
    return {"matches": [{"case": c, "tokens": p} for c, p in matches.items()],
            "complete": complete, "receipt": receipt}


__all__ = ["NewLookup", "Limited", "lookup_txn"]
