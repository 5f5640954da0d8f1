"""A partner's monitor of one network's audit log (docs/protocol.md §9, §A.2, §15.1;
design flow 10; the server-tested logic of ``tests/test_audit_log.py`` ``Monitor``).

The server signs tree heads with its log key (named in the verified genesis).  The
monitor keeps the heads it verified in the local state (doc ``tree-head`` (n, size)) and
accepts a newer head only with a consistency proof from the latest it holds:

* a head smaller than one held, or of an equal size with another root -- the log was
  rolled back or forked (``audit-rollback`` / ``audit-fork``); a consistency proof that
  does not verify is ``audit-fork`` too;
* an entry is checked by recomputing its commitment and proving it is included under a
  held head (``audit-entry-rewritten``);
* a release's inclusion receipt is checked the same way against a head that must itself
  be consistent with the held ones (``receipt-missing`` / ``receipt-invalid``).

A reader that sees the whole log (coordinator, auditors) needs no per-entry proof: the
root recomputed from all commitments must equal the head's root.  Others get one
inclusion proof per entry they may read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from protocol import merkle
from protocol.encoding import b64d, b64e
from protocol.errors import MalformedError, ProofError, ProtocolError, SignatureError
from protocol.objects.audit import AuditEntry, TreeHead, entry_commitment

from client.errors import ServerMisbehaviour, ServerRefused
from client.state import LocalState
from client.transport import Connection
from client.trust import TrustView
from client.views import AuditVerification

PAGE = 500


def _root(head: TreeHead) -> bytes:
    return b64d(head.root, length=32, what="root")


class AuditMonitor:
    """The audit log of ``network`` as this partner verified it (module docstring)."""

    def __init__(self, *, network: str, conn: Connection, state: LocalState,
                 trusted: Callable[[], Awaitable[TrustView]],
                 misbehaving: Callable[..., ServerMisbehaviour]) -> None:
        self.network, self.conn, self.state = network, conn, state
        self._trusted, self._misbehaving = trusted, misbehaving
        self._log_key: Any = None

    def fail(self, what: str, message: str, **details: Any) -> ServerMisbehaviour:
        return self._misbehaving(self.network, what, message, **details)

    def _path(self, suffix: str) -> str:
        return f"/v1/networks/{self.network}/audit{suffix}"

    async def _key(self) -> Any:
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

    async def _consistency(self, old: TreeHead, new: TreeHead) -> None:
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
                    await self._consistency(heads[max(below)], head)
                if above:
                    await self._consistency(head, heads[min(above)])
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
        return head

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
        ``receipt-invalid``."""
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
        return entry

    # ------------------------------------------------------------------ entries

    async def _entries(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.conn.get(self._path("/entries"), {"after": after, "limit": PAGE})
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
        """Fetch every entry this partner may read and check each against the latest
        head: commitment recomputed, inclusion proven (whole-log readers: the root
        recomputed).  Entries newer than the head are left for next time."""
        head = await self.refresh()
        if head is None:
            return AuditVerification(network=self.network, size=0, root=b64e(bytes(32)),
                                     checked=0, erased=0, head_time=None)
        items = [i for i in await self._entries() if int(i.get("index", -1)) < head.size]
        commitments: list[bytes] = []
        checked = erased = 0
        for item in items:
            commitments.append(self._commitment(item))
            if item.get("entry") is None:
                erased += 1
            else:
                checked += 1
        complete = [int(i["index"]) for i in items] == list(range(head.size))
        if complete:
            if merkle.root_hash(commitments) != _root(head):
                raise self.fail("audit-entry-rewritten", "the entries do not hash to the "
                                "signed root", size=head.size)
            if progress is not None:
                progress(len(items))
        else:
            for n, (item, commitment) in enumerate(zip(items, commitments), 1):
                await self._include(int(item["index"]), commitment, head)
                if progress is not None:
                    progress(n)
        return AuditVerification(network=self.network, size=head.size, root=head.root,
                                 checked=checked, erased=erased, head_time=head.time)

    async def entries(self) -> list[dict[str, Any]]:
        """Every entry this partner may read, verified: ``{"index", "entry"}`` (erased
        bodies are left out)."""
        head = await self.refresh()
        if head is None:
            return []
        out = []
        for item in await self._entries():
            index = int(item["index"])
            if index >= head.size or item.get("entry") is None:
                continue
            await self._include(index, self._commitment(item), head)
            out.append({"index": index, "entry": item["entry"]})
        return out

    def _commitment(self, item: Any) -> bytes:
        """The leaf of an entry: recomputed from the body (and equal to the one the
        server states), or the stated one for an erased body."""
        try:
            index = int(item["index"])
            stated = b64d(item["commitment"], length=32, what="commitment")
            if item.get("entry") is None:
                return stated
            entry = AuditEntry.from_json(item["entry"])
            if entry.index != index or entry.network != self.network:
                raise ProofError("an entry names another index or network than its place")
            commitment = entry_commitment(entry)
            if commitment != stated:
                raise ProofError("an entry's body does not hash to its commitment")
            return commitment
        except (ProtocolError, KeyError, TypeError, ValueError) as exc:
            raise self.fail("audit-entry-rewritten", f"an audit entry does not verify "
                            f"({type(exc).__name__})") from None

    async def _include(self, index: int, commitment: bytes, head: TreeHead) -> None:
        try:
            answer = await self.conn.get(self._path("/proof/inclusion"),
                                         {"index": index, "size": head.size})
            merkle.verify_inclusion(commitment, index, head.size,
                                    [b64d(p, length=32) for p in answer["proof"]], _root(head))
        except (ProtocolError, KeyError, TypeError) as exc:
            if isinstance(exc, ServerRefused):
                raise
            raise self.fail("audit-entry-rewritten", f"entry {index} is not included in the "
                            f"signed log", index=index) from None


__all__ = ["AuditMonitor"]
