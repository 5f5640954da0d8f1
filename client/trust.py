"""What this partner believes about a network, and why (design §2; protocol.md §4.6).

:func:`load_trust` fetches ``GET /v1/networks/{n}`` and ``GET .../members`` and believes
nothing it cannot chain to the coordinator fingerprint configured at the covenant
ceremony:

* the genesis must verify against the anchor (``schakel.keys.chain.verify_genesis``) and be the
  same genesis this partner saw before -- else ``genesis-untrusted``;
* the coordinator's key rotations (``rotations``, protocol.md §4.6.2) are followed link by
  link from the genesis key, together with every rotation this partner verified before
  (held by position: a server that stops serving one cannot take it back); another
  rotation at a held position, or a chain that does not verify, is ``rotation-untrusted``.
  The anchor stays the genesis fingerprint; the current coordinator key is the chain's
  last (:attr:`TrustView.coordinator_key_id`), and a retired key signs only objects dated
  before its retirement (§4.6.3);
* every revocation and every membership must verify against the genesis's coordinator
  key chain (``schakel.keys.chain.verify_revocation`` / ``verify_membership``), and a
  membership must be the same object this partner saw before for that (member, serial)
  -- else ``member-key-substituted``;
* every policy version (``network-policy``, protocol.md §N.3) must verify against the same
  key chain and follow the versions before it (``schakel.keys.chain.follow_policies``), and
  be the same object this partner saw before for that version -- else ``policy-untrusted``.
  The highest version held is the policy in force (:attr:`TrustView.policy`): a server
  that serves an older one, or stops serving the newest, cannot roll a partner back.

Then the chain must be the one in the network's **trust log** (protocol.md §15.8, §16.3;
``schakel.client.trustlog``): the log's checkpoint verified with the genesis's log key and
consistent with the one held, its entries hashing to the checkpoint's root, and every
logged policy, membership, revocation and acceptance among those served or held
(``chain-withheld``), every one of those logged (``chain-not-logged``).

Verified objects are kept in the local state and *unioned* with what the server serves
next time: a server that stops serving a revocation cannot make the client encrypt to
the removed member again.  Whether a member is **current** is decided at the client's
own clock (valid now, not revoked by a revocation in effect now; the highest current
serial counts).  Callers seal only to :class:`MemberInfo` keys from here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schakel.keys.chain import Member, Revocation, VerifiedGenesis, VerifiedPolicy, follow_policies
from schakel.keys.chain import policy_at, verify_genesis, verify_membership, verify_revocation
from schakel.keys.fingerprint import Fingerprint
from schakel.protocol import signing
from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import BoxPublicKey, VerifyKey, sha256
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ProtocolError
from schakel.protocol.objects.base import parse_timestamp
from schakel.protocol.objects.network import CovenantAcceptance, acting_party, acting_roles
from schakel.protocol.trustlog import GENESIS, compare_chain, entry_data

from schakel.client.errors import ServerMisbehaviour
from schakel.client.state import LocalState
from schakel.client.trustlog import fetch_trust_log

Misbehaving = Callable[..., ServerMisbehaviour]


@dataclass(frozen=True)
class MemberInfo:
    """A verified member as this partner sees it now (one per key id: its highest
    current membership, else its highest membership)."""

    key_id: str
    name: str
    ring: str
    party: str
    roles: tuple[str, ...]
    sign: VerifyKey
    box: BoxPublicKey
    current: bool
    serial: int
    valid_from: datetime
    valid_until: datetime
    #: The organisations the member acts on behalf of (protocol.md §N.4); () for none.
    on_behalf_of: tuple[str, ...] = ()
    #: Acting user -> party, or None when the membership lists no users.
    users: Mapping[str, str] | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def party_of(self, acting_user: str) -> str | None:
        """The party ``acting_user`` acts in for this member; None when the membership
        lists its users and not this one (``acting_party``)."""
        return acting_party(self.party, self.users, acting_user)

    def roles_of(self, acting_user: str) -> frozenset[str]:
        """The roles ``acting_user`` holds (``acting_roles``: none of the formal-only
        roles outside the formal party)."""
        return acting_roles(frozenset(self.roles), self.party_of(acting_user))

    def to_json(self) -> dict[str, Any]:
        out = {"key_id": self.key_id, "name": self.name, "ring": self.ring,
               "party": self.party, "roles": list(self.roles), "current": self.current,
               "serial": self.serial}
        if self.on_behalf_of:
            out["on_behalf_of"] = list(self.on_behalf_of)
        if self.users is not None:
            out["users"] = dict(sorted(self.users.items()))
        return out


def _digest(envelope: Any) -> str:
    return b64e(sha256(canonical_json(envelope)))[:22]


@dataclass
class TrustView:
    """One network, verified.  Built by :func:`load_trust`."""

    network: str
    kind: str
    name: str
    #: The policy in force (the highest version verified), in its JSON form.
    policy: dict[str, Any]
    genesis: dict[str, Any]
    verified: VerifiedGenesis
    now: datetime
    tree_head: dict[str, Any] | None = None
    #: Every policy version verified, the genesis's (version 1) first.
    policies: tuple[VerifiedPolicy, ...] = ()
    _memberships: dict[str, list[tuple[Member, dict[str, Any]]]] = field(default_factory=dict)
    _revocations: list[Revocation] = field(default_factory=list)
    acceptances: dict[str, list[str]] = field(default_factory=dict)

    # ---------------------------------------------------------------- genesis facts

    @property
    def coordinator_key_id(self) -> str:
        return self.verified.coordinator.key_id

    @property
    def server_log(self) -> VerifyKey:
        return self.verified.server_log

    @property
    def server_gate(self) -> BoxPublicKey:
        return self.verified.server_gate

    @property
    def covenant(self) -> bytes:
        return self.verified.covenant

    @property
    def policy_version(self) -> int:
        """The version of :attr:`policy` (1: the genesis's)."""
        return self.policies[-1].version if self.policies else 1

    def policy_at(self, when: datetime) -> dict[str, Any]:
        """The policy in force at ``when`` (protocol.md §N.3), in its JSON form."""
        return policy_at(self.policies, when).policy.to_json() if self.policies else self.policy

    @property
    def pii_allow(self) -> tuple[str, ...]:
        """The policy's allow-list for the PII guard (protocol.md §N.2), ``()`` if none."""
        return tuple(self.policy.get("pii_allow") or ())

    # ---------------------------------------------------------------- membership rules

    def _revoked(self, m: Member, when: datetime) -> bool:
        return any(r.member == m.member and r.serial >= m.serial and r.at <= when
                   for r in self._revocations)

    def _valid_at(self, m: Member, when: datetime) -> bool:
        return m.valid_from <= when < m.valid_until and not self._revoked(m, when)

    def _info(self, key_id: str, when: datetime | None = None) -> MemberInfo | None:
        entries = self._memberships.get(key_id)
        if not entries:
            return None
        when = when or self.now
        valid = [m for m, _ in entries if self._valid_at(m, when)]
        m = max(valid or [m for m, _ in entries], key=lambda x: x.serial)
        return MemberInfo(key_id=m.member, name=m.name, ring=m.ring, party=m.party,
                          roles=tuple(sorted(m.roles)), sign=m.sign, box=m.box,
                          current=bool(valid), serial=m.serial, valid_from=m.valid_from,
                          valid_until=m.valid_until, on_behalf_of=m.on_behalf_of, users=m.users)

    def memberships_at(self, key_id: str, when: datetime) -> list[Member]:
        """Every verified membership of ``key_id`` valid (and not revoked) at ``when``."""
        return [m for m, _ in self._memberships.get(key_id, []) if self._valid_at(m, when)]

    def verify_keys(self) -> dict[str, VerifyKey]:
        """The verify key of every membership this view holds, past ones included, by
        the key id computed from the key (what an event's ``author`` names)."""
        return {m.sign.key_id: m.sign for entries in self._memberships.values()
                for m, _ in entries}

    def member(self, key_id: str) -> MemberInfo | None:
        """The member now (``current`` says whether it may act), or None if unknown."""
        return self._info(key_id)

    def member_at(self, key_id: str, when: datetime) -> MemberInfo | None:
        """The member if it held a valid, unrevoked membership at ``when`` (an event's
        author when it wrote it), else None."""
        info = self._info(key_id, when)
        return info if info is not None and info.current else None

    def members(self, current_only: bool = True) -> list[MemberInfo]:
        out = [self._info(k) for k in sorted(self._memberships)]
        return [m for m in out if m is not None and (m.current or not current_only)]

    def core(self) -> list[MemberInfo]:
        return [m for m in self.members() if m.ring == "core"]

    def auditors(self) -> list[MemberInfo]:
        return [m for m in self.members() if m.has_role("auditor")]

    def is_coordinator(self, key_id: str) -> bool:
        """The current coordinator key (the last of the genesis's verified rotation
        chain), or a current member with the role."""
        if key_id == self.coordinator_key_id:
            return True
        info = self.member(key_id)
        return info is not None and info.current and info.has_role("coordinator")

    def coordinator_keys(self) -> list[VerifyKey]:
        """Every key whose signature counts as the coordinator's: the genesis key chain
        and members that were ever given the coordinator role (objects they signed
        while they held it stay valid)."""
        keys = {link.keys.key_id: link.keys.sign for link in self.verified.coordinator_keys}
        for entries in self._memberships.values():
            for m, _ in entries:
                if "coordinator" in m.roles:
                    keys[m.member] = m.sign
        return list(keys.values())

    def member_of_signer(self, envelope: Mapping[str, Any]) -> MemberInfo | None:
        """The verified member behind the (first known) signer of ``envelope``, current
        or not; None when no signer is a member this partner verified."""
        for keyid in signing.signers_of(envelope):
            member = self.member(keyid)
            if member is not None:
                return member
        return None

    def membership_envelope(self, key_id: str) -> dict[str, Any] | None:
        """The verified membership envelope behind :meth:`member` (for policy facts)."""
        info = self._info(key_id)
        if info is None:
            return None
        for m, env in self._memberships[key_id]:
            if m.serial == info.serial:
                return env
        return None

    def next_serial(self, key_id: str) -> int:
        """A serial above every membership and revocation of ``key_id`` (re-admission
        after a revocation needs a higher serial than the revocation's)."""
        serials = [m.serial for m, _ in self._memberships.get(key_id, [])]
        serials += [r.serial for r in self._revocations if r.member == key_id]
        return max(serials, default=0) + 1

    def revocations(self) -> list[Revocation]:
        return list(self._revocations)

    def last_signed_by(self, key_id: str) -> datetime | None:
        """The latest date of a coordinator object signed by ``key_id`` that this view
        holds (a membership's ``valid_from``, a revocation's ``at``, a policy's
        ``issued``): a rotation away from ``key_id`` must be dated after it (§4.6.3)."""
        dated = [m.valid_from for entries in self._memberships.values() for m, _ in entries
                 if m.issuer == key_id]
        dated += [r.at for r in self._revocations if r.issuer == key_id]
        dated += [p.issued for p in self.policies[1:] if p.issuer == key_id]
        return max(dated, default=None)


async def load_trust(*, network: str, anchor: str, get: Callable[[str], Awaitable[Any]],
                     state: LocalState, now: datetime, misbehaving: Misbehaving) -> TrustView:
    """Fetch and verify a network (module docstring).  ``anchor`` is the configured
    coordinator fingerprint; ``misbehaving(network, what, message, **details)`` records
    and returns the :class:`ServerMisbehaviour` this raises.

    The chain is read first, then the trust log's checkpoint (§15.8, §16.3), so an honest
    server's log holds everything it served.  It may also hold an object accepted between
    the two reads: when logged objects are missing from what was served, the chain and the
    log are read once more before that counts as ``chain-withheld``."""
    for attempt in (1, 2):
        answer = await get(f"/v1/networks/{network}")
        if not isinstance(answer, dict):
            raise misbehaving(network, "genesis-untrusted", "the network answer is not an object")
        served = await get(f"/v1/networks/{network}/members")
        served = dict(served) if isinstance(served, dict) else {}
        served["policies"] = answer.get("policies", [])
        served["rotations"] = answer.get("rotations", [])
        checked = _verify(network=network, anchor=anchor, genesis=answer.get("genesis"),
                          served=served, state=state, now=now, misbehaving=misbehaving,
                          tree_head=answer.get("tree_head"))
        view = checked.view
        log = await fetch_trust_log(network=network, get=get, state=state,
                                    log_key=view.server_log,
                                    witnesses=view.policies[-1].policy.witnesses, now=now,
                                    misbehaving=misbehaving)
        mismatch = compare_chain(log.leaves, checked.chain)
        if mismatch.withheld and attempt == 1:
            continue
        if mismatch.withheld:
            index, kind = mismatch.withheld[0]
            raise misbehaving(network, "chain-withheld",
                              f"the trust log holds a {kind} (entry {index}) that the server "
                              f"does not serve", index=index, kind=kind,
                              withheld=len(mismatch.withheld))
        if mismatch.not_logged:
            raise misbehaving(network, "chain-not-logged",
                              f"the server serves a {mismatch.not_logged[0]} that is not in its "
                              f"trust log", kind=mismatch.not_logged[0],
                              not_logged=len(mismatch.not_logged))
        with state.transaction():
            checked.keep(state)
            log.keep(state)
        return view
    raise AssertionError("unreachable")


def local_view(*, network: str, anchor: str, state: LocalState, now: datetime,
               misbehaving: Misbehaving) -> TrustView | None:
    """The view from what this partner verified and kept, without asking the server
    (None if it never fetched the network).  Verified again: signatures are cheap."""
    genesis = state.get_doc("genesis", (network,))
    if genesis is None:
        return None
    return build_view(network=network, anchor=anchor, genesis=genesis, served={}, state=state,
                      now=now, misbehaving=misbehaving, tree_head=None)


def build_view(*, network: str, anchor: str, genesis: Any, served: dict[str, Any],
               state: LocalState, now: datetime, misbehaving: Misbehaving,
               tree_head: Any) -> TrustView:
    """Verify ``genesis``, the served ``rotations`` and ``policies``/``memberships``/
    ``revocations``/``acceptances`` (united with those held) and keep the new ones.  No trust log is read
    here: :func:`load_trust` compares the chain with it before it keeps anything."""
    checked = _verify(network=network, anchor=anchor, genesis=genesis, served=served,
                      state=state, now=now, misbehaving=misbehaving, tree_head=tree_head)
    checked.keep(state)
    return checked.view


@dataclass(frozen=True)
class _Checked:
    """A verified view, the objects to keep (kind, ref, envelope) and the chain it rests on
    as ``(type, trust-log leaf data)``: the genesis, every policy, revocation and membership
    held or served, and every acceptance served."""

    view: TrustView
    new: tuple[tuple[str, tuple[str, ...], Any], ...]
    chain: tuple[tuple[str, bytes], ...]

    def keep(self, state: LocalState) -> None:
        for kind, ref, env in self.new:
            state.put_doc(kind, ref, env)


def _verify(*, network: str, anchor: str, genesis: Any, served: dict[str, Any],
            state: LocalState, now: datetime, misbehaving: Misbehaving,
            tree_head: Any) -> _Checked:
    """Verify as :func:`build_view` does; nothing is kept (:meth:`_Checked.keep`)."""
    envelope = genesis
    try:
        verify_genesis(envelope, Fingerprint.parse(anchor))
    except ProtocolError as exc:
        raise misbehaving(network, "genesis-untrusted",
                          f"the network's genesis does not chain to the configured "
                          f"coordinator fingerprint ({exc.code})") from None
    # By position in the chain (1 = the first rotation after the genesis): the served list
    # is the chain in order, so the union of two prefixes of one chain is the longer one.
    held_rotations, new_rotations = _union(state, network, "rotation",
                                           served.get("rotations", []), positions=True,
                                           misbehaving=misbehaving, what="rotation-untrusted")
    rotations = [held_rotations[ref] for ref in sorted(held_rotations)]
    try:
        verified = verify_genesis(envelope, Fingerprint.parse(anchor), rotations)
    except ProtocolError as exc:
        raise misbehaving(network, "rotation-untrusted",
                          f"the coordinator's key rotations do not chain from the genesis "
                          f"key ({exc.code})") from None
    if verified.network != network:
        raise misbehaving(network, "genesis-untrusted",
                          "the server answered the genesis of another network")
    held = state.get_doc("genesis", (network,))
    if held is not None and held != envelope:
        raise misbehaving(network, "genesis-untrusted",
                          "the server answered another genesis than the one verified before")
    assert envelope is not None
    held_policies, new_policies = _union(state, network, "policy", served.get("policies", []),
                                         key=_policy_key, misbehaving=misbehaving,
                                         what="policy-untrusted")
    try:
        policies = follow_policies(verified, held_policies.values())
    except (ProtocolError, KeyError, TypeError) as exc:
        code = exc.code if isinstance(exc, ProtocolError) else "malformed"
        raise misbehaving(network, "policy-untrusted",
                          f"a network policy does not verify against the coordinator or "
                          f"does not follow the versions before it ({code})") from None
    view = TrustView(network=network, kind=verified.kind, name=verified.name,
                     policy=policies[-1].policy.to_json(), genesis=envelope, verified=verified,
                     now=now, tree_head=tree_head, policies=policies)

    revocations, new_revocations = _union(state, network, "revocation",
                                          served.get("revocations", []))
    memberships, new_memberships = _union(state, network, "membership",
                                          served.get("memberships", []), key=_membership_key,
                                          misbehaving=misbehaving)
    for env in revocations.values():
        try:
            view._revocations.append(verify_revocation(env, verified))
        except ProtocolError as exc:
            raise misbehaving(network, "member-key-substituted",
                              f"a membership revocation does not verify against the "
                              f"coordinator ({exc.code})") from None
    for env in memberships.values():
        try:
            # Verified at its own valid_from: signature, chain, network and grants;
            # whether it is in force is decided below at the client's clock.
            valid_from = parse_timestamp(env["signed"]["valid_from"])
            member = verify_membership(env, verified, now=valid_from)
        except (ProtocolError, KeyError, TypeError) as exc:
            code = exc.code if isinstance(exc, ProtocolError) else "malformed"
            raise misbehaving(network, "member-key-substituted",
                              f"a membership does not verify against the coordinator "
                              f"({code})") from None
        view._memberships.setdefault(member.member, []).append((member, env))
    for env in served.get("acceptances", []):
        try:
            signer = CovenantAcceptance.peek(env)["member"]
            info = view.member(signer)
            if info is None:
                continue
            acceptance = CovenantAcceptance.from_envelope(env, [info.sign])
        except ProtocolError:
            continue          # an acceptance that does not verify counts for nothing
        view.acceptances.setdefault(acceptance.member, []).append(acceptance.covenant)
    # Only with every object verified are the new ones kept (by the caller).
    new: list[tuple[str, tuple[str, ...], Any]] = \
        [("genesis", (network,), envelope)] if held is None else []
    new += [(kind, (network, *ref), env)
            for kind, objs in (("rotation", new_rotations), ("policy", new_policies),
                               ("revocation", new_revocations), ("membership", new_memberships))
            for ref, env in objs.items()]
    # The chain as the trust log must hold it (§15.8): what is held and served, by type.
    chain = [(GENESIS, entry_data(envelope))]
    for kind, objs in (("key-rotation", held_rotations), ("network-policy", held_policies),
                       ("membership-revocation", revocations), ("membership", memberships)):
        chain += [(kind, entry_data(env)) for env in objs.values()]
    acceptances = served.get("acceptances", [])
    chain += [("covenant-acceptance", entry_data(env))
              for env in (acceptances if isinstance(acceptances, list) else [])]
    return _Checked(view, tuple(new), tuple(chain))


def _membership_key(env: Any) -> tuple[str, ...] | None:
    try:
        signed = env["signed"]
        return (str(signed["member"]), f"{int(signed['serial']):016d}")
    except (KeyError, TypeError, ValueError):
        return None


def _policy_key(env: Any) -> tuple[str, ...] | None:
    try:
        return (f"{int(env['signed']['version']):08d}",)
    except (KeyError, TypeError, ValueError):
        return None


def _union(state: LocalState, network: str, kind: str, served: Iterable[Any], *,
           key: Callable[[Any], tuple[str, ...] | None] | None = None,
           misbehaving: Misbehaving | None = None, what: str = "member-key-substituted",
           positions: bool = False,
           ) -> tuple[dict[tuple[str, ...], Any], dict[tuple[str, ...], Any]]:
    """(the objects held before plus the ones served now, the new ones), by ``key``
    (default: a digest; ``positions``: the object's place in the served list, from 1).
    The caller verifies all of them and stores the new ones only then, so only verified
    objects are ever held."""
    held = {ref[1:]: env for ref, env in state.docs(kind, (network,))}
    out = dict(held)
    for i, env in enumerate(served if isinstance(served, list) else []):
        ref = (f"{i + 1:04d}",) if positions else key(env) if key else (_digest(env),)
        if ref is None:
            ref = (_digest(env),)
        if ref in held and held[ref] != env:
            assert misbehaving is not None
            raise misbehaving(network, what,
                              f"the server answered another {kind} than the one verified "
                              f"before under the same key ({'/'.join(ref)})",
                              **{"member" if kind == "membership" else kind: ref[0]})
        out[ref] = env
    return out, {r: e for r, e in out.items() if r not in held}


__all__ = ["MemberInfo", "TrustView", "load_trust", "local_view", "build_view"]
