"""Retention, bemoeizorg expiry, removals and audit erasure (protocol.md §11 flow 9, §D.9,
§N.5, §A.1; docs/protocol.md §15 §15.4).

Five kinds of step, all taken by the server on its own (actor: the server, its log key):

* **shred-identity** -- a case closed longer than the policy's ``retention.identity_days``:
  its identity records, gated envelopes and blind-index tokens are deleted, the released
  envelopes kept for retries are emptied, every partner that received a release for the
  case gets a ``purge-instruction`` (reason ``retention``) and ``shred-identity`` is
  appended (basis ``policy``).  Without the class keys nothing released stays readable:
  crypto-shredding.
* **shred-anonymous** -- closed longer than ``retention.anonymous_days``: the case row, its
  header, events, shares, identity purges, feed items and duplicate hints are deleted;
  ``shred-anonymous``.
* **bemoeizorg-expired** -- an invocation whose ``access_hours`` (from the moment the
  server accepted it) have passed: one ``purge-instruction`` (reason
  ``bemoeizorg-expired``, ref = the invocation) to the invoker, audited.
* **membership-removed** -- a revocation in effect that left its member without a current
  membership: one ``purge-instruction`` (reason ``membership-removed``, ref = the
  revocation's id) per case released to the member, audited.  The revocation's own
  transaction issues them when it takes effect on arrival; this step catches one dated
  later (and anything released to the member before that date).
* **erase** -- audit entries written before :func:`schakel.protocol.objects.audit.erase_cutoff`
  (the start of today, ``retention.audit_days`` back) lose their bodies; their rows and
  commitments stay, so every proof still verifies.  The step first appends an ``erase``
  entry whose ``erased_below`` names the erased prefix: the record every reader checks an
  erased body against (docs/protocol.md §15.1).  The prefix ends before the first entry
  written at or after the cutoff, as the signed heads' times say (a head's time is its
  last entry's), which is exactly what a reader checks.

The time a case was closed is the ``received`` time of its closing event: a closed case
takes only an event that reopens it (server/data/cases.py), so the closing event is the
case's last event.  No table is added: a step is due while what it destroys is still
there (identity material; the case row; no earlier expiry instruction for the
invocation; a released case without the removal's instruction; an unerased body below the
erasable prefix), so running a pass twice does nothing the second time.  Audit entries keep
their rows (they never hold identity) and the log still verifies.

:func:`plan` is pure (the facts, the policy, ``now`` -> the steps due); :func:`facts`
reads the facts; each ``*_txn`` checks its step is still due inside its own write
transaction, then takes it.  :func:`run_pass` does one pass for the app's background task
(:func:`retention_task`) and for ``schakel server retention``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from schakel.protocol.objects.audit import AuditActor, erase_cutoff
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.server.audit import signed_size
from schakel.server.directory import load_directory
from schakel.server.disclosure.data import (
    Log, purge_instruction_txn, purged_cases, released, revocation_ref,
)
from schakel.server.disclosure.facts import server_actor
from schakel.server.storage import Db

if TYPE_CHECKING:
    from schakel.server.context import AppContext

StepKind = Literal["shred-identity", "shred-anonymous", "bemoeizorg-expired",
                   "membership-removed", "erase"]


# --------------------------------------------------------------------------- the plan (pure)


@dataclass(frozen=True, kw_only=True)
class Periods:
    """A network's periods (policy ``retention`` and ``bemoeizorg.access_hours``)."""

    identity_days: int
    anonymous_days: int
    audit_days: int
    access_hours: int | None          #: None when the network has no bemoeizorg

    @classmethod
    def of_policy(cls, policy: dict[str, Any]) -> "Periods":
        retention = policy["retention"]
        bemoeizorg = policy.get("bemoeizorg") or {}
        hours = bemoeizorg.get("access_hours") if bemoeizorg.get("enabled") else None
        return cls(identity_days=int(retention["identity_days"]),
                   anonymous_days=int(retention["anonymous_days"]),
                   audit_days=int(retention["audit_days"]),
                   access_hours=None if hours is None else int(hours))


@dataclass(frozen=True, kw_only=True)
class CaseFacts:
    case: str
    closed_at: datetime | None        #: the closing event's received time; None if open
    identity_held: bool               #: identity records, gated envelopes or tokens remain


@dataclass(frozen=True, kw_only=True)
class InvocationFacts:
    invocation: str
    case: str
    invoker: str
    classes: tuple[str, ...]
    accepted_at: datetime             #: the server's time of the invocation (R13)
    purged: bool                      #: an expiry purge instruction was already issued


@dataclass(frozen=True, kw_only=True)
class AuditFacts:
    """The log's erasable prefix at a moment: ``below`` -- the entries before the first
    one written at or after the cutoff; ``held`` -- a body below it is still stored."""

    below: int
    held: bool


@dataclass(frozen=True, kw_only=True)
class RemovalFacts:
    """A revocation in effect whose member holds no current membership (§N.5)."""

    member: str
    ref: str                          #: the revocation's id (``revocation_ref``)
    unpurged: tuple[str, ...]         #: cases released to the member without its instruction


@dataclass(frozen=True, kw_only=True)
class Step:
    network: str
    kind: StepKind
    case: str | None = None           #: None for an erase
    invocation: str | None = None
    member: str | None = None         #: membership-removed: the removed member ...
    revocation: str | None = None     #: ... and the revocation's id

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"network": self.network, "step": self.kind}
        for name in ("case", "invocation", "member", "revocation"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def case_steps(network: str, periods: Periods, case: CaseFacts, now: datetime) -> list[Step]:
    """The retention steps due for one case at ``now`` (identity before anonymous)."""
    if case.closed_at is None:
        return []
    closed_for = now - case.closed_at
    steps = []
    if case.identity_held and closed_for >= timedelta(days=periods.identity_days):
        steps.append(Step(network=network, kind="shred-identity", case=case.case))
    if closed_for >= timedelta(days=periods.anonymous_days):
        steps.append(Step(network=network, kind="shred-anonymous", case=case.case))
    return steps


def invocation_due(periods: Periods, inv: InvocationFacts, now: datetime) -> bool:
    return (periods.access_hours is not None and not inv.purged
            and now >= inv.accepted_at + timedelta(hours=periods.access_hours))


def plan(network: str, periods: Periods, cases: Iterable[CaseFacts],
         invocations: Iterable[InvocationFacts], now: datetime,
         *, removals: Iterable[RemovalFacts] = (),
         audit: AuditFacts | None = None) -> list[Step]:
    """Every step due in ``network`` at ``now``: removals and expiries first, then per
    case, then the erasure of audit bodies (its entry is then the newest, so it never
    erases itself)."""
    steps = [Step(network=network, kind="membership-removed", case=case, member=r.member,
                  revocation=r.ref)
             for r in removals for case in r.unpurged]
    steps += [Step(network=network, kind="bemoeizorg-expired", case=i.case,
                   invocation=i.invocation)
              for i in invocations if invocation_due(periods, i, now)]
    for case in cases:
        steps += case_steps(network, periods, case, now)
    if audit is not None and audit.held:
        steps.append(Step(network=network, kind="erase"))
    return steps


# --------------------------------------------------------------------------- facts (reads)


def network_periods(db: Db) -> list[tuple[str, Periods]]:
    """Each network's periods under its policy in force: the highest policy version
    stored, else the genesis's (protocol.md §N.3)."""
    rows = db.execute(
        "SELECT n.network, coalesce((SELECT p.envelope FROM network_policies p"
        " WHERE p.network = n.network ORDER BY p.version DESC LIMIT 1), n.genesis) AS envelope"
        " FROM networks n ORDER BY n.rowid")
    return [(r["network"], Periods.of_policy(json.loads(r["envelope"])["signed"]["policy"]))
            for r in rows]


def _closed_at(db: Db, network: str, case: str) -> datetime | None:
    row = db.execute("SELECT c.status, e.received FROM cases c LEFT JOIN events e"
                     " ON e.network = c.network AND e.[case] = c.[case] AND e.seq = c.last_seq"
                     " WHERE c.network = ? AND c.[case] = ?", (network, case)).fetchone()
    if row is None or row["status"] != "closed" or row["received"] is None:
        return None
    return parse_timestamp(row["received"])


def _identity_held(db: Db, network: str, case: str) -> bool:
    return any(db.execute(query, (network, case)).fetchone() is not None for query in (
        "SELECT 1 FROM identity WHERE network = ? AND [case] = ? LIMIT 1",
        "SELECT 1 FROM gated WHERE network = ? AND [case] = ? LIMIT 1",
        "SELECT 1 FROM tokens WHERE network = ? AND subject_kind = 'case' AND subject = ?"
        " LIMIT 1"))


def case_facts(db: Db, network: str, case: str) -> CaseFacts | None:
    """The facts of one case, or None once its anonymous layer is gone."""
    if db.execute("SELECT 1 FROM cases WHERE network = ? AND [case] = ?",
                  (network, case)).fetchone() is None:
        return None
    return CaseFacts(case=case, closed_at=_closed_at(db, network, case),
                     identity_held=_identity_held(db, network, case))


def _invocation_facts(db: Db, network: str, row: Any) -> InvocationFacts:
    return InvocationFacts(invocation=row["invocation"], case=row["case"],
                           invoker=row["invoker"], classes=tuple(json.loads(row["classes"])),
                           accepted_at=parse_timestamp(row["received"]),
                           purged=bool(purged_cases(
                               db, network, row["invoker"], reason="bemoeizorg-expired",
                               ref=row["invocation"])))


def facts(db: Db, network: str, periods: Periods,
          now: datetime) -> tuple[list[CaseFacts], list[InvocationFacts]]:
    """The closed cases and the invocations whose window may have ended at ``now``."""
    cases = [CaseFacts(case=r["case"], closed_at=parse_timestamp(r["received"]),
                       identity_held=_identity_held(db, network, r["case"]))
             for r in db.execute(
                 "SELECT c.[case], e.received FROM cases c JOIN events e"
                 " ON e.network = c.network AND e.[case] = c.[case] AND e.seq = c.last_seq"
                 " WHERE c.network = ? AND c.status = 'closed' ORDER BY c.rowid", (network,))]
    invocations: list[InvocationFacts] = []
    if periods.access_hours is not None:
        until = format_timestamp(now - timedelta(hours=periods.access_hours))
        invocations = [_invocation_facts(db, network, r) for r in db.execute(
            "SELECT invocation, [case], invoker, classes, received FROM invocations"
            " WHERE network = ? AND received <= ? ORDER BY rowid", (network, until))]
    return cases, invocations


def audit_facts(db: Db, network: str, periods: Periods, now: datetime) -> AuditFacts:
    """The prefix of the log whose bodies may be erased at ``now``: up to (not including)
    the first entry written at or after ``erase_cutoff(now, audit_days)``, by the signed
    heads' times (the head of size n carries the time of entry n - 1)."""
    cutoff = format_timestamp(erase_cutoff(now, periods.audit_days))
    row = db.execute("SELECT size FROM tree_heads WHERE network = ? AND time >= ?"
                     " ORDER BY size LIMIT 1", (network, cutoff)).fetchone()
    below = signed_size(db, network) if row is None else int(row["size"]) - 1
    held = below > 0 and db.execute(
        "SELECT 1 FROM audit_entries WHERE network = ? AND idx < ? AND body IS NOT NULL"
        " LIMIT 1", (network, below)).fetchone() is not None
    return AuditFacts(below=below, held=held)


def removal_facts(db: Db, network: str, standing: AbstractSet[str],
                  now: datetime) -> list[RemovalFacts]:
    """The revocations in effect at ``now`` whose member is not in ``standing`` (the key
    ids with a current membership), with the cases released to the member that lack the
    ``membership-removed`` instruction of that revocation.  Usually the revocation's own
    transaction issued them; this catches a revocation dated later than its arrival."""
    out = []
    stamp = format_timestamp(now)
    for row in db.execute("SELECT member, digest FROM revocations WHERE network = ?"
                          " AND json_extract(envelope, '$.signed.at') <= ? ORDER BY id",
                          (network, stamp)).fetchall():
        if row["member"] in standing:
            continue
        ref = revocation_ref(row["digest"])
        done = purged_cases(db, network, row["member"], reason="membership-removed", ref=ref)
        cases = released(db, network, per="case", where="grantee", value=row["member"])
        unpurged = tuple(c for c in cases if c not in done)
        if unpurged:
            out.append(RemovalFacts(member=row["member"], ref=ref, unpurged=unpurged))
    return out


def due(db: Db, now: datetime,
        standing: Mapping[str, AbstractSet[str]]) -> list[tuple[Step, Periods]]:
    """Every step due at ``now`` in every network (a read: ``Store.read``); ``standing``
    maps each network to the key ids that hold a current membership (the member
    directory's, computed at the same ``now``)."""
    out = []
    for network, periods in network_periods(db):
        cases, invocations = facts(db, network, periods, now)
        removals = removal_facts(db, network, standing.get(network, frozenset()), now)
        audit = audit_facts(db, network, periods, now)
        out += [(step, periods)
                for step in plan(network, periods, cases, invocations, now,
                                 removals=removals, audit=audit)]
    return out


# --------------------------------------------------------------------------- the steps (writes)


def _empty_release_answers(db: Db, network: str, case: str) -> None:
    """A release's stored answer (for retries) holds the released envelopes: empty them."""
    for row in db.execute("SELECT id, answer FROM releases WHERE network = ? AND [case] = ?",
                          (network, case)).fetchall():
        answer = json.loads(row["answer"])
        answer["envelopes"] = []
        db.execute("UPDATE releases SET answer = ? WHERE id = ?", (json.dumps(answer), row["id"]))


def shred_identity_txn(db: Db, step: Step, periods: Periods, log: Log,
                       server: AuditActor) -> dict[str, Any] | None:
    """Crypto-shred a case's identity if still due (else None)."""
    found = case_facts(db, step.network, step.case)
    if found is None or step not in case_steps(step.network, periods, found, log.now):
        return None
    net, case = step.network, step.case
    classes = sorted({r[0] for r in db.execute(
        "SELECT class FROM identity WHERE network = ? AND [case] = ? UNION"
        " SELECT class FROM gated WHERE network = ? AND [case] = ?", (net, case, net, case))})
    instructions = [
        purge_instruction_txn(db, log, server, case=case, recipient=recipient,
                              classes=received, reason="retention", ref=None, basis="policy")
        for recipient, received in sorted(released(db, net, per="grantee", where="case",
                                                   value=case).items())]
    receipt = log.append(db, actor=server, action="shred-identity", basis="policy",
                         reason=f"retention: closed more than {periods.identity_days} days",
                         case=case, classes=classes or None)
    for table in ("identity", "gated"):
        db.execute(f"DELETE FROM {table} WHERE network = ? AND [case] = ?", (net, case))
    db.execute("DELETE FROM tokens WHERE network = ? AND subject_kind = 'case' AND subject = ?",
               (net, case))
    _empty_release_answers(db, net, case)
    return {**step.to_json(), "audit_index": receipt["index"],
            "purge_instructions": instructions}


def shred_anonymous_txn(db: Db, step: Step, periods: Periods, log: Log,
                        server: AuditActor) -> dict[str, Any] | None:
    """Delete a case's anonymous layer if still due (else None)."""
    found = case_facts(db, step.network, step.case)
    if found is None or step not in case_steps(step.network, periods, found, log.now):
        return None
    net, case = step.network, step.case
    receipt = log.append(db, actor=server, action="shred-anonymous", basis="policy",
                         reason=f"retention: closed more than {periods.anonymous_days} days",
                         case=case)
    for table in ("feed", "events", "shares", "case_rekeys", "header_versions",
                  "identity_purges", "cases"):
        db.execute(f"DELETE FROM {table} WHERE network = ? AND [case] = ?", (net, case))
    db.execute("DELETE FROM hints WHERE network = ? AND ((subject_kind = 'case'"
               " AND subject = ?) OR may_concern = ?)", (net, case, case))
    return {**step.to_json(), "audit_index": receipt["index"]}


def expire_invocation_txn(db: Db, step: Step, periods: Periods, log: Log,
                          server: AuditActor) -> dict[str, Any] | None:
    """The expiry purge instruction of an invocation, once (else None)."""
    row = db.execute("SELECT invocation, [case], invoker, classes, received FROM invocations"
                     " WHERE network = ? AND invocation = ?",
                     (step.network, step.invocation)).fetchone()
    if row is None:
        return None
    inv = _invocation_facts(db, step.network, row)
    if not invocation_due(periods, inv, log.now):
        return None
    instruction = purge_instruction_txn(db, log, server, case=inv.case, recipient=inv.invoker,
                                        classes=inv.classes, reason="bemoeizorg-expired",
                                        ref=inv.invocation, basis="bemoeizorg")
    return {**step.to_json(), "purge_instructions": [instruction]}


def remove_member_txn(db: Db, step: Step, periods: Periods, log: Log,
                      server: AuditActor) -> dict[str, Any] | None:
    """The ``membership-removed`` instruction of one case for a removed member, once
    (else None): what the revocation's own transaction would have issued had it been in
    effect when it arrived (protocol.md §N.5)."""
    assert step.member is not None and step.revocation is not None
    if step.case in purged_cases(db, step.network, step.member, reason="membership-removed",
                                 ref=step.revocation):
        return None
    classes = released(db, step.network, per="case", where="grantee",
                       value=step.member).get(step.case)
    if not classes:
        return None
    instruction = purge_instruction_txn(db, log, server, case=step.case, recipient=step.member,
                                        classes=classes, reason="membership-removed",
                                        ref=step.revocation, basis="policy")
    return {**step.to_json(), "purge_instructions": [instruction]}


def erase_txn(db: Db, step: Step, periods: Periods, log: Log,
              server: AuditActor) -> dict[str, Any] | None:
    """Erase the bodies of the erasable prefix if any is still stored (else None): first
    the ``erase`` entry naming the prefix (``erased_below``), then the bodies.  Rows and
    commitments stay."""
    found = audit_facts(db, step.network, periods, log.now)
    if not found.held:
        return None
    receipt = log.append(db, actor=server, action="erase", basis="policy",
                         reason=f"retention: bodies of entries written more than "
                                f"{periods.audit_days} days ago erased",
                         erased_below=found.below)
    erased = db.execute("UPDATE audit_entries SET body = NULL WHERE network = ? AND idx < ?"
                        " AND body IS NOT NULL", (step.network, found.below)).rowcount
    return {**step.to_json(), "erased_below": found.below, "erased": erased,
            "audit_index": receipt["index"]}


STEP_TXN = {"shred-identity": shred_identity_txn, "shred-anonymous": shred_anonymous_txn,
            "bemoeizorg-expired": expire_invocation_txn, "membership-removed": remove_member_txn,
            "erase": erase_txn}


# --------------------------------------------------------------------------- one pass


async def run_pass(ctx: "AppContext") -> list[dict[str, Any]]:
    """One retention pass at the server's time: what is due, then each step in its own
    write transaction (re-checked there).  Returns what was done."""
    now = ctx.now()
    server = server_actor(ctx.keys)
    standing = {network: frozenset(state.current_members(now))
                for network, state in ctx.directory.networks()}
    done = []
    for step, periods in await ctx.store.read(due, now, standing):
        log = Log(network=step.network, log_key=ctx.keys.log_signer, now=now)
        result = await ctx.store.write(STEP_TXN[step.kind], step, periods, log, server,
                                       notify=step.network,
                                       shred=step.kind.startswith("shred-"))
        if result is not None:
            done.append(result)
    return done


async def run_once(ctx: "AppContext") -> list[dict[str, Any]]:
    """One pass on a store that is not running (``schakel server retention``)."""
    await ctx.store.start()
    try:
        await load_directory(ctx.store, ctx.directory)
        return await run_pass(ctx)
    finally:
        await ctx.store.close()


async def retention_task(ctx: "AppContext", interval: float) -> None:
    """Run :func:`run_pass` every ``interval`` seconds until cancelled; a failing pass is
    logged and the next one runs as usual (it never stops the server).  Of several
    processes sharing a PostgreSQL database only the one that leads ``retention`` runs it
    (:meth:`~schakel.server.storage.BaseStore.leads`)."""
    while True:
        await asyncio.sleep(interval)
        try:
            if not await ctx.store.leads("retention"):
                continue
            done = await run_pass(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            ctx.log.exception("retention pass failed")
        else:
            if done:
                ctx.log.info("retention", steps=len(done),
                             shredded=[d["case"] for d in done if d["step"].startswith("shred-")],
                             expired=[d["invocation"] for d in done if "invocation" in d],
                             removed=[d["member"] for d in done if "member" in d],
                             erased=sum(d.get("erased", 0) for d in done))


__all__ = ["StepKind", "Periods", "CaseFacts", "InvocationFacts", "AuditFacts", "RemovalFacts",
           "Step", "case_steps", "invocation_due", "plan", "network_periods", "case_facts",
           "facts", "audit_facts", "removal_facts", "due", "shred_identity_txn",
           "shred_anonymous_txn", "expire_invocation_txn", "remove_member_txn", "erase_txn",
           "run_pass", "run_once", "retention_task"]
