"""The member directory: every registered network's verified genesis, memberships and
revocations, in memory (docs/protocol.md §14, Authentication step 3; ADR 0006).

Objects enter it only after ``schakel.keys.chain`` verified them against the genesis the server
registered, with the genesis coordinator key as the anchor
(``schakel.keys.fingerprint(genesis coordinator key)``).  Whether a membership is *current* is
then a pure time check at the server's clock: ``valid_from <= now < valid_until`` and no
revocation of its member with ``serial >=`` its serial and ``at <= now``
(protocol.md §4.6.4 steps 7-8), without verifying signatures again per request.

It is rebuilt from the database at start-up (:func:`load_directory`) and updated by the
handlers right after each trust object is committed.  Processes sharing a PostgreSQL
database follow each other's trust objects (:func:`follow_networks`) when one announces a
trust-log append (ADR 0052).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schakel.keys import Member, Revocation, VerifiedGenesis, VerifiedPolicy, fingerprint
from schakel.keys.chain import (
    follow_policies, genesis_policy, verify_genesis, verify_membership, verify_revocation,
)
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.errors import UntrustedKeyError
from schakel.protocol.objects.base import parse_timestamp
from schakel.protocol.objects.network import NetworkGenesis, Policy
from schakel.server.data.networks import NetworkRecord, all_networks
from schakel.server.errors import Forbidden, NotFound, UnknownKey
from schakel.server.storage import BaseStore


def genesis_key(envelope: Any) -> VerifyKey:
    """The coordinator key a genesis names (schema-checked, not yet verified): the key
    that must sign the genesis and the request registering it."""
    signed = NetworkGenesis.peek(envelope)
    return VerifyKey.from_b64(signed["coordinator"]["sign"], "coordinator.sign")


def verify_registered_genesis(envelope: Any,
                              rotations: Sequence[Mapping[str, Any]] = ()) -> VerifiedGenesis:
    """``schakel.keys.chain.verify_genesis`` with the genesis's own coordinator key as the anchor
    (``schakel.keys.fingerprint`` of it), followed along the coordinator's ``rotations`` in
    order: the server trusts the genesis it registers, and every membership it accepts must
    chain to that key through the rotations it accepted (protocol.md §4.6.2, §4.6.3)."""
    return verify_genesis(envelope, fingerprint(genesis_key(envelope)), rotations)


@dataclass
class NetworkState:
    """One network as the server knows it."""

    genesis: VerifiedGenesis
    envelope: dict[str, Any]
    memberships: dict[str, dict[int, Member]] = field(default_factory=dict)
    revocations: dict[str, list[Revocation]] = field(default_factory=dict)
    #: Every policy version accepted, the genesis's (version 1) first (protocol.md §N.3).
    policies: tuple[VerifiedPolicy, ...] = ()
    #: The coordinator's key rotations accepted, in chain order (protocol.md §4.6.2);
    #: ``genesis`` is verified along them, so its last coordinator key is the current one.
    rotations: tuple[dict[str, Any], ...] = ()
    #: The trust-log size of the last record followed (:func:`follow_record`): the
    #: objects logged below it are held.  Objects this process committed itself are held
    #: too, without moving it.
    followed: int = 0

    def __post_init__(self) -> None:
        if not self.policies:
            self.policies = (genesis_policy(self.genesis),)

    @property
    def network(self) -> str:
        return self.genesis.network

    @property
    def policy(self) -> Policy:
        """The policy in force: the highest version accepted.  Every decision the server
        makes from the policy reads it here, so a new version applies from the request
        after it was committed."""
        return self.policies[-1].policy

    @property
    def policy_version(self) -> int:
        return self.policies[-1].version

    @property
    def coordinator_key(self) -> VerifyKey:
        """The coordinator's current signing key (the last of its rotation chain): it signs
        memberships, revocations, shares, epoch distributions and signal feedback, and
        only it authenticates as the coordinator key."""
        return self.genesis.coordinator.sign

    def is_coordinator_key(self, keyid: str) -> bool:
        """Whether ``keyid`` is the *current* coordinator key; a retired one is not (it
        keeps only the standing a membership of its own gives it, protocol.md §4.6.3)."""
        return keyid == self.genesis.coordinator.key_id

    def revoked(self, member: Member, now: datetime) -> bool:
        return any(r.serial >= member.serial and r.at <= now
                   for r in self.revocations.get(member.member, ()))

    def knows(self, keyid: str) -> bool:
        return keyid in self.memberships or self.is_coordinator_key(keyid)

    def current(self, keyid: str, now: datetime) -> Member | None:
        """The caller's current membership (the highest serial in force), or None if it
        holds none.  Memberships that all expired or were revoked are
        :class:`UntrustedKeyError` (403 untrusted_key, protocol.md §12)."""
        held = self.memberships.get(keyid)
        if not held:
            return None
        for serial in sorted(held, reverse=True):
            m = held[serial]
            if m.valid_from <= now < m.valid_until and not self.revoked(m, now):
                return m
        raise UntrustedKeyError(f"the membership of {keyid} in network {self.network} is "
                                f"expired, revoked or not yet valid",
                                details={"member": keyid})

    def last_membership(self, keyid: str) -> Member:
        """The member's membership with the highest serial, current or not (its key
        signs what a former member may still send: a purge acknowledgement)."""
        held = self.memberships[keyid]
        return held[max(held)]

    def removes(self, revocation: Revocation, now: datetime) -> bool:
        """Whether ``revocation`` leaves its member without a current membership at
        ``now``: it is in effect and no membership of the member is valid and unrevoked,
        counting it (a re-admitted member with a higher serial is not removed)."""
        if revocation.at > now or revocation.member not in self.memberships:
            return False
        return not any(
            m.serial > revocation.serial and m.valid_from <= now < m.valid_until
            and not self.revoked(m, now)
            for m in self.memberships[revocation.member].values())

    def current_members(self, now: datetime) -> dict[str, Member]:
        out: dict[str, Member] = {}
        for keyid in self.memberships:
            try:
                m = self.current(keyid, now)
            except UntrustedKeyError:
                continue
            if m is not None:
                out[keyid] = m
        return out


class MemberDirectory:
    """Networks by id and every known signing key by key id (across networks)."""

    def __init__(self) -> None:
        self._networks: dict[str, NetworkState] = {}
        self._keys: dict[str, VerifyKey] = {}

    def resolve(self, keyid: str) -> VerifyKey:
        """The key resolver of ``schakel.protocol.httpsig.verify_request``: sign keys of all
        registered memberships and coordinator keys of registered geneses.  An unknown
        key is :class:`UnknownKey` (401 untrusted_key)."""
        key = self._keys.get(keyid)
        if key is None:
            raise UnknownKey("the request is signed by a key this server does not know")
        return key

    def network(self, network: str) -> NetworkState:
        state = self._networks.get(network)
        if state is None:
            raise NotFound("no such network")
        return state

    def known(self, network: str) -> NetworkState | None:
        """The network, or None when this directory does not hold it."""
        return self._networks.get(network)

    def networks(self) -> list[tuple[str, NetworkState]]:
        return list(self._networks.items())

    def member_or_forbidden(self, network: str, keyid: str) -> NetworkState:
        """The network, if ``keyid`` has any standing in it; else 403 forbidden (a valid
        signature by a member of another network)."""
        state = self.network(network)
        if not state.knows(keyid):
            raise Forbidden("the caller is not a member of this network")
        return state

    # updates (after the object is committed) ----------------------------------------

    def add_network(self, genesis: VerifiedGenesis, envelope: dict[str, Any]) -> NetworkState:
        state = self._networks.get(genesis.network)
        if state is None:
            state = self._networks[genesis.network] = NetworkState(genesis, envelope)
            key = genesis.coordinator.sign
            self._keys[key.key_id] = key
        return state

    def learn_key(self, key: VerifyKey) -> None:
        """Resolve ``key`` for request signatures (a coordinator key of the chain)."""
        self._keys[key.key_id] = key

    def add_member(self, member: Member) -> None:
        state = self.network(member.network)
        state.memberships.setdefault(member.member, {})[member.serial] = member
        self._keys[member.member] = member.sign

    def add_policy(self, policy: VerifiedPolicy) -> None:
        """Follow a policy version just committed (the next one; a retry changes nothing)."""
        state = self.network(policy.network)
        if policy.version == state.policy_version + 1:
            state.policies = (*state.policies, policy)

    def add_rotation(self, genesis: VerifiedGenesis, envelope: dict[str, Any]) -> None:
        """Follow a coordinator key rotation just committed: ``genesis`` is the network's
        genesis verified along every rotation held plus ``envelope`` (a retry, or a
        rotation already followed, changes nothing)."""
        state = self.network(genesis.network)
        if envelope in state.rotations or \
                len(genesis.coordinator_keys) != len(state.genesis.coordinator_keys) + 1:
            return
        state.genesis = genesis
        state.rotations = (*state.rotations, envelope)
        key = genesis.coordinator.sign
        self._keys[key.key_id] = key

    def add_revocation(self, revocation: Revocation) -> None:
        state = self.network(revocation.network)
        known = state.revocations.setdefault(revocation.member, [])
        if revocation not in known:
            known.append(revocation)


async def load_directory(store: BaseStore, directory: MemberDirectory) -> None:
    """Fill ``directory`` from the database.  Every stored object is verified again
    (signatures and structure); a membership is checked at its own ``valid_from``, since
    whether it is current is decided per request."""
    for record in await store.read(all_networks):
        follow_record(directory, record)


async def follow_networks(store: BaseStore, directory: MemberDirectory,
                          networks: Iterable[str] | None = None) -> None:
    """Bring ``directory`` up to what the database holds for ``networks`` (None: every
    network): what another server process sharing the database committed (ADR 0052)."""
    only = None if networks is None else sorted(networks)
    for record in await store.read(all_networks, only):
        follow_record(directory, record)


def follow_record(directory: MemberDirectory, record: NetworkRecord) -> None:
    """Add to ``directory`` whatever of ``record`` it does not hold yet, each object verified
    as :func:`load_directory` verifies it.  The chain only grows (objects are added, never
    removed), so following an older record than the directory holds changes nothing:
    records read at different moments may be followed in any order."""
    known = directory.known(record.network)
    if known is None:
        genesis = verify_registered_genesis(record.genesis, record.rotations)
        state = directory.add_network(genesis, record.genesis)
        state.rotations = tuple(record.rotations)
        for link in genesis.coordinator_keys:
            directory.learn_key(link.keys.sign)
    else:
        state = known
        for position in range(len(state.rotations), len(record.rotations)):
            rotated = verify_registered_genesis(record.genesis, record.rotations[:position + 1])
            directory.add_rotation(rotated, record.rotations[position])
    genesis = state.genesis
    for envelope in record.revocations:
        directory.add_revocation(verify_revocation(envelope, genesis))
    for envelope in record.memberships:
        signed = envelope["signed"]
        if signed["serial"] in state.memberships.get(signed["member"], {}):
            continue
        at = parse_timestamp(signed["valid_from"])
        directory.add_member(verify_membership(envelope, genesis, now=at))
    if len(record.policies) + 1 > len(state.policies):
        # Verified again as a sequence (schakel.keys.chain.follow_policies).
        state.policies = follow_policies(genesis, record.policies)
    state.followed = max(state.followed, record.trust_size)


__all__ = ["genesis_key", "verify_registered_genesis", "NetworkState", "MemberDirectory",
           "follow_networks", "follow_record", "load_directory"]
