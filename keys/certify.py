"""The coordinator's side of the chain: build and sign ``network-genesis``,
``membership`` and ``membership-revocation`` envelopes (docs/parts/keys.md §6).

Each builder checks its input with the same rules the verifiers in
``keys/chain.py`` apply, so a coordinator cannot issue an object its own
members would refuse.  Timestamps are floored to whole seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from protocol import signing
from protocol.crypto import BoxPublicKey, VerifyKey, random_bytes
from protocol.encoding import b64e
from protocol.errors import MalformedError, UntrustedKeyError

from keys._fields import (
    ID_BYTES,
    format_timestamp,
    require_enum,
    require_id,
    require_key_id,
    require_mapping,
    require_serial,
    require_text,
    whole_seconds,
)
from keys.chain import (
    COVENANT_HASH_BYTES,
    GENESIS,
    KINDS,
    MAX_MEMBERSHIP_VALIDITY,
    MEMBERSHIP,
    REVOCATION,
    check_roles,
)
from keys.partner import PartnerKeys, PublicKeys


def new_network_id() -> str:
    """A fresh network id: 16 random bytes, base64url."""
    return b64e(random_bytes(ID_BYTES))


def make_genesis(coordinator: PartnerKeys, *, network: str, name: str, kind: str,
                 created: datetime, server_log: VerifyKey, server_gate: BoxPublicKey,
                 covenant: bytes, policy: Mapping[str, Any]) -> dict[str, Any]:
    """A ``network-genesis`` envelope signed by the coordinator.

    ``covenant`` is the SHA-256 of the covenant text; ``policy`` the network
    policy object (validated by the policy module, not here).
    """
    require_id(network, "network")
    require_text(name, "name")
    require_enum(kind, "kind", KINDS)
    if not isinstance(server_log, VerifyKey) or not isinstance(server_gate, BoxPublicKey):
        raise MalformedError("server_log must be a VerifyKey and server_gate a BoxPublicKey")
    if not isinstance(covenant, bytes) or len(covenant) != COVENANT_HASH_BYTES:
        raise MalformedError("covenant must be the 32-byte SHA-256 of the covenant text")
    signed = {
        "type": GENESIS,
        "network": network,
        "name": name,
        "kind": kind,
        "created": format_timestamp(created, "created"),
        "coordinator": coordinator.public.to_json(),
        "server": {"log": server_log.b64(), "gate": server_gate.b64()},
        "covenant": b64e(covenant),
        "policy": dict(require_mapping(policy, "policy")),
    }
    return signing.sign(GENESIS, signed, coordinator.signer)


def issue_membership(coordinator: PartnerKeys, *, network: str, kind: str, member: PublicKeys,
                     name: str, ring: str, party: str, roles: Iterable[str], serial: int,
                     valid_from: datetime, valid_until: datetime) -> dict[str, Any]:
    """A ``membership`` envelope for ``member`` signed by the coordinator.

    ``kind`` is the network's kind (from its genesis): it decides whether the
    ``bemoeizorg`` role may be granted.  Roles are written sorted.
    """
    require_id(network, "network")
    require_text(name, "name")
    require_serial(serial, "serial")
    role_set = check_roles(kind=kind, ring=ring, party=party, roles=list(roles))
    start, end = whole_seconds(valid_from, "valid_from"), whole_seconds(valid_until, "valid_until")
    if end <= start:
        raise MalformedError("valid_until must be after valid_from")
    if end - start > MAX_MEMBERSHIP_VALIDITY:
        raise UntrustedKeyError(f"a membership is valid for at most "
                                f"{MAX_MEMBERSHIP_VALIDITY.days} days")
    signed = {
        "type": MEMBERSHIP,
        "network": network,
        "member": member.key_id,
        "name": name,
        **member.to_json(),
        "ring": ring,
        "party": party,
        "roles": sorted(role_set),
        "serial": serial,
        "valid_from": format_timestamp(start),
        "valid_until": format_timestamp(end),
    }
    return signing.sign(MEMBERSHIP, signed, coordinator.signer)


def revoke_membership(coordinator: PartnerKeys, *, network: str, member: str, serial: int,
                      at: datetime, reason: str) -> dict[str, Any]:
    """A ``membership-revocation``: ``member``'s memberships with serial <=
    ``serial`` end at ``at``."""
    require_id(network, "network")
    require_key_id(member, "member")
    require_serial(serial, "serial")
    require_text(reason, "reason")
    signed = {"type": REVOCATION, "network": network, "member": member, "serial": serial,
              "at": format_timestamp(at, "at"), "reason": reason}
    return signing.sign(REVOCATION, signed, coordinator.signer)


__all__ = ["new_network_id", "make_genesis", "issue_membership", "revoke_membership"]
