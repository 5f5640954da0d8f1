"""The network card and keyless signals, end to end against the real server
(docs/protocol.md §N.11, §C.6, flow 3; client/card.py, keys/card.py).

The Steunpunt Eenzaamheid Zeist practice: neighbours and the volunteer drivers of the
elderly transport signal loneliness, and the steunpunt feeds back what it did ("als ik het
nou daar breng, wat gebeurt er dan?").  They hold no keys: the coordinator publishes a
signed card, the server serves it to anyone, and a resident's client seals to the card's
intake key, checks the server against the card, and believes feedback only under the
card's signing key.  Each test is one rule, named after it; real keys, a real server on a
loopback socket (tests/client_harness.py), the tamper proxy where the server lies.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schakel.client import Partner, ServerMisbehaviour, ServerRefused
from schakel.client.card import anonymous_signal, anonymous_status, fetch_card, read_card
from schakel.keys import Fingerprint, PartnerKeys
from schakel.protocol import signing
from schakel.protocol.crypto import Signer
from schakel.protocol.errors import PolicyViolation, SignatureError, UntrustedKeyError
from schakel.protocol.objects.base import format_timestamp
from schakel.protocol.objects.card import CardServer, NetworkCard
from schakel.server.serverkeys import ServerKeys
from tests.client_harness import (
    COVENANT, make_partner, network_policy, running_server, server_fingerprint,
)
from tests.tamper_proxy import tampered_server

CONCERN = "Meneer op de Slotlaan zit sinds zijn vrouw overleed alleen; hij zegt niemand te zien."
NEXT_YEAR = datetime.now(UTC) + timedelta(days=365)


@dataclass
class Steunpunt:
    url: str
    network: str
    coordinator: Partner

    @property
    def fingerprint(self) -> str:
        return str(self.coordinator.fingerprint)


async def found(tmp_path: Path, url: str, *, anonymous_signals: bool = True) -> Steunpunt:
    coordinator = await make_partner(tmp_path, url, "steunpunt",
                                     name="Steunpunt Eenzaamheid Zeist (regie)")
    network = await coordinator.networks.create(
        name="Steunpunt Eenzaamheid Zeist", kind="neighbourhood", covenant=COVENANT,
        server_fingerprint=server_fingerprint(url),
        policy=network_policy("neighbourhood", anonymous_signals=anonymous_signals))
    return Steunpunt(url=url, network=network, coordinator=coordinator)


@asynccontextmanager
async def steunpunt(tmp_path: Path) -> AsyncIterator[Steunpunt]:
    async with running_server(tmp_path) as url:
        s = await found(tmp_path, url)
        try:
            yield s
        finally:
            await s.coordinator.close()


def hand_made_card(s: Steunpunt, *, signer: Signer, intake: PartnerKeys | None = None,
                   log: str | None = None, gate: str | None = None, serial: int = 1,
                   kinds: tuple[str, ...] = ("resident",)) -> dict[str, Any]:
    """A card built without the coordinator's client checks, as an attacker (or a careless
    tool) would build it."""
    genesis = s.coordinator.session.local_trust(s.network).verified
    keys = intake or s.coordinator.session.keys
    now = datetime.now(UTC)
    return NetworkCard(
        network=s.network, name="Steunpunt Eenzaamheid Zeist", serial=serial,
        issued=format_timestamp(now), valid_until=format_timestamp(now + timedelta(days=30)),
        server=CardServer(origin=s.url, log=log or genesis.server_log.b64(),
                          gate=gate or genesis.server_gate.b64()),
        intake=keys.public.to_wire(), signaller_kinds=kinds).sign(signer)


async def test_keyless_signal_with_the_card_gets_a_receipt_and_reads_its_feedback(
        tmp_path: Path) -> None:
    """The coordinator publishes the card; a volunteer driver reads it from the file the
    steunpunt put on its website, checks it against the coordinator's fingerprint on the
    leaflet, signals, and later reads the signed status and the message sealed to its
    one-time reply key, with nothing but the card and its ticket."""
    async with steunpunt(tmp_path) as s:
        envelope = await s.coordinator.cards.publish(
            s.network, valid_until=NEXT_YEAR, signaller_kinds=("neighbour", "volunteer-driver"))
        card = read_card(envelope, fingerprint=s.fingerprint)
        assert (card.network, card.server.origin, card.serial) == (s.network, s.url, 1)

        ticket = await anonymous_signal(card, CONCERN, signaller_kind="volunteer-driver",
                                        urgency="low")
        assert ticket.anonymous and ticket.reply_secret and len(ticket.receipt) == 43
        before = await anonymous_status(ticket, card)
        assert (before.status, before.messages) == ("received", [])

        got = {x.signal: x for x in await s.coordinator.signals.received(s.network)}[ticket.signal]
        assert (got.source, got.sender) == ("anonymous", None)
        assert got.content["concern"] == CONCERN
        assert got.content["signaller_kind"] == "volunteer-driver"

        await s.coordinator.signals.feedback(s.network, ticket.signal, "taken-up",
                                             "Dank u. Onze vrijwilliger gaat bij hem langs.")
        after = await anonymous_status(ticket, card)
        assert after.status == "taken-up"
        assert after.messages == ["Dank u. Onze vrijwilliger gaat bij hem langs."]


async def test_the_served_card_is_public_and_believed_only_under_the_coordinators_fingerprint(
        tmp_path: Path) -> None:
    """Anyone fetches the card without a key; the resident's client believes it with the
    coordinator's fingerprint and refuses it with any other fingerprint."""
    async with steunpunt(tmp_path) as s:
        envelope = await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR)
        card, served = await fetch_card(s.url, s.network, fingerprint=s.fingerprint)
        assert served == envelope and card.serial == 1
        stranger = str(Fingerprint.of(PartnerKeys.generate().public.sign))
        with pytest.raises(UntrustedKeyError):
            await fetch_card(s.url, s.network, fingerprint=stranger)


async def test_a_card_signed_by_another_key_is_refused_under_the_coordinators_fingerprint(
        tmp_path: Path) -> None:
    """Someone who made a card of their own (their box key as intake key, signed by
    their key) fools nobody who checks the leaflet's fingerprint: the card is refused
    before anything is sealed to that key."""
    async with steunpunt(tmp_path) as s:
        impostor = PartnerKeys.generate()
        forged = hand_made_card(s, signer=impostor.signer, intake=impostor)
        assert read_card(forged).intake.box == impostor.public.box.b64()   # self-consistent
        with pytest.raises(UntrustedKeyError):
            read_card(forged, fingerprint=s.fingerprint)


async def test_a_card_whose_intake_key_was_swapped_no_longer_verifies(tmp_path: Path) -> None:
    """The coordinator's genuine card with another box key put in (on the website, in the
    QR code, by the server serving it): the signature no longer holds."""
    async with steunpunt(tmp_path) as s:
        envelope = await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR)
        swapped = {"signed": {**envelope["signed"], "intake": {
            **envelope["signed"]["intake"], "box": PartnerKeys.generate().public.box.b64()}},
            "signatures": envelope["signatures"]}
        with pytest.raises(SignatureError):
            read_card(swapped)


async def test_a_served_card_replaced_by_the_server_is_refused(tmp_path: Path) -> None:
    """A lying server serves a card of its own making (its key, its intake box key): the
    resident's client, given the coordinator's fingerprint, refuses it; the coordinator's
    client records it as server misbehaviour."""
    async with tampered_server(tmp_path) as srv:
        s = await found(tmp_path, srv.url)
        try:
            await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR)
            server_key = PartnerKeys.generate()

            def forge(body: dict[str, Any]) -> dict[str, Any]:
                signed = {**body["card"]["signed"], "intake": server_key.public.to_json()}
                body["card"] = signing.sign("network-card", signed, server_key.signer)
                return body

            srv.proxy.on("GET", re.escape(f"/v1/networks/{s.network}/card"), forge)
            with pytest.raises(UntrustedKeyError):
                await fetch_card(srv.url, s.network, fingerprint=s.fingerprint)
            with pytest.raises(ServerMisbehaviour) as caught:
                await s.coordinator.cards.served(s.network)
            assert caught.value.what == "bad-signature"
        finally:
            await s.coordinator.close()


async def test_server_refuses_a_card_whose_intake_keys_are_not_the_coordinators(
        tmp_path: Path) -> None:
    """A card signed by the coordinator key but naming another box key as intake (a
    mistake, or a tool that was tampered with) would send every signal to someone else:
    the server refuses it, 400 context_mismatch on ``intake``."""
    async with steunpunt(tmp_path) as s:
        keys = s.coordinator.session.keys
        other = PartnerKeys.generate()
        card = hand_made_card(s, signer=keys.signer, intake=other)
        with pytest.raises(ServerRefused) as refused:
            await s.coordinator.session.conn.post(f"/v1/networks/{s.network}/card", {"card": card})
        assert (refused.value.code, refused.value.details.get("field")) == (
            "context_mismatch", "intake")
        assert await s.coordinator.cards.served(s.network) is None


async def test_server_refuses_a_card_not_signed_by_the_coordinator(tmp_path: Path) -> None:
    """The coordinator's request carrying a card signed by another key: 401 bad_signature,
    and nothing is served."""
    async with steunpunt(tmp_path) as s:
        card = hand_made_card(s, signer=Signer.generate())
        with pytest.raises(ServerRefused) as refused:
            await s.coordinator.session.conn.post(f"/v1/networks/{s.network}/card", {"card": card})
        assert refused.value.code == "bad_signature"
        assert await s.coordinator.cards.served(s.network) is None


async def test_server_refuses_a_card_naming_another_servers_keys(tmp_path: Path) -> None:
    """A card naming other log and gate keys than the genesis: 400 context_mismatch."""
    async with steunpunt(tmp_path) as s:
        elsewhere = ServerKeys.generate()
        card = hand_made_card(s, signer=s.coordinator.session.keys.signer,
                              log=elsewhere.log.b64(), gate=elsewhere.gate.b64())
        with pytest.raises(ServerRefused) as refused:
            await s.coordinator.session.conn.post(f"/v1/networks/{s.network}/card", {"card": card})
        assert (refused.value.code, refused.value.details.get("field")) == (
            "context_mismatch", "server")


async def test_an_older_card_cannot_replace_a_newer_one(tmp_path: Path) -> None:
    """The newest card (by serial) is served: another card with a serial at or below the
    latest is 409 with the latest serial; the first card sent again is an identical retry
    (200) and changes nothing."""
    async with steunpunt(tmp_path) as s:
        first = await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR,
                                                  signaller_kinds=("resident",))
        second = await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR,
                                                   signaller_kinds=("neighbour",))
        assert second["signed"]["serial"] == 2
        path = f"/v1/networks/{s.network}/card"
        for serial in (1, 2):
            older = hand_made_card(s, signer=s.coordinator.session.keys.signer, serial=serial,
                                   kinds=("gp",))
            with pytest.raises(ServerRefused) as refused:
                await s.coordinator.session.conn.post(path, {"card": older})
            assert (refused.value.code, refused.value.details["serial"]) == ("conflict", 2)
        assert (await s.coordinator.session.conn.post(path, {"card": first}))["serial"] == 1
        served = await s.coordinator.cards.served(s.network)
        assert served is not None and served.signaller_kinds == ("neighbour",)


async def test_a_card_whose_server_keys_differ_from_the_servers_sends_nothing(
        tmp_path: Path) -> None:
    """A card naming other server keys than the server at its address has (a card for
    another server, or someone answering at the address in the server's place): the
    resident's client compares the server fingerprint and sends nothing."""
    async with steunpunt(tmp_path) as s:
        elsewhere = ServerKeys.generate()
        card = read_card(hand_made_card(s, signer=s.coordinator.session.keys.signer,
                                        log=elsewhere.log.b64(), gate=elsewhere.gate.b64()),
                         fingerprint=s.fingerprint)
        with pytest.raises(UntrustedKeyError):
            await anonymous_signal(card, CONCERN)
        assert await s.coordinator.signals.received(s.network) == []


async def test_a_signaller_kind_the_card_does_not_ask_for_is_refused_before_sending(
        tmp_path: Path) -> None:
    async with steunpunt(tmp_path) as s:
        card = read_card(await s.coordinator.cards.publish(
            s.network, valid_until=NEXT_YEAR, signaller_kinds=("neighbour",)))
        with pytest.raises(PolicyViolation) as refused:
            await anonymous_signal(card, CONCERN, signaller_kind="gp")
        assert refused.value.details["reason"] == "signaller-kind-not-on-card"
        assert await s.coordinator.signals.received(s.network) == []


async def test_an_expired_card_is_refused(tmp_path: Path) -> None:
    """A card past its valid_until may name keys the coordinator no longer holds: neither
    read nor used."""
    async with steunpunt(tmp_path) as s:
        envelope = await s.coordinator.cards.publish(
            s.network, valid_until=datetime.now(UTC) + timedelta(days=1))
        later = datetime.now(UTC) + timedelta(days=2)
        with pytest.raises(UntrustedKeyError) as refused:
            read_card(envelope, now=later)
        assert refused.value.details["reason"] == "card-expired"
        card = read_card(envelope)
        with pytest.raises(UntrustedKeyError):
            await anonymous_signal(card, CONCERN, now=later)


async def test_no_card_for_a_network_without_anonymous_signals(tmp_path: Path) -> None:
    """A network that takes signals from its shell partners only has no card: the
    coordinator's client refuses to make one, and the server refuses one made by hand."""
    async with running_server(tmp_path) as url:
        s = await found(tmp_path, url, anonymous_signals=False)
        try:
            with pytest.raises(PolicyViolation):
                await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR)
            card = hand_made_card(s, signer=s.coordinator.session.keys.signer)
            with pytest.raises(ServerRefused) as refused:
                await s.coordinator.session.conn.post(f"/v1/networks/{s.network}/card",
                                                      {"card": card})
            assert refused.value.details["reason"] == "anonymous-signals-disabled"
        finally:
            await s.coordinator.close()


async def test_a_network_without_a_card_answers_404_to_anyone(tmp_path: Path) -> None:
    async with steunpunt(tmp_path) as s:
        with pytest.raises(ServerRefused) as refused:
            await fetch_card(s.url, s.network, fingerprint=s.fingerprint)
        assert (refused.value.status, refused.value.code) == (404, "not_found")


async def test_forged_feedback_on_a_keyless_signal_is_refused(tmp_path: Path) -> None:
    """The server re-signs the steunpunt's feedback with a key of its own: the resident's
    client refuses it under the card's signing key and shows no forged status."""
    async with tampered_server(tmp_path) as srv:
        s = await found(tmp_path, srv.url)
        try:
            card = read_card(await s.coordinator.cards.publish(s.network, valid_until=NEXT_YEAR))
            ticket = await anonymous_signal(card, CONCERN, signaller_kind="neighbour")
            await s.coordinator.signals.received(s.network)
            await s.coordinator.signals.feedback(s.network, ticket.signal, "not-taken-up")
            server_key = Signer.generate()

            def forge(body: dict[str, Any]) -> dict[str, Any]:
                for i, envelope in enumerate(body["feedback"]):
                    signed = {**envelope["signed"], "status": "closed"}
                    body["feedback"][i] = signing.sign("signal-feedback", signed, server_key)
                body["status"] = "closed"
                return body

            srv.proxy.on("GET", re.escape("/v1/signals/status"), forge)
            with pytest.raises(SignatureError):
                await anonymous_status(ticket, card)
            srv.proxy.clear()
            assert (await anonymous_status(ticket, card)).status == "not-taken-up"
        finally:
            await s.coordinator.close()
