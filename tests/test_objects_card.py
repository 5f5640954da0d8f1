"""The ``network-card`` object and its two verifiers (docs/protocol.md §N.11;
protocol/objects/card.py, keys/card.py), without a server: one test per rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schakel.keys import Fingerprint, PartnerKeys, make_genesis, new_network_id, verify_genesis
from schakel.keys.card import issue_card, verify_card, verify_card_for
from schakel.protocol.errors import (
    ContextMismatchError, MalformedError, PolicyViolation, SignatureError, UntrustedKeyError,
)
from schakel.protocol.objects.card import NetworkCard
from schakel.server.serverkeys import ServerKeys
from tests.server_harness import network_policy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COVENANT = bytes(32)


def founded(*, anonymous_signals: bool = True) -> tuple[PartnerKeys, Any]:
    coordinator, server = PartnerKeys.generate(), ServerKeys.generate()
    genesis = make_genesis(coordinator, network=new_network_id(), name="Steunpunt Eenzaamheid Zeist",
                           kind="neighbourhood", created=T0, server_log=server.log,
                           server_gate=server.gate, covenant=COVENANT,
                           policy=network_policy("neighbourhood",
                                                 anonymous_signals=anonymous_signals))
    return coordinator, verify_genesis(genesis, Fingerprint.of(coordinator.public.sign))


def card(coordinator: PartnerKeys, genesis: Any, **changes: Any) -> dict[str, Any]:
    """A card signed by ``coordinator``, built without the issuer's checks."""
    fields: dict[str, Any] = dict(
        network=genesis.network, name="Steunpunt Eenzaamheid Zeist", serial=1,
        issued="2026-03-02T09:00:00Z", valid_until="2027-03-02T09:00:00Z",
        server={"origin": "https://schakel.example.nl", "log": genesis.server_log.b64(),
                "gate": genesis.server_gate.b64()},
        intake=coordinator.public.to_json(), signaller_kinds=["neighbour", "volunteer-driver"])
    fields.update(changes)
    return NetworkCard.from_json({"type": "network-card", **fields}).sign(coordinator.signer)


def test_card_round_trips_through_its_json() -> None:
    coordinator, genesis = founded()
    c = NetworkCard.self_signed(card(coordinator, genesis))
    assert NetworkCard.from_json(c.to_json()) == c


def test_card_valid_until_must_be_after_issued() -> None:
    coordinator, genesis = founded()
    with pytest.raises(MalformedError):
        card(coordinator, genesis, valid_until="2026-03-02T09:00:00Z")


def test_card_does_not_list_shell_partners_who_sign_their_signals() -> None:
    coordinator, genesis = founded()
    with pytest.raises(MalformedError):
        card(coordinator, genesis, signaller_kinds=["shell-partner"])


def test_card_origin_is_an_origin_without_path() -> None:
    coordinator, genesis = founded()
    with pytest.raises(MalformedError):
        card(coordinator, genesis, server={"origin": "https://schakel.example.nl/signalen",
                                           "log": genesis.server_log.b64(),
                                           "gate": genesis.server_gate.b64()})


def test_signaller_verifies_a_card_under_the_coordinators_fingerprint() -> None:
    coordinator, genesis = founded()
    envelope = card(coordinator, genesis)
    assert verify_card(envelope, now=T0, anchor=Fingerprint.of(coordinator.public.sign)).serial == 1
    with pytest.raises(UntrustedKeyError):
        verify_card(envelope, now=T0, anchor=Fingerprint.of(PartnerKeys.generate().public.sign))


def test_signaller_refuses_a_card_signed_by_another_key_than_its_intake_key() -> None:
    coordinator, genesis = founded()
    forged = card(coordinator, genesis, intake=PartnerKeys.generate().public.to_json())
    with pytest.raises(SignatureError):
        verify_card(forged, now=T0)


def test_signaller_refuses_a_card_at_and_after_valid_until() -> None:
    coordinator, genesis = founded()
    envelope = card(coordinator, genesis)
    verify_card(envelope, now=datetime(2027, 3, 2, 8, 59, 59, tzinfo=UTC))
    with pytest.raises(UntrustedKeyError):
        verify_card(envelope, now=datetime(2027, 3, 2, 9, 0, tzinfo=UTC))


def test_members_refuse_a_card_for_another_network() -> None:
    coordinator, genesis = founded()
    with pytest.raises(ContextMismatchError):
        verify_card_for(card(coordinator, genesis, network=new_network_id()), genesis, now=T0)


def test_members_refuse_a_card_whose_intake_box_key_is_not_the_coordinators() -> None:
    coordinator, genesis = founded()
    intake = {**coordinator.public.to_json(), "box": PartnerKeys.generate().public.box.b64()}
    with pytest.raises(ContextMismatchError) as refused:
        verify_card_for(card(coordinator, genesis, intake=intake), genesis, now=T0)
    assert refused.value.details["field"] == "intake"


def test_members_refuse_a_card_not_signed_by_the_coordinator() -> None:
    coordinator, genesis = founded()
    other = PartnerKeys.generate()
    with pytest.raises(SignatureError):
        verify_card_for(card(other, genesis), genesis, now=T0)


def test_no_card_is_issued_for_a_network_without_anonymous_signals() -> None:
    coordinator, genesis = founded(anonymous_signals=False)
    with pytest.raises(PolicyViolation):
        issue_card(coordinator, genesis, origin="https://schakel.example.nl", serial=1,
                   issued=T0, valid_until=T0 + timedelta(days=30),
                   signaller_kinds=("resident",))


def test_a_card_refuses_a_signaller_kind_it_does_not_list() -> None:
    coordinator, genesis = founded()
    c = verify_card(card(coordinator, genesis), now=T0)
    c.check_signaller_kind("neighbour")
    with pytest.raises(PolicyViolation) as refused:
        c.check_signaller_kind("gp")
    assert refused.value.details["reason"] == "signaller-kind-not-on-card"
