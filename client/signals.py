"""Signals from outside the core and the coordinator's feedback (docs/protocol.md
§C.6–§C.8, §14 signal routes; flow 3).

The signaller seals its concern to the coordinator's box key and keeps a one-time reply
key; the server stores ciphertext, rate-limits, and hands out a receipt token.  Both ends
verify before they believe:

* the box key sealed to is the coordinator's from the *verified* genesis (the trust view
  chained to the configured fingerprint), never a key the server names;
* the signaller believes a status only as far as the coordinator signed it
  (``SignalStatus.verified_feedback`` with the genesis coordinator key): a forged or
  altered feedback envelope is ``bad-signature`` server misbehaviour;
* the coordinator checks each opened content's binding to its outer signal (network,
  id, reply key — else the server could move a content or swap in its own reply key and
  read the feedback) and each shell signal's signature against the sender's verified
  membership.

Volunteers stop reporting when they never hear back (design §4.3), so the status read is
a first-class operation: :meth:`Signals.status` for a partner, and the
module-level ``anonymous_signal`` / ``anonymous_status`` of :mod:`schakel.client.card` for
a resident without keys or an account, who takes the coordinator's keys from the
network's card.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schakel.client.errors import ServerMisbehaviour
from schakel.client.session import Session
from schakel.client.trust import TrustView
from schakel.client.views import ReceivedSignal, SignalTicket
from schakel.client.views import SignalStatus as StatusView
from schakel.client.wire import PAGE, new_id
from schakel.protocol.canonical import parse_json
from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, VerifyKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import (
    ContextMismatchError, MalformedError, PolicyViolation, SignatureError,
)
from schakel.protocol.objects.base import thaw
from schakel.protocol.objects.signals import Signal, SignalContent, SignalFeedback, SignalStatus

RECEIPT_HEADER = "Schakel-Receipt"
SIGNALLER_KINDS = ("resident", "volunteer", "volunteer-driver", "gp", "neighbour", "family",
                   "shell-partner", "professional", "other")


def signal_content(network: str, signal: str, reply: BoxSecretKey, *, concern: str,
                   urgency: str, signaller_kind: str, contact_back: bool,
                   identity_hint: Mapping[str, Any] | None) -> SignalContent:
    """The content a signaller seals to the coordinator, bound to its outer signal."""
    fields: dict[str, Any] = dict(network=network, signal=signal,
                                  reply_key=reply.public_key.b64(), signaller_kind=signaller_kind,
                                  concern=concern, urgency=urgency, contact_back=contact_back)
    if identity_hint:
        # The content reaches only the coordinator, so it may name the person (§C.7).
        fields["identity"] = dict(identity_hint)
    return SignalContent(**fields)


def bare_signal(network: str, signal: str, created: str, sealed: str,
                reply: BoxSecretKey) -> Signal:
    """An anonymous signal: unsigned, ``source: anonymous``."""
    return Signal(network=network, signal=signal, source="anonymous", created=created,
                  sealed=sealed, reply_key=reply.public_key.b64())


def open_status(answer: Any, *, network: str, signal: str, coordinator: list[VerifyKey],
                reply: BoxSecretKey) -> tuple[SignalStatus, tuple[SignalFeedback, ...], list[str]]:
    """Believe a ``signal-status`` answer only as far as the coordinator signed it: every
    feedback envelope verifies under ``coordinator`` (the genesis key), is about this
    network and signal, in time order, and the server's summary status is the latest
    signed one.  Messages are opened with the one-time reply key.  Raises the protocol
    error of the first failed check (the caller turns it into server misbehaviour)."""
    status = SignalStatus.from_json(answer)
    if status.signal != signal:
        raise ContextMismatchError("the status is of another signal")
    feedback = status.verified_feedback(coordinator, network=network)
    messages = []
    for fb in feedback:
        if fb.message is not None:
            messages.append(reply.unseal(b64d(fb.message, what="message")).decode("utf-8"))
    return status, feedback, messages


def _coordinator_keys(tv: TrustView) -> tuple[list[VerifyKey], BoxPublicKey]:
    """The network coordinator's keys from the *verified* genesis and its verified
    rotations: every signing key of the chain (feedback signed before a rotation stays
    valid) and the current box key (what signals are sealed to).  Never a key the server
    names on its own."""
    chain = tv.verified.coordinator_keys
    return [link.keys.sign for link in chain], tv.verified.coordinator.box


class Signals:
    """Sending signals, reading their status, and the coordinator's intake (module
    docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------ the signaller

    async def send(self, network: str, concern: str, *, urgency: str = "medium",
                   anonymous: bool = False, signaller_kind: str | None = None,
                   contact_back: bool = True,
                   identity_hint: Mapping[str, Any] | None = None) -> SignalTicket:
        """Send a signal to the network's coordinator (flow 3).

        A shell partner sends a signed request carrying a signed signal (source
        ``shell``).  ``anonymous=True`` sends a bare signal in an unsigned request
        (source ``anonymous``): the server then cannot tell who sent it.  The content
        is sealed to the coordinator's box key from the verified genesis.  The one-time
        reply key is kept as secret ``signal-reply`` and the ticket as doc ``ticket``."""
        s = self.session
        tv = await s.trusted(network)
        with s.verifying(network):
            _, coordinator_box = _coordinator_keys(tv)
        kind = signaller_kind or ("other" if anonymous else "shell-partner")
        signal, reply = new_id(), BoxSecretKey.generate()
        content = signal_content(network, signal, reply, concern=concern, urgency=urgency,
                                 signaller_kind=kind, contact_back=contact_back,
                                 identity_hint=identity_hint)
        sealed = b64e(coordinator_box.seal(content.plaintext()))
        created = s.stamp()
        # Kept before sending, so a lost answer can be retried and its feedback read.
        s.state.put_secret("signal-reply", (network, signal), reply.export_secret())
        path = s.path(network, "/signals")
        if anonymous:
            body = {"signal": bare_signal(network, signal, created, sealed, reply).to_json()}
            answer = await s.conn.post_unsigned(path, body)
        else:
            envelope = Signal(network=network, signal=signal, source="shell", created=created,
                              sealed=sealed, reply_key=reply.public_key.b64(),
                              acting_user=s.acting_user).sign(s.keys.signer)
            answer = await s.conn.post(path, {"signal": envelope})
        with s.verifying(network, signal=signal):
            receipt = answer["receipt"]
            b64d(receipt, length=32, what="receipt")
        ticket = SignalTicket(network=network, signal=signal, receipt=receipt,
                              server=s.conn.origin, sent=created, anonymous=anonymous)
        s.state.put_doc("ticket", (network, signal), ticket.to_file())
        return ticket

    async def status(self, ticket: SignalTicket) -> StatusView:
        """The status of a signal this partner sent, from the receipt token alone
        (unsigned ``GET /v1/signals/status``).  Each feedback envelope must verify under
        the coordinator key of the verified genesis; a forged one is recorded server
        misbehaviour (``bad-signature``).  Messages are opened with the reply key."""
        s = self.session
        network, signal = ticket.network, ticket.signal
        secret = s.state.get_secret("signal-reply", (network, signal))
        if secret is None:
            raise MalformedError("this partner holds no reply key for the signal",
                                 details={"field": "signal"})
        reply = BoxSecretKey(bytes(secret))
        tv = await s.trusted(network)
        answer = await s.conn.get_unsigned("/v1/signals/status",
                                           headers={RECEIPT_HEADER: ticket.receipt})
        with s.verifying(network, signal=signal):
            coordinator, _ = _coordinator_keys(tv)
            status, _, messages = open_status(answer, network=network, signal=signal,
                                              coordinator=coordinator, reply=reply)
        return StatusView(status=status.status, updated=status.updated, messages=messages,
                          network=network, signal=signal)

    # ------------------------------------------------------------------ the coordinator

    async def received(self, network: str) -> list[ReceivedSignal]:
        """The network's signals, opened (the coordinator's intake).

        Each content is opened with this coordinator's box key and must be bound to its
        outer signal; a shell signal must verify against the sender's verified
        membership (a shell member).  A signal failing a check is recorded as
        server misbehaviour and left out — never shown as if it were genuine.  Each
        carries the status this coordinator last gave it and the server's duplicate
        hints (``may_concern``: cases it may concern, to be confirmed through a basis)."""
        s = self.session
        tv = await s.trusted(network)
        if s.key_id != tv.coordinator_key_id:
            # Signals are sealed to the genesis coordinator's box key: any other key
            # would fail to open every one of them, which is not the server's doing.
            raise PolicyViolation("only the network's coordinator key opens its signals",
                                  details={"reason": "not-the-coordinator"})
        hints = await self._hints(network)
        out: list[ReceivedSignal] = []
        after = "0"
        while True:
            page = await s.conn.get(s.path(network, "/signals"),
                                    params={"after": after, "limit": PAGE})
            with s.verifying(network):
                items = [(str(i["cursor"]), i["signal"], str(i["received"])) for i in page["items"]]
            if not items:
                break
            for cursor, value, received in items:
                after = cursor
                opened = self._open_signal(network, tv, value)
                if opened is None:
                    continue
                signal, content, sender = opened
                s.state.put_doc("signal", (network, signal.signal), {
                    "reply_key": signal.reply_key, "source": signal.source,
                    "received": received})
                fb = s.state.get_doc("signal-feedback", (network, signal.signal))
                body = {k: v for k, v in thaw(content).items()
                        if k not in ("type", "network", "signal", "reply_key")}
                body["created"] = signal.created
                out.append(ReceivedSignal(
                    network=network, signal=signal.signal, source=signal.source,
                    received=received, status=fb["status"] if fb else "received",
                    content=body, sender=sender, hints=hints.get(signal.signal, [])))
            if len(items) < PAGE:
                break          # a short page is the last one: no request for an empty one
        return out

    def _open_signal(self, network: str, tv: TrustView,
                     value: Any) -> tuple[Signal, SignalContent, str | None] | None:
        s = self.session
        try:
            with s.verifying(network):
                if isinstance(value, Mapping) and "signed" in value:
                    # A verified shell membership; not necessarily current now: the
                    # server checked that at intake, and a partner removed since then
                    # did send its earlier signals.
                    sender = tv.member_of_signer(value)
                    if sender is None or sender.ring != "shell":
                        raise SignatureError("a signed signal not from a shell member")
                    signal = Signal.from_envelope(value, [sender.sign])
                    sender_id: str | None = sender.key_id
                    if signal.acting_user is None:
                        raise MalformedError("a shell signal without acting user")
                else:
                    signal = Signal.from_submission(value, [])
                    sender_id = None
                if signal.network != network:
                    raise ContextMismatchError("a signal of another network")
                plain = s.keys.box_secret.unseal(b64d(signal.sealed, what="sealed"))
                content = SignalContent.from_json(parse_json(plain))
                content.check_binding(signal)
            return signal, content, sender_id
        except ServerMisbehaviour:
            return None     # recorded; never shown as if it were genuine

    async def _hints(self, network: str) -> dict[str, list[str]]:
        """Duplicate hints by signal id: the cases a signal may concern."""
        s = self.session
        out: dict[str, list[str]] = {}
        after = "0"
        while True:
            page = await s.conn.get(s.path(network, "/hints"),
                                    params={"after": after, "limit": PAGE})
            with s.verifying(network):
                items = list(page["items"])
                for item in items:
                    after = str(item["cursor"])
                    if item["subject"]["kind"] == "signal":
                        cases = out.setdefault(item["subject"]["id"], [])
                        if item["may_concern"] not in cases:
                            cases.append(item["may_concern"])
            if len(items) < PAGE:
                return out      # a short page is the last one: no request for an empty one

    async def feedback(self, network: str, signal: str, status: str,
                       message: str | None = None) -> None:
        """Answer a signal (§C.8): a status signed by the coordinator key, and an
        optional message sealed to the signal's reply key — the one bound into the
        content this client opened, so the server cannot substitute its own."""
        s = self.session
        doc = s.state.get_doc("signal", (network, signal))
        if doc is None:
            await self.received(network)
            doc = s.state.get_doc("signal", (network, signal))
        if doc is None:
            raise MalformedError("no verified signal with this id", details={"field": "signal"})
        fields: dict[str, Any] = dict(network=network, signal=signal, status=status,
                                      at=s.stamp())
        if message is not None:
            reply = BoxPublicKey.from_b64(doc["reply_key"], "reply_key")
            fields["message"] = b64e(reply.seal(message.encode("utf-8")))
        envelope = SignalFeedback(**fields).sign(s.keys.signer)
        answer = await s.conn.post(s.path(network, f"/signals/{signal}/feedback"),
                                   {"feedback": envelope})
        with s.verifying(network, signal=signal):
            if answer["signal"] != signal or answer["status"] != status:
                raise ContextMismatchError("the server acknowledged other feedback")
        s.state.put_doc("signal-feedback", (network, signal), {"status": status,
                                                               "at": fields["at"]})


__all__ = ["Signals", "open_status", "signal_content", "bare_signal", "RECEIPT_HEADER"]
