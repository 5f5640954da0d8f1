"""The console's bemoeizorg screen (cli/console/bemoeizorg.py; ADR 0040, ADR 0042) against
the real aiohttp app and a real server (tests/client_harness.py), in an OGGZ network with
two bemoeizorg role-holders of different organisations and an auditor: invoke, co-sign
(four eyes), release, review — each person in their own console over their own home.

Each test is one rule, named after it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client_harness import IDENTITY, INTAKE, running_server, standard_network
from tests.disclosure_harness import JUSTIFICATION
from tests.test_console import Console, _console


@dataclass
class Oggz:
    cast: Any
    arts: Any
    vpk: Any
    case: str

    @property
    def network(self) -> str:
        return str(self.cast.network)


@asynccontextmanager
async def opened(partner: Any, network: str) -> AsyncIterator[Console]:
    """A console, unlocked, over ``partner``'s home."""
    async for console in _console(Path(partner.session.home.path)):
        console.network = network
        await console.enter()
        await console.unlock()
        yield console


@pytest.fixture
async def oggz(tmp_path: Path) -> AsyncIterator[Oggz]:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url, kind="oggz")
        try:
            arts = await cast.join(tmp_path, url, "ggd-arts", roles=("bemoeizorg",))
            vpk = await cast.join(tmp_path, url, "ggd-vpk", roles=("bemoeizorg",))
            await cast.formal.sync(cast.network)
            case = await cast.formal.cases.create(cast.network, INTAKE, identity=IDENTITY)
            yield Oggz(cast=cast, arts=arts, vpk=vpk, case=case)
        finally:
            await cast.close()


async def _invoke(console: Console, case: str, *, ground: str = "severe-self-neglect") -> Any:
    page = f"/n/{console.network}/bemoeizorg"
    return await console.client.post(page + "/invoke", data=[
        ("csrf", await console.csrf(page)), ("case", case), ("ground", ground),
        ("classes", "name"), ("classes", "address"), ("justification", JUSTIFICATION)],
        headers=console.origin)


def _invocation(text: str) -> str:
    found = re.search(r'id="invoked">[^<]*?([A-Za-z0-9_-]{22})', text)
    assert found, text
    return found.group(1)


async def test_invoke_cosign_release_and_the_auditors_review_go_through_the_console(
        oggz: Oggz) -> None:
    network, case = oggz.network, oggz.case
    async with opened(oggz.arts, network) as arts:
        page = f"/n/{network}/bemoeizorg"
        form = await (await arts.client.get(page)).text()
        assert "sealed to the network’s auditors" in form
        assert oggz.cast.auditor.name in form
        answer = await _invoke(arts, case)
        assert answer.status == 200, await answer.text()
        invocation = _invocation(await answer.text())

        async with opened(oggz.vpk, network) as vpk:
            cosigned = await vpk.post(page + "/cosign", {"invocation": invocation, "case": case},
                                      page=page)
            assert cosigned.status == 200, await cosigned.text()
            assert 'id="cosigned"' in await cosigned.text()

        listed = await (await arts.client.get(page)).text()
        assert invocation in listed and "co-signed" in listed
        release = f"{page}/{invocation}/release"
        released = await arts.post(release, {}, page=page)
        assert released.status == 200, await released.text()
        assert released.headers["Cache-Control"] == "no-store"
        shown = await released.text()
        assert IDENTITY["name"]["family_name"] in shown
        assert oggz.arts.identity.get(network, case)["name"]["family_name"] == \
            IDENTITY["name"]["family_name"]

    async with opened(oggz.cast.auditor, network) as auditor:
        one = f"/n/{network}/bemoeizorg/{invocation}"
        examined = await (await auditor.client.get(one)).text()
        assert JUSTIFICATION in examined
        assert examined.index(JUSTIFICATION) < examined.index('name="outcome"')
        reviewed = await auditor.post(one + "/review", {
            "outcome": "approved", "note": "Grond en onderbouwing voldoende."}, page=one)
        assert reviewed.status == 200, await reviewed.text()
    entries = [e["entry"] for e in await oggz.cast.coordinator.audit.entries(network)]
    assert any(e["action"] == "review" and e.get("reason") == "review-approved"
               for e in entries)


async def test_the_invoker_cannot_cosign_their_own_invocation_and_is_told_why(
        oggz: Oggz) -> None:
    network = oggz.network
    async with opened(oggz.arts, network) as arts:
        invocation = _invocation(await (await _invoke(arts, oggz.case)).text())
        page = f"/n/{network}/bemoeizorg"
        answer = await arts.post(page + "/cosign", {"invocation": invocation}, page=page)
        assert answer.status == 422
        text = await answer.text()
        assert 'role="alert"' in text and "the co-signer must be a different person" in text


async def test_release_before_the_cosign_is_refused_and_explained(oggz: Oggz) -> None:
    network = oggz.network
    async with opened(oggz.arts, network) as arts:
        invocation = _invocation(await (await _invoke(arts, oggz.case)).text())
        page = f"/n/{network}/bemoeizorg"
        answer = await arts.post(f"{page}/{invocation}/release", {}, page=page)
        assert answer.status == 422
        assert "must co-sign first" in await answer.text()
    assert oggz.arts.identity.get(network, oggz.case) == {}


async def test_a_review_note_with_identifying_data_is_refused_showing_the_span(
        oggz: Oggz) -> None:
    network = oggz.network
    invocation = await oggz.arts.disclosure.invoke_bemoeizorg(
        network, oggz.case, ground="severe-self-neglect", justification=JUSTIFICATION)
    async with opened(oggz.cast.auditor, network) as auditor:
        one = f"/n/{network}/bemoeizorg/{invocation}"
        answer = await auditor.post(one + "/review", {
            "outcome": "questioned", "note": "Bel de arts op 06-12345678."}, page=one)
        assert answer.status == 422
        assert "<mark>06-12345678</mark>" in await answer.text()
    entries = [e["entry"] for e in await oggz.cast.coordinator.audit.entries(network)]
    assert not any(e["action"] == "review" for e in entries)


async def test_bemoeizorg_is_shown_as_not_available_outside_an_oggz_network(
        tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            async with opened(cast.coordinator, cast.network) as console:
                text = await (await console.client.get(f"/n/{cast.network}/bemoeizorg")).text()
                assert 'id="unavailable"' in text
                assert "bemoeizorg exists only in OGGZ networks" in text
                assert 'action="/n/' not in text.split('id="unavailable"')[1]
        finally:
            await cast.close()


@pytest.mark.parametrize("suffix", ["/bemoeizorg/invoke", "/bemoeizorg/cosign",
                                    "/bemoeizorg/{inv}/release", "/bemoeizorg/{inv}/review"])
async def test_the_bemoeizorg_forms_require_the_sessions_csrf_token(
        oggz: Oggz, suffix: str) -> None:
    network = oggz.network
    invocation = await oggz.arts.disclosure.invoke_bemoeizorg(
        network, oggz.case, ground="severe-self-neglect", justification=JUSTIFICATION)
    async with opened(oggz.arts, network) as arts:
        path = f"/n/{network}" + suffix.format(inv=invocation)
        answer = await arts.client.post(path, data={
            "case": oggz.case, "ground": "nuisance", "justification": JUSTIFICATION,
            "invocation": invocation, "outcome": "approved", "note": "Goed."},
            headers=arts.origin)
        assert answer.status == 403
    entries = [e["entry"] for e in await oggz.cast.coordinator.audit.entries(network)]
    assert [e["action"] for e in entries if e["action"].startswith(("bemoeizorg", "review"))
            ] == ["bemoeizorg-invoke"]
