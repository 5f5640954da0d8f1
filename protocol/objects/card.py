"""The network card (docs/protocol.md §N.11): what someone without keys needs to send a
network a signal and to believe the feedback on it.

A resident, a neighbour or a volunteer driver holds no keys and cannot verify a genesis,
and the server serves the genesis to members only.  The coordinator therefore publishes a
card: the network's name, the server's address and keys, the *intake keys* (the
coordinator's current box key, to seal signals to, and signing key, under which the
feedback verifies) and the kinds of signaller it asks for.  The card is signed by the
intake signing key itself, so a copy that was changed on its way (on a website, in a QR
code, by the server that serves it) no longer verifies; which coordinator that key belongs
to is what the coordinator's fingerprint on the leaflet says (``schakel.keys.card``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from schakel.protocol.crypto import BoxPublicKey, VerifyKey
from schakel.protocol.errors import PolicyViolation, UntrustedKeyError
from schakel.protocol.objects.base import SignedObject, Timestamp, nested, parse_timestamp, utc
from schakel.protocol.objects.network import PublicKeys, ServerKeys

__all__ = ["NetworkCard", "CardServer"]


@dataclass(frozen=True, kw_only=True)
class CardServer(ServerKeys):
    """``{origin, log, gate}``: where signals go, and the keys the genesis names for that
    server (their server fingerprint, protocol.md §4.3, is what a signaller compares)."""

    TYPE = "network-card"
    DEF = "server"

    origin: str


@dataclass(frozen=True, kw_only=True)
class NetworkCard(SignedObject):
    """A network's public card, signed by its ``intake.sign`` key (module docstring)."""

    TYPE = "network-card"

    network: str
    name: str
    serial: int
    issued: Timestamp
    valid_until: Timestamp
    server: CardServer = nested(CardServer)
    intake: PublicKeys = nested(PublicKeys)
    signaller_kinds: tuple[str, ...]

    def check(self) -> None:
        if parse_timestamp(self.valid_until) <= parse_timestamp(self.issued):
            raise self._fail("valid_until", "must be after issued")

    @classmethod
    def self_signed(cls, envelope: Any) -> Self:
        """The card in ``envelope``, verified under the intake signing key it names.

        This proves only that whoever holds that key issued the card, unchanged; that
        the key is the network coordinator's is the caller's to establish (its
        fingerprint, or the verified genesis)."""
        signed = cls.peek(envelope)
        return cls.from_envelope(envelope, [VerifyKey.from_b64(signed["intake"]["sign"],
                                                               "intake.sign")])

    def check_in_force(self, now: datetime) -> None:
        """Return None if the card is still valid at ``now`` (before ``valid_until``),
        else raise :class:`UntrustedKeyError`: an expired card may name keys the
        coordinator no longer holds.  ``issued`` is not compared with ``now``: a card
        read just after it was issued must not fail on a clock a little behind."""
        if not utc(now) < parse_timestamp(self.valid_until):
            raise UntrustedKeyError(
                f"the network card of {self.name!r} expired at {self.valid_until}; get the "
                f"current card from the network",
                details={"reason": "card-expired", "valid_until": self.valid_until})

    def check_signaller_kind(self, kind: str) -> None:
        """Return None if the card asks for signals from ``kind``, else raise
        :class:`PolicyViolation` (``signaller-kind-not-on-card``)."""
        if kind not in self.signaller_kinds:
            raise PolicyViolation(
                f"{self.name!r} takes signals from {', '.join(self.signaller_kinds)}, "
                f"not from {kind!r}",
                details={"reason": "signaller-kind-not-on-card",
                         "signaller_kinds": list(self.signaller_kinds)})

    @property
    def box_key(self) -> BoxPublicKey:
        """Where a signal's content is sealed (the coordinator's box key)."""
        return self.intake.box_public_key

    @property
    def sign_key(self) -> VerifyKey:
        """What the card and the feedback verify under (the coordinator's signing key)."""
        return self.intake.verify_key
