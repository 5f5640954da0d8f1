"""The network card and signals from people without keys (docs/protocol.md §N.11, §C.6;
flow 3).

The coordinator publishes a card (:meth:`Cards.publish`): signed by its key, naming it as
the intake keys, the server's address and keys, and who may signal.  The server serves it
to anyone.  A resident, a neighbour or a volunteer driver then:

1. reads the card from a file (the network's website, a QR code on its leaflet) with
   :func:`read_card`, or from the server with :func:`fetch_card` -- the latter only with
   the coordinator's fingerprint, because a served card is whatever the server says;
2. sends a signal with :func:`anonymous_signal`: the client checks that the card is in
   force and asks for this kind of signaller, that the server at the card's address has
   the card's server fingerprint, and seals the content to the card's intake box key;
3. keeps the returned ticket (receipt token and one-time reply key) private, and reads the
   coordinator's feedback with :func:`anonymous_status`, believing it only as far as it
   verifies under the card's intake signing key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from schakel.keys.card import issue_card, server_fingerprint, verify_card, verify_card_for
from schakel.keys.fingerprint import Fingerprint
from schakel.protocol.crypto import BoxPublicKey, BoxSecretKey, VerifyKey
from schakel.protocol.encoding import b64d, b64e
from schakel.protocol.errors import ContextMismatchError, MalformedError, PolicyViolation
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.card import NetworkCard

from schakel.client.errors import ServerRefused
from schakel.client.session import Session
from schakel.client.signals import RECEIPT_HEADER, bare_signal, open_status, signal_content
from schakel.client.transport import Connection
from schakel.client.views import SignalStatus as StatusView
from schakel.client.views import SignalTicket
from schakel.client.wire import new_id

#: Who a card asks for when the coordinator names no one: the report's signallers.
DEFAULT_SIGNALLER_KINDS = ("resident", "neighbour", "volunteer", "volunteer-driver")


def _card_path(network: str) -> str:
    return f"/v1/networks/{network}/card"


class Cards:
    """The coordinator's side: publishing the network's card, and reading the served one
    as a member checks it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def served(self, network: str) -> NetworkCard | None:
        """The card the server serves for ``network``, verified against the network's
        verified genesis (signed by the current coordinator key, naming it and this
        network's server keys); None when the network has no card.  A card that fails
        is recorded server misbehaviour."""
        s = self.session
        tv = await s.trusted(network)
        try:
            answer = await s.conn.get_unsigned(_card_path(network))
        except ServerRefused as refused:
            if refused.code == "not_found":
                return None
            raise
        with s.verifying(network):
            return verify_card_for(answer["card"], tv.verified, now=s.now())

    async def publish(self, network: str, *, valid_until: datetime,
                      signaller_kinds: Iterable[str] = DEFAULT_SIGNALLER_KINDS,
                      origin: str | None = None, name: str | None = None) -> dict[str, Any]:
        """Sign and publish a new card for ``network`` (coordinator key only) and return
        its envelope: the file to put on the network's website or leaflet.  ``origin``
        is where signallers reach the server (default: this home's server address);
        ``name`` the network's name as signallers know it (default: the genesis's).
        The serial is one above the served card's."""
        s = self.session
        tv = await s.trusted(network)
        if s.key_id != tv.coordinator_key_id:
            raise PolicyViolation("only the network's coordinator key signs its card",
                                  details={"reason": "not-the-coordinator"})
        latest = await self.served(network)
        envelope = issue_card(s.keys, tv.verified, origin=origin or s.conn.origin,
                              serial=1 if latest is None else latest.serial + 1,
                              issued=s.now(), valid_until=valid_until,
                              signaller_kinds=signaller_kinds, name=name)
        answer = await s.conn.post(_card_path(network), {"card": envelope})
        with s.verifying(network):
            if answer["network"] != network or answer["serial"] != envelope["signed"]["serial"]:
                raise ContextMismatchError("the server acknowledged another card")
        return envelope


# --------------------------------------------------------------------------- signallers


def read_card(envelope: Mapping[str, Any], *, fingerprint: str | None = None,
              now: datetime | None = None) -> NetworkCard:
    """A card from a file, verified as a signaller can (``schakel.keys.card.verify_card``):
    signed by its intake key, in force, and -- given the coordinator's ``fingerprint``
    from the leaflet -- signed by that coordinator."""
    anchor = Fingerprint.parse(fingerprint) if fingerprint is not None else None
    return verify_card(envelope, now=now or datetime.now(UTC), anchor=anchor)


async def fetch_card(origin: str, network: str, *, fingerprint: str,
                     now: datetime | None = None) -> tuple[NetworkCard, dict[str, Any]]:
    """The card the server at ``origin`` serves for ``network``, believed only if the
    coordinator with ``fingerprint`` signed it (the server could serve a card of its own
    making otherwise).  Returns the card and its envelope, to keep as a file."""
    anchor = Fingerprint.parse(fingerprint)
    conn = Connection(origin, None, None)
    try:
        answer = await conn.get_unsigned(_card_path(network))
    finally:
        await conn.close()
    if not isinstance(answer, Mapping) or not isinstance(answer.get("card"), Mapping):
        raise MalformedError("the server's answer holds no card", details={"field": "card"})
    envelope = dict(answer["card"])
    card = verify_card(envelope, now=now or datetime.now(UTC), anchor=anchor)
    if card.network != network:
        raise ContextMismatchError("the server served the card of another network",
                                   details={"field": "network"})
    return card, envelope


async def _check_server(conn: Connection, card: NetworkCard) -> None:
    """The server at the card's address must hold the keys whose server fingerprint the
    card names (protocol.md §4.3), or nothing is sent to it."""
    served = await conn.get_unsigned("/v1/server")
    if not isinstance(served, Mapping):
        raise MalformedError("the server's keys are not an object", details={"field": "server"})
    server_fingerprint(card).matches_server(VerifyKey.from_b64(served.get("log"), "log"),
                                            BoxPublicKey.from_b64(served.get("gate"), "gate"))


async def anonymous_signal(card: NetworkCard, concern: str, *, urgency: str = "medium",
                           signaller_kind: str = "resident", contact_back: bool = True,
                           identity_hint: Mapping[str, Any] | None = None,
                           now: datetime | None = None) -> SignalTicket:
    """Send a signal with a network card, without keys or an account: a bare signal in an
    unsigned request to the card's server, its content sealed to the card's intake box key.

    Refused before anything is sent: a card no longer in force (``card-expired``), a
    signaller kind the card does not ask for (``signaller-kind-not-on-card``), a server
    at the card's address whose keys do not have the card's server fingerprint
    (``untrusted_key``).  The ticket holds the receipt token *and the one-time reply
    key*: the only way to read the coordinator's answer, so the caller keeps it private."""
    at = now or datetime.now(UTC)
    card.check_in_force(at)
    card.check_signaller_kind(signaller_kind)
    signal, reply = new_id(), BoxSecretKey.generate()
    content = signal_content(card.network, signal, reply, concern=concern, urgency=urgency,
                             signaller_kind=signaller_kind, contact_back=contact_back,
                             identity_hint=identity_hint)
    created = format_timestamp(at)
    body = {"signal": bare_signal(card.network, signal, created,
                                  b64e(card.box_key.seal(content.plaintext())), reply).to_json()}
    conn = Connection(card.server.origin, None, None)
    try:
        await _check_server(conn, card)
        answer = await conn.post_unsigned(f"/v1/networks/{card.network}/signals", body)
    finally:
        await conn.close()
    receipt = answer["receipt"]
    b64d(receipt, length=32, what="receipt")
    return SignalTicket(network=card.network, signal=signal, receipt=receipt,
                        server=conn.origin, sent=created, anonymous=True,
                        reply_secret=b64e(reply.export_secret()))


async def anonymous_status(ticket: SignalTicket, card: NetworkCard) -> StatusView:
    """Read the status of a signal sent with ``card`` from its ticket (receipt token and
    reply key).  Each feedback statement must verify under the card's intake signing key
    and be about this signal; otherwise the protocol error is raised (``SignatureError``
    for a forged statement) and nothing is shown."""
    if ticket.network != card.network:
        raise ContextMismatchError("the ticket is of another network than the card",
                                   details={"field": "network"})
    if not ticket.reply_secret:
        raise MalformedError("the ticket holds no reply key", details={"field": "reply_secret"})
    reply = BoxSecretKey(b64d(ticket.reply_secret, length=32, what="reply_secret"))
    conn = Connection(card.server.origin, None, None)
    try:
        answer = await conn.get_unsigned("/v1/signals/status",
                                         headers={RECEIPT_HEADER: ticket.receipt})
    finally:
        await conn.close()
    status, _, messages = open_status(answer, network=ticket.network, signal=ticket.signal,
                                      coordinator=[card.sign_key], reply=reply)
    return StatusView(status=status.status, updated=status.updated, messages=messages,
                      network=ticket.network, signal=ticket.signal)


__all__ = ["Cards", "DEFAULT_SIGNALLER_KINDS", "read_card", "fetch_card", "anonymous_signal",
           "anonymous_status"]
