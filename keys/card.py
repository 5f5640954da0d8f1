"""Issuing and verifying network cards (docs/protocol.md §N.11).

Two verifiers, for the two kinds of reader:

* :func:`verify_card` -- a signaller without keys (a resident, a volunteer driver).  The
  card must verify under the intake signing key it names and still be in force; with the
  coordinator's fingerprint (from the network's leaflet or website) that key must also
  have it.  Without the fingerprint the card is only as trustworthy as the channel it
  came through.
* :func:`verify_card_for` -- a member or the server, which hold the network's verified
  genesis: the card must be signed by the coordinator's current key, name that key as the
  intake keys, name the genesis's server keys, belong to the network, and the network's
  policy must take anonymous signals at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from schakel.protocol.errors import ContextMismatchError, PolicyViolation, UntrustedKeyError
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.card import CardServer, NetworkCard
from schakel.protocol.objects.network import PublicKeys as WireKeys

from schakel.keys.chain import VerifiedGenesis
from schakel.keys.fingerprint import Fingerprint
from schakel.keys.partner import PartnerKeys


def issue_card(coordinator: PartnerKeys, genesis: VerifiedGenesis, *, origin: str,
               serial: int, issued: datetime, valid_until: datetime,
               signaller_kinds: Iterable[str], name: str | None = None) -> dict[str, Any]:
    """The coordinator's card for ``genesis``'s network, signed by ``coordinator``, which
    must hold the network's current coordinator key.  Checked as a member would check it
    before it is returned (:func:`verify_card_for` at ``issued``)."""
    card = NetworkCard(
        network=genesis.network, name=name or genesis.name, serial=serial,
        issued=format_timestamp(issued, "issued"),
        valid_until=format_timestamp(valid_until, "valid_until"),
        server=CardServer(origin=origin, log=genesis.server_log.b64(),
                          gate=genesis.server_gate.b64()),
        intake=coordinator.public.to_wire(), signaller_kinds=tuple(signaller_kinds))
    envelope = card.sign(coordinator.signer)
    verify_card_for(envelope, genesis, now=issued)
    return envelope


def verify_card(envelope: Mapping[str, Any], *, now: datetime,
                anchor: Fingerprint | None = None) -> NetworkCard:
    """A card as a signaller without keys believes it (protocol.md §N.11, signaller).

    In this order: the envelope fits the ``network-card`` schema; with ``anchor``, the
    intake signing key has that fingerprint (:class:`UntrustedKeyError`); the card is
    signed by that key (:class:`SignatureError`); it is in force at ``now``
    (:class:`UntrustedKeyError`, reason ``card-expired``)."""
    signed = NetworkCard.peek(envelope)
    if anchor is not None:
        intake = WireKeys.from_json(signed["intake"])
        try:
            anchor.matches(intake.verify_key)
        except UntrustedKeyError:
            raise UntrustedKeyError(
                f"the network card of {signed['name']!r} is not signed by the coordinator "
                f"with the fingerprint you were given; do not use it",
                details={"network": signed["network"], "key_id": intake.key_id}) from None
    card = NetworkCard.self_signed(envelope)
    card.check_in_force(now)
    return card


def verify_card_for(envelope: Mapping[str, Any], genesis: VerifiedGenesis, *,
                    now: datetime) -> NetworkCard:
    """A card as a member or the server believes it (protocol.md §N.11, members and
    server): signed by the current coordinator key of ``genesis``
    (:class:`SignatureError`), for its network, with that key's ``{sign, box}`` as the
    intake keys and the genesis's server keys (:class:`ContextMismatchError`, naming the
    field), a network whose policy takes anonymous signals (:class:`PolicyViolation`,
    ``anonymous-signals-disabled``), and in force at ``now``."""
    current = genesis.coordinator
    card = NetworkCard.from_envelope(envelope, [current.sign])
    if card.network != genesis.network:
        raise ContextMismatchError("the network card belongs to another network",
                                   details={"field": "network"})
    if (card.intake.sign, card.intake.box) != (current.sign.b64(), current.box.b64()):
        raise ContextMismatchError("the card's intake keys are not the coordinator's current "
                                   "keys", details={"field": "intake"})
    if (card.server.log, card.server.gate) != (genesis.server_log.b64(),
                                               genesis.server_gate.b64()):
        raise ContextMismatchError("the card names other server keys than the network's "
                                   "genesis", details={"field": "server"})
    if not genesis.policy.anonymous_signals:
        raise PolicyViolation("this network takes signals from its shell partners only; a "
                              "card would invite signals it refuses",
                              details={"reason": "anonymous-signals-disabled"})
    card.check_in_force(now)
    return card


def server_fingerprint(card: NetworkCard) -> Fingerprint:
    """The fingerprint of the server the card names (protocol.md §4.3)."""
    return Fingerprint.of_server(card.server.log_key, card.server.gate_key)


__all__ = ["issue_card", "verify_card", "verify_card_for", "server_fingerprint"]
