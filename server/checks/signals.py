"""Checks of signals and the coordinator's feedback (protocol.md §C.6, §C.8; flow 3).

A shell partner's signal is an envelope signed by that partner (the caller) with
``source: shell``; anyone else sends a bare ``source: anonymous`` signal, and only to a
network whose policy accepts anonymous signals.  Blind-index tokens come from members'
clients only: an anonymous signal carrying tokens is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schakel.keys.card import verify_card_for
from schakel.protocol.errors import MalformedError, PolicyViolation
from schakel.protocol.objects.signals import Signal, SignalFeedback
from schakel.server.auth import Caller
from schakel.server.checks import canonical, same
from schakel.server.checks.cases import check_tokens
from schakel.server.data.signals import NewCard, NewFeedback, NewSignal
from schakel.server.directory import NetworkState


def check_signal(value: Any, state: NetworkState, caller: Caller | None, *, received: str,
                 receipt_hash: bytes) -> NewSignal:
    if caller is not None:
        if not (isinstance(value, dict) and "signed" in value):
            raise MalformedError("a signed request carries a signed signal (an envelope)",
                                 details={"field": "signal"})
        signal = Signal.from_submission(value, [caller.key])
    else:
        if not state.policy.anonymous_signals:
            raise PolicyViolation("this network accepts signals from its shell partners only",
                                  details={"reason": "anonymous-signals-disabled"})
        signal = Signal.from_submission(value, [])
        if signal.tokens:
            raise PolicyViolation("an anonymous signal carries no blind-index tokens",
                                  details={"reason": "anonymous-tokens"})
    same("network", signal.network, state.network)
    text, digest = canonical(value)
    tokens = check_tokens([t.to_json() for t in signal.tokens or ()], state)
    return NewSignal(network=signal.network, signal=signal.signal, source=signal.source,
                     sender=caller.keyid if caller is not None else None,
                     acting_user=caller.acting_user if caller is not None else None,
                     submission=text, digest=digest, tokens=tokens, receipt_hash=receipt_hash,
                     received=received)


def check_feedback(envelope: Any, state: NetworkState, signal: str, *, received: str,
                   acting_user: str) -> NewFeedback:
    """Signed by the coordinator key -- the key the signaller sealed to and verifies with."""
    feedback = SignalFeedback.from_envelope(envelope, [state.coordinator_key])
    same("network", feedback.network, state.network)
    same("signal", feedback.signal, signal)
    text, digest = canonical(envelope)
    return NewFeedback(network=feedback.network, signal=feedback.signal, status=feedback.status,
                       at=feedback.at, envelope=text, digest=digest, received=received,
                       acting_user=acting_user)


def check_card(envelope: Any, state: NetworkState, *, now: datetime, received: str,
               acting_user: str) -> NewCard:
    """A network card (protocol.md §N.11) as members verify it: signed by the coordinator
    key, naming that key as the intake keys and this network's server keys, for a network
    that takes anonymous signals, and not expired at the server's clock.  Whether
    ``server.origin`` is where signallers reach this server is the coordinator's word: a
    server behind a proxy does not know its public names."""
    card = verify_card_for(envelope, state.genesis, now=now)
    text, digest = canonical(envelope)
    return NewCard(network=card.network, serial=card.serial, envelope=text, digest=digest,
                   received=received, acting_user=acting_user)


__all__ = ["check_signal", "check_feedback", "check_card"]
