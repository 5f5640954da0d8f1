"""A network and its members from this partner's side: onboarding, the covenant,
membership changes and what this partner verified about them (design §4 flow 1;
docs/protocol.md §4, §15.2).

* A coordinator creates a network (:meth:`Networks.create`): the genesis names the
  server's log and gate keys only if they have the server fingerprint the server's
  operator gave out of band, and the coordinator trusts itself, is admitted as a core
  member with the coordinator role, accepts the covenant and distributes epoch 1.
* :meth:`Networks.admit` certifies a partner's key bundle (its self-signature, and the
  fingerprint read aloud when given); :meth:`Networks.remove` revokes a member.  A change
  of the core starts a new epoch and rotates every open case
  (:class:`~schakel.client.casekeys.CaseKeys`); a shell partner's removal rotates the cases
  shared with it.
* The coordinator changes the network's policy after it started
  (:meth:`Networks.change_policy`): a ``network-policy`` signed with its key, the next
  version, in force from now (protocol.md §N.3).  Every partner follows it at its next
  sync (``schakel.client.trust``).
* :meth:`Networks.members`, :meth:`Networks.verified` and :meth:`Networks.pii_allow` read
  what this partner verified before, without a request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from schakel.keys import issue_membership, issue_policy, make_genesis, new_network_id
from schakel.keys import revoke_membership, verify_key_bundle
from schakel.keys.chain import follow_policies
from schakel.keys.fingerprint import Fingerprint
from schakel.protocol.crypto import BoxPublicKey, VerifyKey
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, MalformedError, UntrustedKeyError
from schakel.protocol.objects.network import CovenantAcceptance, default_policy

from schakel.client.casekeys import CaseKeys
from schakel.client.errors import NotFound
from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import NetworkPlace
from schakel.client.wire import PAGE, page_of

#: A membership starts this much before "now", so a server clock a little behind ours
#: still finds it valid.
VALID_FROM_SLACK = timedelta(minutes=5)


class Networks:
    """Onboarding and membership of the networks this partner is in (module docstring)."""

    def __init__(self, session: Session, case_keys: CaseKeys) -> None:
        self.session, self.case_keys = session, case_keys

    # ------------------------------------------------------------------ reading

    def trusted(self) -> list[str]:
        """The networks this partner has a trust anchor for (``Partner.trust``)."""
        return sorted(self.session.config.trusted)

    def verified(self, network: str) -> TrustView:
        """The network as this partner verified it at its last sync, without a request
        (NotFound before the first)."""
        return self.session.local_trust(network)

    def pii_allow(self, network: str) -> tuple[str, ...]:
        """The allow-list of the network policy this partner verified (protocol.md §N.2),
        read without a request: ``()`` before the network's first sync."""
        return self.session.pii_allow(network)

    def place(self, network: str) -> NetworkPlace:
        """``network`` and this partner's place in it, as verified at the last sync."""
        try:
            tv = self.session.local_trust(network)
        except NotFound:
            return NetworkPlace(network=network, name=None, kind=None, role="not-synced")
        me = tv.member(self.session.key_id)
        if tv.is_coordinator(self.session.key_id):
            role = "coordinator"
        elif me is None:
            role = "not-admitted"
        elif not me.current:
            role = "former"
        else:
            role = "auditor" if me.has_role("auditor") else me.ring
        return NetworkPlace(network=network, name=tv.name, kind=tv.kind, role=role,
                            ring=me.ring if me else None, party=me.party if me else None,
                            roles=sorted(me.roles) if me else [])

    def places(self) -> list[NetworkPlace]:
        """Every trusted network with this partner's place in it (:meth:`place`)."""
        return [self.place(network) for network in self.trusted()]

    def members(self, network: str) -> list[dict[str, Any]]:
        """The verified members (from what this partner verified and kept)."""
        members = self.session.local_trust(network).members(current_only=False)
        return [m.to_json() for m in members]

    async def notifications(self, network: str, *, after: str = "0") -> list[dict[str, Any]]:
        """The coordinator's notifications (docs/protocol.md §15.2): bemoeizorg
        invocations, releases and rate-limit alerts, and closed referrals, oldest first.
        They are pointers, not evidence: what they name is checked in the audit log."""
        s = self.session
        items: list[dict[str, Any]] = []
        cursor = after
        while True:
            page = await s.conn.get(s.path(network, "/notifications"),
                                    {"after": cursor, "limit": PAGE})
            batch, cursor_next = page_of(page)
            items.extend(batch)
            # Read to an empty page: a server may serve fewer than PAGE items a page
            # (its max_page), so a short page is not the end.
            if not batch or cursor_next is None:
                return items
            cursor = cursor_next

    # ------------------------------------------------------------------ onboarding

    async def create(self, *, name: str, kind: str, covenant: str, server_fingerprint: str,
                     policy: Mapping[str, Any] | None = None) -> str:
        """Genesis (with the server's log and gate keys), trust in itself, its own
        core membership with the coordinator role, covenant acceptance, epoch 1.

        ``server_fingerprint`` is the one the server's operator printed with ``schakel
        server init`` and gave this coordinator out of band: the keys ``GET /v1/server``
        answers (unsigned) go into the genesis only if they have it
        (``UntrustedKeyError`` otherwise, before anything is sent; protocol.md §4.3)."""
        s = self.session
        expected = Fingerprint.parse(server_fingerprint)
        log_key, gate_key = await self._server_keys(expected)
        network = new_network_id()
        genesis = make_genesis(s.keys, network=network, name=name, kind=kind,
                               created=s.now(), server_log=log_key, server_gate=gate_key,
                               covenant=hashlib.sha256(covenant.encode("utf-8")).digest(),
                               policy=dict(policy) if policy else default_policy(kind).to_json())
        await s.conn.post("/v1/networks", {"genesis": genesis})
        s.set_anchor(network, str(s.fingerprint))
        await self.admit(network, s.bundle(), ring="core", party="formal",
                         roles=("coordinator",))
        await self.accept_covenant(network, covenant)
        return network

    async def change_policy(self, network: str, policy: Mapping[str, Any]) -> int:
        """Put ``policy`` (the complete policy, not a change to it) in force as the
        network's next policy version, signed with this coordinator's key and dated now;
        its version.  Checked here first as every partner will check it (signature,
        classes and blind index as the genesis set them, bemoeizorg only in oggz): a
        policy they would refuse is never sent."""
        s = self.session
        tv = await s.trusted(network)
        if not tv.is_coordinator(s.key_id):
            raise MalformedError("only the network's coordinator changes its policy",
                                 details={"field": "network"})
        version = tv.policy_version + 1
        envelope = issue_policy(s.keys, network=network, version=version, issued=s.now(),
                                policy=dict(policy))
        held = [env for _, env in s.state.docs("policy", (network,))]
        follow_policies(tv.verified, [*held, envelope])
        await s.conn.post(s.path(network, "/policies"), {"policy": envelope})
        await s.trusted(network)          # verify and keep it as every partner does
        return version

    async def _server_keys(self, expected: Fingerprint) -> tuple[VerifyKey, BoxPublicKey]:
        """The server's log and gate keys, believed only with the ``expected`` server
        fingerprint (flow 1 step 1)."""
        s = self.session
        served = await s.conn.get_unsigned("/v1/server")
        if not isinstance(served, dict):
            raise MalformedError("GET /v1/server did not answer an object")
        log_key = VerifyKey.from_b64(served.get("log"), "log")
        gate_key = BoxPublicKey.from_b64(served.get("gate"), "gate")
        try:
            expected.matches_server(log_key, gate_key)
        except UntrustedKeyError as exc:
            raise UntrustedKeyError(
                f"the server at {s.conn.origin} answers keys whose server fingerprint is not "
                f"the one you were given; nothing was sent. Ask the server's operator to read "
                f"`schakel server fingerprint` aloud again, and check the server address",
                details={**exc.details, "server": s.conn.origin}) from None
        return log_key, gate_key

    async def admit(self, network: str, bundle: Mapping[str, Any], *, ring: str, party: str,
                    roles: Iterable[str] = (), days: int = 365,
                    fingerprint: str | None = None, on_behalf_of: Iterable[str] = (),
                    users: Mapping[str, str] | None = None) -> str:
        """Certify the partner of ``bundle`` (its self-signature checked; with
        ``fingerprint``, the one read aloud).  A core member gets a new epoch (sealed to
        the whole current core) and every open case is rotated to it.

        ``on_behalf_of``: the organisations the partner represents in the network;
        ``users``: acting user -> ``formal``/``informal``, the only users that may act for
        it, each in its own party (protocol.md §N.4).  To change either, admit the
        partner again: the new membership (next serial) replaces the old one."""
        s = self.session
        expected = Fingerprint.parse(fingerprint) if fingerprint else None
        kb = verify_key_bundle(bundle, expected=expected)
        tv = await s.trusted(network)
        now = s.now()
        membership = issue_membership(
            s.keys, network=network, kind=tv.kind, member=kb.public, name=kb.name,
            ring=ring, party=party, roles=roles, serial=tv.next_serial(kb.key_id),
            valid_from=now - VALID_FROM_SLACK, valid_until=now + timedelta(days=days),
            on_behalf_of=on_behalf_of, users=users)
        await s.conn.post(s.path(network, "/members"), {"membership": membership})
        if ring == "core":
            await self.case_keys.rotate(network, reason="member joined", new_epoch=True)
        return kb.key_id

    async def remove(self, network: str, member: str, *, reason: str) -> None:
        """Revoke ``member``.  Core: a new epoch for the remaining core and every open
        case re-keyed to it; shell: the cases shared with it re-keyed.  The shell
        partners that keep a share get the new version (so the removed member's old keys
        open nothing written afterwards)."""
        s = self.session
        s.refuse_pii(network, {"reason": reason})
        tv = await s.trusted(network)
        info = tv.member(member)
        if info is None:
            raise NotFound(f"{member} is not a member of network {network}",
                           details={"member": member})
        # Every membership of the member up to the highest serial issued ends.
        serial = tv.next_serial(member) - 1
        revocation = revoke_membership(s.keys, network=network, member=member,
                                       serial=serial, at=s.now(), reason=reason)
        await s.conn.post(s.path(network, "/revocations"), {"revocation": revocation})
        if info.ring == "core":
            await self.case_keys.rotate(network, reason="member removed", new_epoch=True)
        else:
            shared = {ref[1] for ref, _ in s.state.docs("share", (network,))
                      if ref[2] == member}
            await self.case_keys.rotate(network, reason="member removed", new_epoch=False,
                                        only=shared)

    async def accept_covenant(self, network: str, covenant: str) -> None:
        """Sign the covenant acceptance; refused locally when the text's hash is not the
        one in the verified genesis."""
        s = self.session
        tv = await s.trusted(network)
        digest = hashlib.sha256(covenant.encode("utf-8")).digest()
        if digest != tv.covenant:
            raise ContextMismatchError("this covenant text is not the network's covenant "
                                       "(its hash differs from the genesis)",
                                       details={"network": network})
        acceptance = CovenantAcceptance(network=network, member=s.key_id,
                                        covenant=b64e(digest), acting_user=s.acting_user,
                                        at=s.stamp()).sign(s.keys.signer)
        await s.conn.post(s.path(network, "/covenant"), {"acceptance": acceptance})


__all__ = ["Networks", "VALID_FROM_SLACK"]
