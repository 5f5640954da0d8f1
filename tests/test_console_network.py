"""The console's network screens (cli/console/network.py, ADR 0040) against the real
aiohttp app over a real partner home and a real server (tests/client_harness.py): a
coördinator founds a network on the server fingerprint the operator gave (a misheard
one is refused before anything is sent), reads the overview with the fingerprint to
read aloud, and publishes the card residents signal with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from schakel.cli.console.screen import HELD
from schakel.client.card import anonymous_signal, fetch_card
from tests.client_harness import COVENANT, make_partner, running_server, server_fingerprint
from tests.test_console import Console, _console


@dataclass
class Founding:
    console: Console
    url: str


@pytest.fixture
async def founding(tmp_path: Path) -> AsyncIterator[Founding]:
    """A new home with no network yet, on a real server; the console over it, unlocked."""
    async with running_server(tmp_path) as url:
        partner = await make_partner(tmp_path, url, "welzijn", name="Welzijn Amersfoort")
        await partner.close()
        async for console in _console(tmp_path / "welzijn"):
            await console.enter()
            await console.unlock()
            yield Founding(console=console, url=url)


def _one_digit_off(fingerprint: str) -> str:
    return fingerprint[:-1] + str((int(fingerprint[-1]) + 1) % 10)


async def test_a_coordinator_founds_a_network_in_the_console(founding: Founding) -> None:
    console = founding.console
    answer = await console.post("/networks", {
        "name": "Buurtnetwerk 55+ Soesterkwartier", "kind": "neighbourhood",
        "covenant": COVENANT, "server_fingerprint": server_fingerprint(founding.url),
        "allow": "Soesterkwartier\n# a comment\n"}, page="/networks/new")
    assert answer.status == 200, await answer.text()
    network = str(answer.url.path).rsplit("/", 1)[1]
    partner = console.client.app[HELD].partner
    assert partner.networks.trusted() == [network]
    assert partner.networks.place(network).role == "coordinator"
    assert partner.networks.pii_allow(network) == ("Soesterkwartier",)
    text = await answer.text()
    assert "Buurtnetwerk 55+ Soesterkwartier" in text
    assert str(partner.fingerprint) in text          # to read aloud at the covenant meeting


async def test_a_misheard_server_fingerprint_is_refused_and_no_network_is_founded(
        founding: Founding) -> None:
    console = founding.console
    answer = await console.post("/networks", {
        "name": "Buurtnetwerk 55+ Soesterkwartier", "kind": "neighbourhood",
        "covenant": COVENANT,
        "server_fingerprint": _one_digit_off(server_fingerprint(founding.url))},
        page="/networks/new")
    assert answer.status == 422
    text = await answer.text()
    assert 'role="alert"' in text
    assert "server fingerprint is not the one you were given; nothing was sent" in text
    assert "Buurtnetwerk 55+ Soesterkwartier" in text      # the form keeps what was typed
    assert console.client.app[HELD].partner.networks.trusted() == []


async def test_a_covenant_longer_than_the_form_takes_is_refused_before_sending(
        founding: Founding) -> None:
    console = founding.console
    answer = await console.post("/networks", {
        "name": "Buurtnetwerk", "kind": "neighbourhood", "covenant": "x" * 20_001,
        "server_fingerprint": server_fingerprint(founding.url)}, page="/networks/new")
    assert answer.status == 422
    assert console.client.app[HELD].partner.networks.trusted() == []


async def test_the_coordinator_publishes_the_card_and_the_overview_shows_the_intake_address(
        founding: Founding) -> None:
    console = founding.console
    founded = await console.post("/networks", {
        "name": "Buurtnetwerk 55+ Kruiskamp", "kind": "neighbourhood", "covenant": COVENANT,
        "server_fingerprint": server_fingerprint(founding.url)}, page="/networks/new")
    network = str(founded.url.path).rsplit("/", 1)[1]
    assert "/intake/" not in await founded.text()                 # no card yet
    page = f"/n/{network}"
    answer = await console.post(page + "/card", {
        "signaller_kinds": ["resident", "volunteer-driver"], "valid_days": "30"}, page=page)
    assert answer.status == 200, await answer.text()
    partner = console.client.app[HELD].partner
    digits = "".join(c for c in str(partner.fingerprint) if c.isdigit())
    assert f"{founding.url}/intake/{network}#vingerafdruk={digits}" in await answer.text()
    # what a resident's client believes: the card, signed by the coördinator's key
    card, _ = await fetch_card(founding.url, network, fingerprint=str(partner.fingerprint))
    assert card.signaller_kinds == ("resident", "volunteer-driver")
    ticket = await anonymous_signal(card, "Zorgen om de buurman.", signaller_kind="resident")
    assert ticket.signal


@pytest.mark.parametrize("days", ["0", "801", "twee", ""])
async def test_a_card_validity_outside_one_to_800_days_is_refused(founding: Founding,
                                                                  days: str) -> None:
    console = founding.console
    founded = await console.post("/networks", {
        "name": "Buurtnetwerk", "kind": "neighbourhood", "covenant": COVENANT,
        "server_fingerprint": server_fingerprint(founding.url)}, page="/networks/new")
    network = str(founded.url.path).rsplit("/", 1)[1]
    answer = await console.post(f"/n/{network}/card", {"signaller_kinds": "resident",
                                                       "valid_days": days},
                                page=f"/n/{network}")
    assert answer.status == 422
    assert await console.client.app[HELD].partner.cards.served(network) is None


@pytest.mark.parametrize("path", ["/networks", "/n/AAAAAAAAAAAAAAAAAAAAAA/card"])
async def test_network_forms_without_the_csrf_token_are_refused(founding: Founding,
                                                                path: str) -> None:
    console = founding.console
    answer = await console.client.post(path, data={"name": "x", "signaller_kinds": "resident"},
                                       headers=console.origin)
    assert answer.status == 403
    assert console.client.app[HELD].partner.networks.trusted() == []
