"""Trust chain verification: fingerprint -> genesis -> rotations -> memberships
(docs/protocol.md §4.6, design §2: "clients refuse to encrypt to a key that does
not chain to" the coordinator).

* :func:`verify_genesis` checks a ``network-genesis`` against the configured
  coordinator :class:`~schakel.keys.fingerprint.Fingerprint` and follows the
  coordinator's ``key-rotation`` chain link by link.
* :func:`verify_membership` checks a ``membership`` against a
  :class:`VerifiedGenesis` at an explicit ``now``, with the revocations the
  caller knows of.
* :func:`verify_revocation` checks a ``membership-revocation``.

Which coordinator key may sign what (protocol.md §4.6.3): the current (latest) key
signs anything; a retired key only signs objects *dated before its
retirement* -- a membership's ``valid_from``, a revocation's ``at``.  Memberships
are valid for at most :data:`MAX_MEMBERSHIP_VALIDITY`, which bounds what a
stolen, retired coordinator key can still mint by backdating.

The objects, their schemas and every structural check are the classes of
``protocol/objects/network.py`` (:class:`NetworkGenesis`, :class:`Membership`,
:class:`MembershipRevocation`); this module reads only the fields it needs to pick
the verifying key, verifies, builds the object, and adds what is about *trust*:
the fingerprint anchor, which coordinator key was current when, rotation order,
the network, what a membership may grant (:func:`check_grants`), validity at
``now`` and revocation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schakel.protocol import signing
from schakel.protocol.crypto import BoxPublicKey, VerifyKey
from schakel.protocol.encoding import b64d
from schakel.protocol.errors import MalformedError, ProtocolError, SignatureError, UntrustedKeyError
from schakel.protocol.objects.base import format_timestamp, parse_timestamp, utc
from schakel.protocol.objects.network import (
    KINDS, Membership, MembershipRevocation, NetworkGenesis, NetworkPolicy, Policy, acting_party,
    acting_roles,
)

from schakel.keys.fingerprint import Fingerprint
from schakel.keys.partner import PublicKeys
from schakel.keys.rotation import verify_rotation_record

GENESIS = NetworkGenesis.TYPE
MEMBERSHIP = Membership.TYPE
REVOCATION = MembershipRevocation.TYPE
NETWORK_POLICY = NetworkPolicy.TYPE
#: Most policy versions a network may have (the genesis is version 1): what the server
#: serves in one answer (protocol.md §N.3).
MAX_POLICY_VERSION = 1000
#: Longest validity period of one membership certificate (protocol.md §4.6.4).
MAX_MEMBERSHIP_VALIDITY = timedelta(days=400)
#: Most coordinator key rotations a genesis chain may have.
MAX_ROTATIONS = 256


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorKey:
    """One link of the coordinator's key chain: ``keys`` were current from
    ``since`` (genesis ``created`` or the rotation's ``at``) until ``until``
    (the next rotation's ``at``; None for the current key)."""

    keys: PublicKeys
    since: datetime
    until: datetime | None

    def may_sign_dated(self, when: datetime) -> bool:
        """protocol.md §4.6.3: the current key signs anything; a retired key only
        objects dated before its retirement."""
        return self.until is None or when < self.until


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedGenesis:
    """A ``network-genesis`` that chains to the configured fingerprint, with the
    verified coordinator key chain (genesis key first, current key last) and the
    network policy (validated, including the bemoeizorg-only-in-oggz rule)."""

    network: str
    name: str
    kind: str
    created: datetime
    anchor: Fingerprint
    coordinator_keys: tuple[CoordinatorKey, ...]
    server_log: VerifyKey
    server_gate: BoxPublicKey
    covenant: bytes
    policy: Policy

    @property
    def coordinator(self) -> PublicKeys:
        """The coordinator's *current* keys (after all verified rotations)."""
        return self.coordinator_keys[-1].keys

    @property
    def genesis_coordinator(self) -> PublicKeys:
        """The keys that signed the genesis (fingerprint = anchor)."""
        return self.coordinator_keys[0].keys


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A verified membership: this key belongs to this network, with these rights."""

    network: str
    member: str
    name: str
    sign: VerifyKey
    box: BoxPublicKey
    ring: str
    party: str
    roles: frozenset[str]
    serial: int
    valid_from: datetime
    valid_until: datetime
    issuer: str
    #: The organisations the member acts on behalf of (protocol.md §N.4); () for none.
    on_behalf_of: tuple[str, ...] = ()
    #: Acting user -> party; None when the membership lists no users (any acting user,
    #: in ``party``).
    users: Mapping[str, str] | None = None

    @property
    def public(self) -> PublicKeys:
        return PublicKeys(sign=self.sign, box=self.box)

    @property
    def key_id(self) -> str:
        return self.member

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def party_of(self, acting_user: str) -> str | None:
        """The party ``acting_user`` acts in for this member; None for a user the
        membership's ``users`` list does not name (``acting_party``)."""
        return acting_party(self.party, self.users, acting_user)

    def roles_of(self, acting_user: str) -> frozenset[str]:
        """The roles ``acting_user`` holds for this member (``acting_roles``: the
        formal-only roles only in the formal party)."""
        return acting_roles(self.roles, self.party_of(acting_user))


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """A verified ``membership-revocation``: ``member``'s memberships with serial
    <= ``serial`` are revoked from ``at`` on."""

    network: str
    member: str
    serial: int
    at: datetime
    reason: str
    issuer: str


# --------------------------------------------------------------------------- trust rules


def check_grants(membership: Membership, *, kind: str) -> None:
    """What a membership may grant in a network of ``kind`` (protocol.md §4.6.4 steps 5-6),
    for the coordinator's builder and the verifier alike; :class:`UntrustedKeyError`.

    ``coordinator`` only in the core, ``bemoeizorg`` only in ``oggz`` networks
    (design §5), ``professional-secrecy`` only for formal parties (design §1), and
    at most :data:`MAX_MEMBERSHIP_VALIDITY`.  (The vocabularies themselves are the
    schema's; ``bemoeizorg`` needs the network's kind, which a membership does not
    carry, so the role rules live here rather than in ``Membership.check``.)
    """
    if kind not in KINDS:
        raise MalformedError(f"kind: must be one of {list(KINDS)}", details={"field": "kind"})
    roles = set(membership.roles)
    if "coordinator" in roles and membership.ring != "core":
        raise UntrustedKeyError("membership grants the coordinator role outside the core")
    if "bemoeizorg" in roles and kind != "oggz":
        raise UntrustedKeyError("membership grants the bemoeizorg role in a network that is "
                                "not an oggz network")
    if "professional-secrecy" in roles and membership.party != "formal":
        raise UntrustedKeyError("membership grants professional-secrecy to an informal party")
    period = parse_timestamp(membership.valid_until) - parse_timestamp(membership.valid_from)
    if period > MAX_MEMBERSHIP_VALIDITY:
        raise UntrustedKeyError(f"membership is valid for longer than "
                                f"{MAX_MEMBERSHIP_VALIDITY.days} days")


def _with_context(exc: ProtocolError, prefix: str) -> ProtocolError:
    return type(exc)(f"{prefix}: {exc.message}", details=exc.details)


# --------------------------------------------------------------------------- genesis


def verify_genesis(genesis_envelope: Mapping[str, Any], anchor: Fingerprint,
                   rotations: Sequence[Mapping[str, Any]] = ()) -> VerifiedGenesis:
    """Verify a network's genesis against the configured coordinator fingerprint.

    Steps (protocol.md §4.6.2): (1) the envelope fits the ``network-genesis`` schema;
    (2) ``coordinator.sign`` has fingerprint ``anchor``; (3) the genesis is signed
    by that key, and is then built as a :class:`NetworkGenesis` (policy checks
    included); (4) each rotation in ``rotations``, in order, is a valid
    ``key-rotation`` away from the then-current coordinator key (signed by old and
    new key), dated strictly after the previous link, and does not return to an
    earlier key.

    Raises :class:`UntrustedKeyError`, :class:`SignatureError` or
    :class:`MalformedError` naming what failed.
    """
    if not isinstance(anchor, Fingerprint):
        raise MalformedError("verify_genesis needs the coordinator Fingerprint as anchor")
    signed = NetworkGenesis.peek(genesis_envelope)
    coordinator = PublicKeys.from_json(signed["coordinator"])
    try:
        anchor.matches(coordinator.sign)
    except UntrustedKeyError:
        raise UntrustedKeyError(
            f"network-genesis of network {signed['network']}: coordinator key "
            f"{coordinator.key_id} does not have the configured coordinator fingerprint",
            details={"network": signed["network"], "key_id": coordinator.key_id}) from None
    try:
        genesis = NetworkGenesis.from_envelope(genesis_envelope, [coordinator.sign])
    except SignatureError as exc:
        raise _with_context(exc, "network-genesis is not signed by its coordinator key") from None
    created = parse_timestamp(genesis.created)

    if isinstance(rotations, (str, bytes, Mapping)) or not isinstance(rotations, Sequence):
        raise MalformedError("rotations: expected a sequence of key-rotation envelopes")
    if len(rotations) > MAX_ROTATIONS:
        raise MalformedError(f"more than {MAX_ROTATIONS} coordinator key rotations")
    links: list[tuple[PublicKeys, datetime]] = [(coordinator, created)]
    seen = {coordinator.key_id}
    for i, envelope in enumerate(rotations):
        current, since = links[-1]
        where = f"coordinator key rotation #{i + 1}"
        try:
            rotation = verify_rotation_record(envelope, current.sign)
        except (UntrustedKeyError, SignatureError, MalformedError) as exc:
            raise _with_context(exc, where) from None
        if rotation.at <= since:
            raise UntrustedKeyError(
                f"{where} is dated {format_timestamp(rotation.at)}, not after the previous "
                f"link ({format_timestamp(since)}): rotations must be given in order")
        if rotation.new.key_id in seen:
            raise UntrustedKeyError(f"{where} returns to an earlier coordinator key")
        seen.add(rotation.new.key_id)
        links.append((rotation.new, rotation.at))

    chain = tuple(
        CoordinatorKey(keys=keys, since=since,
                       until=links[j + 1][1] if j + 1 < len(links) else None)
        for j, (keys, since) in enumerate(links))
    return VerifiedGenesis(network=genesis.network, name=genesis.name, kind=genesis.kind,
                           created=created, anchor=anchor, coordinator_keys=chain,
                           server_log=genesis.server.log_key, server_gate=genesis.server.gate_key,
                           covenant=b64d(genesis.covenant), policy=genesis.policy)


def _verify_coordinator_signature(envelope: Mapping[str, Any], obj_type: str,
                                  genesis: VerifiedGenesis, dated: datetime, what: str) -> str:
    """Verify ``envelope`` is signed by a coordinator key allowed to sign an
    object dated ``dated`` (protocol.md §4.6.3); return that key's id."""
    by_id = {link.keys.key_id: link for link in genesis.coordinator_keys}
    signing_links = [by_id[k] for k in signing.signers_of(envelope) if k in by_id]
    if not signing_links:
        raise SignatureError(f"{what} is not signed by a coordinator key of network "
                             f"{genesis.network}")
    eligible = [link for link in signing_links if link.may_sign_dated(dated)]
    if not eligible:
        link = signing_links[0]
        assert link.until is not None
        raise UntrustedKeyError(
            f"{what} is signed by coordinator key {link.keys.key_id}, retired at "
            f"{format_timestamp(link.until)}, but is dated {format_timestamp(dated)}; "
            f"only the current coordinator key may sign it")
    try:
        signing.verify(envelope, obj_type, [link.keys.sign for link in eligible])
    except SignatureError as exc:
        raise _with_context(exc, what) from None
    return eligible[0].keys.key_id


def _same_network(signed: Mapping[str, Any], genesis: VerifiedGenesis) -> None:
    if signed["network"] != genesis.network:
        raise UntrustedKeyError(f"{signed['type']} is for network {signed['network']}, not "
                                f"{genesis.network}", details={"network": signed["network"]})


# --------------------------------------------------------------------------- revocation


def verify_revocation(envelope: Mapping[str, Any], genesis: VerifiedGenesis) -> Revocation:
    """Verify a ``membership-revocation`` of ``genesis``'s network.

    It must name this network and be signed by a coordinator key allowed to
    sign at its ``at`` (protocol.md §4.6.3).
    """
    signed = MembershipRevocation.peek(envelope)
    _same_network(signed, genesis)
    at = parse_timestamp(signed["at"])
    issuer = _verify_coordinator_signature(envelope, REVOCATION, genesis, at,
                                           "membership-revocation")
    revocation = MembershipRevocation.from_json(signed)
    return Revocation(network=revocation.network, member=revocation.member,
                      serial=revocation.serial, at=at, reason=revocation.reason, issuer=issuer)


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedPolicy:
    """A verified ``network-policy``: ``policy`` is the network's policy from ``issued`` on,
    until a higher version's ``issued``."""

    network: str
    version: int
    issued: datetime
    policy: Policy
    issuer: str


def genesis_policy(genesis: VerifiedGenesis) -> VerifiedPolicy:
    """The genesis's policy as version 1, in force from the genesis's ``created``."""
    return VerifiedPolicy(network=genesis.network, version=1, issued=genesis.created,
                          policy=genesis.policy, issuer=genesis.genesis_coordinator.key_id)


def verify_network_policy(envelope: Mapping[str, Any], genesis: VerifiedGenesis) -> VerifiedPolicy:
    """Verify a ``network-policy`` of ``genesis``'s network (protocol.md §N.3).

    It must name this network, be signed by a coordinator key allowed to sign an object
    dated ``issued`` (§4.6.3), not be dated before the genesis, hold a version up to
    :data:`MAX_POLICY_VERSION`, enable bemoeizorg only in an oggz network and leave the
    fixed parts (``classes``, ``blind_index``) as the genesis set them.
    """
    if not isinstance(genesis, VerifiedGenesis):
        raise MalformedError("verify_network_policy needs a VerifiedGenesis")
    signed = NetworkPolicy.peek(envelope)
    issued = parse_timestamp(signed["issued"])
    issuer = _verify_coordinator_signature(envelope, NETWORK_POLICY, genesis, issued,
                                           f"network-policy version {signed['version']}")
    update = NetworkPolicy.from_json(signed)
    update.check_for(genesis)
    if update.version > MAX_POLICY_VERSION:
        raise MalformedError(f"a network has at most {MAX_POLICY_VERSION} policy versions",
                             details={"type": NETWORK_POLICY, "field": "version"})
    if issued < genesis.created:
        raise MalformedError("network-policy is dated before the network's genesis",
                             details={"type": NETWORK_POLICY, "field": "issued"})
    return VerifiedPolicy(network=update.network, version=update.version, issued=issued,
                          policy=update.policy, issuer=issuer)


def follow_policies(genesis: VerifiedGenesis,
                    envelopes: Iterable[Mapping[str, Any]]) -> tuple[VerifiedPolicy, ...]:
    """The network's policy versions in order, the genesis's first: each envelope is
    verified (:func:`verify_network_policy`), no version appears twice, and a higher
    version is not dated before a lower one.  The last one is the policy in force."""
    out = [genesis_policy(genesis)]
    for update in sorted((verify_network_policy(env, genesis) for env in envelopes),
                         key=lambda p: p.version):
        last = out[-1]
        if update.version == last.version:
            raise MalformedError(f"two network-policy objects with version {update.version}",
                                 details={"type": NETWORK_POLICY, "field": "version"})
        if update.issued < last.issued:
            raise MalformedError(f"network-policy version {update.version} is dated before "
                                 f"version {last.version}",
                                 details={"type": NETWORK_POLICY, "field": "issued"})
        out.append(update)
    return tuple(out)


def policy_at(policies: Sequence[VerifiedPolicy], when: datetime) -> VerifiedPolicy:
    """The version in force at ``when`` in :func:`follow_policies`' order: the highest
    one issued at or before it (the genesis's for anything earlier)."""
    current = policies[0]
    for p in policies[1:]:
        if p.issued <= when:
            current = p
    return current


# --------------------------------------------------------------------------- membership


def verify_membership(membership_envelope: Mapping[str, Any], genesis: VerifiedGenesis, *,
                      now: datetime, revocations: Iterable[Mapping[str, Any]] = ()) -> Member:
    """Verify a ``membership`` certificate at ``now``.

    Steps (protocol.md §4.6.4): it fits the ``membership`` schema; it is signed by a
    coordinator key that may sign an object dated ``valid_from``; ``network`` is
    the genesis network; ``member`` is the key id of ``sign``; it builds as a
    :class:`Membership` (``valid_from < valid_until``); :func:`check_grants`;
    ``valid_from <= now < valid_until``; every revocation in ``revocations``
    verifies, and none for this member with ``serial >= membership.serial`` is
    in effect (``at <= now``).
    """
    if not isinstance(genesis, VerifiedGenesis):
        raise MalformedError("verify_membership needs a VerifiedGenesis")
    now = utc(now, "now")
    signed = Membership.peek(membership_envelope)
    member = signed["member"]
    valid_from = parse_timestamp(signed["valid_from"])
    issuer = _verify_coordinator_signature(membership_envelope, MEMBERSHIP, genesis, valid_from,
                                           f"membership of {member}")
    _same_network(signed, genesis)
    # Also a structural rule of Membership (MalformedError); checked first here because
    # a certificate naming another key than it carries is a trust failure.
    if VerifyKey.from_b64(signed["sign"], "sign").key_id != member:
        raise UntrustedKeyError("membership.member is not the key id of membership.sign",
                                details={"member": member})
    membership = Membership.from_json(signed)
    check_grants(membership, kind=genesis.kind)
    valid_until = parse_timestamp(membership.valid_until)
    if now < valid_from:
        raise UntrustedKeyError(f"membership of {member} is not valid before "
                                f"{format_timestamp(valid_from)}", details={"member": member})
    if now >= valid_until:
        raise UntrustedKeyError(f"membership of {member} expired at "
                                f"{format_timestamp(valid_until)}", details={"member": member})
    serial = membership.serial
    for envelope in revocations:
        revocation = verify_revocation(envelope, genesis)
        if revocation.member == member and revocation.serial >= serial and revocation.at <= now:
            raise UntrustedKeyError(
                f"membership {serial} of {member} was revoked at "
                f"{format_timestamp(revocation.at)} (revocation serial {revocation.serial})",
                details={"member": member, "serial": serial})
    keys = PublicKeys.of(membership.keys)
    return Member(network=membership.network, member=member, name=membership.name,
                  sign=keys.sign, box=keys.box, ring=membership.ring, party=membership.party,
                  roles=frozenset(membership.roles), serial=serial, valid_from=valid_from,
                  valid_until=valid_until, issuer=issuer,
                  on_behalf_of=membership.on_behalf_of or (), users=membership.user_parties())


__all__ = [
    "GENESIS", "MEMBERSHIP", "REVOCATION", "NETWORK_POLICY", "KINDS", "MAX_MEMBERSHIP_VALIDITY",
    "MAX_ROTATIONS", "MAX_POLICY_VERSION",
    "CoordinatorKey", "VerifiedGenesis", "VerifiedPolicy", "Member", "Revocation",
    "check_grants", "verify_genesis", "verify_membership", "verify_revocation",
    "genesis_policy", "verify_network_policy", "follow_policies", "policy_at",
]
