"""Signals through the client library, end to end against the real server (flow 3;
docs/protocol.md §C.6–§C.8; client/signals.py).

Each test is one rule, named after it.  Real keys, real server on a loopback socket
(tests/client_harness.py); the forged-feedback test puts the tamper proxy
(tests/tamper_proxy.py) between the signaller and the real server, which is exactly what
a lying server can do to the status it serves.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from schakel.client import ServerMisbehaviour
from schakel.client.card import anonymous_signal, anonymous_status, read_card
from schakel.protocol import signing
from schakel.protocol.crypto import Signer
from tests.client_harness import (
    admit, make_partner, running_server, server_fingerprint, standard_network,
)
from tests.tamper_proxy import tampered_server


async def test_anonymous_signal_feedback_is_read_by_the_signaller(tmp_path: Path) -> None:
    """A resident without keys sends a bare signal sealed to the coordinator's box key;
    the coordinator opens it and answers; the resident reads the signed status and the
    message sealed to its one-time reply key, with nothing but its ticket."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            coordinator, network = cast.coordinator, cast.network
            card = read_card(await coordinator.cards.publish(       # from the leaflet
                network, valid_until=coordinator.session.now() + timedelta(days=30)),
                fingerprint=str(coordinator.fingerprint))
            ticket = await anonymous_signal(card, "Mijn buurvrouw haalt haar post niet meer op.")
            assert ticket.anonymous and ticket.reply_secret

            before = await anonymous_status(ticket, card)
            assert (before.status, before.messages) == ("received", [])

            received = {s.signal: s for s in await coordinator.signals.received(network)}
            got = received[ticket.signal]
            assert got.source == "anonymous" and got.sender is None
            assert got.content["concern"] == "Mijn buurvrouw haalt haar post niet meer op."
            assert got.content["signaller_kind"] == "resident"

            await coordinator.signals.feedback(network, ticket.signal, "taken-up",
                                       "Dank u, we gaan deze week langs.")
            after = await anonymous_status(ticket, card)
            assert after.status == "taken-up"
            assert after.messages == ["Dank u, we gaan deze week langs."]
            assert {s.signal: s for s in await coordinator.signals.received(network)}[
                ticket.signal].status == "taken-up"

            # A partner can send anonymously too; it reads the answer with the reply key
            # kept in its own state.
            mine = await cast.informal.signals.send(network, "Meneer op nummer 3 valt vaak.",
                                                   anonymous=True, signaller_kind="volunteer")
            await coordinator.signals.feedback(network, mine.signal, "referred", "Doorgezet naar GGD.")
            status = await cast.informal.signals.status(mine)
            assert (status.status, status.messages) == ("referred", ["Doorgezet naar GGD."])
        finally:
            await cast.close()


async def test_shell_signal_is_signed_and_verified_against_the_senders_membership(
        tmp_path: Path) -> None:
    """A shell partner's signal travels signed in a signed request; the coordinator sees
    it as a shell signal from that partner (verified against its membership), and the
    shell partner reads the feedback with the reply key it kept."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            coordinator, shell, network = cast.coordinator, cast.shell, cast.network
            ticket = await shell.signals.send(network, "Patiënt komt niet meer op controle.",
                                             urgency="high")
            assert not ticket.anonymous
            assert shell.session.state.get_doc("ticket", (network, ticket.signal))["signal"] == ticket.signal
            assert shell.session.state.get_secret("signal-reply", (network, ticket.signal)) is not None

            got = {s.signal: s for s in await coordinator.signals.received(network)}[ticket.signal]
            assert (got.source, got.sender) == ("shell", shell.key_id)
            assert got.content["urgency"] == "high"
            assert got.content["signaller_kind"] == "shell-partner"

            await coordinator.signals.feedback(network, ticket.signal, "received")
            await coordinator.signals.feedback(network, ticket.signal, "taken-up", "Wijkteam belt u.")
            status = await shell.signals.status(ticket)
            assert status.status == "taken-up" and status.messages == ["Wijkteam belt u."]

            # A core member may not send a shell signal: the server refuses, nothing shown.
            with pytest.raises(Exception) as refused:
                await cast.formal.signals.send(network, "Dit mag niet als kernlid.")
            assert getattr(refused.value, "code", None) == "forbidden"
        finally:
            await cast.close()


async def test_forged_feedback_signature_is_detected(tmp_path: Path) -> None:
    """The server serves the coordinator's feedback with the status and message changed
    and re-signed by a key of its own: the signaller's client refuses it as
    ``bad-signature`` server misbehaviour, records it, and shows no forged status."""
    async with tampered_server(tmp_path) as srv:
        url = srv.url
        coordinator = await make_partner(tmp_path, url, "coordinator")
        shell = await make_partner(tmp_path, url, "shell")
        try:
            network = await coordinator.networks.create(
                name="Buurtnetwerk", kind="neighbourhood",
                covenant="Convenant Buurtnetwerk Soesterkwartier: wij delen alleen wat nodig is.",
                server_fingerprint=server_fingerprint(url))
            await admit(coordinator, network, shell, ring="shell", party="formal")
            ticket = await shell.signals.send(network, "Zorgen om mevrouw op de hoek.")
            await coordinator.signals.received(network)
            await coordinator.signals.feedback(network, ticket.signal, "not-taken-up", "Geen zorgen nodig.")
            assert (await shell.signals.status(ticket)).status == "not-taken-up"

            server_key = Signer.generate()

            def forge(body: dict) -> dict:
                for i, envelope in enumerate(body["feedback"]):
                    signed = dict(envelope["signed"])
                    signed["status"] = "closed"
                    signed.pop("message", None)
                    body["feedback"][i] = signing.sign("signal-feedback", signed, server_key)
                body["status"] = "closed"
                return body

            srv.proxy.on("GET", re.escape("/v1/signals/status"), forge)
            with pytest.raises(ServerMisbehaviour) as caught:
                await shell.signals.status(ticket)
            assert caught.value.what == "bad-signature"
            assert srv.proxy.hits() >= 1
            recorded = [m for m in shell.misbehaviours() if m["what"] == "bad-signature"]
            assert recorded and recorded[-1]["network"] == network

            srv.proxy.clear()
            assert (await shell.signals.status(ticket)).status == "not-taken-up"
        finally:
            await coordinator.close()
            await shell.close()
