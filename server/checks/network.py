"""Checks of a network's trust objects (protocol.md §4.6, §N.1, §N.4, §N.5, §N.8, §N.9).

The server verifies with ``schakel.keys.chain`` and the genesis it registered as the anchor: a
membership or revocation must be signed by the coordinator key, a covenant acceptance by
the member itself, an epoch distribution by the coordinator and addressed to core members
only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from schakel.keys import Member, Revocation, VerifiedGenesis, VerifiedPolicy
from schakel.keys.chain import verify_membership, verify_network_policy, verify_revocation
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import ContextMismatchError, PolicyViolation, UntrustedKeyError
from schakel.protocol.objects.network import CovenantAcceptance, EpochKeyDistribution
from schakel.server.auth import Caller
from schakel.server.checks import same
from schakel.server.directory import NetworkState, verify_registered_genesis
from schakel.server.errors import Conflict, Forbidden
from schakel.server.serverkeys import ServerKeys


def check_genesis(envelope: Any, keys: ServerKeys) -> VerifiedGenesis:
    """A genesis signed by its own coordinator key (the anchor the server trusts from now
    on) that names this server's log and gate keys."""
    genesis = verify_registered_genesis(envelope)
    if genesis.server_log != keys.log or genesis.server_gate != keys.gate:
        raise ContextMismatchError("the genesis names another server's log or gate key; "
                                   "take them from GET /v1/server", details={"field": "server"})
    return genesis


def check_membership(envelope: Any, state: NetworkState, now: datetime) -> Member:
    """protocol.md §4.6.4 at the server's clock, against the revocations it holds."""
    member = verify_membership(envelope, state.genesis, now=now)
    if state.revoked(member, now):
        raise UntrustedKeyError(f"membership {member.serial} of {member.member} is revoked",
                                details={"member": member.member, "serial": member.serial})
    return member


def check_revocation(envelope: Any, state: NetworkState) -> Revocation:
    return verify_revocation(envelope, state.genesis)


def check_policy(envelope: Any, state: NetworkState, now: datetime, *, skew: int) -> VerifiedPolicy:
    """protocol.md §N.3 (``schakel.keys.chain.verify_network_policy``), and not dated later
    than the server's time plus the request skew: a version is in force from ``issued``,
    and the server enforces the one it holds now.  Whether it is the next version, not dated
    before the one in force, is decided in the write transaction (``add_policy_txn``)."""
    policy = verify_network_policy(envelope, state.genesis)
    if policy.issued > now + timedelta(seconds=skew):
        raise PolicyViolation("a network-policy takes effect when it is put on the server: "
                              "it may not be dated in the future",
                              details={"reason": "policy-dated-in-future", "field": "issued"})
    return policy


def check_rotation(envelope: Any, state: NetworkState, now: datetime, *,
                   skew: int) -> VerifiedGenesis:
    """A ``key-rotation`` of the network's *current* coordinator key (protocol.md §4.6.2,
    ADR 0046): the network's genesis is verified again along every rotation held plus this
    one (``schakel.keys.chain.verify_genesis``), so it must rotate the current key
    (``untrusted_key``), carry the valid signatures of the old and the new key
    (``bad_signature``), be dated strictly after the previous link and not return to an
    earlier coordinator key (``untrusted_key``).  It takes effect when it is put on the
    server: not dated later than the server's time plus the request skew
    (``policy_violation``, ``rotation-dated-in-future``), and not dated at or before an
    object the current key signed that the server accepted -- that object would then be
    signed by a retired key after its retirement (409 ``conflict``).  Returns the genesis
    verified along the new chain."""
    genesis = verify_registered_genesis(state.envelope, (*state.rotations, envelope))
    link = genesis.coordinator_keys[-1]
    if link.since > now + timedelta(seconds=skew):
        raise PolicyViolation("a coordinator key rotation takes effect when it is put on the "
                              "server: it may not be dated in the future",
                              details={"reason": "rotation-dated-in-future", "field": "at"})
    current = state.genesis.coordinator.key_id
    dated = [m.valid_from for held in state.memberships.values() for m in held.values()
             if m.issuer == current]
    dated += [r.at for held in state.revocations.values() for r in held if r.issuer == current]
    dated += [p.issued for p in state.policies[1:] if p.issuer == current]
    if any(when >= link.since for when in dated):
        raise Conflict("the rotation is dated at or before an object the current coordinator "
                       "key signed and this server holds; date it later",
                       details={"field": "at"})
    return genesis


def check_acceptance(envelope: Any, state: NetworkState, caller: Caller) -> CovenantAcceptance:
    """Signed by the accepting member, who is the caller, for this network's covenant."""
    if CovenantAcceptance.peek(envelope)["member"] != caller.keyid:
        raise Forbidden("a member accepts the covenant for itself only")
    acceptance = CovenantAcceptance.from_envelope(envelope, [caller.key])
    same("network", acceptance.network, state.network)
    if acceptance.covenant != b64e(state.genesis.covenant):
        raise ContextMismatchError("the accepted covenant is not this network's covenant",
                                   details={"field": "covenant"})
    return acceptance


def check_distribution(envelope: Any, state: NetworkState, now: datetime) -> EpochKeyDistribution:
    """Signed by the coordinator; every recipient a current core member (design §3:
    epoch keys are for the core only)."""
    distribution = EpochKeyDistribution.from_envelope(envelope, [state.coordinator_key])
    same("network", distribution.network, state.network)
    core = {k for k, m in state.current_members(now).items() if m.ring == "core"}
    outside = sorted(k.recipient for k in distribution.keys if k.recipient not in core)
    if outside:
        raise PolicyViolation("epoch keys go to current core members only",
                              details={"reason": "recipient-not-core", "recipients": outside[:20]})
    return distribution


__all__ = ["check_genesis", "check_membership", "check_revocation", "check_policy",
           "check_rotation", "check_acceptance", "check_distribution"]
