"""Trust chain verification: fingerprint -> genesis -> rotations -> memberships
(docs/parts/keys.md §6, design §2: "clients refuse to encrypt to a key that does
not chain to" the coordinator).

* :func:`verify_genesis` checks a ``network-genesis`` against the configured
  coordinator :class:`~keys.fingerprint.Fingerprint` and follows the
  coordinator's ``key-rotation`` chain link by link.
* :func:`verify_membership` checks a ``membership`` against a
  :class:`VerifiedGenesis` at an explicit ``now``, with the revocations the
  caller knows of.
* :func:`verify_revocation` checks a ``membership-revocation``.

Which coordinator key may sign what (keys.md §6.3): the current (latest) key
signs anything; a retired key only signs objects *dated before its
retirement* -- a membership's ``valid_from``, a revocation's ``at``.  Memberships
are valid for at most :data:`MAX_MEMBERSHIP_VALIDITY`, which bounds what a
stolen, retired coordinator key can still mint by backdating.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from protocol import signing
from protocol.canonical import canonical_json, parse_json
from protocol.crypto import BoxPublicKey, VerifyKey
from protocol.encoding import b64d
from protocol.errors import MalformedError, ProtocolError, SignatureError, UntrustedKeyError

from keys._fields import (
    format_timestamp,
    parse_timestamp,
    require_aware,
    require_box_key,
    require_enum,
    require_fields,
    require_id,
    require_key_id,
    require_mapping,
    require_serial,
    require_text,
    require_verify_key,
)
from keys.fingerprint import Fingerprint
from keys.partner import PublicKeys
from keys.rotation import verify_rotation_record

GENESIS = "network-genesis"
MEMBERSHIP = "membership"
REVOCATION = "membership-revocation"

KINDS = ("oggz", "neighbourhood")
RINGS = ("core", "shell")
PARTIES = ("formal", "informal")
ROLES = ("coordinator", "auditor", "bemoeizorg", "professional-secrecy")
#: Longest validity period of one membership certificate (keys.md §6.4).
MAX_MEMBERSHIP_VALIDITY = timedelta(days=400)
#: Most coordinator key rotations a genesis chain may have.
MAX_ROTATIONS = 256
COVENANT_HASH_BYTES = 32

_GENESIS_FIELDS = frozenset({"type", "network", "name", "kind", "created", "coordinator",
                             "server", "covenant", "policy"})
_SERVER_FIELDS = frozenset({"log", "gate"})
_MEMBERSHIP_FIELDS = frozenset({"type", "network", "member", "name", "sign", "box", "ring",
                                "party", "roles", "serial", "valid_from", "valid_until"})
_REVOCATION_FIELDS = frozenset({"type", "network", "member", "serial", "at", "reason"})


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
        """keys.md §6.3: the current key signs anything; a retired key only
        objects dated before its retirement."""
        return self.until is None or when < self.until


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedGenesis:
    """A ``network-genesis`` that chains to the configured fingerprint, with the
    verified coordinator key chain (genesis key first, current key last)."""

    network: str
    name: str
    kind: str
    created: datetime
    anchor: Fingerprint
    coordinator_keys: tuple[CoordinatorKey, ...]
    server_log: VerifyKey
    server_gate: BoxPublicKey
    covenant: bytes
    policy_json: bytes

    @property
    def coordinator(self) -> PublicKeys:
        """The coordinator's *current* keys (after all verified rotations)."""
        return self.coordinator_keys[-1].keys

    @property
    def genesis_coordinator(self) -> PublicKeys:
        """The keys that signed the genesis (fingerprint = anchor)."""
        return self.coordinator_keys[0].keys

    @property
    def policy(self) -> dict[str, Any]:
        """A fresh copy of the network policy object (unvalidated here)."""
        value: dict[str, Any] = parse_json(self.policy_json)
        return value


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

    @property
    def public(self) -> PublicKeys:
        return PublicKeys(sign=self.sign, box=self.box)

    @property
    def key_id(self) -> str:
        return self.member

    def has_role(self, role: str) -> bool:
        return role in self.roles


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


# --------------------------------------------------------------------------- parsing


def _signed_part(envelope: object, obj_type: str, fields: frozenset[str]) -> Mapping[str, Any]:
    env = require_mapping(envelope, f"{obj_type} envelope")
    signed = require_mapping(env.get("signed"), f"{obj_type}.signed")
    if signed.get("type") != obj_type:
        raise SignatureError(f"expected a {obj_type!r} object, got {signed.get('type')!r}")
    return require_fields(signed, obj_type, fields)


def _role_values(ring: object, party: object, roles: object) -> frozenset[str]:
    """Ring, party and roles from their vocabularies (:class:`MalformedError`)."""
    require_enum(ring, "membership.ring", RINGS)
    require_enum(party, "membership.party", PARTIES)
    if isinstance(roles, (str, bytes, Mapping)) or not isinstance(roles, Iterable):
        raise MalformedError("membership.roles: expected a list", details={"field": "roles"})
    role_list = list(roles)
    for role in role_list:
        require_enum(role, "membership.roles[]", ROLES)
    if len(set(role_list)) != len(role_list):
        raise MalformedError("membership.roles: duplicate role", details={"field": "roles"})
    return frozenset(role_list)


def _role_consistency(kind: str, ring: str, party: str, roles: frozenset[str]) -> None:
    """Combinations the design rules out (:class:`UntrustedKeyError`)."""
    if "coordinator" in roles and ring != "core":
        raise UntrustedKeyError("membership grants the coordinator role outside the core")
    if "bemoeizorg" in roles and kind != "oggz":
        raise UntrustedKeyError("membership grants the bemoeizorg role in a network that is "
                                "not an oggz network")
    if "professional-secrecy" in roles and party != "formal":
        raise UntrustedKeyError("membership grants professional-secrecy to an informal party")


def check_roles(*, kind: str, ring: str, party: str, roles: Iterable[str]) -> frozenset[str]:
    """Validate a membership's ring, party and roles (keys.md §6.4 step 5).

    Values outside the vocabularies are :class:`MalformedError`; combinations
    the design rules out are :class:`UntrustedKeyError`: ``coordinator`` only in
    the core, ``bemoeizorg`` only in ``oggz`` networks (design §5),
    ``professional-secrecy`` only for formal parties (design §1).
    """
    require_enum(kind, "kind", KINDS)
    result = _role_values(ring, party, roles)
    _role_consistency(kind, ring, party, result)
    return result


def _with_context(exc: ProtocolError, prefix: str) -> ProtocolError:
    return type(exc)(f"{prefix}: {exc.message}", details=exc.details)


# --------------------------------------------------------------------------- genesis


def verify_genesis(genesis_envelope: Mapping[str, Any], anchor: Fingerprint,
                   rotations: Sequence[Mapping[str, Any]] = ()) -> VerifiedGenesis:
    """Verify a network's genesis against the configured coordinator fingerprint.

    Steps (keys.md §6.2): (1) the envelope and its ``signed`` part are
    well-formed; (2) ``coordinator.sign`` has fingerprint ``anchor``; (3) the
    genesis is signed by that key; (4) each rotation in ``rotations``, in
    order, is a valid ``key-rotation`` away from the then-current coordinator
    key (signed by old and new key), dated strictly after the previous link,
    and does not return to an earlier key.

    Raises :class:`UntrustedKeyError`, :class:`SignatureError` or
    :class:`MalformedError` naming what failed.
    """
    if not isinstance(anchor, Fingerprint):
        raise MalformedError("verify_genesis needs the coordinator Fingerprint as anchor")
    s = _signed_part(genesis_envelope, GENESIS, _GENESIS_FIELDS)
    network = require_id(s["network"], "network-genesis.network")
    name = require_text(s["name"], "network-genesis.name")
    kind = require_enum(s["kind"], "network-genesis.kind", KINDS)
    created = parse_timestamp(s["created"], "network-genesis.created")
    coordinator = PublicKeys.from_json(s["coordinator"], "network-genesis.coordinator")
    server = require_fields(s["server"], "network-genesis.server", _SERVER_FIELDS)
    server_log = require_verify_key(server["log"], "network-genesis.server.log")
    server_gate = require_box_key(server["gate"], "network-genesis.server.gate")
    covenant = b64d(s["covenant"], length=COVENANT_HASH_BYTES, what="network-genesis.covenant")
    policy = require_mapping(s["policy"], "network-genesis.policy")

    try:
        anchor.matches(coordinator.sign)
    except UntrustedKeyError:
        raise UntrustedKeyError(
            f"network-genesis of network {network}: coordinator key {coordinator.key_id} does "
            f"not have the configured coordinator fingerprint",
            details={"network": network, "key_id": coordinator.key_id}) from None
    try:
        signing.verify(genesis_envelope, GENESIS, [coordinator.sign])
    except SignatureError as exc:
        raise _with_context(exc, "network-genesis is not signed by its coordinator key") from None

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
    return VerifiedGenesis(network=network, name=name, kind=kind, created=created, anchor=anchor,
                           coordinator_keys=chain, server_log=server_log,
                           server_gate=server_gate, covenant=covenant,
                           policy_json=canonical_json(dict(policy)))


def _verify_coordinator_signature(envelope: Mapping[str, Any], obj_type: str,
                                  genesis: VerifiedGenesis, dated: datetime, what: str) -> str:
    """Verify ``envelope`` is signed by a coordinator key allowed to sign an
    object dated ``dated`` (keys.md §6.3); return that key's id."""
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


# --------------------------------------------------------------------------- revocation


def verify_revocation(envelope: Mapping[str, Any], genesis: VerifiedGenesis) -> Revocation:
    """Verify a ``membership-revocation`` of ``genesis``'s network.

    It must name this network and be signed by a coordinator key allowed to
    sign at its ``at`` (keys.md §6.3).
    """
    s = _signed_part(envelope, REVOCATION, _REVOCATION_FIELDS)
    network = require_id(s["network"], "membership-revocation.network")
    member = require_key_id(s["member"], "membership-revocation.member")
    serial = require_serial(s["serial"], "membership-revocation.serial")
    at = parse_timestamp(s["at"], "membership-revocation.at")
    reason = require_text(s["reason"], "membership-revocation.reason")
    if network != genesis.network:
        raise UntrustedKeyError(f"membership-revocation is for network {network}, not "
                                f"{genesis.network}", details={"network": network})
    issuer = _verify_coordinator_signature(envelope, REVOCATION, genesis, at,
                                           "membership-revocation")
    return Revocation(network=network, member=member, serial=serial, at=at, reason=reason,
                      issuer=issuer)


# --------------------------------------------------------------------------- membership


def verify_membership(membership_envelope: Mapping[str, Any], genesis: VerifiedGenesis, *,
                      now: datetime, revocations: Iterable[Mapping[str, Any]] = ()) -> Member:
    """Verify a ``membership`` certificate at ``now``.

    Steps (keys.md §6.4): well-formed; signed by a coordinator key that may
    sign an object dated ``valid_from``; ``network`` is the genesis network;
    ``member`` is the key id of ``sign``; ring, party and roles are valid and
    consistent; ``valid_from < valid_until <= valid_from + 400 days``;
    ``valid_from <= now < valid_until``; every revocation in ``revocations``
    verifies, and none for this member with ``serial >= membership.serial`` is
    in effect (``at <= now``).
    """
    if not isinstance(genesis, VerifiedGenesis):
        raise MalformedError("verify_membership needs a VerifiedGenesis")
    now = require_aware(now, "now")
    s = _signed_part(membership_envelope, MEMBERSHIP, _MEMBERSHIP_FIELDS)
    network = require_id(s["network"], "membership.network")
    member = require_key_id(s["member"], "membership.member")
    name = require_text(s["name"], "membership.name")
    sign = require_verify_key(s["sign"], "membership.sign")
    box = require_box_key(s["box"], "membership.box")
    serial = require_serial(s["serial"], "membership.serial")
    valid_from = parse_timestamp(s["valid_from"], "membership.valid_from")
    valid_until = parse_timestamp(s["valid_until"], "membership.valid_until")
    if not isinstance(s["roles"], list):
        raise MalformedError("membership.roles: expected a list", details={"field": "roles"})
    roles = _role_values(s["ring"], s["party"], s["roles"])
    if valid_until <= valid_from:
        raise MalformedError("membership.valid_until must be after valid_from",
                             details={"field": "valid_until"})

    issuer = _verify_coordinator_signature(membership_envelope, MEMBERSHIP, genesis, valid_from,
                                           f"membership of {member}")
    if network != genesis.network:
        raise UntrustedKeyError(f"membership is for network {network}, not {genesis.network}",
                                details={"network": network})
    if member != sign.key_id:
        raise UntrustedKeyError("membership.member is not the key id of membership.sign",
                                details={"member": member})
    _role_consistency(genesis.kind, s["ring"], s["party"], roles)
    if valid_until - valid_from > MAX_MEMBERSHIP_VALIDITY:
        raise UntrustedKeyError(f"membership is valid for longer than "
                                f"{MAX_MEMBERSHIP_VALIDITY.days} days")
    if now < valid_from:
        raise UntrustedKeyError(f"membership of {member} is not valid before "
                                f"{format_timestamp(valid_from)}", details={"member": member})
    if now >= valid_until:
        raise UntrustedKeyError(f"membership of {member} expired at "
                                f"{format_timestamp(valid_until)}", details={"member": member})
    for envelope in revocations:
        revocation = verify_revocation(envelope, genesis)
        if revocation.member == member and revocation.serial >= serial and revocation.at <= now:
            raise UntrustedKeyError(
                f"membership {serial} of {member} was revoked at "
                f"{format_timestamp(revocation.at)} (revocation serial {revocation.serial})",
                details={"member": member, "serial": serial})
    return Member(network=network, member=member, name=name, sign=sign, box=box,
                  ring=s["ring"], party=s["party"], roles=roles, serial=serial,
                  valid_from=valid_from, valid_until=valid_until, issuer=issuer)


__all__ = [
    "GENESIS", "MEMBERSHIP", "REVOCATION", "KINDS", "RINGS", "PARTIES", "ROLES",
    "MAX_MEMBERSHIP_VALIDITY", "CoordinatorKey", "VerifiedGenesis", "Member", "Revocation",
    "check_roles", "verify_genesis", "verify_membership", "verify_revocation",
]
