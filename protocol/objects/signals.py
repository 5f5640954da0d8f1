"""Signals from outside the core and the feedback to their senders
(docs/protocol.md §C.6–§C.8; design §4.3, report §4.5.2).

A signal is sealed to the network's coordinator, so the server stores and
rate-limits it without reading it.  A shell partner signs its signals (and names
its acting user); a resident, GP or volunteer driver sends a bare, unsigned
signal.  Either way the signaller keeps a one-time X25519 key (``reply_key``) to
read the coordinator's feedback, which the server hands out as
:class:`SignalStatus` against the receipt token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schakel.protocol.canonical import canonical_json
from schakel.protocol.crypto import VerifyKey
from schakel.protocol.errors import ContextMismatchError, MalformedError, SignatureError
from schakel.protocol.objects.base import FrozenMap, SignedObject, WireObject, invalid, nested, thaw
from schakel.protocol.objects.cases import MAX_TOKENS, SEAL_OVERHEAD, BlindIndexToken
from schakel.protocol.objects.plaintext import (
    IdentityPlaintext,
    check_plaintext_size,
    identity_plaintext_for,
)

SEALED_MAX_BYTES = 32 * 1024
MESSAGE_MAX_BYTES = 8 * 1024
MAX_FEEDBACK = 50
FEEDBACK_STATUSES = ("received", "taken-up", "referred", "closed", "not-taken-up")

__all__ = ["Signal", "SignalContent", "SignalFeedback", "SignalStatus",
           "FEEDBACK_STATUSES", "MAX_TOKENS"]


@dataclass(frozen=True, kw_only=True)
class Signal(SignedObject):
    """What the intake stores.  ``source == "shell"``: signed by the shell partner,
    ``acting_user`` required.  ``source == "anonymous"``: bare, no ``acting_user``."""

    TYPE = "signal"

    network: str
    signal: str
    source: str
    created: str
    sealed: str
    reply_key: str
    tokens: tuple[BlindIndexToken, ...] | None = nested(BlindIndexToken, many=True, default=None)
    acting_user: str | None = None

    def check(self) -> None:
        if self.source == "shell" and self.acting_user is None:
            raise self._fail("acting_user", "is required when source is shell")
        if self.source == "anonymous" and self.acting_user is not None:
            raise self._fail("acting_user", "must be absent when source is anonymous")
        self._binary("sealed", min_bytes=SEAL_OVERHEAD, max_bytes=SEALED_MAX_BYTES)

    def _after_verify(self, envelope: Any, keys: list[VerifyKey]) -> None:
        """A signed signal is necessarily from a shell partner."""
        if self.source != "shell":
            raise invalid(self.TYPE, "source", "a signed signal must have source shell")

    @classmethod
    def from_submission(cls, value: Any, shell_keys: Iterable[VerifyKey]) -> "Signal":
        """What the intake receives: an envelope signed by one of ``shell_keys``
        (source shell) or a bare object (source anonymous).  A bare shell signal
        is a :class:`SignatureError`: a shell partner's claim must be signed."""
        if isinstance(value, Mapping) and "signed" in value:
            return cls.from_envelope(value, shell_keys)
        sig = cls.from_json(value)
        if sig.source != "anonymous":
            raise SignatureError("a signal with source shell must be signed")
        return sig


@dataclass(frozen=True, kw_only=True, repr=False)
class SignalContent(WireObject):
    """The plaintext inside ``Signal.sealed`` (canonical JSON), read only by the
    coordinator.  ``network``, ``signal`` and ``reply_key`` repeat the outer
    signal's so the server cannot move a sealed content to another signal or
    swap the reply key (:meth:`check_binding`).  ``identity`` maps disclosure
    class names to identity plaintexts."""

    TYPE = "signal-content"

    network: str
    signal: str
    reply_key: str
    signaller_kind: str
    concern: str
    urgency: str
    contact_back: bool
    domains: tuple[str, ...] | None = None
    identity: Mapping[str, IdentityPlaintext] | None = None

    MULTILINE = frozenset({"concern"})

    def _normalise(self) -> None:
        # The schema validated identity as plain JSON; now each class is typed.
        if self.identity is not None:
            object.__setattr__(self, "identity", FrozenMap(
                (name, value if isinstance(value, IdentityPlaintext)
                 else identity_plaintext_for(name, thaw(value)))
                for name, value in self.identity.items()))

    def check(self) -> None:
        # It must fit the sealed box of its signal.
        check_plaintext_size(self.TYPE, self.to_json(), SEALED_MAX_BYTES - SEAL_OVERHEAD)

    def plaintext(self) -> bytes:
        """The canonical JSON to seal to the coordinator's box key."""
        return canonical_json(self.to_json())

    def __repr__(self) -> str:
        # The content may name the person and the signaller: never in a repr.
        classes = ", ".join(sorted(self.identity)) if self.identity else "-"
        return (f"SignalContent(signal={self.signal!r}, signaller_kind={self.signaller_kind!r}, "
                f"urgency={self.urgency!r}, identity classes: {classes}, <concern withheld>)")

    def check_binding(self, signal: Signal) -> None:
        """Refuse a content that was sealed for another signal or reply key."""
        if (self.network, self.signal, self.reply_key) != (
                signal.network, signal.signal, signal.reply_key):
            raise ContextMismatchError("sealed signal content belongs to another signal")


@dataclass(frozen=True, kw_only=True)
class SignalFeedback(SignedObject):
    """The coordinator's signed answer to a signal; ``message`` is sealed to the
    signal's ``reply_key``."""

    TYPE = "signal-feedback"

    network: str
    signal: str
    status: str
    at: str
    message: str | None = None

    def check(self) -> None:
        if self.message is not None:
            self._binary("message", min_bytes=SEAL_OVERHEAD, max_bytes=MESSAGE_MAX_BYTES)


@dataclass(frozen=True, kw_only=True)
class SignalStatus(WireObject):
    """The server's (unsigned) answer to a receipt token, with the coordinator's
    signed feedback envelopes, oldest first."""

    TYPE = "signal-status"

    signal: str
    status: str
    updated: str
    feedback: tuple[Mapping[str, Any], ...]

    def verified_feedback(self, coordinator_keys: Iterable[VerifyKey], *,
                          network: str | None = None) -> tuple[SignalFeedback, ...]:
        """Verify every feedback envelope with the coordinator's keys and check that
        the server's summary agrees with it: each is about this signal (and
        ``network`` if given), they are in time order, and ``status`` is the latest
        signed status (``received`` when there is none yet)."""
        keys = list(coordinator_keys)
        out: list[SignalFeedback] = []
        for envelope in self.feedback:
            fb = SignalFeedback.from_envelope(thaw(envelope), keys)
            if fb.signal != self.signal or (network is not None and fb.network != network):
                raise ContextMismatchError("feedback belongs to another signal")
            if out and fb.at < out[-1].at:
                raise MalformedError("feedback is not in time order",
                                     details={"type": self.TYPE, "field": "feedback"})
            out.append(fb)
        expected = out[-1].status if out else "received"
        if self.status != expected:
            raise MalformedError("status does not match the coordinator's latest feedback",
                                 details={"type": self.TYPE, "field": "status"})
        return tuple(out)
