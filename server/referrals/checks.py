"""What the server verifies of a referral before :func:`schakel.server.referrals.data.refer_txn`
stores it (protocol.md §D.8).  Nothing here touches the database."""

from __future__ import annotations

from typing import Any

from schakel.protocol.encoding import b64e
from schakel.protocol.objects.disclosure import Referral
from schakel.server.audit import actor_of
from schakel.server.auth import Caller
from schakel.server.checks import canonical, same
from schakel.server.directory import MemberDirectory
from schakel.server.referrals.data import NewReferral
from schakel.server.errors import NotFound


def check_referral(envelope: Any, caller: Caller, directory: MemberDirectory) -> NewReferral:
    """A referral signed by the caller (the route already required the coordinator of the
    sending network), naming the path's network and a *registered* other network; 404 if
    ``to_network`` is not on this server.  Its id is the first 16 bytes of its digest, so
    an identical retry is the same referral."""
    referral = Referral.from_envelope(envelope, [caller.key])
    same("network", referral.network, caller.network.network)
    try:
        receiving = directory.network(referral.to_network)
    except NotFound:
        raise NotFound("no such receiving network on this server",
                       details={"field": "to_network"}) from None
    text, digest = canonical(envelope)
    return NewReferral(network=referral.network, referral=b64e(digest[:16]),
                       to_network=referral.to_network,
                       to_coordinator=receiving.genesis.coordinator.key_id,
                       case=referral.case, new_case=referral.new_case,
                       basis=referral.basis.kind, basis_ref=referral.basis.ref,
                       envelope=text, digest=digest, actor=actor_of(caller, "coordinator"))


__all__ = ["check_referral"]
