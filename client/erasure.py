"""Erasure and rectification of a case's identity (AVG art. 17 and 16; protocol.md §C.12;
ADR 0034).

Asking:

* :meth:`Erasure.erase` -- the case's owner or the coordinator (the network's contact
  point for the person's requests) signs an ``identity-purge`` of kind ``erasure`` for the
  case's current identity version and posts it (``POST .../cases/{case}/purges``);
* :meth:`Erasure.rectify` -- the owner seals the corrected fields as the next identity
  version (:meth:`schakel.client.identity.Identity.rotate`), then signs a purge of kind
  ``rectification`` for the version before it.

The reason is PII-guarded before anything is built.  The envelope is kept in the local
state before it is sent, so a retry after a lost answer sends the same bytes, which the
server answers with its first answer.

Executing: every holder -- the owner itself, each partner a release gave class keys --
receives the purge as a ``purge`` sync item, which
:meth:`schakel.client.fold.Verifier.purge` verifies (signed by the held header's owner, or
for an erasure by the coordinator) and then hands to :func:`schakel.client.shred.destroy`: every class key of
the purged versions and the plaintext they opened are deleted from the local state, and
the ``identity-purged`` doc keeps the highest purged version, so a release of a purged
version is refused later whatever the server hands out (both in
:mod:`schakel.client.shred`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schakel.protocol.errors import ContextMismatchError
from schakel.protocol.objects.cases import IdentityPurge

from schakel.client.errors import ServerRefused
from schakel.client.feed import Feed
from schakel.client.identity import Identity
from schakel.client.session import Session
from schakel.client.shred import purged
from schakel.client.wire import new_id, refuse


@dataclass(frozen=True)
class Purged:
    """An accepted purge: its id, kind, the highest identity version it destroyed and the
    index of its audit entry."""

    network: str
    case: str
    purge: str
    kind: str
    identity_version: int
    audit_index: int


class Erasure:
    """Erasure and rectification requests (module docstring)."""

    def __init__(self, session: Session, feed: Feed, identity: Identity) -> None:
        self.session, self.feed, self.identity = session, feed, identity

    async def erase(self, network: str, case: str, *, reason: str) -> Purged:
        """Erase ``case``'s identity everywhere (AVG art. 17): the owner or the
        coordinator.  Refused here when this partner may not (``not-case-owner``), the
        case is a consult, or its identity was erased already."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        tv = await s.trusted(network)
        await self.feed.pull(network, tv)
        header = s.header(network, case)
        if header.owner != s.key_id and not tv.is_coordinator(s.key_id):
            raise refuse("not-case-owner", "only the case's owner or the coordinator erases "
                         "the identity of a case")
        if header.is_consult:
            raise refuse("consult-has-no-identity",
                         "a consult is anonymous: it has no identity to erase")
        if (purged(s.state, network, case) or {}).get("erased"):
            raise refuse("identity-erased", "the identity of this case was erased already")
        return await self._send(network, case, "erasure", header.identity_version or 1,
                                tuple(header.classes or tv.policy["classes"]), reason)

    async def rectify(self, network: str, case: str,
                      identity: Mapping[str, Mapping[str, Any]], *, reason: str) -> Purged:
        """Correct ``case``'s identity (AVG art. 16; the owner): ``identity`` (class ->
        fields) is sealed as the next identity version, then every holder is told to
        destroy the versions before it."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        if not identity:
            raise refuse("no-identity", "a rectification names the corrected classes")
        pending = s.state.get_doc("identity-purge-pending", (network, case))
        if pending is not None and pending["signed"]["kind"] == "rectification":
            await self._post(network, case, pending)        # the one prepared before first
        held = s.header(network, case)
        version = await self.identity.rotate(network, case, identity=identity)
        return await self._send(network, case, "rectification", version - 1,
                                tuple(held.classes or sorted(identity)), reason)

    async def _send(self, network: str, case: str, kind: str, version: int,
                    classes: tuple[str, ...], reason: str) -> Purged:
        s = self.session
        envelope = IdentityPurge(network=network, case=case, purge=new_id(), kind=kind,
                                 identity_version=version, classes=tuple(sorted(classes)),
                                 acting_user=s.acting_user, at=s.stamp(),
                                 reason=reason).sign(s.keys.signer)
        s.state.put_doc("identity-purge-pending", (network, case), envelope)
        return await self._post(network, case, envelope)

    async def _post(self, network: str, case: str, envelope: Mapping[str, Any]) -> Purged:
        s = self.session
        signed = envelope["signed"]
        try:
            answer = await s.conn.post(s.path(network, f"/cases/{case}/purges"),
                                       {"purge": envelope})
        except ServerRefused as exc:
            if exc.status < 500:
                s.state.delete_doc("identity-purge-pending", (network, case))
            raise
        with s.verifying(network, case=case):
            if (answer["case"], answer["purge"], answer["kind"], answer["identity_version"]) \
                    != (case, signed["purge"], signed["kind"], signed["identity_version"]):
                raise ContextMismatchError("the server acknowledged another purge")
            index = int(answer["audit_index"])
        s.state.delete_doc("identity-purge-pending", (network, case))
        # The purge reaches this partner as every holder gets it: through its feed.
        await self.feed.pull(network)
        return Purged(network=network, case=case, purge=signed["purge"], kind=signed["kind"],
                      identity_version=int(signed["identity_version"]), audit_index=index)


__all__ = ["Purged", "Erasure"]
