"""Queries for cases, events, shares, case-key rotations, backfilled gated envelopes and
the sync feed (docs/protocol.md §14; protocol.md §C; ADR 0007).

The **feed** is the sync stream: one row per header, event, share and rekey, in commit
order; its row id is the cursor.  A core member reads its network's whole feed but for the
subset cases whose audience does not name it (ADR 0031); a shell partner reads only the
rows of cases shared with it, and only its own shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError
from schakel.server.audit import AuditNote
from schakel.server.data import Written, cursor_text, insert
from schakel.server.data.signals import Token, record_tokens
from schakel.server.errors import Conflict, NotFound
from schakel.server.referrals.data import referral_closed_txn
from schakel.server.storage import Db


@dataclass(frozen=True, kw_only=True)
class NewEvent:
    network: str
    case: str
    event: str
    seq: int
    prev: str | None
    author: str
    case_key_version: int  #: must be the case's current version (ADR 0007)
    status: str | None
    envelope: str          #: canonical JSON of the envelope, as hashed by the next ``prev``
    digest: bytes
    hash: bytes            #: schakel.protocol.objects.cases.event_hash of the envelope
    received: str
    acting_user: str


@dataclass(frozen=True, kw_only=True)
class NewCase:
    network: str
    case: str
    owner: str
    kind: str
    case_key_version: int
    header: str
    digest: bytes          #: of the whole create request: an identical retry is the same write
    events: tuple[NewEvent, ...]
    identity: tuple[tuple[str, int, str], ...]            #: (class, version, envelope)
    gated: tuple[tuple[str, int, str, str], ...]          #: (class, version, recipient, blob)
    tokens: tuple[Token, ...]
    received: str
    acting_user: str
    audience: tuple[str, ...] = ()   #: a subset case's audience (ADR 0031); () the whole core


@dataclass(frozen=True, kw_only=True)
class NewWidening:
    """A subset case's header widened by its owner (protocol.md §C.1, "Audience"): the new
    header, the header it replaces (as stored when it was checked), the members it adds
    and the highest key version it seals to them, with one audit entry per added member."""

    network: str
    case: str
    header: str            #: canonical JSON of the new header envelope
    held: str              #: canonical JSON of the header it replaces
    added: tuple[str, ...]
    sealed_version: int    #: the highest case-key version sealed to each added member
    audit: tuple[AuditNote, ...]


@dataclass(frozen=True, kw_only=True)
class NewRekey:
    network: str
    case: str
    case_key_version: int
    epoch: int
    envelope: str
    digest: bytes
    received: str
    acting_user: str


@dataclass(frozen=True, kw_only=True)
class NewGated:
    """Gated envelopes backfilled by a case's owner (ADR 0007)."""

    network: str
    case: str
    gated: tuple[tuple[str, int, str, str], ...]          #: (class, version, recipient, blob)


@dataclass(frozen=True, kw_only=True)
class NewHeader:
    """A replacement header from the case's owner with the identity it seals (protocol.md
    §C.1 "Header versions"): new identity records and gated envelopes at its
    ``identity_version``."""

    network: str
    case: str
    identity_version: int
    header: str            #: canonical JSON of the header envelope
    digest: bytes          #: of the whole request: an identical retry is the same write
    identity: tuple[tuple[str, int, str], ...]            #: (class, version, envelope)
    gated: tuple[tuple[str, int, str, str], ...]          #: (class, version, recipient, blob)
    received: str
    acting_user: str


@dataclass(frozen=True, kw_only=True)
class NewShare:
    network: str
    case: str
    partner: str
    case_key_version: int
    envelope: str
    digest: bytes
    received: str
    acting_user: str
    reason: str              #: the share's purpose, sealed into its audit entry


def _feed(db: Db, network: str, case: str, kind: str, envelope: str,
          partner: str | None = None) -> int:
    return insert(db, "feed", {"network": network, "case": case, "kind": kind,
                               "partner": partner, "envelope": envelope})


def _store_event(db: Db, e: NewEvent) -> int:
    cursor = _feed(db, e.network, e.case, "event", e.envelope)
    insert(db, "events", {"network": e.network, "case": e.case, "event": e.event, "seq": e.seq,
                          "author": e.author, "digest": e.digest, "cursor": cursor,
                          "received": e.received, "acting_user": e.acting_user})
    return cursor


def _store_identity(db: Db, network: str, case: str,
                    identity: tuple[tuple[str, int, str], ...],
                    gated: tuple[tuple[str, int, str, str], ...]) -> None:
    """Store a case's identity records and gated envelopes (at creation or replacement)."""
    for cls, version, envelope in identity:
        insert(db, "identity", {"network": network, "case": case, "class": cls,
                                "version": version, "envelope": envelope})
    for cls, version, recipient, blob in gated:
        insert(db, "gated", {"network": network, "case": case, "class": cls,
                             "version": version, "recipient": recipient, "blob": blob})


# --------------------------------------------------------------------------- writes


def create_case_txn(db: Db, c: NewCase, *, hint_limit: int) -> Written:
    """Store a new case with its first events, identity records, gated envelopes and
    tokens (compared with the network's known tokens: duplicate hints)."""
    found = db.execute("SELECT digest, answer FROM cases WHERE network = ? AND [case] = ?",
                       (c.network, c.case)).fetchone()
    if found is not None:
        if found["digest"] != c.digest:
            raise Conflict("a case with this id already exists with other content")
        return Written(False, json.loads(found["answer"]))
    header_cursor = _feed(db, c.network, c.case, "header", c.header)
    cursor, status = header_cursor, "open"
    for event in c.events:
        cursor = _store_event(db, event)
        status = event.status or status
    _store_identity(db, c.network, c.case, c.identity, c.gated)
    record_tokens(db, c.network, "case", c.case, c.tokens, at=c.received, limit=hint_limit)
    for member in c.audience:
        insert(db, "case_audience", {"network": c.network, "case": c.case, "member": member,
                                     "since": header_cursor})
    answer = {"case": c.case, "cursor": cursor_text(cursor)}
    last = c.events[-1]
    insert(db, "cases", {"network": c.network, "case": c.case, "owner": c.owner, "kind": c.kind,
                         "status": status, "last_seq": last.seq, "last_hash": last.hash,
                         "case_key_version": c.case_key_version, "header": header_cursor,
                         "digest": c.digest, "answer": json.dumps(answer),
                         "received": c.received, "acting_user": c.acting_user})
    return Written(True, answer)


def append_event_txn(db: Db, e: NewEvent, *, owner: str | None = None) -> Written:
    """Append an event: idempotent by event id; a closed case takes only an event that
    reopens it; the event must use the case's current case key version (ADR 0007); and
    ``seq``/``prev`` must follow the case's last event (protocol.md §C.3).  ``owner``: the
    owner the route authorized against (from its cache); another owner here means that
    case is gone (404), whatever now holds its id."""
    # The case and an event already stored under this id, in one statement.
    case = db.execute("SELECT c.status, c.last_seq, c.last_hash, c.case_key_version, c.owner,"
                      " e.event AS found, e.digest, e.seq, e.cursor FROM cases c"
                      " LEFT JOIN events e ON e.network = c.network AND e.[case] = c.[case]"
                      " AND e.event = ? WHERE c.network = ? AND c.[case] = ?",
                      (e.event, e.network, e.case)).fetchone()
    if case is None or (owner is not None and case["owner"] != owner):
        raise NotFound("no such case in this network")
    if case["found"] is not None:
        if case["digest"] != e.digest:
            raise Conflict("an event with this id already exists with other content")
        return Written(False, {"event": e.event, "seq": case["seq"],
                               "cursor": cursor_text(case["cursor"])})
    if case["status"] == "closed" and e.status != "open":
        raise Conflict("the case is closed; only an event with status open reopens it",
                       details={"last_seq": case["last_seq"]})
    if e.case_key_version != case["case_key_version"]:
        # ADR 0007: after a rekey, new events use the new key, which a removed member
        # cannot unwrap; an event under an older key would still be readable to it.
        raise Conflict("the event is not encrypted under the case's current case key version",
                       details={"case_key_version": case["case_key_version"],
                                "last_seq": case["last_seq"]})
    if e.seq != case["last_seq"] + 1 or e.prev != b64e(case["last_hash"]):
        raise Conflict("the event does not follow the case's last event (seq/prev)",
                       details={"last_seq": case["last_seq"]})
    cursor = _store_event(db, e)
    db.execute("UPDATE cases SET last_seq = ?, last_hash = ?, status = ?"
               " WHERE network = ? AND [case] = ?",
               (e.seq, e.hash, e.status or case["status"], e.network, e.case))
    if e.status == "closed" and case["status"] != "closed":
        referral_closed_txn(db, e.network, e.case, e.received)  # tells a referring network
    return Written(True, {"event": e.event, "seq": e.seq, "cursor": cursor_text(cursor)})


def add_share_txn(db: Db, s: NewShare, *, audit: AuditNote) -> Written:
    """Share a case with a member: a shell partner (to work on it) or a core member (a
    re-share of history, ADR 0007).  The share may carry any version the case has had,
    1..current.  A new share is audited (``share``, subject = the partner) in the same
    savepoint."""
    case = db.execute("SELECT case_key_version FROM cases WHERE network = ? AND [case] = ?",
                      (s.network, s.case)).fetchone()
    if case is None:
        raise NotFound("no such case in this network")
    if not 1 <= s.case_key_version <= case["case_key_version"]:
        raise ContextMismatchError("share carries a case key version the case never had",
                                   details={"case_key_version": case["case_key_version"]})
    found = db.execute("SELECT digest, cursor FROM shares WHERE network = ? AND digest = ?",
                       (s.network, s.digest)).fetchone()
    if found is not None:
        return Written(False, {"case": s.case, "partner": s.partner,
                               "cursor": cursor_text(found["cursor"])})
    cursor = _feed(db, s.network, s.case, "share", s.envelope, partner=s.partner)
    insert(db, "shares", {"network": s.network, "digest": s.digest, "case": s.case,
                          "partner": s.partner, "cursor": cursor, "received": s.received,
                          "acting_user": s.acting_user})
    audit.append_txn(db)
    return Written(True, {"case": s.case, "partner": s.partner, "cursor": cursor_text(cursor)})


def latest_epoch(db: Db, network: str) -> int | None:
    """The highest epoch distributed in ``network`` (None before the first)."""
    row = db.execute("SELECT MAX(epoch) FROM epochs WHERE network = ?", (network,)).fetchone()
    return None if row[0] is None else int(row[0])


def add_rekey_txn(db: Db, r: NewRekey) -> Written:
    """Rotate a case's key (ADR 0007): idempotent by the envelope's digest; the version
    must be the case's current + 1 (409 with ``details.case_key_version``) and the epoch
    the network's latest (409 with ``details.epoch``).  Closed cases may be rekeyed too: a
    removed member must not read them either.  Raises the case's current version, so
    later events must use it, and adds a ``rekey`` feed item."""
    case = db.execute("SELECT case_key_version FROM cases WHERE network = ? AND [case] = ?",
                      (r.network, r.case)).fetchone()
    if case is None:
        raise NotFound("no such case in this network")
    found = db.execute("SELECT [case], version, cursor FROM case_rekeys"
                       " WHERE network = ? AND digest = ?", (r.network, r.digest)).fetchone()
    if found is not None:
        return Written(False, {"case": found["case"], "case_key_version": found["version"],
                               "cursor": cursor_text(found["cursor"])})
    current = int(case["case_key_version"])
    if r.case_key_version != current + 1:
        raise Conflict("a rekey must raise the case key version by exactly one",
                       details={"case_key_version": current})
    latest = latest_epoch(db, r.network)
    if r.epoch != latest:
        raise Conflict("a rekey must wrap the new case key under the network's latest epoch",
                       details={"epoch": latest})
    cursor = _feed(db, r.network, r.case, "rekey", r.envelope)
    insert(db, "case_rekeys", {"network": r.network, "case": r.case,
                               "version": r.case_key_version, "epoch": r.epoch,
                               "digest": r.digest, "cursor": cursor, "received": r.received,
                               "acting_user": r.acting_user})
    db.execute("UPDATE cases SET case_key_version = ? WHERE network = ? AND [case] = ?",
               (r.case_key_version, r.network, r.case))
    return Written(True, {"case": r.case, "case_key_version": r.case_key_version,
                          "cursor": cursor_text(cursor)})


def replace_header_txn(db: Db, h: NewHeader) -> Written:
    """Replace a case's header with the owner's next identity version (protocol.md §C.1):
    idempotent by the request's digest; the case must be open (409: a closed case's
    identity is on its way to being shredded, flow 9) and ``identity_version`` its current
    + 1 (409 with ``details.identity_version`` = current).  The identity records of the
    case are replaced by the new ones and every gated envelope of an older version is
    deleted, so a release now finds only the new version's; a ``header`` feed item
    carries the new header to every reader of the case."""
    found = db.execute("SELECT answer FROM header_versions WHERE network = ? AND digest = ?",
                       (h.network, h.digest)).fetchone()
    if found is not None:
        return Written(False, json.loads(found["answer"]))
    case = db.execute("SELECT c.status, f.envelope FROM cases c JOIN feed f ON f.id = c.header"
                      " WHERE c.network = ? AND c.[case] = ?", (h.network, h.case)).fetchone()
    if case is None:
        raise NotFound("no such case in this network")
    if case["status"] == "closed":
        raise Conflict("the case is closed: its identity is no longer replaced")
    if db.execute("SELECT 1 FROM identity_purges WHERE network = ? AND [case] = ?"
                  " AND kind = 'erasure' LIMIT 1", (h.network, h.case)).fetchone() is not None:
        # ADR 0034: an erased identity stays erased; a person who comes back is a new case.
        raise Conflict("the identity of this case was erased: no identity is sealed again")
    current = int(json.loads(case["envelope"])["signed"].get("identity_version", 0))
    if h.identity_version != current + 1:
        raise Conflict("a replacement header must raise identity_version by exactly one",
                       details={"identity_version": current})
    cursor = _feed(db, h.network, h.case, "header", h.header)
    db.execute("UPDATE cases SET header = ? WHERE network = ? AND [case] = ?",
               (cursor, h.network, h.case))
    db.execute("DELETE FROM identity WHERE network = ? AND [case] = ?", (h.network, h.case))
    db.execute("DELETE FROM gated WHERE network = ? AND [case] = ? AND version < ?",
               (h.network, h.case, h.identity_version))
    _store_identity(db, h.network, h.case, h.identity, h.gated)
    answer = {"case": h.case, "identity_version": h.identity_version,
              "cursor": cursor_text(cursor)}
    insert(db, "header_versions", {"network": h.network, "case": h.case,
                                   "identity_version": h.identity_version, "digest": h.digest,
                                   "cursor": cursor, "answer": json.dumps(answer),
                                   "received": h.received, "acting_user": h.acting_user})
    return Written(True, answer)


def widen_audience_txn(db: Db, w: NewWidening) -> Written:
    """Widen a subset case's audience (protocol.md §C.1, "Audience"; ADR 0031): the new
    header becomes the case's (a ``header`` feed item), its added members join the
    audience from that item on, and one ``audience-widen`` entry per added member is
    appended in the same transaction.  The same header again answers 200 with the current
    cursor.  409 when the case's header is no longer the one the widening was checked
    against (another widening came first; ``details.cursor``), and when the keys sealed to
    the added members do not reach the case's current key version
    (``details.case_key_version``): an added member must read every event."""
    row = db.execute("SELECT c.header, c.case_key_version, f.envelope FROM cases c"
                     " JOIN feed f ON f.id = c.header WHERE c.network = ? AND c.[case] = ?",
                     (w.network, w.case)).fetchone()
    if row is None:
        raise NotFound("no such case in this network")
    answer = {"case": w.case, "cursor": cursor_text(row["header"])}
    if row["envelope"] == w.header:
        return Written(False, answer)
    if row["envelope"] != w.held:
        raise Conflict("the case's header changed since the widening was made",
                       details={"cursor": cursor_text(row["header"])})
    if w.sealed_version != row["case_key_version"]:
        raise Conflict("a widening seals every case-key version the case has had to each "
                       "added member", details={"case_key_version": row["case_key_version"]})
    cursor = _feed(db, w.network, w.case, "header", w.header)
    db.execute("UPDATE cases SET header = ? WHERE network = ? AND [case] = ?",
               (cursor, w.network, w.case))
    for member in w.added:
        insert(db, "case_audience", {"network": w.network, "case": w.case, "member": member,
                                     "since": cursor})
    for note in w.audit:
        note.append_txn(db)
    return Written(True, {"case": w.case, "cursor": cursor_text(cursor)})


def add_gated_txn(db: Db, g: NewGated) -> Written:
    """Store gated envelopes the owner backfilled, in the table releases read (the same
    rows as those stored at creation).  An envelope already held for the same (class,
    version, recipient) with the same blob is a no-op; with another blob 409 (the server
    never swaps a key a recipient may already have been released).  A class without an
    identity record (none sealed, or shredded after retention) is 409 with
    ``details.classes``: an envelope for it could never be released."""
    classes = sorted({cls for cls, _, _, _ in g.gated})
    held = {r["class"] for r in db.execute(
        f"SELECT class FROM identity WHERE network = ? AND [case] = ? AND class IN"
        f" ({', '.join('?' for _ in classes)})", (g.network, g.case, *classes))}
    missing = [cls for cls in classes if cls not in held]
    if missing:
        raise Conflict("the case holds no identity record of these classes",
                       details={"classes": missing})
    created = False
    for cls, version, recipient, blob in g.gated:
        found = db.execute("SELECT blob FROM gated WHERE network = ? AND [case] = ? AND class = ?"
                           " AND version = ? AND recipient = ?",
                           (g.network, g.case, cls, version, recipient)).fetchone()
        if found is not None:
            if found["blob"] != blob:
                raise Conflict("a gated envelope for this class, version and recipient is "
                               "already stored with another blob",
                               details={"class": cls, "version": version,
                                        "recipient": recipient})
            continue
        insert(db, "gated", {"network": g.network, "case": g.case, "class": cls,
                             "version": version, "recipient": recipient, "blob": blob})
        created = True
    return Written(created, {"case": g.case, "stored": len(g.gated)})


# --------------------------------------------------------------------------- reads


def case_facts(db: Db, network: str, case: str,
               partner: str) -> tuple[str, bool, bool, bool] | None:
    """``(owner, shared with partner, partner in its audience, subset case)`` of a case, or
    None if it does not exist.  A case without audience is read by the whole core: in its
    audience is then True for everyone (ADR 0031)."""
    row = db.execute("SELECT owner FROM cases WHERE network = ? AND [case] = ?",
                     (network, case)).fetchone()
    if row is None:
        return None
    shared = db.execute("SELECT 1 FROM shares WHERE network = ? AND partner = ? AND [case] = ?"
                        " LIMIT 1", (network, partner, case)).fetchone() is not None
    audience = case_audience(db, network, case)
    return row["owner"], shared, not audience or partner in audience, bool(audience)


def case_audience(db: Db, network: str, case: str) -> tuple[str, ...]:
    """The members of a subset case's audience, () for a case the whole core reads."""
    return tuple(r[0] for r in db.execute(
        "SELECT member FROM case_audience WHERE network = ? AND [case] = ? ORDER BY member",
        (network, case)))


def reads_case(db: Db, network: str, case: str, member: str) -> bool:
    """Whether ``member`` is in the case's audience (always, for a case without one)."""
    audience = case_audience(db, network, case)
    return not audience or member in audience


def case_documents(db: Db, network: str, case: str, *, with_identity: bool) -> dict[str, Any]:
    """Header, events in ``seq`` order, (for the owner) identity records, and the case's
    rekeys in version order."""
    header = db.execute("SELECT f.envelope FROM cases c JOIN feed f ON f.id = c.header"
                        " WHERE c.network = ? AND c.[case] = ?", (network, case)).fetchone()
    if header is None:
        raise NotFound("no such case in this network")
    events = [json.loads(r["envelope"]) for r in db.execute(
        "SELECT f.envelope FROM events e JOIN feed f ON f.id = e.cursor"
        " WHERE e.network = ? AND e.[case] = ? ORDER BY e.seq", (network, case))]
    identity = [json.loads(r["envelope"]) for r in db.execute(
        "SELECT envelope FROM identity WHERE network = ? AND [case] = ? ORDER BY class",
        (network, case))] if with_identity else []
    rekeys = [json.loads(r["envelope"]) for r in db.execute(
        "SELECT f.envelope FROM case_rekeys k JOIN feed f ON f.id = k.cursor"
        " WHERE k.network = ? AND k.[case] = ? ORDER BY k.version", (network, case))]
    return {"header": json.loads(header["envelope"]), "events": events, "identity": identity,
            "rekeys": rekeys}


def case_header(db: Db, network: str, case: str) -> dict[str, Any]:
    """The case's header envelope as stored (404 if there is no such case)."""
    row = db.execute("SELECT f.envelope FROM cases c JOIN feed f ON f.id = c.header"
                     " WHERE c.network = ? AND c.[case] = ?", (network, case)).fetchone()
    if row is None:
        raise NotFound("no such case in this network")
    return json.loads(row["envelope"])  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One sync item as stored: its cursor, kind, case and the envelope's canonical JSON
    text (stored by the write that brought it, so it is always one valid JSON value)."""

    cursor: int
    kind: str
    case: str
    envelope: str


#: The rows of subset cases a core member ``?`` may not read (ADR 0031): every row of a
#: subset case whose audience does not name it, and the header rows of a subset case from
#: before the header that first named it (an earlier header does not name it).
_AUDIENCE = ("[case] NOT IN (SELECT [case] FROM case_audience WHERE network = ?"
             " GROUP BY [case] HAVING SUM(CASE WHEN member = ? THEN 1 ELSE 0 END) = 0)"
             " AND (kind != 'header' OR id >= COALESCE((SELECT a.since FROM case_audience a"
             " WHERE a.network = feed.network AND a.[case] = feed.[case] AND a.member = ?), 0))")


def _visible(network: str, shell_partner: str | None,
             reader: str | None = None) -> tuple[str, tuple[Any, ...]]:
    """The feed rows the caller may read, as a WHERE clause and its parameters: for a
    core member ``reader`` all of the network's but those of subset cases it is not in
    (:data:`_AUDIENCE`); for a shell partner only those of cases shared with it, and of
    the shares only its own."""
    if shell_partner is None:
        if reader is None:
            return "network = ?", (network,)
        return f"network = ? AND {_AUDIENCE}", (network, network, reader, reader)
    return ("network = ? AND [case] IN (SELECT [case] FROM shares WHERE network = ?"
            " AND partner = ?) AND (kind != 'share' OR partner = ?)",
            (network, network, shell_partner, shell_partner))


def sync_rows(db: Db, network: str, after: int, limit: int,
              shell_partner: str | None, reader: str | None = None) -> list[FeedRow]:
    """Feed items after ``after`` that the caller may read (:func:`_visible`)."""
    where, params = _visible(network, shell_partner, reader)
    result = db.execute(f"SELECT id, kind, [case], envelope FROM feed WHERE {where}"
                        " AND id > ? ORDER BY id LIMIT ?", (*params, after, limit))
    return [FeedRow(r[0], r[1], r[2], r[3]) for r in result]


@dataclass(frozen=True, slots=True)
class FeedPage:
    """A sync page's rows and the feed's head for the caller, read together."""

    rows: list[FeedRow]
    head: int


def sync_read(db: Db, network: str, after: int, limit: int,
              shell_partner: str | None, reader: str | None = None) -> FeedPage:
    """:func:`sync_rows` and the head (docs/protocol.md §14.3, "Sync"): the position of the
    newest item the caller may read, or the page's cursor when that is larger.  A page
    shorter than ``limit`` holds every item there is, so only a full page looks further,
    down the ``(network, id)`` index from the newest row, with the page's own filter."""
    rows = sync_rows(db, network, after, limit, shell_partner, reader)
    cursor = rows[-1].cursor if rows else after
    if len(rows) < limit:
        return FeedPage(rows, cursor)
    where, params = _visible(network, shell_partner, reader)
    newest = db.execute(f"SELECT id FROM feed WHERE {where} ORDER BY id DESC LIMIT 1",
                        params).fetchone()
    return FeedPage(rows, max(cursor, newest[0] if newest is not None else 0))


def sync_page(db: Db, network: str, after: int, limit: int,
              shell_partner: str | None, reader: str | None = None) -> list[dict[str, Any]]:
    """:func:`sync_rows` as JSON values (the envelopes parsed)."""
    return [{"cursor": cursor_text(r.cursor), "kind": r.kind, "case": r.case,
             "envelope": json.loads(r.envelope)}
            for r in sync_rows(db, network, after, limit, shell_partner, reader)]


__all__ = ["NewEvent", "NewCase", "NewShare", "NewRekey", "NewGated", "NewHeader", "NewWidening",
           "create_case_txn", "append_event_txn", "add_share_txn", "latest_epoch",
           "add_rekey_txn", "replace_header_txn", "widen_audience_txn", "add_gated_txn",
           "case_facts", "case_audience", "reads_case", "case_documents", "case_header", "FeedRow", "FeedPage", "sync_rows",
           "sync_read", "sync_page"]
