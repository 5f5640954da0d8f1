"""A coordinator rotates its key after a suspected compromise (protocol.md §4.6.2, §4.6.3;
ADR 0046).

The coordinator key of a network is also the coordinator's partner key: the key of its
keystore, of its local state and of its own membership.  :func:`rotate_coordinator` moves
all of it to fresh keys, in an order that never leaves the network without a key this
home holds:

1. fresh keys and the ``key-rotation`` away from the current key, signed by both, dated
   now (or just after the last object the current key signed, which a retired key may
   not sign after its retirement), checked here as every partner will check it;
2. the new keys written to ``<keystore>.next-<key id>`` before the server hears of them;
3. ``POST .../rotations``, signed by the current key: from its commit on the new key is
   the coordinator key (refused: the pending keystore is removed, nothing changed);
4. the home switches: the old keystore kept as ``<keystore>.retired-<key id>`` (what was
   sealed to the old box key opens only with it), the new one in its place, the local
   state sealed to the new box key, ``client.json`` naming the new key id;
5. under the new key: a membership for it with what the old key's membership granted,
   the old key's memberships revoked, the covenant accepted, and a new epoch for the core
   with every open case rekeyed to it (as after any change of the core).

Only a home whose key plays a part in no other network it trusts may rotate this way:
elsewhere the old key's memberships would need their own coordinators.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from schakel.keys import issue_membership, revoke_membership
from schakel.keys.chain import verify_genesis
from schakel.keys.fingerprint import Fingerprint
from schakel.keys.keystore import read_keystore_info, save_keystore
from schakel.keys.partner import PartnerKeys
from schakel.keys.rotation import rotate
from schakel.protocol.encoding import b64e
from schakel.protocol.errors import MalformedError, UntrustedKeyError
from schakel.protocol.objects.network import CovenantAcceptance

from schakel.client.casekeys import CaseKeys
from schakel.client.errors import NotFound, ServerRefused
from schakel.client.networks import VALID_FROM_SLACK
from schakel.client.session import Session
from schakel.client.trust import TrustView

#: How long the coordinator's new membership is valid (as ``Networks.admit``'s default).
MEMBERSHIP_DAYS = 365


def _check_alone(session: Session, network: str) -> None:
    """Refuse when this home's key is a member or the coordinator of another network it
    trusts (from what it verified before, without a request)."""
    for other in session.config.trusted:
        if other == network:
            continue
        try:
            tv = session.local_trust(other)
        except NotFound:
            continue
        if tv.member(session.key_id) is not None or tv.is_coordinator(session.key_id):
            raise MalformedError(
                f"this key also takes part in network {other}; a coordinator key is "
                f"rotated here only in a home that serves one network",
                details={"network": other})


async def rotate_coordinator(session: Session, case_keys: CaseKeys, network: str, *,
                             reason: str, passphrase: str | bytes,
                             new: PartnerKeys | None = None) -> dict[str, Any]:
    """Rotate this home's key, the current coordinator key of ``network`` (module
    docstring); ``passphrase`` encrypts the new keystore.  Returns ``{"network", "old",
    "new", "retired", "position"}``."""
    s = session
    s.refuse_pii(network, {"reason": reason})
    tv = await s.trusted(network)
    if tv.coordinator_key_id != s.key_id:
        raise UntrustedKeyError("only the network's current coordinator key is rotated here",
                                details={"network": network})
    _check_alone(s, network)
    old = s.keys
    # Strictly after the previous link and after everything the current key signed.
    at = max(s.now(), tv.verified.coordinator_keys[-1].since + timedelta(seconds=1))
    last = tv.last_signed_by(old.key_id)
    if last is not None and last >= at:
        at = last + timedelta(seconds=1)
    new, envelope = rotate(old, at=at, reason=reason, new=new)
    held = [env for _, env in sorted(s.state.docs("rotation", (network,)))]
    verify_genesis(tv.genesis, Fingerprint.parse(s.anchor(network)), [*held, envelope])

    keystore = s.home.keystore
    info = read_keystore_info(keystore)
    pending = keystore.with_name(f"{keystore.name}.next-{new.key_id[:8]}")
    save_keystore(pending, new, passphrase, name=info.name, kdf=info.kdf, overwrite=True)
    try:
        answer = await s.conn.post(s.path(network, "/rotations"), {"rotation": envelope})
    except ServerRefused:
        pending.unlink()     # refused: the old key stays the coordinator key
        raise                # (unreachable: it may have landed; the new keys stay on disk)

    retired = keystore.with_name(f"{keystore.name}.retired-{old.key_id[:8]}")
    os.replace(keystore, retired)
    os.replace(pending, keystore)
    s.state.reseal(new.public.box)
    s.config.key_id = new.key_id
    s.home.write_config(s.config)
    s.keys = new
    s.conn.keys = new

    tv = await s.trusted(network)          # follows the rotation and keeps it
    await _reissue(s, tv, network, old.key_id)
    await case_keys.rotate(network, reason="coordinator key rotated", new_epoch=True)
    position = answer.get("position") if isinstance(answer, dict) else None
    return {"network": network, "old": old.key_id, "new": new.key_id,
            "retired": str(retired), "position": position}


async def _reissue(s: Session, tv: TrustView, network: str, old: str) -> None:
    """Under the new key: its own membership with what the old key's granted (a core
    coordinator's, if the old key held none), the old key's memberships revoked, the
    covenant accepted."""
    now = s.now()
    was = tv.member(old)
    membership = issue_membership(
        s.keys, network=network, kind=tv.kind, member=s.keys.public,
        name=was.name if was is not None else s.name,
        ring=was.ring if was is not None else "core",
        party=was.party if was is not None else "formal",
        roles=was.roles if was is not None else ("coordinator",),
        serial=tv.next_serial(s.key_id), valid_from=now - VALID_FROM_SLACK,
        valid_until=now + timedelta(days=MEMBERSHIP_DAYS),
        on_behalf_of=was.on_behalf_of if was is not None else (),
        users=was.users if was is not None else None)
    await s.conn.post(s.path(network, "/members"), {"membership": membership})
    if was is not None:
        revocation = revoke_membership(s.keys, network=network, member=old,
                                       serial=tv.next_serial(old) - 1, at=now,
                                       reason="coordinator key rotated")
        await s.conn.post(s.path(network, "/revocations"), {"revocation": revocation})
    acceptance = CovenantAcceptance(network=network, member=s.key_id,
                                    covenant=b64e(tv.covenant), acting_user=s.acting_user,
                                    at=s.stamp()).sign(s.keys.signer)
    await s.conn.post(s.path(network, "/covenant"), {"acceptance": acceptance})
    await s.trusted(network)


__all__ = ["rotate_coordinator", "MEMBERSHIP_DAYS"]
