"""Sharing a case in the console (cli/console/sharing.py, ADR 0040) over a real server:
the coördinator shares a consult with a schil partner, who then reads it; a reason with
identifying data is refused with its span and nothing is shared."""

from __future__ import annotations

from typing import Any

from tests.test_console import OLDER_MAN, Console, network  # noqa: F401  (the fixture)

CONSULT = {**OLDER_MAN, "summary": "Consultatieve vraag: hoe bereiken we een man die geen "
                                   "hulp wil?"}


async def test_the_coordinator_shares_a_consult_with_a_shell_partner_who_then_reads_it(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    case = await cast.formal.cases.consult(console.network, CONSULT)
    await cast.shell.sync(console.network)
    assert not cast.shell.cases.all(console.network)
    await console.enter()
    await console.unlock()
    page = f"/n/{console.network}/cases/{case}/share"
    form = await (await console.client.get(page)).text()
    assert cast.shell.key_id in form and cast.coordinator.key_id not in form
    answer = await console.post(page, {"partner": cast.shell.key_id,
                                       "share_reason": "medicatievraag"}, page=page)
    assert answer.status == 200, await answer.text()
    await cast.shell.sync(console.network)
    view = cast.shell.cases.get(console.network, case)
    assert view.state["summary"] == CONSULT["summary"]


async def test_a_share_reason_with_identifying_data_is_refused_and_nothing_is_shared(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    case = await cast.formal.cases.consult(console.network, CONSULT)
    await console.enter()
    await console.unlock()
    page = f"/n/{console.network}/cases/{case}/share"
    answer = await console.post(page, {"partner": cast.shell.key_id,
                                       "share_reason": "bel 06-12345678"}, page=page)
    assert answer.status == 422
    assert "<mark>06-12345678</mark>" in await answer.text()
    await cast.shell.sync(console.network)
    assert not cast.shell.cases.all(console.network)


async def test_sharing_with_someone_who_is_not_a_current_member_is_refused(
        network: tuple[Any, Console]) -> None:
    cast, console = network
    case = await cast.formal.cases.consult(console.network, CONSULT)
    await console.enter()
    await console.unlock()
    page = f"/n/{console.network}/cases/{case}/share"
    answer = await console.post(page, {"partner": "A" * 43, "share_reason": "vraag"},
                                page=page)
    assert answer.status == 422
