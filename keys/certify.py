"""The coordinator's side of the chain: build and sign ``network-genesis``,
``membership`` and ``membership-revocation`` envelopes (docs/protocol.md §4.6).

Each builder builds the object with its class from ``protocol/objects/network.py``
(schema and structural checks) and, for a membership, applies the same trust
rules the verifier in ``keys/chain.py`` applies (:func:`schakel.keys.chain.check_grants`),
so a coordinator cannot issue an object its own members would refuse.
Timestamps are floored to whole seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schakel.protocol.crypto import BoxPublicKey, VerifyKey, random_bytes
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.network import (
    MemberUser, Membership, MembershipRevocation, NetworkGenesis, NetworkPolicy, Policy, ServerKeys,
)

from schakel.keys.chain import check_grants
from schakel.keys.partner import PartnerKeys, PublicKeys

#: Object ids are 16 random bytes (conventions: Identifiers).
ID_BYTES = 16


def new_network_id() -> str:
    """A fresh network id: 16 random bytes, base64url."""
    return b64e(random_bytes(ID_BYTES))


def make_genesis(coordinator: PartnerKeys, *, network: str, name: str, kind: str,
                 created: datetime, server_log: VerifyKey, server_gate: BoxPublicKey,
                 covenant: bytes, policy: Policy | Mapping[str, Any]) -> dict[str, Any]:
    """A ``network-genesis`` envelope signed by the coordinator.

    ``covenant`` is the SHA-256 of the covenant text; ``policy`` the network
    policy (a :class:`Policy` or its JSON), checked like every genesis policy.
    """
    if not isinstance(server_log, VerifyKey) or not isinstance(server_gate, BoxPublicKey):
        raise MalformedError("server_log must be a VerifyKey and server_gate a BoxPublicKey")
    if not isinstance(covenant, bytes):
        raise MalformedError("covenant must be the 32-byte SHA-256 of the covenant text")
    genesis = NetworkGenesis(
        network=network, name=name, kind=kind, created=format_timestamp(created, "created"),
        coordinator=coordinator.public.to_wire(),
        server=ServerKeys(log=server_log.b64(), gate=server_gate.b64()), covenant=b64e(covenant),
        policy=policy if isinstance(policy, Policy) else Policy.from_json(policy))
    return genesis.sign(coordinator.signer)


def _sorted(values: Iterable[str]) -> tuple[str, ...]:
    """Roles are written sorted; what cannot be sorted is left for the schema to refuse."""
    items = tuple(values)
    try:
        return tuple(sorted(items))
    except TypeError:
        return items


def issue_membership(coordinator: PartnerKeys, *, network: str, kind: str, member: PublicKeys,
                     name: str, ring: str, party: str, roles: Iterable[str], serial: int,
                     valid_from: datetime, valid_until: datetime,
                     on_behalf_of: Iterable[str] = (),
                     users: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``membership`` envelope for ``member`` signed by the coordinator.

    ``kind`` is the network's kind (from its genesis): it decides whether the
    ``bemoeizorg`` role may be granted.  Roles are written sorted.  ``on_behalf_of``
    (the organisations the member represents, in the order given) and ``users`` (acting
    user -> party, written sorted by user) are left out when empty or None.
    """
    behalf = tuple(on_behalf_of)
    membership = Membership(
        network=network, member=member.key_id, name=name, sign_key=member.sign.b64(),
        box_key=member.box.b64(), ring=ring, party=party, roles=_sorted(roles), serial=serial,
        valid_from=format_timestamp(valid_from, "valid_from"),
        valid_until=format_timestamp(valid_until, "valid_until"),
        on_behalf_of=behalf or None,
        users=None if users is None else tuple(
            MemberUser(user=u, party=p) for u, p in sorted(users.items())))
    check_grants(membership, kind=kind)
    return membership.sign(coordinator.signer)


def issue_policy(coordinator: PartnerKeys, *, network: str, version: int, issued: datetime,
                 policy: Policy | Mapping[str, Any]) -> dict[str, Any]:
    """A ``network-policy`` envelope signed by the coordinator: the network's complete
    policy from ``issued`` on, as version ``version`` (the genesis is version 1)."""
    update = NetworkPolicy(network=network, version=version,
                           issued=format_timestamp(issued, "issued"),
                           policy=policy if isinstance(policy, Policy) else Policy.from_json(policy))
    return update.sign(coordinator.signer)


def revoke_membership(coordinator: PartnerKeys, *, network: str, member: str, serial: int,
                      at: datetime, reason: str) -> dict[str, Any]:
    """A ``membership-revocation``: ``member``'s memberships with serial <=
    ``serial`` end at ``at``."""
    revocation = MembershipRevocation(network=network, member=member, serial=serial,
                                      at=format_timestamp(at, "at"), reason=reason)
    return revocation.sign(coordinator.signer)


__all__ = ["new_network_id", "make_genesis", "issue_membership", "issue_policy",
           "revoke_membership"]
