"""Queries for signals, receipts, feedback, blind-index tokens and duplicate hints
(docs/protocol.md §14; protocol.md §C.2, §C.6-§C.8, flow 8).

Receipt tokens are stored as SHA-256 only; a token is looked up by its hash.  Tokens are
compared byte for byte within one network; a match is a *hint* for the coordinator, never
shown to the one who sent the token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schakel.server.data import Written, cursor_text, insert
from schakel.server.errors import Conflict, NotFound
from schakel.server.storage import Db

#: (kind, raw token bytes) of a blind-index token.
Token = tuple[str, bytes]


@dataclass(frozen=True, kw_only=True)
class NewSignal:
    network: str
    signal: str
    source: str
    sender: str | None
    acting_user: str | None
    submission: str
    digest: bytes
    tokens: tuple[Token, ...]
    receipt_hash: bytes
    received: str


@dataclass(frozen=True, kw_only=True)
class NewFeedback:
    network: str
    signal: str
    status: str
    at: str
    envelope: str
    digest: bytes
    received: str
    acting_user: str


@dataclass(frozen=True, kw_only=True)
class NewCard:
    network: str
    serial: int
    envelope: str
    digest: bytes
    received: str
    acting_user: str


# --------------------------------------------------------------------------- tokens, hints


def record_tokens(db: Db, network: str, subject_kind: str, subject: str,
                  tokens: Iterable[Token], *, at: str, limit: int) -> None:
    """Store a new subject's tokens and write a hint for every known case (or, for a new
    case, every earlier signal) that carries an equal token in the same network."""
    for kind, token in tokens:
        matches = db.execute(
            "SELECT subject_kind, subject FROM tokens WHERE network = ? AND kind = ?"
            " AND token = ? AND NOT (subject_kind = ? AND subject = ?)"
            " GROUP BY subject_kind, subject ORDER BY MIN(id) LIMIT ?",
            (network, kind, token, subject_kind, subject, limit)).fetchall()
        for match in matches:
            if match["subject_kind"] == "case":
                about, concern = (subject_kind, subject), match["subject"]
            elif subject_kind == "case":      # an earlier signal may concern this new case
                about, concern = (match["subject_kind"], match["subject"]), subject
            else:                             # signal ~ signal: no case to point at
                continue
            insert(db, "hints", {"network": network, "token_kind": kind,
                                 "subject_kind": about[0], "subject": about[1],
                                 "may_concern": concern, "at": at})
        insert(db, "tokens", {"network": network, "kind": kind, "token": token,
                              "subject_kind": subject_kind, "subject": subject, "at": at})


def hint_page(db: Db, network: str, after: int, limit: int) -> list[dict[str, Any]]:
    return [{"cursor": cursor_text(r["id"]), "token_kind": r["token_kind"],
             "subject": {"kind": r["subject_kind"], "id": r["subject"]},
             "may_concern": r["may_concern"], "at": r["at"]}
            for r in db.execute("SELECT * FROM hints WHERE network = ? AND id > ?"
                                " ORDER BY id LIMIT ?", (network, after, limit))]


# --------------------------------------------------------------------------- signals


def add_signal_txn(db: Db, s: NewSignal, *, max_receipts: int, hint_limit: int) -> Written:
    """Store a signal and its receipt hash.  An identical retry stores another receipt
    for the same signal (the first token was shown once and is not kept)."""
    found = db.execute("SELECT id, digest FROM signals WHERE network = ? AND signal = ?",
                       (s.network, s.signal)).fetchone()
    if found is not None:
        if found["digest"] != s.digest:
            raise Conflict("a signal with this id already exists with other content")
        count = db.execute("SELECT count(*) FROM receipts WHERE signal = ?",
                           (found["id"],)).fetchone()[0]
        if count >= max_receipts:
            raise Conflict("this signal was submitted too often")
        insert(db, "receipts", {"hash": s.receipt_hash, "signal": found["id"]})
        return Written(False, {})
    rowid = insert(db, "signals", {"network": s.network, "signal": s.signal, "source": s.source,
                                   "sender": s.sender, "acting_user": s.acting_user,
                                   "submission": s.submission, "digest": s.digest,
                                   "received": s.received, "status": "received",
                                   "updated": s.received})
    insert(db, "receipts", {"hash": s.receipt_hash, "signal": rowid})
    record_tokens(db, s.network, "signal", s.signal, s.tokens, at=s.received, limit=hint_limit)
    return Written(True, {})


def add_feedback_txn(db: Db, f: NewFeedback, *, max_feedback: int) -> Written:
    """The coordinator's feedback on a signal, in time order (protocol.md §C.8)."""
    signal = db.execute("SELECT id FROM signals WHERE network = ? AND signal = ?",
                        (f.network, f.signal)).fetchone()
    if signal is None:
        raise NotFound("no such signal in this network")
    answer = {"signal": f.signal, "status": f.status}
    if db.execute("SELECT 1 FROM feedback WHERE signal = ? AND digest = ?",
                  (signal["id"], f.digest)).fetchone() is not None:
        return Written(False, answer)
    last = db.execute("SELECT count(*) AS n, max(at) AS at FROM feedback WHERE signal = ?",
                      (signal["id"],)).fetchone()
    if last["n"] >= max_feedback:
        raise Conflict(f"a signal carries at most {max_feedback} feedback statements")
    if last["at"] is not None and f.at < last["at"]:
        raise Conflict("feedback must not be dated before the signal's latest feedback")
    insert(db, "feedback", {"signal": signal["id"], "envelope": f.envelope, "digest": f.digest,
                            "status": f.status, "at": f.at, "received": f.received,
                            "acting_user": f.acting_user})
    db.execute("UPDATE signals SET status = ?, updated = ? WHERE id = ?",
               (f.status, f.received, signal["id"]))
    return Written(True, answer)


def signal_status(db: Db, receipt_hash: bytes) -> dict[str, Any] | None:
    """The ``signal-status`` for a receipt, or None for an unknown receipt."""
    row = db.execute("SELECT s.id, s.signal, s.status, s.updated FROM receipts r"
                     " JOIN signals s ON s.id = r.signal WHERE r.hash = ?",
                     (receipt_hash,)).fetchone()
    if row is None:
        return None
    feedback = [json.loads(r["envelope"]) for r in db.execute(
        "SELECT envelope FROM feedback WHERE signal = ? ORDER BY at, id", (row["id"],))]
    return {"signal": row["signal"], "status": row["status"], "updated": row["updated"],
            "feedback": feedback}


def signal_page(db: Db, network: str, after: int, limit: int) -> list[dict[str, Any]]:
    return [{"cursor": cursor_text(r["id"]), "signal": json.loads(r["submission"]),
             "received": r["received"]}
            for r in db.execute("SELECT id, submission, received FROM signals"
                                " WHERE network = ? AND id > ? ORDER BY id LIMIT ?",
                                (network, after, limit))]


# --------------------------------------------------------------------------- network cards


def add_card_txn(db: Db, c: NewCard) -> Written:
    """Publish a network card (protocol.md §N.11): each card has a higher serial than the
    network's cards before it, so a card that was replaced cannot be served again.  The
    same card again is the same write; another card under a serial already used, or an
    older serial, is a :class:`Conflict` naming the latest serial."""
    answer = {"network": c.network, "serial": c.serial}
    latest = db.execute("SELECT serial, digest FROM cards WHERE network = ?"
                        " ORDER BY serial DESC LIMIT 1", (c.network,)).fetchone()
    same = db.execute("SELECT 1 FROM cards WHERE network = ? AND digest = ?",
                      (c.network, c.digest)).fetchone()
    if same is not None:
        return Written(False, answer)
    if latest is not None and c.serial <= latest["serial"]:
        raise Conflict("a network card must have a higher serial than the network's latest "
                       "card", details={"serial": latest["serial"]})
    insert(db, "cards", {"network": c.network, "serial": c.serial, "envelope": c.envelope,
                         "digest": c.digest, "received": c.received,
                         "acting_user": c.acting_user})
    return Written(True, answer)


def latest_card(db: Db, network: str) -> dict[str, Any] | None:
    """The network's card with the highest serial, as the coordinator signed it."""
    row = db.execute("SELECT envelope FROM cards WHERE network = ? ORDER BY serial DESC"
                     " LIMIT 1", (network,)).fetchone()
    return None if row is None else dict(json.loads(row["envelope"]))


__all__ = ["Token", "NewSignal", "NewFeedback", "NewCard", "add_card_txn", "latest_card", "record_tokens", "hint_page", "add_signal_txn",
           "add_feedback_txn", "signal_status", "signal_page"]
