"""The console's members screen (cli/console/members.py; ADR 0040, ADR 0042) against the
real aiohttp app and a real server (tests/client_harness.py): the coördinator admits a
partner from its key bundle only with the fingerprint read aloud, and a removal re-keys.

Each test is one rule, named after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData

from schakel.client.fold import latest_epoch
from tests.client_harness import make_partner, running_server, standard_network
from tests.test_console import Console, _console


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[Any, Console]]:
    """A standard network on a real server; the console, unlocked, over the coördinator's
    home."""
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            async for console in _console(Path(cast.coordinator.session.home.path)):
                console.network, console.url = cast.network, url
                await console.enter()
                await console.unlock()
                yield cast, console
        finally:
            await cast.close()


async def _admit(console: Console, bundle: dict[str, Any], fingerprint: str, *,
                 ring: str = "shell", roles: tuple[str, ...] = ()) -> Any:
    """Send the admit form with the bundle as an uploaded file."""
    page = f"/n/{console.network}/members"
    form = FormData()
    form.add_field("csrf", await console.csrf(page))
    form.add_field("bundle_file", json.dumps(bundle).encode(), filename="bundle.json",
                   content_type="application/json")
    form.add_field("bundle", "")
    form.add_field("ring", ring)
    form.add_field("party", "formal")
    for role in roles:
        form.add_field("roles", role)
    form.add_field("fingerprint", fingerprint)
    return await console.client.post(page + "/admit", data=form, headers=console.origin)


def _names(partner: Any, network: str) -> set[str]:
    return {m["name"] for m in partner.networks.members(network) if m["current"]}


async def test_the_members_screen_lists_the_verified_members_with_ring_party_and_fingerprint(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    text = await (await console.client.get(f"/n/{console.network}/members")).text()
    for member in (cast.formal, cast.shell, cast.auditor):
        assert member.name in text
        assert str(member.fingerprint) in text
    assert "kern" in text and "schil" in text


async def test_a_partner_is_admitted_with_the_fingerprint_read_aloud(
        tmp_path: Path, network: tuple[Any, Console]) -> None:
    cast, console = network
    newcomer = await make_partner(tmp_path, console.url, "ggd", name="GGD Regio Utrecht")
    try:
        # Read aloud with dashes, as some people write it down.
        heard = "-".join(str(newcomer.fingerprint).split())
        answer = await _admit(console, newcomer.bundle(), heard, roles=("professional-secrecy",))
        assert answer.status == 200, await answer.text()
        text = await answer.text()
        assert 'id="admitted"' in text and "GGD Regio Utrecht" in text
        await cast.formal.sync(console.network)
        assert "GGD Regio Utrecht" in _names(cast.formal, console.network)
        member = next(m for m in cast.formal.networks.members(console.network)
                      if m["key_id"] == newcomer.key_id)
        assert (member["ring"], member["party"], member["roles"]) == ("shell", "formal",
                                                                       ["professional-secrecy"])
    finally:
        await newcomer.close()


async def test_a_wrong_fingerprint_is_refused_explained_compared_and_nothing_is_sent(
        tmp_path: Path, network: tuple[Any, Console]) -> None:
    cast, console = network
    newcomer = await make_partner(tmp_path, console.url, "ggd", name="GGD Regio Utrecht")
    try:
        size = (await cast.auditor.audit.verify(console.network)).size
        groups = str(newcomer.fingerprint).split()
        misheard = groups[:-1] + [f"{(int(groups[-1]) + 1) % 100000:05d}"]
        answer = await _admit(console, newcomer.bundle(), " ".join(misheard))
        assert answer.status == 422
        text = await answer.text()
        assert 'role="alert"' in text
        assert "compare the fingerprint again with the owner of the key, aloud" in text
        assert "1 group differs" in text
        assert f"<td>{groups[-1]}</td>" in text and f"<td>{misheard[-1]}</td>" in text
        await cast.formal.sync(console.network)
        assert "GGD Regio Utrecht" not in _names(cast.formal, console.network)
        assert (await cast.auditor.audit.verify(console.network)).size == size
    finally:
        await newcomer.close()


async def test_removing_a_core_member_rekeys_to_a_new_epoch_for_the_remaining_core(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    gone = cast.informal
    confirm = f"/n/{console.network}/members/{gone.key_id}/remove"
    text = await (await console.client.get(confirm)).text()
    assert "rekey" in text and gone.name in text
    before = latest_epoch(cast.formal.session.state, console.network)
    answer = await console.post(confirm, {"removal": "Organisatie stopt met het netwerk."},
                                page=confirm)
    assert answer.status == 200, await answer.text()
    shown = re.search(r"from (\d+) to (\d+)", await answer.text())
    assert shown, await answer.text()
    assert int(shown.group(1)) == before and int(shown.group(2)) > before
    await cast.formal.sync(console.network)
    assert latest_epoch(cast.formal.session.state, console.network) == int(shown.group(2))
    assert gone.name not in _names(cast.formal, console.network)


async def test_a_removal_reason_with_identifying_data_is_refused_showing_the_span(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    confirm = f"/n/{console.network}/members/{cast.informal.key_id}/remove"
    answer = await console.post(confirm, {"removal": "Bel 06-12345678 voor de reden."},
                                page=confirm)
    assert answer.status == 422
    assert "<mark>06-12345678</mark>" in await answer.text()
    await cast.formal.sync(console.network)
    assert cast.informal.name in _names(cast.formal, console.network)


@pytest.mark.parametrize("suffix", ["/members/admit", "/members/{member}/remove"])
async def test_the_members_forms_require_the_sessions_csrf_token(
        network: tuple[Any, Console], suffix: str) -> None:
    cast, console = network
    path = f"/n/{console.network}" + suffix.format(member=cast.informal.key_id)
    answer = await console.client.post(path, data={"removal": "Weg.", "ring": "core"},
                                       headers=console.origin)
    assert answer.status == 403
    await cast.formal.sync(console.network)
    assert cast.informal.name in _names(cast.formal, console.network)


async def test_only_the_coordinator_is_offered_admitting_and_removing(tmp_path: Path) -> None:
    async with running_server(tmp_path) as url:
        cast = await standard_network(tmp_path, url)
        try:
            async for console in _console(Path(cast.formal.session.home.path)):
                await console.enter()
                await console.unlock()
                text = await (await console.client.get(f"/n/{cast.network}/members")).text()
                assert cast.informal.name in text
                assert "/members/admit" not in text and "/remove" not in text
        finally:
            await cast.close()
