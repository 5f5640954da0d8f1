"""A partner's monitor of one network's audit log (docs/protocol.md §9, §A.1, §A.2,
§15.1, §16.5; design flow 10), and :class:`Audit`, the service that keeps one
:class:`AuditMonitor` per network for a partner (``partner.audit``).

**Heads.**  The server signs tree heads with its log key (named in the verified
genesis).  The monitor keeps the heads it verified in the local state (doc ``tree-head``
(n, size)) and accepts another only with a consistency proof from the nearest held ones:

* a head smaller than the latest held, or of an equal size with another root -- the log
  was rolled back or forked (``audit-rollback`` / ``audit-fork``); a consistency proof
  that does not verify is ``audit-fork`` too;
* a release's inclusion receipt is checked against a head that must itself be consistent
  with the held ones (``receipt-missing`` / ``receipt-invalid``);
* where the policy in force names witnesses, every head the server serves as its latest is
  followed by the log's checkpoint (protocol.md §17.5): cosigned by the quorum recently
  (``NotWitnessedError`` otherwise), no smaller than the one held, and with the root of
  this partner's own head of its size (``audit-fork`` otherwise: the server shows it
  another log than the witnesses saw).  The log is then verified up to that head.

**Entries.**  Every entry this partner may read below the latest head is checked:

* its body hashes to the commitment the server states and names its own index, and its
  inclusion proof under the head verifies (``audit-entry-rewritten``) -- for a reader of
  the whole log too, so that an auditor vouches for every proof a partner can be given.
  The entries are read in pages for the head's size, each item with its proof in the
  tree of that size (§15.1), so the proofs cost no request of their own;
* a reader of the whole log (the coordinator and auditors: the server's rule, decided
  here from the verified memberships) gets every index below the head, and the
  commitments hash to the head's root.  A gap is an entry withheld
  (``audit-entry-missing``), never a reason to fall back to per-entry proofs;
* a reader of part of the log remembers every entry naming it that it verified, and
  every entry it holds a receipt for (doc ``audit-leaf`` (n, index)): each must come back,
  with the same commitment (``audit-entry-missing`` / ``audit-entry-rewritten``);
* the actor of every entry by a member states what a membership of that member valid at
  the entry's time says (protocol.md §A.1, §N.4): its ``on_behalf_of`` list, and the
  party of its acting user -- else ``audit-entry-rewritten``.  The server fills both in
  from the membership in force; a log that moves an act to other organisations, or
  shows a volunteer as a professional, is caught here;
* a body may be missing only below the ``erased_below`` of an ``erase`` entry written by
  the server's log key, and only if the last entry it erased was older than the policy's
  ``retention.audit_days`` by :func:`schakel.protocol.objects.audit.erase_cutoff` (its time is the
  signed head of that size).  Any other missing body is ``audit-entry-missing``.  Every
  member may read the ``erase`` entries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schakel.protocol import merkle
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import MalformedError, ProofError, ProtocolError, SignatureError
from schakel.protocol.objects.audit import AuditEntry, TreeHead, entry_commitment, erase_cutoff
from schakel.protocol.objects.base import format_timestamp, parse_timestamp
from schakel.protocol.objects.network import WitnessSettings
from schakel.protocol.witnessing import AUDIT, VerifiedCheckpoint, verify_network_checkpoint

from schakel.client.errors import ServerMisbehaviour, ServerRefused
from schakel.client.session import Session
from schakel.client.state import LocalState
from schakel.client.transport import Connection
from schakel.client.trust import TrustView
from schakel.client.views import AuditVerification

PAGE = 500


def actor_agrees(tv: TrustView, entry: AuditEntry) -> bool:
    """Whether ``entry``'s actor states ``on_behalf_of`` and ``party`` as some verified
    membership of its partner valid at the entry's time does (protocol.md §A.1): the list
    as the membership has it, and the party absent or the acting user's
    (``Member.party_of``).  Any of them will do: a new membership may be backdated over an
    act written under the one before.  An actor with no membership valid then (the
    server, a former member) is not judged here, nor the coordinator key acting before
    its own membership was registered (no party: the membership that is valid at that
    time by its backdated ``valid_from`` was not yet in force)."""
    actor = entry.actor
    held = tv.memberships_at(actor.partner, parse_timestamp(entry.time))
    if not held or (actor.party is None and tv.is_coordinator(actor.partner)):
        return True
    return any((actor.on_behalf_of or ()) == m.on_behalf_of
               and actor.party in (None, m.party_of(actor.acting_user)) for m in held)
#: Local doc kind of a remembered leaf: (network, index) -> {"commitment"}.
LEAF_DOC = "audit-leaf"


def _root(head: TreeHead) -> bytes:
    return b64d(head.root, length=32, what="root")


def reads_whole_log(tv: TrustView, me: str) -> bool:
    """Whether the server serves ``me`` every entry (§15.1): the coordinator, or a
    current member with the ``auditor`` role."""
    member = tv.member(me)
    return tv.is_coordinator(me) or (member is not None and member.current
                                     and member.has_role("auditor"))


@dataclass(frozen=True)
class Leaf:
    """One served entry, its commitment checked against its body (``entry`` and ``body``
    are None once the body was erased), and the inclusion proof served with it (not yet
    verified: :meth:`AuditMonitor._verified` does that against the head)."""

    index: int
    commitment: bytes
    entry: AuditEntry | None
    body: dict[str, Any] | None
    proof: tuple[bytes, ...]

    def names(self, partner: str) -> bool:
        return self.entry is not None and partner in (self.entry.actor.partner,
                                                      self.entry.subject)


class AuditMonitor:
    """The audit log of ``network`` as the partner ``me`` verified it (module docstring)."""

    def __init__(self, *, network: str, me: str, conn: Connection, state: LocalState,
                 trusted: Callable[[], Awaitable[TrustView]],
                 misbehaving: Callable[..., ServerMisbehaviour]) -> None:
        self.network, self.me, self.conn, self.state = network, me, conn, state
        self._trusted, self._misbehaving = trusted, misbehaving
        self._log_key: VerifyKey | None = None

    def fail(self, what: str, message: str, **details: Any) -> ServerMisbehaviour:
        return self._misbehaving(self.network, what, message, **details)

    def _path(self, suffix: str) -> str:
        return f"/v1/networks/{self.network}/audit{suffix}"

    async def _key(self) -> VerifyKey:
        if self._log_key is None:
            self._log_key = (await self._trusted()).server_log
        return self._log_key

    # ------------------------------------------------------------------ heads

    def heads(self) -> dict[int, TreeHead]:
        return {int(ref[1]): TreeHead.from_json(env["signed"])
                for ref, env in self.state.docs("tree-head", (self.network,))}

    @property
    def latest(self) -> TreeHead | None:
        heads = self.heads()
        return heads[max(heads)] if heads else None

    async def _verify_head(self, envelope: Any, what: str) -> TreeHead:
        try:
            head = TreeHead.from_envelope(envelope, [await self._key()])
        except (SignatureError, MalformedError) as exc:
            raise self.fail(what, f"a tree head not signed by the server's log key "
                            f"({exc.code})") from None
        if head.network != self.network:
            raise self.fail(what, "a tree head of another network")
        return head

    async def consistency(self, old: TreeHead, new: TreeHead) -> None:
        """Verify the server's consistency proof from ``old`` to ``new`` (two verified
        heads, ``old.size <= new.size``); raises ``ProofError`` or ``MalformedError``."""
        answer = await self.conn.get(self._path("/proof/consistency"),
                                     {"old": old.size, "new": new.size})
        merkle.verify_consistency(old.size, new.size, _root(old), _root(new),
                                  [b64d(p, length=32) for p in answer["proof"]])

    async def accept(self, head: TreeHead, envelope: Any, *, what: str | None = None) -> None:
        """Keep ``head`` if it is consistent with the heads held: with the latest held
        when it is newer, with the nearest held above it when it is older."""
        heads = self.heads()
        held = heads.get(head.size)
        if held is not None:
            if held.root != head.root:
                raise self.fail(what or "audit-fork", f"two heads of size {head.size} with "
                                f"different roots: a forked log", size=head.size)
            return
        if heads:
            below = [s for s in heads if s < head.size]
            above = [s for s in heads if s > head.size]
            try:
                if below:
                    await self.consistency(heads[max(below)], head)
                if above:
                    await self.consistency(head, heads[min(above)])
            except (ProofError, MalformedError, KeyError, TypeError) as exc:
                raise self.fail(what or "audit-fork", f"a head that is not consistent with "
                                f"the heads held ({type(exc).__name__})",
                                size=head.size) from None
            except ServerRefused as exc:
                raise self.fail(what or "audit-fork", f"the server refused a consistency "
                                f"proof ({exc.code})", size=head.size) from None
        self.state.put_doc("tree-head", (self.network, f"{head.size:016d}"), envelope)

    async def refresh(self) -> TreeHead | None:
        """The server's latest head, verified and kept; None while the log is empty
        (and nothing was held: an empty log after a held head is a rollback)."""
        latest = self.latest
        try:
            answer = await self.conn.get(self._path("/head"))
        except ServerRefused as exc:
            if exc.status == 404 and exc.code == "not_found":
                if latest is not None:
                    raise self.fail("audit-rollback", f"the server says the log is empty; this "
                                    f"partner holds a head of {latest.size} entries") from None
                return None
            raise
        envelope = answer.get("tree_head") if isinstance(answer, dict) else None
        return await self.observe(envelope)

    async def observe(self, envelope: Any) -> TreeHead | None:
        """A head the server served as its latest (``GET .../audit/head``, or the
        ``tree_head`` of ``GET /v1/networks/{n}`` that every sync reads): verified, no
        smaller than the latest held, consistent with the held heads, and kept.  None
        (an empty log) is a rollback once a head is held."""
        latest = self.latest
        if envelope is None:
            if latest is not None:
                raise self.fail("audit-rollback", f"the server says the log is empty; this "
                                f"partner holds a head of {latest.size} entries")
            return None
        head = await self._verify_head(envelope, "audit-fork")
        if latest is not None and head.size < latest.size:
            raise self.fail("audit-rollback", f"the server's head has {head.size} entries; "
                            f"this partner holds one of {latest.size}", size=head.size)
        await self.accept(head, envelope)
        await self.witnessed()
        return head

    # ------------------------------------------------------------------ witnesses

    async def _witnesses(self) -> WitnessSettings | None:
        tv = await self._trusted()
        return tv.policies[-1].policy.witnesses if tv.policies else None

    @property
    def checkpoint(self) -> dict[str, Any] | None:
        """The newest witnessed checkpoint this partner verified: ``{"size", "root",
        "note", "cosigned": {witness: POSIX time}}``, or None."""
        return self.state.get_doc("checkpoint", (self.network, AUDIT))

    async def witnessed(self) -> TreeHead | None:
        """The signed head of the newest checkpoint the policy's witnesses cosigned
        (protocol.md §17.5), or None when the policy names no witnesses or the log is empty.

        The checkpoint must be signed by the log key and cosigned by the quorum, recently
        enough (``NotWitnessedError`` otherwise: nothing newer is believed), no smaller than
        the one held (``audit-rollback``), and its root must be that of the signed head of
        its size, which must be consistent with every head held (``audit-fork``): a server
        that shows this partner another history than the one the witnesses saw is caught
        here.  A cosignature line of a named witness that does not verify is
        ``bad-signature``."""
        settings = await self._witnesses()
        if settings is None:
            return None
        held = self.checkpoint
        try:
            answer = await self.conn.get(self._path("/checkpoint"))
        except ServerRefused as exc:
            if exc.status == 404 and exc.code == "not_found":
                if held is not None or self.latest is not None:
                    raise self.fail("audit-rollback", "the server says the log is empty; this "
                                    "partner holds a head of it") from None
                return None
            raise
        text = answer.get("checkpoint") if isinstance(answer, dict) else None
        tv = await self._trusted()
        try:
            checkpoint = verify_network_checkpoint(
                text if isinstance(text, str) else "", log=AUDIT, network=self.network,
                log_key=await self._key(), witnesses=settings, now=int(tv.now.timestamp()))
        except (SignatureError, MalformedError) as exc:
            raise self.fail("bad-signature", f"the log's checkpoint does not verify: "
                            f"{exc.message}") from None
        if held is not None and checkpoint.size < int(held["size"]):
            raise self.fail("audit-rollback", f"the witnessed checkpoint has {checkpoint.size} "
                            f"entries; this partner holds one of {held['size']}",
                            size=checkpoint.size)
        head = self.heads().get(checkpoint.size) or await self.head_at(checkpoint.size)
        if _root(head) != checkpoint.root:
            raise self.fail("audit-fork", f"the witnesses cosigned another root for "
                            f"{checkpoint.size} entries than the head this partner holds: "
                            f"the server shows it another log than the witnesses saw",
                            size=checkpoint.size)
        self._keep_checkpoint(checkpoint, text)
        return head

    def _keep_checkpoint(self, checkpoint: VerifiedCheckpoint, note: Any) -> None:
        held = self.checkpoint
        if held is None or int(held["size"]) <= checkpoint.size:
            self.state.put_doc("checkpoint", (self.network, AUDIT),
                               {"size": checkpoint.size, "root": b64e(checkpoint.root),
                                "note": note, "cosigned": dict(checkpoint.cosigned)})

    async def head_at(self, size: int) -> TreeHead:
        answer = await self.conn.get(self._path(f"/heads/{size}"))
        envelope = answer.get("tree_head") if isinstance(answer, dict) else None
        head = await self._verify_head(envelope, "audit-fork")
        if head.size != size:
            raise self.fail("audit-fork", "the server answered a head of another size")
        await self.accept(head, envelope)
        return head

    # ------------------------------------------------------------------ receipts

    async def check_receipt(self, receipt: Any) -> AuditEntry:
        """Verify a release's inclusion receipt before anything released is opened:
        the head is signed by the log key and consistent with the heads held, the entry
        is leaf ``index`` of it.  None -> ``receipt-missing``; anything else wrong ->
        ``receipt-invalid``.  An entry naming this partner is remembered: the log must
        keep serving it to this partner."""
        if not receipt:
            raise self.fail("receipt-missing", "a release came without its inclusion receipt")
        try:
            head = await self._verify_head(receipt["tree_head"], "receipt-invalid")
            entry = AuditEntry.from_json(receipt["entry"])
            index = int(receipt["index"])
            if entry.index != index or entry.network != self.network or index >= head.size:
                raise ProofError("the receipt's entry is not the leaf it names")
            merkle.verify_inclusion(entry_commitment(entry), index, head.size,
                                    [b64d(p, length=32) for p in receipt["proof"]],
                                    _root(head))
        except ServerMisbehaviour:
            raise
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:
            raise self.fail("receipt-invalid", f"the release's receipt does not verify "
                            f"({type(exc).__name__})") from None
        await self.accept(head, receipt["tree_head"], what="receipt-invalid")
        if self.me in (entry.actor.partner, entry.subject):
            self._remember(index, entry_commitment(entry))
        return entry

    # ------------------------------------------------------------------ entries

    async def _entries(self, head: TreeHead) -> list[dict[str, Any]]:
        """Every item the server serves below ``head``, each with its inclusion proof in
        the tree of ``head.size`` (protocol.md §15.1), in pages of :data:`PAGE`."""
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.conn.get(self._path("/entries"),
                                       {"after": after, "limit": PAGE, "size": head.size})
            batch = page.get("items") if isinstance(page, dict) else None
            if not batch:
                return items
            items += batch
            nxt = int(page["cursor"])
            if nxt <= after:
                return items
            after = nxt

    async def verify_all(self, progress: Callable[[int], Any] | None = None
                         ) -> AuditVerification:
        """Check every entry this partner may read against the latest head (module
        docstring); ``progress(n)`` after each entry's inclusion proof.  Entries newer
        than the head are left for next time."""
        return (await self.verify_and_read(progress))[0]

    async def verify_and_read(self, progress: Callable[[int], Any] | None = None
                              ) -> tuple[AuditVerification, list[dict[str, Any]]]:
        """:meth:`verify_all` and :meth:`entries` in one pass over the log: the
        verification and the entries it checked (``{"index", "entry"}`` in log order,
        erased bodies left out), for a reader that shows what it verified."""
        head = await self._head_to_verify()
        if head is None:
            return AuditVerification(network=self.network, size=0, root=b64e(bytes(32)),
                                     checked=0, erased=0, head_time=None), []
        leaves = await self._verified(head, progress)
        erased = sum(1 for leaf in leaves if leaf.entry is None)
        held = self.checkpoint
        witnessed_by: tuple[tuple[str, str], ...] = ()
        if held is not None and int(held["size"]) == head.size:
            witnessed_by = tuple(sorted(
                (name, format_timestamp(datetime.fromtimestamp(int(t), UTC)))
                for name, t in (held.get("cosigned") or {}).items()))
        return (AuditVerification(network=self.network, size=head.size, root=head.root,
                                  checked=len(leaves) - erased, erased=erased,
                                  head_time=head.time, witnessed_by=witnessed_by),
                [{"index": leaf.index, "entry": leaf.body}
                 for leaf in leaves if leaf.body is not None])

    async def entries(self) -> list[dict[str, Any]]:
        """Every entry this partner may read, checked as :meth:`verify_all` does:
        ``{"index", "entry"}`` in log order (erased bodies are left out)."""
        head = await self._head_to_verify()
        if head is None:
            return []
        return [{"index": leaf.index, "entry": leaf.body}
                for leaf in await self._verified(head) if leaf.body is not None]

    async def _head_to_verify(self) -> TreeHead | None:
        """The latest head, or where the policy names witnesses, the head of the newest
        checkpoint they cosigned: a reader verifies the log the witnesses saw."""
        head = await self.refresh()     # observes the witnessed checkpoint too
        held = self.checkpoint
        if head is None or held is None or await self._witnesses() is None:
            return head
        return self.heads()[int(held["size"])]

    async def _verified(self, head: TreeHead, progress: Callable[[int], Any] | None = None
                        ) -> list[Leaf]:
        """The served entries below ``head``, every check of the module docstring made
        (protocol.md §16.5); the leaves naming this partner are remembered."""
        tv = await self._trusted()
        whole = reads_whole_log(tv, self.me)
        leaves = list(map(self._leaf, await self._entries(head)))
        indexes = [leaf.index for leaf in leaves]
        if any(b <= a for a, b in zip(indexes, indexes[1:])):
            raise self.fail("audit-entry-rewritten", "entries served out of log order")
        if indexes and indexes[-1] >= head.size:
            raise self.fail("audit-entry-rewritten", f"entry {indexes[-1]} served in a page of "
                            f"the log's first {head.size} entries", index=indexes[-1])
        if whole:
            missing = sorted(set(range(head.size)) - set(indexes))
            if missing:
                raise self.fail("audit-entry-missing", f"{len(missing)} of the {head.size} "
                                f"entries below the head are not served (the first is "
                                f"{missing[0]})", index=missing[0], count=len(missing))
            if merkle.root_hash([leaf.commitment for leaf in leaves]) != _root(head):
                raise self.fail("audit-entry-rewritten", "the entries do not hash to the "
                                "signed root", size=head.size)
        self._check_remembered(leaves)
        erased_below = await self._erased_below(leaves, tv)
        for leaf in leaves:
            if leaf.entry is None and leaf.index >= erased_below:
                raise self.fail("audit-entry-missing", f"entry {leaf.index} has no body and "
                                f"no erase entry covers it", index=leaf.index)
        for leaf in leaves:
            if leaf.entry is not None and not actor_agrees(tv, leaf.entry):
                raise self.fail("audit-entry-rewritten", f"entry {leaf.index} states another "
                                f"party or on-behalf-of list for its actor than the actor's "
                                f"membership", index=leaf.index)
        root = _root(head)
        for n, leaf in enumerate(leaves, 1):
            try:
                merkle.verify_inclusion(leaf.commitment, leaf.index, head.size, leaf.proof, root)
            except ProtocolError:
                raise self.fail("audit-entry-rewritten", f"entry {leaf.index} is not included "
                                f"in the signed log", index=leaf.index) from None
            if progress is not None:
                progress(n)
        if not whole:
            for leaf in leaves:
                if leaf.names(self.me):
                    self._remember(leaf.index, leaf.commitment)
        return leaves

    async def proof(self, index: int) -> dict[str, Any] | None:
        """Entry ``index`` with its inclusion proof in the tree of the latest verified
        head (refreshed first, so consistent with the heads held), both checked as
        :meth:`verify_all` checks them: the body hashes to its commitment and the proof
        leads from the leaf hash to the signed root (protocol.md §15.1, §16.5).  One
        ``GET .../audit/entries`` of one item; None when the entry is not below the head
        or not one this partner may read.  A proof that does not verify is
        ``audit-entry-rewritten``, recorded.  ``{"index", "entry" (None once erased),
        "commitment", "leaf_hash", "proof", "head": {"size", "root", "time"}}``."""
        head = await self.refresh()
        if head is None or not 0 <= index < head.size:
            return None
        page = await self.conn.get(self._path("/entries"),
                                   {"after": index, "limit": 1, "size": head.size})
        batch = page.get("items") if isinstance(page, dict) else None
        if not batch:
            return None
        leaf = self._leaf(batch[0])
        if leaf.index != index:
            return None
        try:
            merkle.verify_inclusion(leaf.commitment, index, head.size, leaf.proof, _root(head))
        except ProtocolError:
            raise self.fail("audit-entry-rewritten", f"entry {index} is not included in the "
                            f"signed log", index=index) from None
        return {"index": index, "entry": leaf.body, "commitment": b64e(leaf.commitment),
                "leaf_hash": b64e(merkle.leaf_hash(leaf.commitment)),
                "proof": [b64e(p) for p in leaf.proof],
                "head": {"size": head.size, "root": head.root, "time": head.time}}

    def _leaf(self, item: Any) -> Leaf:
        """A served item with its commitment recomputed from the body (equal to the one
        the server states), or the stated one for an erased body; its proof decoded."""
        try:
            index = int(item["index"])
            stated = b64d(item["commitment"], length=32, what="commitment")
            proof = tuple(b64d(p, length=32, what="proof") for p in item["proof"])
            if item.get("entry") is None:
                return Leaf(index=index, commitment=stated, entry=None, body=None, proof=proof)
            entry = AuditEntry.from_json(item["entry"])
            if entry.index != index or entry.network != self.network:
                raise ProofError("an entry names another index or network than its place")
            if entry_commitment(entry) != stated:
                raise ProofError("an entry's body does not hash to its commitment")
            return Leaf(index=index, commitment=stated, entry=entry, body=item["entry"],
                        proof=proof)
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:
            raise self.fail("audit-entry-rewritten", f"an audit entry does not verify "
                            f"({type(exc).__name__})") from None

    def _remember(self, index: int, commitment: bytes) -> None:
        self.state.put_doc(LEAF_DOC, (self.network, f"{index:016d}"),
                           {"commitment": b64e(commitment)})

    def _check_remembered(self, leaves: list[Leaf]) -> None:
        """Every leaf this partner verified before (or holds a receipt for) is served
        again with the same commitment.  Its index is below the head: the head held
        when it was remembered is, and heads only grow."""
        served = {leaf.index: leaf.commitment for leaf in leaves}
        for ref, doc in self.state.docs(LEAF_DOC, (self.network,)):
            index = int(ref[1])
            commitment = served.get(index)
            if commitment is None:
                raise self.fail("audit-entry-missing", f"entry {index}, which this partner "
                                f"verified before, is no longer served", index=index)
            if b64e(commitment) != doc["commitment"]:
                raise self.fail("audit-entry-rewritten", f"entry {index} is not the entry "
                                f"this partner verified before", index=index)

    async def _erased_below(self, leaves: list[Leaf], tv: TrustView) -> int:
        """How many leading bodies may be missing: the ``erased_below`` of the widest
        ``erase`` entry served, once it is shown to be the server's and due (0 without
        one).  The time of the last entry it erased is that of the signed head of size
        ``erased_below``."""
        records = [leaf.entry for leaf in leaves
                   if leaf.entry is not None and leaf.entry.action == "erase"]
        if not records:
            return 0
        record = max(records, key=lambda e: (e.erased_below or 0, e.index))
        below = int(record.erased_below or 0)
        if record.actor.partner != tv.server_log.key_id:
            raise self.fail("audit-entry-missing", "an erase entry not made by the server's "
                            "log key", index=record.index)
        last = self.heads().get(below) or await self.head_at(below)
        days = int(tv.policy["retention"]["audit_days"])
        if parse_timestamp(last.time) >= erase_cutoff(parse_timestamp(record.time), days):
            raise self.fail("audit-entry-missing", f"entry {record.index} erased bodies "
                            f"written less than {days} days before it (retention.audit_days)",
                            index=record.index)
        return below


class Audit:
    """The audit logs of the networks this partner is in: one :class:`AuditMonitor` per
    network, kept for the session, so every head this partner saw is checked against the
    next (module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._monitors: dict[str, AuditMonitor] = {}

    def monitor(self, network: str) -> AuditMonitor:
        """The monitor of ``network``'s log (sync, release receipts and referrals use it)."""
        monitor = self._monitors.get(network)
        if monitor is None:
            s = self.session
            monitor = AuditMonitor(network=network, me=s.key_id, conn=s.conn, state=s.state,
                                   trusted=lambda: s.trusted(network),
                                   misbehaving=s.misbehaving)
            self._monitors[network] = monitor
        return monitor

    async def verify(self, network: str, *, progress: Callable[[int], Any] | None = None
                     ) -> AuditVerification:
        """Verify every audit entry this partner may read against the latest signed
        head, which must be consistent with the heads held."""
        return await self.monitor(network).verify_all(progress=progress)

    async def verify_and_read(self, network: str, *,
                              progress: Callable[[int], Any] | None = None
                              ) -> tuple[AuditVerification, list[dict[str, Any]]]:
        """:meth:`verify` and :meth:`entries` in one pass over the log
        (:meth:`AuditMonitor.verify_and_read`)."""
        return await self.monitor(network).verify_and_read(progress=progress)

    async def entries(self, network: str) -> list[dict[str, Any]]:
        """The audit entries this partner may read, each verified (commitment and
        inclusion): ``{"index", "entry"}`` in log order."""
        return await self.monitor(network).entries()

    async def proof(self, network: str, index: int) -> dict[str, Any] | None:
        """Entry ``index`` of ``network``'s log with its inclusion proof against the
        latest verified head, checked (:meth:`AuditMonitor.proof`)."""
        return await self.monitor(network).proof(index)

    def purpose(self, network: str, entry: Any) -> str | None:
        """The purpose sealed to this partner in a verified entry (its JSON), opened
        (protocol.md §15.6); None when the entry seals none to this partner -- it is then
        sealed to the coordinator and the auditors only.  A sealed purpose that does not
        open is recorded server misbehaviour."""
        s = self.session
        with s.verifying(network, malformed="audit-entry-rewritten"):
            return AuditEntry.from_json(entry).open_purpose(s.key_id, s.keys.box_secret)


__all__ = ["Audit", "AuditMonitor", "Leaf", "LEAF_DOC", "reads_whole_log"]
