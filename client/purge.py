"""Purge duties: identity this partner received is destroyed when its basis ends
(docs/protocol.md §D.9, §D.10; flow 4 step 5, flow 5 step 4).

:class:`Purges` runs as part of :meth:`schakel.client.partner.Partner.duties`:

* every purge instruction for this partner, verified with the genesis log key and
  addressed to this partner, is executed -- the class keys (every version) and the
  decrypted identity of its classes for its case are destroyed -- and then acknowledged;
* identity released under a bemoeizorg invocation whose ``access_hours`` (from the
  policy) have passed is destroyed even before the server's instruction arrives.

A case's *owner* keeps its own class keys: they are the source of every gated envelope
and identity record of the case, not a copy it received.  :func:`purge_pages` reads the
instruction feeds; the owner's identity rotation reads the ``owned`` feed with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

from schakel.protocol.errors import ContextMismatchError, ProtocolError
from schakel.protocol.objects.base import parse_timestamp
from schakel.protocol.objects.disclosure import PurgeAck, PurgeInstruction
from schakel.protocol.policy import Rules

from schakel.client.disclosure import rules_of
from schakel.client.errors import ServerMisbehaviour, ServerRefused
from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import DutyReport
from schakel.client.wire import PAGE


async def purge_pages(session: Session, network: str, which: str,
                      feed: str) -> AsyncIterator[list[tuple[str, Any]]]:
    """The pages of ``GET .../purge-instructions/{which}`` after the local cursor
    ``feed``, as (cursor, envelope) pairs, until an empty page.  The caller moves the
    cursor once it has dealt with an item (the envelopes are not verified yet)."""
    after = session.state.cursor(network, feed)
    while True:
        page = await session.conn.get(session.path(network, f"/purge-instructions/{which}"),
                                      params={"after": after, "limit": PAGE})
        with session.verifying(network):
            items = [(str(i["cursor"]), i["instruction"]) for i in page["items"]]
        if not items:
            return
        yield items
        after = items[-1][0]


class Purges:
    """The purge duties of one partner (module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def run(self, network: str, report: DutyReport, *,
                  tv: TrustView | None = None) -> None:
        """Execute and acknowledge this partner's purge instructions
        (``report.purged``) and let expired bemoeizorg access end (``report.expired``).

        The feed cursor moves past an instruction once it was executed and acknowledged
        (a transport failure is retried on the next run).  An instruction that does not
        verify is never executed: it is recorded as server misbehaviour, skipped so it
        cannot block the genuine ones behind it, and the first such is raised at the end.

        ``tv``: the network as this partner verified it before (a removed partner, whom
        the server no longer answers ``GET .../{network}``); else it is fetched."""
        if tv is None:
            tv = await self.session.trusted(network)
        await self._expire_bemoeizorg(network, rules_of(tv.policy, tv.kind), report)
        caught: ServerMisbehaviour | None = None
        async for items in purge_pages(self.session, network, "mine", "purge-instructions"):
            for cursor, envelope in items:
                try:
                    await self._execute(network, tv, envelope, report)
                except ServerMisbehaviour as exc:
                    caught = caught or exc
                self.session.state.set_cursor(network, "purge-instructions", cursor)
        if caught is not None:
            raise caught

    async def _execute(self, network: str, tv: TrustView, envelope: Any,
                       report: DutyReport) -> None:
        s = self.session
        with s.verifying(network):
            instruction = PurgeInstruction.from_envelope(envelope, [tv.server_log])
            if instruction.network != network or instruction.recipient != s.key_id:
                raise ContextMismatchError("a purge instruction for another network or partner")
        done = s.state.get_doc("purge", (network, instruction.instruction))
        if done is not None and done.get("acked"):
            return
        self._drop_identity(network, instruction.case, instruction.classes)
        self._forget_releases(network, instruction.case, instruction.classes)
        record = {"case": instruction.case, "classes": list(instruction.classes),
                  "reason": instruction.reason}
        s.state.put_doc("purge", (network, instruction.instruction), {**record, "acked": False})
        ack = PurgeAck(network=network, instruction=instruction.instruction,
                       case=instruction.case, acting_user=s.acting_user,
                       at=s.stamp()).sign(s.keys.signer)
        try:
            answer = await s.conn.post(s.path(network, "/purge-acks"), {"ack": ack})
            with s.verifying(network):
                if answer["instruction"] != instruction.instruction:
                    raise ContextMismatchError("the server acknowledged another instruction")
        except ServerRefused as exc:
            # One ack per instruction, and only the recipient may send it: a conflict
            # means this partner's earlier ack was stored and its answer lost.
            if exc.code != "conflict":
                raise
        s.state.put_doc("purge", (network, instruction.instruction), {**record, "acked": True})
        report.purged.append(instruction.instruction)

    async def _expire_bemoeizorg(self, network: str, rules: Rules, report: DutyReport) -> None:
        """Destroy identity released under an invocation whose access ended (R13).
        Classes this partner also holds on another basis -- as the case's owner or
        through a consent release -- are kept."""
        state = self.session.state
        now = self.session.now()
        for ref, doc in state.docs("bemoeizorg-access", (network,)):
            invoked = parse_timestamp(doc["invoked"])
            if now < invoked + timedelta(hours=rules.access_hours):
                continue
            case = doc["case"]
            keep = self._held_otherwise(network, case, ref[-1])
            self._drop_identity(network, case, [c for c in doc["classes"] if c not in keep])
            state.delete_doc("bemoeizorg-access", ref)
            report.expired.append(ref[-1])

    def _forget_releases(self, network: str, case: str, classes: Iterable[str]) -> None:
        """Purged classes no longer count as held through their earlier releases (so a
        later bemoeizorg expiry does not keep them on that account)."""
        state = self.session.state
        gone = set(classes)
        for ref, doc in state.docs("release", (network,)):
            if doc.get("case") != case:
                continue
            left = [c for c in doc.get("classes", ()) if c not in gone]
            if left:
                state.put_doc("release", ref, {**doc, "classes": left})
            else:
                state.delete_doc("release", ref)

    def _held_otherwise(self, network: str, case: str, invocation: str) -> set[str]:
        keep: set[str] = set()
        for _, doc in self.session.state.docs("release", (network,)):
            if doc.get("case") == case and not (doc.get("basis") == "bemoeizorg"
                                                and doc.get("ref") == invocation):
                if doc.get("basis") == "consent":
                    keep |= set(doc.get("classes", ()))
        return keep

    def _drop_identity(self, network: str, case: str, classes: Iterable[str]) -> int:
        """Destroy the class keys (every version) and decrypted identity of ``classes``
        of ``case``; the number of secrets destroyed.  The case's *owner* keeps its own:
        its class keys are the source of every gated envelope and identity record of the
        case, not a copy it received (a purge concerns released copies, §D.9)."""
        s = self.session
        dropped = 0
        try:
            if s.header(network, case).owner == s.key_id:
                return 0
        except ProtocolError:
            pass
        for cls in classes:
            for ref in s.state.secret_refs("class-key", (network, case, cls)):
                s.state.delete_secret("class-key", ref)
                dropped += 1
            if s.state.get_secret("identity", (network, case, cls)) is not None:
                s.state.delete_secret("identity", (network, case, cls))
                dropped += 1
        return dropped


__all__ = ["Purges", "purge_pages"]
